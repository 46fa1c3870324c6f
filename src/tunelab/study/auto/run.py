"""The orchestration of ``tunelab auto``: seven stages under one wall-time budget, each resumable.

``run_auto(data="digits", budget="5m")`` profiles the data, trains a baseline, finds the lr range,
searches, ablates the winner (the Occam step), retrains the final recipe on new seeds (the only
reading of the test split) and compresses it; it writes ``best.yaml``, ``run/`` (a deployable
run directory), ``auto.json`` and returns the ``--json`` object. Each stage's record is stored
(``state.AutoState``) as it ends: a rerun after Ctrl-C skips the finished stages and resumes the
unfinished one run by run (the search's trials, the ablation's runs, the final seeds).

Which seeds each stage trains on (``seeds`` in the result): the selection seed ``train.seed``
(baseline, lr-find, search), ``ablation_seeds`` and ``final_seeds`` (disjoint by construction).

    >>> result = run_auto(data="digits", budget="5m")  # doctest: +SKIP
    >>> result["final"]["test"]["mean"], result["budget"]["stages"]["search"]["spent_s"]  # doctest: +SKIP
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tunelab.errors import RecipeError
from tunelab.io import atomic_write_text, finite
from tunelab.recipe import Recipe, load_recipe
from tunelab.study.auto import ablation as ablation_stage
from tunelab.study.auto import baseline as baseline_stage
from tunelab.study.auto import compress as compress_stage
from tunelab.study.auto import final as final_stage
from tunelab.study.auto import search as search_stage
from tunelab.study.auto.budget import STAGES, Budget, parse_budget
from tunelab.study.auto.portfolio import fit_to_space, portfolio
from tunelab.study.auto.profile import FAMILIES, DataProfile, profile_data
from tunelab.study.auto.space import (
    BASELINE_EPOCHS,
    baseline_recipe,
    early_stopping,
    epochs_for_budget,
    search_recipe,
)
from tunelab.study.auto.state import AutoState
from tunelab.study.scaffold import compared_metric, study_free_raw

DEFAULT_OUT = "runs/auto"
# Runs the search's reserve prices for the ablation: about 3 seeds of 7 variants.
ABLATION_RUNS = 21
# The search's winner is often slower per epoch than the baseline it was priced on (a resnet won
# digits at 2.5x the baseline CNN's seconds per run): the stages after the search are priced at
# this many baseline runs per run, or they overrun the budget.
RESERVE_SLACK = 2.0
# The final runs and compression are reserved this many times their price before the ablation
# takes the rest: the winner's seconds were measured earlier, on a machine whose load may rise
# (digits, 5m: final priced 43 s took 86 s when the load went from 1.5 to 3.5, 27 s over budget).
FINAL_SLACK = 1.5
ABLATION_TARGET_SEEDS = 5  # more seeds narrow the intervals; the budget may allow fewer
# Progress events: on_event(stage, what, budget, detail); what is "start", "update", "done", "skip".
Event = Callable[[str, str, Budget, str], None]


def starting_recipe(
    recipe: str | Path | Mapping[str, Any] | Recipe | None, data: str | None, overrides: Sequence[str]
) -> tuple[Recipe, bool]:
    """The starting recipe (given, or one naming the data) and whether one was given."""
    if recipe is None:
        if data is None and not any(o.startswith("data.") for o in overrides):
            raise RecipeError("--data", None, "give a dataset (--data digits), --set data.*=..., or a RECIPE")
        raw: dict[str, Any] = {"data": {"name": data}} if data else {}
        return load_recipe(raw, overrides), False
    extra = [f"data.name={data}"] if data else []
    if isinstance(recipe, Recipe) and not overrides and not extra:
        return recipe, True
    return load_recipe(recipe.to_dict() if isinstance(recipe, Recipe) else recipe, [*extra, *overrides]), True


def run_auto(
    recipe: str | Path | Mapping[str, Any] | Recipe | None = None,
    *,
    data: str | None = None,
    overrides: Sequence[str] = (),
    budget: str | float = "30m",
    workers: int = 1,
    storage: str | None = None,
    out: str | Path | None = None,
    final_seeds: int = 5,
    tolerance: float = 0.3,
    on_event: Event | None = None,
) -> dict[str, Any]:
    """Run (or resume) the playbook under ``budget``; see the module docstring."""
    total = parse_budget(budget)
    if workers < 1:
        raise RecipeError("--workers", workers, "must be >= 1")
    if final_seeds < 2:
        raise RecipeError("--final-seeds", final_seeds, "must be >= 2: one seed gives no interval")
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise RecipeError("--tolerance", tolerance, "must be >= 0 points of the val metric, e.g. 0.3")
    start, given = starting_recipe(recipe, data, overrides)
    name = Path(str(recipe)).stem if isinstance(recipe, (str, Path)) else start.data.name
    out_dir = Path(out) if out is not None else Path(DEFAULT_OUT) / name
    out_dir.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{out_dir / 'auto.db'}"
    start_raw = study_free_raw(start)
    state = AutoState(
        url, {"start": start_raw, "given": given, "final_seeds": final_seeds, "tolerance": tolerance}
    )
    clock = Budget.from_dict(state.budget(), total)
    run = _Run(state, clock, url, out_dir, workers, on_event or (lambda *_: None))
    seed = start.train.seed
    profile = DataProfile.from_dict(run.stage("profile", None, lambda: profile_data(start).to_dict()))
    base_raw = run.stage(
        "baseline", clock.share("baseline"), lambda: _baseline(run, start_raw, given, profile)
    )
    lr = run.stage("lr_find", clock.share("lr_find"), lambda: _lr_find(run, base_raw, profile))
    found = run.stage(None, None, lambda: _search(run, base_raw, lr, profile, final_seeds))
    winner, cost = _winner(found, base_raw, profile.task)
    abl = run.stage(None, None, lambda: _ablation(run, winner, cost, final_seeds, seed))
    final_raw = abl["recipe"]
    fin = run.stage(
        "final",
        cost["seconds"] * final_seeds,
        lambda: _final(run, final_raw, final_stage.final_seeds(seed, final_seeds), profile.task),
    )
    comp = run.stage(None, None, lambda: _compress(run, fin, cost, tolerance, profile))
    best_yaml = out_dir / "best.yaml"
    atomic_write_text(best_yaml, load_recipe(final_raw).to_yaml())
    result = {
        "kind": "auto",
        "name": name,
        "out": str(out_dir),
        "storage": state.where,
        "best_yaml": str(best_yaml),
        "run_dir": fin["run_dir"],
        "budget": clock.to_dict(),
        "seeds": {
            "selection": [seed],
            "ablation": abl.get("seeds", []),
            "final": fin["seeds"],
        },
        "profile": profile.to_dict(),
        "baseline": base_raw,
        "lr_find": lr,
        "search": {k: v for k, v in found.items() if k != "recipe"},
        "winner": cost["from"],
        "ablation": abl,
        "final": fin,
        "compress": comp,
        "recipe": final_raw,
    }
    atomic_write_text(out_dir / "auto.json", _json(result))
    return result


def _json(d: Mapping[str, Any]) -> str:
    import json

    return json.dumps(finite(dict(d)), indent=2)


class _Run:
    """What every stage needs: the stored records, the clock, the storage and the output."""

    def __init__(
        self, state: AutoState, clock: Budget, url: str, out: Path, workers: int, on_event: Event
    ) -> None:
        self.state, self.clock, self.url, self.out, self.workers = state, clock, url, out, workers
        self.say = on_event
        self.current = ""

    def stage(self, name: str | None, planned: float | None, fn: Callable[[], Any]) -> Any:
        """The stored record of ``name``, or ``fn()`` run on the stage's clock and stored.

        ``name`` None: ``fn`` opens its own stage (its plan depends on earlier records) with
        ``self.open`` and returns its record.
        """
        if name is not None:
            found = self.state.get(name)
            if found is not None:
                self.say(name, "skip", self.clock, "done in an earlier session")
                return found
            self.open(name, planned)
        try:
            record = fn()
        finally:
            self.close()
        if name is not None:
            self.finish(name, record)
        return record

    def open(self, name: str, planned: float | None, note: str = "") -> None:
        self.current = name
        self.clock.start(name, planned, note)
        self.say(name, "start", self.clock, note)

    def close(self) -> None:
        if self.current:
            self.clock.stop(self.current)
            self.state.save_budget(self.clock.to_dict())

    def finish(self, name: str, record: Any, detail: str = "") -> None:
        self.state.put(name, record)
        self.say(name, "done", self.clock, detail or _detail(name, record))
        self.current = ""

    def stored(self, name: str) -> dict[str, Any] | None:
        found = self.state.get(name)
        if found is not None:
            self.say(name, "skip", self.clock, "done in an earlier session")
        return found


def _detail(stage: str, r: Any) -> str:
    """The stage's line once it is done."""
    if stage == "profile":
        return "; ".join(r.get("notes", []))
    if stage == "baseline":
        return (
            f"val {r['monitor']} {_fmt(r['val'].get(r['monitor'].split('.', 1)[1]))} in {r['epochs']} epochs"
        )
    if stage == "lr_find":
        return f"lr range {r['range'][0]:.2g} .. {r['range'][1]:.2g} (suggested {r['suggested_lr']:.2g})"
    if stage == "search":
        best = r.get("best") or {}
        return f"{sum(r['counts'].values())} trials {r['counts']}; best val {_fmt(best.get('value'))}"
    if stage == "ablation":
        if r.get("note") and not r.get("variants"):
            return f"skipped: {r['note']}"
        dropped, kept = [d["name"] for d in r["dropped"]], [k["name"] for k in r["kept"]]
        return f"{len(r['seeds'])} seeds; dropped {dropped}, kept {kept}"
    if stage == "final":
        t = r.get("test", {})
        return f"test {r['metric']} {_fmt(t.get('mean'))} [{_fmt(t.get('ci_low'))}, {_fmt(t.get('ci_high'))}]"
    if stage == "compress":
        return (
            f"smallest {r.get('smallest')}, fastest {r.get('fastest')}"
            if r.get("rows")
            else "; ".join(r.get("notes", []))
        )
    return ""


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) else "-"


# --- the stages -----------------------------------------------------------------------------------


def _baseline(run: _Run, start_raw: dict[str, Any], given: bool, p: DataProfile) -> dict[str, Any]:
    """Stage 2: the starting recipe (early stopping on, copies dropped), or the modality's default."""
    cleaning = {"duplicates": "drop", "near_duplicates": p.near_duplicates}
    if given:
        raw = {**start_raw, "preprocess": {**start_raw.get("preprocess", {}), **cleaning}}
        if p.modality == "text" and not _reads_tokens(raw):
            # A recipe that names only the data gets the default model (an mlp), which cannot read
            # token ids: the text baseline's model stands in for it.
            family = baseline_recipe(raw["data"], "text", p.family, epochs=1)["model"]
            raw["model"] = family
        if not any(m["name"] == "early_stopping" for m in raw.get("methods", [])):
            raw["methods"] = [*raw.get("methods", []), early_stopping(raw["train"]["epochs"])]
    else:
        epochs = BASELINE_EPOCHS[p.modality]
        raw = baseline_recipe(start_raw["data"], p.modality, p.family, epochs=epochs, preprocess=cleaning)
        raw["train"]["seed"] = start_raw["train"]["seed"]
    raw = study_free_raw(load_recipe(raw))
    return baseline_stage.run_baseline(raw, run.clock.deadline("baseline"))


def _reads_tokens(raw: Mapping[str, Any]) -> bool:
    """Whether the recipe's model reads token ids (or an encoder's features feed it)."""
    model = (raw.get("model") or {}).get("name")
    return (
        model in (*FAMILIES["text"], "transformer")
        or (raw.get("preprocess") or {}).get("features") is not None
    )


def _lr_find(run: _Run, base: dict[str, Any], p: DataProfile) -> dict[str, Any]:
    """Stage 3: the range test, its steps priced from the baseline's seconds per epoch."""
    raw = base["recipe"]
    per_step = base["seconds_per_epoch"] / math.ceil(p.sizes["train"] / raw["train"]["batch_size"])
    return baseline_stage.run_lr_find(raw, run.clock.planned("lr_find") or 0.0, per_step)


def _search(run: _Run, base: dict[str, Any], lr: dict[str, Any], p: DataProfile, final_seeds: int) -> Any:
    """Stage 4: epochs and the search's time from the baseline's seconds per epoch, then TPE + ASHA."""
    found = run.stored("search")
    if found is not None:
        return found
    space = run.state.get("search_space")
    if space is None:
        spe = base["seconds_per_epoch"]
        after = final_seeds + ABLATION_RUNS + 2  # + compress: about two runs of fine-tuning and timing
        epochs = epochs_for_budget(run.clock.left(), spe, after)
        raw = search_recipe(
            base["recipe"],
            p.modality,
            p.input_shape,
            p.sizes["train"],
            lr_range=tuple(lr["range"]),
            epochs=epochs,
            missing=bool(p.missing.get("cells")),
        )
        points = [
            fit_to_space(point, raw["search"])
            for point in portfolio(
                p.modality, p.input_shape, p.sizes["train"], missing=bool(p.missing.get("cells"))
            )
        ]
        space = {
            "recipe": raw,
            "epochs": epochs,
            "reserve_s": RESERVE_SLACK * after * epochs * spe,
            "portfolio": points,
        }
        run.state.put("search_space", space)
    planned = run.clock.search_plan(space["reserve_s"])
    run.open("search", planned, f"{space['epochs']} epochs per trial")
    record = search_stage.run_search_stage(
        space["recipe"],
        storage=run.url,
        deadline=run.clock.deadline("search"),
        workers=run.workers,
        out_dir=run.out / "search",
        on_trial=lambda t, _names: run.say("search", "update", run.clock, f"trial {t.number} {t.state.name}"),
        portfolio=space.get("portfolio", ()),
    )
    record["epochs"] = space["epochs"]
    run.close()
    run.finish("search", record)
    return record


def _winner(
    found: Mapping[str, Any], base: Mapping[str, Any], task: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(recipe, cost) of what goes on: the search's best recipe, unless the baseline did better on
    val (a short search under a small budget can end below where it started: digits at 5 minutes
    on a loaded machine, best trial val loss 0.48, baseline 0.03). ``cost``: where the winner
    came from, and its measured seconds and epochs per run, which price the stages after it."""
    best = found.get("best") or {}
    baseline = (
        dict(base["recipe"]),
        {"from": "baseline", "seconds": base["seconds"], "epochs": base["epochs"]},
    )
    if not found.get("recipe") or best.get("value") is None:
        return baseline
    compared = compared_metric(load_recipe(base["recipe"]), task)
    ref = (base.get("val") or {}).get(compared.metric)
    sign = 1 if compared.mode == "max" else -1
    if ref is not None and sign * ref > sign * best["value"]:
        return baseline
    seconds = float(best.get("seconds") or base["seconds"])
    return dict(found["recipe"]), {"from": "search", "seconds": seconds, "epochs": best.get("epochs") or 1}


def _ablation(run: _Run, winner: dict[str, Any], cost: dict[str, Any], final_seeds: int, seed: int) -> Any:
    """Stage 5: plan final and compress first (priced at the winner's seconds), ablate in the rest."""
    got = run.stored("ablation")
    if got is not None:
        return got
    per_run = max(float(cost["seconds"]), 1e-3)
    arms = len(ablation_stage.candidates(load_recipe(winner)))
    reserve = FINAL_SLACK * per_run * (final_seeds + 2)
    plan = max(0.0, run.clock.left() - reserve)
    seeds = min(ABLATION_TARGET_SEEDS, int(plan // max(per_run * arms, 1e-6)))
    run.open("ablation", plan, f"{arms} variants x up to {seeds} seeds")
    if seeds < ablation_stage.MIN_SEEDS:
        record = {
            "seeds": [],
            "variants": [],
            "dropped": [],
            "kept": [],
            "recipe": winner,
            "note": f"skipped: {seeds} seed(s) of {arms} variants fit the time left; the Occam step needs "
            f"{ablation_stage.MIN_SEEDS}",
        }
    else:
        record = ablation_stage.run_ablation_stage(
            winner,
            seeds=final_stage.ablation_seeds(seed, seeds),
            storage=run.url,
            deadline=run.clock.deadline("ablation"),
            round_seconds=per_run * arms,
            on_run=lambda v, s, _r: run.say("ablation", "update", run.clock, f"{v} seed {s}"),
        )
    run.close()
    run.finish("ablation", record)
    return record


def _final(run: _Run, raw: dict[str, Any], seeds: list[int], task: str) -> dict[str, Any]:
    """Stage 6: every final seed (stored one by one), the summary, and ``run/`` (best val seed)."""
    partial = dict(run.state.get("final_runs") or {})
    done = {int(s): r for s, r in partial.items()}

    def keep(r: dict[str, Any]) -> None:
        done[r["seed"]] = r
        run.state.put("final_runs", {str(s): v for s, v in done.items()})
        run.say("final", "update", run.clock, f"seed {r['seed']} test {r['test']}")

    runs = final_stage.run_final(raw, seeds, run.out / "final", done, keep)
    compared = compared_metric(load_recipe(raw), task)
    # The figure reported: accuracy for a classification (whatever the selection read), else the
    # compared metric.
    metric = "accuracy" if task == "classification" else compared.metric
    sign = 1 if (task == "classification" or compared.mode == "max") else -1
    record = final_stage.summary(runs, metric)
    record["runs"] = runs
    ok = [r for r in runs if r["status"] in ("completed", "stopped_early") and metric in r["val"]]
    # The deployable model: the final seed best on val (a choice, so val only).
    chosen = max(ok, key=lambda r: sign * r["val"][metric]) if ok else None
    record["run_dir"] = None
    if chosen is not None:
        dest = run.out / "run"
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(chosen["run_dir"], dest)
        record.update(run_dir=str(dest), run_seed=chosen["seed"])
    return record


def _compress(run: _Run, fin: dict[str, Any], cost: dict[str, Any], tolerance: float, p: DataProfile) -> Any:
    """Stage 7: fine-tuning epochs from the time left, then the smallest and fastest within tolerance."""
    got = run.stored("compress")
    if got is not None:
        return got
    left = run.clock.left()
    run.open("compress", left)
    spe = cost["seconds"] / max(1, cost["epochs"])
    epochs = compress_stage.finetune_epochs(left * 0.7, spe, max([r["epochs"] for r in fin["runs"]] or [1]))
    if fin.get("run_dir") is None:
        record = {"rows": [], "notes": ["no final run finished: nothing to compress"]}
    else:
        record = compress_stage.run_compress_stage(
            Path(fin["run_dir"]),
            tolerance=tolerance,
            epochs=epochs,
            classification=p.task == "classification",
            seconds=left,
        )
    run.close()
    run.finish("compress", record)
    return record


__all__ = ["STAGES", "run_auto", "starting_recipe"]
