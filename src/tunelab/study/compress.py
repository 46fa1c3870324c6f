"""Compress a finished run: prune or quantize, fine-tune, evaluate, measure, save (``tunelab compress``).

``compress_run(run_dir, ...)`` rebuilds the run's model from ``recipe.yaml`` and ``final.pt`` and
makes one row per variant:

* ``dense``               the run's model as it is (the reference)
* ``unstructured-<s>``    magnitude pruning to sparsity s, then ``finetune_epochs`` of the run's
                          recipe with the ``prune`` method holding (and, with a gradual
                          ``schedule``, growing) the masks: the recipe's optimizer, schedule,
                          batch size and methods, seeds ``train.seed .. +seeds-1``
* ``structured-<s>``      the fraction s of channels/neurons removed (Torch-Pruning), then the
                          same fine-tuning of the narrower model
* ``int8``                dynamic int8 quantization of the dense model's Linear layers (torchao)
* ``int8-weight-only``    int8 weights, float activations and matmuls (torchao)

Each row reports the model's counts (parameters, nonzero parameters, bytes, FLOPs), its latency
at batch 1 and throughput at a large batch (all rows timed in interleaved rounds, so a slow
moment of a shared machine hits every row alike), and val and test metrics as mean and
confidence interval over the seeds. Model choices read val only; test is evaluated once per
fine-tuned model, at its end. The rows on the Pareto front of (val metric, latency) are marked.
Each compressed model is saved under ``RUN_DIR/compress/<row>/seed-<seed>/`` (see
``tunelab.compress.artifacts``), and the whole result in ``RUN_DIR/compress/result.json``.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from tunelab.compress.artifacts import save_compressed
from tunelab.compress.prune import count_nonzero_params, prune_magnitude_, weight_sparsity
from tunelab.compress.quantize import linear_weight_bytes, quantize_int8
from tunelab.compress.structured import prune_channels
from tunelab.errors import TunelabError
from tunelab.io import atomic_write_text, finite
from tunelab.metrics.efficiency import flops, latency, model_size_bytes, throughput
from tunelab.recipe import Recipe
from tunelab.study.scaffold import compared_metric

__all__ = [
    "CompressResult",
    "CompressRow",
    "compress_run",
    "finetune_recipe",
    "measure_interleaved",
    "pareto_front",
]

Kind = Literal["dense", "unstructured", "structured", "int8"]


@dataclass
class CompressRow:
    """One compressed variant: its counts, timings, and quality over seeds."""

    name: str  # "dense", "unstructured-0.9", "structured-0.5", "int8"
    method: Kind
    sparsity: float  # requested: weights zeroed (unstructured) or channels removed (structured)
    weight_sparsity: float  # measured: share of the dense model's Linear/Conv weights zero or gone
    params: int
    nonzero_params: int
    size_bytes: int  # serialized state_dict (what a checkpoint takes on disk)
    sparse_size_bytes: int | None  # the CSR file of an unstructured row
    linear_weight_bytes: int
    flops: int  # floating-point operations per sample (torch.utils.flop_counter; int8 ones excluded)
    latency_ms: float  # batch 1, median
    latency_p95_ms: float
    throughput: float  # samples/s at the large batch
    val: dict[str, float]  # metric -> mean over seeds
    test: dict[str, float]
    val_summary: dict[str, dict[str, Any]]  # metric -> tunelab.study.stats.Summary.to_dict()
    test_summary: dict[str, dict[str, Any]]
    seeds: list[int]
    path: str  # directory of the saved model(s), relative to the run directory
    pareto: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return finite(asdict(self))


@dataclass
class CompressResult:
    """Everything ``tunelab compress`` reports; renderers (``tunelab.report.compress``) only format it."""

    run_dir: str
    metric: str  # the quality metric the Pareto front uses, e.g. "accuracy"
    mode: Literal["max", "min"]
    finetune_epochs: int
    scope: str
    schedule: str
    threads: int
    device: str
    throughput_batch: int
    compiled: bool  # timings of torch.compile'd models (the recipe's train.compile)
    rows: list[CompressRow]
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "rows"}
        d["rows"] = [r.to_dict() for r in self.rows]
        return finite(d)

    def row(self, name: str) -> CompressRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no row {name!r}; rows: {', '.join(r.name for r in self.rows)}")


def pareto_front(points: Sequence[tuple[float, float]], mode: Literal["max", "min"] = "max") -> list[bool]:
    """For each (quality, latency) point: is it on the front (no other point is at least as good
    in both and strictly better in one)? Quality is maximized (``mode="max"``) or minimized.

    >>> pareto_front([(0.95, 1.0), (0.94, 0.5), (0.93, 0.7), (0.95, 2.0)])
    [True, True, False, False]
    """
    sign = 1.0 if mode == "max" else -1.0
    q = [(sign * a, -b) for a, b in points]  # both "larger is better"
    return [not any(o[0] >= p[0] and o[1] >= p[1] and (o[0] > p[0] or o[1] > p[1]) for o in q) for p in q]


def measure_interleaved(
    models: dict[str, nn.Module],
    example_one: Tensor,
    example_big: Tensor,
    *,
    rounds: int = 5,
    budget_s: float = 2.0,
) -> dict[str, dict[str, float]]:
    """Latency (batch 1) and throughput (``example_big``'s batch) of several models, side by side.

    The models take turns over ``rounds`` rounds, each round timing each model with a slice of its
    ``budget_s`` (half latency, half throughput, after warm-up: ``tunelab.metrics.efficiency``);
    a figure is the median over rounds, so a burst of load on a shared machine shifts one round
    of every model rather than all of one model's calls.

    >>> r = measure_interleaved({"a": nn.Linear(4, 2)}, torch.zeros(1, 4), torch.zeros(8, 4),
    ...                         rounds=2, budget_s=0.02)
    >>> sorted(r["a"]), r["a"]["throughput"] > 0
    (['latency_ms', 'latency_p95_ms', 'throughput'], True)
    """
    per = budget_s / (2 * rounds)
    seen: dict[str, dict[str, list[float]]] = {n: {"lat": [], "p95": [], "thr": []} for n in models}
    for _ in range(rounds):
        for name, model in models.items():
            lat = latency(model, example_one, warmup=3, repeats=50, budget_s=per)
            thr = throughput(model, example_big, warmup=1, repeats=10, budget_s=per)
            seen[name]["lat"].append(lat["median_ms"])
            seen[name]["p95"].append(lat["p95_ms"])
            seen[name]["thr"].append(thr["samples_per_s"])
    return {
        n: {
            "latency_ms": statistics.median(s["lat"]),
            "latency_p95_ms": statistics.median(s["p95"]),
            "throughput": statistics.median(s["thr"]),
        }
        for n, s in seen.items()
    }


# --- the study ---------------------------------------------------------------------------------


@dataclass
class _Variant:
    name: str
    kind: Kind
    sparsity: float
    models: list[nn.Module]  # one per seed
    vals: list[dict[str, Any]]
    tests: list[dict[str, Any]]
    seeds: list[int]
    notes: list[str] = field(default_factory=list)
    scheme: str | None = None  # int8 rows: the torchao scheme, saved so a predictor can rebuild it


def _load_run(run_dir: Path) -> tuple[Any, Any, nn.Module]:
    from tunelab.data import load_data
    from tunelab.models.pretrained import load_state_dict_file
    from tunelab.predict import run_model
    from tunelab.recipe import load_recipe

    if not (run_dir / "recipe.yaml").is_file():
        raise TunelabError(
            f"{run_dir}: no recipe.yaml; pass the run directory that `tunelab train --out DIR` wrote"
        )
    if not (run_dir / "final.pt").is_file():
        raise TunelabError(
            f"{run_dir}: no final.pt; the run did not finish (see its result.json): train it to the end first"
        )
    recipe = load_recipe(run_dir / "recipe.yaml")
    data = load_data(recipe.data, recipe.preprocess)
    # A run with channel_prune saved the narrowed model, one with quantize an int8 one: the
    # recipe's architecture is narrowed to fit, and int8 weights are compressed as floats.
    state = load_state_dict_file(run_dir / "final.pt")
    model = run_model(
        recipe,
        data.input_shape,
        data.num_outputs,
        state,
        quantized=False,
        source=f"{run_dir}/final.pt",
        embeddings=data.meta.get("embeddings"),
        text=data.meta.get("text"),
    )
    return recipe, data, model


# Methods of the run that compress's fine-tuning leaves out (see finetune_recipe).
NOT_FINETUNED = ("prune", "channel_prune", "quantize", "tta")


def finetune_recipe(
    recipe: Recipe, epochs: int, seed: int, threads: int, prune: dict[str, Any] | None = None
) -> Recipe:
    """The run's ``recipe`` adapted to fine-tune an already trained (compressed) model.

    Same data, optimizer, schedule, batch size and methods; ``epochs``, ``seed`` and ``threads``
    replaced; ``model.init`` "default" and no ``pretrained`` (``fit(model=...)`` applies both to the
    model it is given, which would overwrite the trained weights); no efficiency timing (done
    once, side by side, afterwards); a ``prune`` method with the parameters ``prune`` first.

    >>> from tunelab.recipe import load_recipe
    >>> r = load_recipe({"model": {"name": "mlp", "init": "kaiming_normal"}, "train": {"epochs": 30}})
    >>> ft = finetune_recipe(r, 3, seed=1, threads=1, prune={"sparsity": 0.9})
    >>> ft.train.epochs, ft.model.init, [(m.name, m.params["sparsity"]) for m in ft.methods]
    (3, 'default', [('prune', 0.9)])
    """
    from tunelab.recipe import load_recipe

    raw = recipe.to_dict()
    raw["train"].update(epochs=epochs, seed=seed, threads=threads, efficiency=False, tensorboard=False)
    # fit(model=...) applies model.init and model.pretrained to the model it is given: both would
    # overwrite the trained weights this fine-tuning starts from.
    raw["model"].update(init="default", pretrained=None)
    # A warmup as long as the fine-tuning is not a schedule (the recipe check refuses it): the
    # trained weights need no warmup anyway, so it is shortened to leave the schedule an epoch.
    raw["schedule"]["warmup_epochs"] = min(raw["schedule"].get("warmup_epochs", 0), max(0, epochs - 1))
    # The run's own compression methods are dropped: the model is compressed already, and this
    # fine-tuning compresses it as the compress command says (quantization is applied after).
    # tta is dropped too: every row is the bare model (the dense row is evaluated bare), and
    # TTA's extra views would multiply the pruned rows' FLOPs and latency alone.
    methods = [m for m in raw.get("methods", []) if m["name"] not in NOT_FINETUNED]
    # prune first: its fit_end then runs last and masks what early stopping / EMA hand back.
    raw["methods"] = ([{"name": "prune", **prune}] if prune else []) + methods
    raw.pop("search", None)
    raw.pop("ablation", None)
    return load_recipe(raw)


def _evaluate(
    model: nn.Module, data: Any, recipe: Any, evaluate_test: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    from tunelab.train import LOSSES, _criterion, evaluate

    loss = LOSSES["cross_entropy"] if data.task == "classification" else _criterion(recipe, data.task)
    bs = recipe.train.eval_batch_size
    val = evaluate(model, data, "val", loss, bs)
    # Read once for this model, after every choice (unless the caller reads test elsewhere).
    test = evaluate(model, data, "test", loss, bs) if evaluate_test else {}
    return val, test


def compress_run(
    run_dir: str | Path,
    *,
    sparsities: Sequence[float] = (0.5, 0.8, 0.9, 0.95),
    structured: bool = False,
    quantize: bool = False,
    finetune_epochs: int | None = None,
    seeds: int = 1,
    scope: Literal["global", "layerwise"] | None = None,
    schedule: Literal["oneshot", "linear", "cubic"] = "cubic",
    threads: int | None = None,
    throughput_batch: int = 1024,
    budget_s: float = 2.0,
    save: bool = True,
    progress: Callable[[str], None] | None = None,
    evaluate_test: bool = True,
) -> CompressResult:
    """Compress the model of a finished run; see the module docstring.

    Args:
        run_dir: a run directory written by ``tunelab train`` (``recipe.yaml`` and ``final.pt``).
        sparsities: fractions of weights (unstructured) or channels (``structured=True``) removed.
        structured: remove channels (Torch-Pruning) instead of zeroing single weights.
        quantize: add the ``int8`` (dynamic) and ``int8-weight-only`` rows (Linear layers, torchao).
        finetune_epochs: epochs of the run's recipe after pruning; default a quarter of the run's
            epochs (at least 1); 0 evaluates the pruned model as it is.
        seeds: fine-tunings per row, seeds ``train.seed .. train.seed + seeds - 1``.
        scope: unstructured "global" (default) or "layerwise"; structured "layerwise" (default)
            or "global".
        schedule: how unstructured sparsity is reached during fine-tuning: "oneshot" (all at
            once, then fine-tune), or "cubic"/"linear" (gradually over the first half of the
            fine-tuning, then fine-tune with fixed masks).
        threads: torch threads for everything here (default: the recipe's, else torch's now).
        throughput_batch: batch size of the throughput measurement.
        budget_s: timing budget per model (latency and throughput together).
        save: write the models and ``compress/result.json`` under ``run_dir``.
        progress: called with a short line as each step starts.
        evaluate_test: False leaves the test split unread (every row's ``test`` empty): for a
            caller whose test split is read in another stage (``tunelab auto``).

    >>> res = compress_run("runs/demo", sparsities=[0.9], seeds=3)  # doctest: +SKIP
    >>> [(r.name, r.nonzero_params, r.val["accuracy"], r.pareto) for r in res.rows]  # doctest: +SKIP
    """
    from tunelab.train import resolve_device

    started = time.perf_counter()
    run_dir = Path(run_dir)
    say = progress or (lambda _msg: None)
    scope = _check_options(sparsities, seeds, finetune_epochs, schedule, scope, structured)

    say(f"loading {run_dir}")
    recipe, data, dense = _load_run(run_dir)
    threads = threads or recipe.train.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    device = resolve_device(recipe.train.device)
    epochs = finetune_epochs if finetune_epochs is not None else max(1, round(recipe.train.epochs / 4))
    compared = compared_metric(recipe, data.task)
    metric, mode = compared.metric, compared.mode
    dense = dense.to(device)
    gen = torch.Generator().manual_seed(0)  # inputs for tracing and timing: never the global RNG
    one = torch.randn((1, *data.input_shape), generator=gen).to(device)
    big = torch.randn((throughput_batch, *data.input_shape), generator=gen).to(device)
    real = data.example_inputs(throughput_batch)  # token ids: real documents, not random numbers
    if real is not None:
        one, big = real[:1].to(device), real.to(device)
    setting = _Setting(recipe, data.to(device), device, epochs, threads, scope, schedule, one, evaluate_test)

    val, test = _evaluate(dense, setting.bundle, recipe, evaluate_test)
    bare = any(m.name == "tta" for m in recipe.methods)
    notes = ["every row is the bare model: the run's tta is not applied"] if bare else []
    variants = [_Variant("dense", "dense", 0.0, [dense], [val], [test], [recipe.train.seed], notes)]
    seed_list = [recipe.train.seed + i for i in range(seeds if epochs > 0 else 1)]
    variants += [_pruned(setting, dense, s, structured, seed_list, say) for s in sparsities]
    if quantize:
        variants += _quantized(setting, dense, say)

    say("measuring")
    rows = _rows(variants, recipe, dense, one, big, metric, budget_s, run_dir if save else None)
    front = pareto_front([(r.val.get(metric, math.nan), r.latency_ms) for r in rows], mode)
    for r, on in zip(rows, front, strict=True):
        r.pareto = on
    result = CompressResult(
        run_dir=str(run_dir),
        metric=metric,
        mode=mode,
        finetune_epochs=epochs,
        scope=scope,
        schedule="channels" if structured else schedule,
        threads=threads,
        device=str(device),
        throughput_batch=throughput_batch,
        compiled=bool(recipe.train.compile),
        rows=rows,
        seconds=time.perf_counter() - started,
    )
    if save:
        atomic_write_text(run_dir / "compress" / "result.json", json.dumps(result.to_dict(), indent=2))
    return result


def _check_options(
    sparsities: Sequence[float],
    seeds: int,
    finetune_epochs: int | None,
    schedule: str,
    scope: str | None,
    structured: bool,
) -> str:
    """Raise a TunelabError naming the first bad option; return the scope (its default resolved)."""
    for s in sparsities:
        if not (isinstance(s, (int, float)) and 0 < s < 1):
            raise TunelabError(f"--sparsity: got {s!r}; each value must be a fraction in (0, 1), e.g. 0.9")
    if seeds < 1:
        raise TunelabError(f"--seeds: got {seeds}; must be >= 1")
    if finetune_epochs is not None and finetune_epochs < 0:
        raise TunelabError(f"--finetune-epochs: got {finetune_epochs}; must be >= 0")
    if schedule not in ("oneshot", "linear", "cubic"):
        raise TunelabError(f"--schedule: got {schedule!r}; must be oneshot, linear or cubic")
    scope = scope or ("layerwise" if structured else "global")
    if scope not in ("global", "layerwise"):
        raise TunelabError(f"--scope: got {scope!r}; must be global or layerwise")
    return scope


@dataclass(frozen=True)
class _Setting:
    """What every compressed row of one run shares: the run, its data and how it is fine-tuned."""

    recipe: Recipe
    bundle: Any  # the run's DataBundle, on the device
    device: torch.device
    epochs: int  # fine-tuning epochs per seed; 0 evaluates the compressed model as it is
    threads: int
    scope: Literal["global", "layerwise"]
    schedule: str
    example: Tensor  # one input (batch 1), for tracing
    evaluate_test: bool = True  # False: the rows' test metrics stay empty (compress_run's option)


def _pruned(
    setting: _Setting,
    dense: nn.Module,
    sparsity: float,
    structured: bool,
    seeds: list[int],
    say: Callable[[str], None],
) -> _Variant:
    """One pruned row: ``dense`` pruned to ``sparsity`` and fine-tuned once per seed."""
    from tunelab.train import fit

    kind: Kind = "structured" if structured else "unstructured"
    v = _Variant(f"{kind}-{sparsity:g}", kind, float(sparsity), [], [], [], seeds)
    scope, schedule, epochs, one = setting.scope, setting.schedule, setting.epochs, setting.example
    for seed in seeds:
        say(f"{v.name}: seed {seed}, {epochs} fine-tuning epoch(s)")
        model = copy.deepcopy(dense)
        prune_spec = None
        if structured:
            pr = prune_channels(model, torch.cat([one, one]), sparsity, scope=scope)  # batch 2: BN-safe
            if pr.params_after == pr.params_before:
                v.notes.append("no channel could be removed")
        elif epochs == 0 or schedule == "oneshot":
            prune_magnitude_(model, sparsity, scope)
            prune_spec = {
                "sparsity": sparsity,
                "scope": scope,
                "schedule": "oneshot",
                "begin": 0.0,
                "end": 1.0,
            }
        else:
            # Gradual: the masks grow over the first half of the fine-tuning from the trained
            # weights' magnitudes; the second half fine-tunes with the masks fixed.
            prune_spec = {
                "sparsity": sparsity,
                "scope": scope,
                "schedule": schedule,
                "begin": 0.0,
                "end": 0.5,
            }
        if epochs > 0:
            ft = finetune_recipe(setting.recipe, epochs, seed, setting.threads, prune_spec)
            r = fit(ft, model=model, data=setting.bundle, save=False, evaluate_test=setting.evaluate_test)
            if not r.ok:
                raise TunelabError(f"{v.name}: fine-tuning {r.status}: {r.message}")
            model, val, test = r.model, r.val, r.test
        else:
            val, test = _evaluate(model, setting.bundle, setting.recipe, setting.evaluate_test)
        v.models.append(model)
        v.vals.append(val)
        v.tests.append(test)
    return v


def _quantized(setting: _Setting, dense: nn.Module, say: Callable[[str], None]) -> list[_Variant]:
    """The int8 rows: dynamic and weight-only quantization of ``dense``'s Linear layers."""
    out = []
    for scheme, name in (("int8_dynamic", "int8"), ("int8_weight_only", "int8-weight-only")):
        say(f"{name}: {scheme} quantization of the Linear layers")
        q = quantize_int8(copy.deepcopy(dense).cpu(), scheme)
        if setting.device.type != "cpu":
            q.to(setting.device)
        val, test = _evaluate(q, setting.bundle, setting.recipe, setting.evaluate_test)
        v = _Variant(name, "int8", 0.0, [q], [val], [test], [setting.recipe.train.seed], scheme=scheme)
        if scheme == "int8_weight_only":
            v.notes.append("weights stored in int8 and dequantized in the matmuls, which run in float")
        out.append(v)
    return out


def _summaries(records: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    from tunelab.study.stats import summarize

    means: dict[str, float] = {}
    summaries: dict[str, dict[str, Any]] = {}
    for k, v in records[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            values = [float(r[k]) for r in records]
            means[k] = statistics.fmean(values)
            if all(math.isfinite(x) for x in values):
                summaries[k] = summarize(values).to_dict()
    return means, summaries


def _rows(
    variants: list[_Variant],
    recipe: Any,
    dense: nn.Module,
    one: Tensor,
    big: Tensor,
    metric: str,
    budget_s: float,
    run_dir: Path | None,
) -> list[CompressRow]:
    dense_weights = weight_sparsity(dense)["weights"]
    # Timed: each variant's first seed (the counts are the same for every seed).
    timed = {v.name: v.models[0] for v in variants}
    if recipe.train.compile:
        timed = {n: torch.compile(m) for n, m in timed.items()}  # type: ignore[misc]
    times = measure_interleaved(timed, one, big, budget_s=budget_s)
    dense_flops = flops(dense, one)
    if run_dir is not None and (run_dir / "compress").exists():
        shutil.rmtree(run_dir / "compress")  # an earlier `tunelab compress` of this run: replaced
    rows = []
    for v in variants:
        m = v.models[0]
        counts = count_nonzero_params(m)
        notes = list(v.notes)
        remaining = weight_sparsity(m)
        kept = remaining["weights"] - remaining["zeros"]
        n_flops = flops(m, one)
        if v.kind == "int8" and n_flops < dense_flops:  # the int8 matmuls leave the float count
            notes.append(
                f"FLOPs: floating-point operations only ({n_flops:,}); the Linear layers' "
                f"{(dense_flops - n_flops) // 2:,} multiply-adds run in int8"
            )
        if v.kind == "unstructured":
            notes.append("FLOPs as counted: dense kernels multiply the zeros too")
        val, val_s = _summaries(v.vals)
        test, test_s = _summaries(v.tests)
        path = "final.pt" if v.kind == "dense" else f"compress/{v.name}"
        sparse_bytes: int | None = None
        if run_dir is not None and v.kind != "dense":
            for seed, model, seed_val in zip(v.seeds, v.models, v.vals, strict=True):
                meta = {"row": v.name, "seed": seed, "sparsity": v.sparsity, "val": seed_val}
                if v.scheme is not None:
                    meta["scheme"] = v.scheme
                out = save_compressed(model, v.kind, run_dir / path / f"seed-{seed}", one, meta)
                notes.extend(n for n in out["notes"] if n not in notes)
                if v.kind == "unstructured" and seed == v.seeds[0]:
                    sparse_bytes = out["files"]["model.sparse.pt"]
        rows.append(
            CompressRow(
                name=v.name,
                method=v.kind,
                sparsity=v.sparsity,
                weight_sparsity=1.0 - kept / dense_weights,
                params=counts["params"],
                nonzero_params=counts["nonzero"],
                size_bytes=model_size_bytes(m),
                sparse_size_bytes=sparse_bytes,
                linear_weight_bytes=linear_weight_bytes(m),
                flops=n_flops,
                latency_ms=times[v.name]["latency_ms"],
                latency_p95_ms=times[v.name]["latency_p95_ms"],
                throughput=times[v.name]["throughput"],
                val=val,
                test=test,
                val_summary=val_s,
                test_summary=test_s,
                seeds=list(v.seeds),
                path=path,
                notes=notes,
            )
        )
    return rows
