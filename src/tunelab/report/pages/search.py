"""The report of a search study, read from its storage (the trials, their per-epoch reports, the
search settings, importances and the final retrain: ``tunelab.study.search.study_report``) and
from its output directory (``best.yaml``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from tunelab.errors import TunelabError
from tunelab.redact import mask_url
from tunelab.report.model import Code, Figure, Item, Note, Report, Section, Series, Table
from tunelab.report.pages.common import interval_text, num, plural
from tunelab.study.search.config import StudyConfig
from tunelab.study.search.options import DEFAULT_OUT
from tunelab.study.search.results import TrialRecord
from tunelab.study.search.studies import StudyReport, study_report
from tunelab.study.storage import KIND_ATTR, load_named_study, open_storage, storage_url

# Trials listed in the folded table of every trial; a larger study lists its best ones.
MAX_TRIAL_ROWS = 2000


def load_search(study_name: str, storage: str | None) -> tuple[optuna.Study, StudyConfig]:
    """The study and its search settings; a clear error for a missing or non-search study."""
    url = storage_url(storage)
    store = open_storage(url, heartbeat=False)
    hint = (
        "give a run directory, a study output directory, or a study name with --storage URL "
        "(`tunelab studies --storage URL` lists them)"
    )
    study = load_named_study(study_name, store, url, hint)
    if study.user_attrs.get(KIND_ATTR) != "search":
        kind = study.user_attrs.get(KIND_ATTR) or "non-tunelab"
        article = "an" if kind[:1] in "aeiou" else "a"
        raise TunelabError(
            f"study {study_name!r} in {mask_url(url)} is {article} {kind} study, not a search; "
            "give its output "
            f"directory instead: tunelab report {DEFAULT_OUT}/{study_name}"
        )
    return study, StudyConfig.from_attrs(study.user_attrs, study_name)


def build_search_report(
    study_name: str, storage: str | None = None, out_dir: str | Path | None = None
) -> Report:
    """The report of search ``study_name``: trials, pruning, importances, slices, the Pareto front,
    the final retrain and the best recipe (``<out_dir>/best.yaml``, default runs/studies/<study>)."""
    study, config = load_search(study_name, storage)
    summary = study_report(study_name, storage, top=10)
    trials = study.get_trials(deepcopy=False)
    names = [o.name for o in config.objectives]
    out = Path(out_dir) if out_dir is not None else Path(DEFAULT_OUT) / study_name
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    report = Report(
        kind="search",
        title=f"search {study_name}",
        summary=_headline(summary, config),
        source={
            "kind": "search",
            "study": study_name,
            "storage": mask_url(storage_url(storage)),
            "dir": str(out),
        },
    )
    explored = Section("what the search explored")
    explored.items.append(objective_figure(trials, names[0], config))
    explored.items.append(pruning_figure(trials, names[0], config))
    report.sections.append(explored)
    params = Section("parameters")
    params.items.append(importance_figure(summary))
    params.items.append(slice_figure(complete, names[0]))
    report.sections.append(params)
    if len(names) > 1:
        report.sections.append(Section("trade-off", [pareto_figure(complete, names, summary)]))
    else:
        report.sections.append(Section("trade-off", [Note("a single objective: no Pareto front to draw")]))
    report.sections.append(final_section(summary.final, names))
    report.sections.append(best_section(summary, trials, names, out))
    return report


def _headline(s: StudyReport, config: StudyConfig) -> str:
    counts = ", ".join(f"{n} {k.lower()}" for k, n in sorted(s.counts.items()))
    objectives = ", ".join(f"{n} ({d})" for n, d in zip(s.objectives, s.directions, strict=False))
    how = f"sampler {config.sampler}, pruner {config.pruner}"
    return f"{counts} of a budget of {config.trials} · {objectives} · {how}"


def _is_max(config: StudyConfig) -> bool:
    return config.directions[0] == "maximize"


def objective_figure(trials: Sequence[FrozenTrial], name: str, config: StudyConfig) -> Item:
    """The first objective of every complete trial in the order they ran, with the running best."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    if not done:
        return Note("no trial completed yet: nothing to plot")
    best, running = None, []
    better = max if _is_max(config) else min
    for t in done:
        best = t.values[0] if best is None else better(best, t.values[0])
        running.append(best)
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    series = [
        Series(
            "complete trial",
            [t.number for t in done],
            [t.values[0] for t in done],
            kind="scatter",
            role="train",
            labels=[_trial_label(t) for t in done],
        ),
        Series("running best", [t.number for t in done], running, kind="step", role="best"),
    ]
    if pruned:
        series.append(
            Series(
                "pruned (last reported value)",
                [t.number for t in pruned],
                [t.intermediate_values[max(t.intermediate_values)] for t in pruned],
                kind="scatter",
                role="pruned",
                labels=[f"trial {t.number}: pruned after epoch {max(t.intermediate_values)}" for t in pruned],
            )
        )
    return Figure(
        "objective",
        "xy",
        f"{name} per trial",
        f"{name} of each of the {plural(len(done), 'complete trial')} (one run each, seed "
        f"{config.seed}; no intervals) in the order they started, and the best so far"
        + (
            f"; × marks the {plural(len(pruned), 'pruned trial')} at the value they last reported"
            if pruned
            else ""
        )
        + ". Hover a point for its trial and parameters.",
        x_label="trial",
        y_label=name,
        series=series,
    )


def _trial_label(t: FrozenTrial) -> str:
    params = ", ".join(f"{k}={num(v) if isinstance(v, float) else v}" for k, v in t.params.items())
    values = ", ".join(num(v) for v in t.values or [])
    return f"trial {t.number}: {values} · {params}"


def pruning_figure(trials: Sequence[FrozenTrial], name: str, config: StudyConfig) -> Item:
    """Each trial's per-epoch value; pruned trials end with an × at the epoch they stopped."""
    if config.pruner == "none":
        return Note(
            "no pruner: every trial ran all its epochs, so there is no pruning to show (--pruner median)"
        )
    curves = [
        t for t in trials if t.intermediate_values and t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    ]
    if not curves:
        return Note("no trial reported a per-epoch value yet")

    def joined(ts: Sequence[FrozenTrial]) -> tuple[list[Any], list[Any]]:
        xs: list[Any] = []
        ys: list[Any] = []
        for t in ts:  # one series for many curves: a None between two trials breaks the line
            steps = sorted(t.intermediate_values)
            xs += [*steps, None]
            ys += [t.intermediate_values[s] for s in steps] + [None]
        return xs, ys

    complete = [t for t in curves if t.state == TrialState.COMPLETE]
    pruned = [t for t in curves if t.state == TrialState.PRUNED]
    series = []
    if complete:
        series.append(Series("complete trials", *joined(complete), role="neutral"))
    if pruned:
        series.append(Series("pruned trials", *joined(pruned), role="val"))
        last = [max(t.intermediate_values) for t in pruned]
        series.append(
            Series(
                "pruned here",
                last,
                [t.intermediate_values[s] for t, s in zip(pruned, last, strict=True)],
                kind="scatter",
                role="pruned",
                labels=[
                    f"trial {t.number}: pruned after epoch {s}" for t, s in zip(pruned, last, strict=True)
                ],
            )
        )
    return Figure(
        "pruning",
        "xy",
        f"{name} per epoch of each trial ({config.pruner} pruner)",
        f"The val value each trial reported after each epoch ({plural(len(complete), 'complete trial')}, "
        f"{plural(len(pruned), 'pruned trial')}); × marks the epoch at which the {config.pruner} pruner "
        "stopped a trial. One run per trial, no intervals.",
        x_label="epoch",
        y_label=name,
        series=series,
    )


def importance_figure(s: StudyReport) -> Item:
    if not s.importances:
        return Note(s.importance_note or "no parameter importances: too few complete trials")
    objectives = list(s.importances)
    params: list[str] = []
    for imp in s.importances.values():
        params += [p for p in imp if p not in params]
    first = s.importances[objectives[0]]
    params.sort(key=lambda p: -first.get(p, 0.0))
    n = sum(v for k, v in s.counts.items() if k == "COMPLETE")
    return Figure(
        "importance",
        "bars",
        "parameter importance (fANOVA)",
        f"Share of each objective's variance over the {plural(n, 'complete trial')} explained by each "
        "parameter (fANOVA, a random forest fit on the trials, seed 0; shares sum to 1 per objective). "
        "It describes the space the sampler visited, not causes; no intervals."
        + (f" {s.importance_note}" if s.importance_note else ""),
        x_label="importance",
        series=[Series(o, params, [s.importances[o].get(p, 0.0) for p in params]) for o in objectives],
        horizontal=True,
    )


def _log_param(trials: Sequence[FrozenTrial], name: str) -> bool:
    for t in trials:
        d = t.distributions.get(name)
        if isinstance(d, (FloatDistribution, IntDistribution)):
            return bool(d.log)
    return False


def slice_figure(complete: Sequence[FrozenTrial], name: str) -> Item:
    """One panel per parameter: the objective of each complete trial against its value."""
    if not complete:
        return Note("no trial completed yet: no slice plot")
    params: list[str] = []
    for t in complete:
        params += [p for p in t.params if p not in params]
    series = []
    for p in params:
        ts = [t for t in complete if p in t.params]
        categorical = any(isinstance(t.distributions.get(p), CategoricalDistribution) for t in ts)
        xs = [str(t.params[p]) if categorical else t.params[p] for t in ts]
        series.append(
            Series(
                p,
                xs,
                [t.values[0] for t in ts],
                kind="scatter",
                role="train",
                labels=[_trial_label(t) for t in ts],
                log_x=not categorical and _log_param(ts, p),
            )
        )
    return Figure(
        "slices",
        "slices",
        f"{name} against each parameter",
        f"Slice plot: {name} of each complete trial ({len(complete)}) against the value it drew for each "
        "parameter (log axes for parameters searched on a log scale). A conditional parameter shows only "
        "the trials that drew it. One run per trial, no intervals.",
        y_label=name,
        series=series,
    )


def pareto_figure(complete: Sequence[FrozenTrial], names: Sequence[str], s: StudyReport) -> Item:
    if not complete:
        return Note("no trial completed yet: no Pareto front")
    front = {t.number for t in s.best}
    rest = [t for t in complete if t.number not in front]
    on = sorted((t for t in complete if t.number in front), key=lambda t: t.values[0])
    series = [
        Series(
            "other trials",
            [t.values[0] for t in rest],
            [t.values[1] for t in rest],
            kind="scatter",
            role="neutral",
            labels=[_trial_label(t) for t in rest],
        ),
        Series(
            "Pareto front",
            [t.values[0] for t in on],
            [t.values[1] for t in on],
            kind="scatter",
            role="pareto",
            labels=[_trial_label(t) for t in on],
        ),
        Series("front", [t.values[0] for t in on], [t.values[1] for t in on], kind="line", role="pareto"),
    ]
    extra = (
        f" The study has {len(names)} objectives; the figure shows the first two." if len(names) > 2 else ""
    )
    return Figure(
        "pareto",
        "xy",
        f"{names[1]} against {names[0]}",
        f"Every complete trial ({len(complete)}); green: the {plural(len(on), 'trial')} on the Pareto front "
        f"(no other trial is at least as good in every objective and better in one: {names[0]} "
        f"{s.directions[0]}d, {names[1]} {s.directions[1]}d). One run per trial, no intervals." + extra,
        x_label=names[0],
        y_label=names[1],
        series=series,
    )


def final_section(final: Mapping[str, Any] | None, names: Sequence[str]) -> Section:
    section = Section("the best recipe retrained")
    if not final:
        section.items.append(Note("no final retrain (--final-seeds 0, or no trial completed)"))
        return section
    seeds = final.get("seeds", [])
    cats, ys, lows, highs, roles = [], [], [], [], []
    rows = []
    for m in final.get("metrics", []):
        for split in ("val", "test", "value"):
            s = m.get(split)
            if not s:
                continue
            label = m["name"] if split == "value" else f"{split} {m['name'].split('.', 1)[-1]}"
            cats.append(label)
            ys.append(s["mean"])
            lows.append(s.get("ci_low"))
            highs.append(s.get("ci_high"))
            roles.append("test" if split == "test" else "val")
            rows.append([label, s.get("n"), s["mean"], interval_text(s.get("ci_low"), s.get("ci_high"))])
    if cats and all(m.get("value") is None for m in final.get("metrics", [])) and len(cats) <= 6:
        section.items.append(
            Figure(
                "final",
                "intervals",
                "final retrain: val and test, mean and 95% interval",
                f"The best trial's recipe (trial {final.get('trial')}) retrained on "
                f"{plural(len(seeds), 'seed')} "
                f"({', '.join(map(str, seeds))}); each point is the mean over seeds, the bar its 95% "
                "t-interval. "
                "Each run read the test split once, after the choice.",
                y_label="value",
                series=[Series("mean over seeds", cats, ys, low=lows, high=highs, roles=roles)],  # type: ignore[arg-type]
                legend={"val": "val", "test": "test (read once per run)"},
                half=True,
            )
        )
    section.items.append(
        Table("mean and 95% interval over the final runs", ["objective", "n", "mean", "95% CI"], rows)
    )
    runs = [
        [
            r.get("seed"),
            r.get("status"),
            *[r.get("val", {}).get(n.split(".", 1)[-1]) for n in names[:1]],
            *[r.get("test", {}).get(n.split(".", 1)[-1]) for n in names[:1]],
            r.get("run_dir"),
        ]
        for r in final.get("runs", [])
    ]
    section.items.append(
        Table("final runs", ["seed", "status", f"val {names[0]}", f"test {names[0]}", "run directory"], runs)
    )
    if final.get("note"):
        section.items.append(Note(final["note"]))
    return section


def best_section(s: StudyReport, trials: Sequence[FrozenTrial], names: Sequence[str], out: Path) -> Section:
    section = Section("best recipe and trials")
    best_yaml = out / "best.yaml"
    if best_yaml.is_file():
        section.items.append(
            Code(f"{best_yaml} (the best trial's recipe, fully resolved)", best_yaml.read_text(), "yaml")
        )
    else:
        section.items.append(
            Note(f"{best_yaml} is not there: the search has not finished a trial, or wrote elsewhere")
        )
    records = [TrialRecord.of(t) for t in trials]
    title = "Pareto front" if len(names) > 1 else "best trials"
    section.items.append(Table(title, ["trial", *names, "parameters"], [_row(r, names) for r in s.best]))
    shown = records[:MAX_TRIAL_ROWS]
    rows = [
        [r.number, r.state.lower(), *_values(r, names), r.epochs, _params(r.params), r.message] for r in shown
    ]
    section.items.append(
        Table(
            "every trial",
            ["trial", "state", *names, "epochs", "parameters", "message"],
            rows,
            "" if len(records) <= MAX_TRIAL_ROWS else f"the first {MAX_TRIAL_ROWS} of {len(records)} trials",
            collapsed=True,
        )
    )
    return section


def _values(r: TrialRecord, names: Sequence[str]) -> list[Any]:
    return list(r.values) if r.values else [None] * len(names)


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={num(v) if isinstance(v, float) else v}" for k, v in params.items())


def _row(r: TrialRecord, names: Sequence[str]) -> list[Any]:
    return [r.number, *_values(r, names), _params(r.params)]
