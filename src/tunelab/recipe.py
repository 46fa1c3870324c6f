"""The recipe: a typed, validated description of one training run.

A recipe is YAML with the sections ``data``, ``model``, ``optimizer``, ``schedule``, ``train`` and
``methods``. Every field has exactly one default, written here (for the common fields) or in the
signature of the registry entry it names (for an entry's own parameters, such as ``mlp.hidden``).
Everything is checked before anything runs; errors name the dotted path, the value and what is
allowed.

    >>> from tunelab.recipe import load_recipe
    >>> r = load_recipe({"model": {"name": "mlp"}}, overrides=["optimizer.lr=0.01"])
    >>> r.optimizer.params["lr"]
    0.01
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from tunelab.errors import RecipeError, did_you_mean
from tunelab.registry import Registry
from tunelab.schema import Range, check, field_hints

INIT_SCHEMES = (
    "default",
    "uniform",
    "normal",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "he_uniform",
    "he_normal",
)
InitScheme = Literal[
    "default",
    "uniform",
    "normal",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "he_uniform",
    "he_normal",
]

# Metrics a monitor may name; "val.<m>" or "train.loss". Direction is inferred from the name.
MINIMIZED = {"loss", "mse", "mae", "rmse"}
MONITOR_METRICS = {"loss", "accuracy", "precision", "recall", "f1", "mse", "mae", "rmse", "r2"}


def check_monitor(monitor: str, path: str) -> None:
    """Raise RecipeError unless ``monitor`` is ``train.loss`` or ``val.<metric>``.

    >>> check_monitor("val.f1", "train.monitor")
    """
    split, _, metric = monitor.partition(".")
    if not ((split == "val" and metric in MONITOR_METRICS) or (split == "train" and metric == "loss")):
        raise RecipeError(
            path,
            monitor,
            "must be train.loss or val.<metric> with metric one of " + ", ".join(sorted(MONITOR_METRICS)),
        )


def resolve_auto_monitor(monitor: str, task: str) -> str:
    """``train.monitor`` with ``auto`` resolved for the data's task: val.accuracy or val.loss.

    >>> resolve_auto_monitor("auto", "regression"), resolve_auto_monitor("val.f1", "classification")
    ('val.loss', 'val.f1')
    """
    if monitor != "auto":
        return monitor
    return "val.accuracy" if task == "classification" else "val.loss"


def monitor_mode(monitor: str) -> Literal["min", "max"]:
    """'min' for losses and errors, 'max' for scores: ``monitor_mode("val.loss") == "min"``."""
    return "min" if monitor.split(".")[-1] in MINIMIZED else "max"


@dataclass
class DataSpec:
    name: str = "mnist1d"  # a registered dataset (see `tunelab datasets`), or csv / npz
    # 20% of train is the usual hold-out for early stopping and selection on small data.
    val_fraction: Annotated[float, Range(gt=0, lt=1)] = 0.2
    # Used only by datasets without a published test split (mnist1d keeps its own 1000 samples).
    test_fraction: Annotated[float, Range(gt=0, lt=1)] = 0.2
    # The split does not follow train.seed, so runs on different seeds are paired on one split.
    split_seed: int = 0
    # Standardize inputs with statistics fit on train only (never on val or test).
    standardize: bool = True
    # Keep this stratified fraction of the train split (few-label experiments, fine-tuning);
    # val and test are unchanged, so results stay comparable with the full-data run.
    train_fraction: Annotated[float, Range(gt=0, le=1)] = 1.0
    params: dict[str, Any] = field(default_factory=dict)  # the dataset entry's own parameters


@dataclass
class ModelSpec:
    name: str = "mlp"  # a registered model family (see `tunelab models`), or custom
    init: InitScheme = "default"  # "default" keeps PyTorch's own per-layer initialization
    # Weights to start from: a tunelab run directory, a checkpoint file (state_dict), or a hub
    # name ("timm:NAME", "hf:REPO"); tensors whose shape differs (a new head) are re-initialized.
    pretrained: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimizerSpec:
    name: str = "adam"  # Adam is the robust default for small models with little tuning
    # Decay (L2 penalty or decoupled weight decay) on biases and norm scales only shifts
    # activations; the usual practice (and the default) excludes them.
    decay_bias_and_norm: bool = False
    # Discriminative learning rates: each block closer to the input gets lr x layer_decay^depth
    # (1.0 = one lr for all). Used when fine-tuning, where early layers need smaller steps.
    layer_decay: Annotated[float, Range(gt=0, le=1)] = 1.0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScheduleSpec:
    name: str = "constant"
    # Warmup composes with any schedule: the LR grows over these epochs, then the schedule runs.
    warmup_epochs: Annotated[int, Range(ge=0)] = 0
    warmup: Literal["linear", "exponential"] = "linear"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainSpec:
    epochs: Annotated[int, Range(ge=1)] = 20
    batch_size: Annotated[int, Range(ge=1)] = 64
    # Micro-batches of batch_size per optimizer step: a batch of grad_accum x batch_size in the
    # memory of one micro-batch (gradients accumulate; the loss is weighted by sample counts).
    grad_accum: Annotated[int, Range(ge=1)] = 1
    seed: int = 0
    device: str = "auto"  # auto: CUDA when present, else CPU
    # Autocast precision of the forward pass. bf16 keeps fp32's range (no loss scaling); fp16
    # runs with a GradScaler so small gradients do not underflow.
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    # NHWC memory layout for image models: faster convolutions on many CPUs and GPUs.
    channels_last: bool = False
    compile: bool = False  # torch.compile: pays a compile time up front for faster steps
    # Metric that selects the best epoch (checkpoint, early stopping, plateau schedules).
    # auto: val.accuracy for classification, val.loss for regression.
    monitor: str = "auto"
    loss: Literal["auto", "cross_entropy", "mse", "mae", "huber"] = "auto"
    eval_batch_size: Annotated[int, Range(ge=1)] = 1024
    threads: Annotated[int, Range(ge=1)] | None = None  # torch.set_num_threads; None keeps torch's
    tensorboard: bool = True
    # Measure inference latency and throughput at the end (a few seconds on a small model).
    efficiency: bool = True


@dataclass
class MethodSpec:
    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchParam:
    """One dimension of the search space (`search:` maps dotted recipe paths to these)."""

    type: Literal["uniform", "loguniform", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    step: float | None = None  # int (and uniform): grid step
    log: bool = False  # int: sample on a log scale
    choices: list[Any] | None = None  # categorical


@dataclass
class AblationSpec:
    """Candidate variants of an ablation study beyond "each method removed"."""

    add: list[dict[str, Any]] = field(default_factory=list)  # methods to add, e.g. [{name: ema}]
    values: dict[str, list[Any]] = field(default_factory=dict)  # dotted path -> values to try
    remove_methods: bool = True  # a variant without each method of the recipe
    remove_regularizers: bool = True  # a variant with dropout = 0 / batch_norm = false


@dataclass
class Recipe:
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    methods: list[MethodSpec] = field(default_factory=list)
    search: dict[str, SearchParam] = field(default_factory=dict)  # used by `tunelab search`
    ablation: AblationSpec = field(default_factory=AblationSpec)  # used by `tunelab ablate`

    def to_dict(self, resolved: bool = True) -> dict[str, Any]:
        """Plain data, entry parameters flattened into their section as in the YAML.

        ``resolved=True`` also writes every default, so the dict alone repeats the run exactly.
        """
        regs = _registries()
        out: dict[str, Any] = {}
        for sec in ("data", "model", "optimizer", "schedule"):
            spec = getattr(self, sec)
            d = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name != "params"}
            if resolved and spec.name in regs[sec]:
                for p in regs[sec].get(spec.name).params:
                    if not p.required:
                        d[p.name] = _plain(p.default)
            d.update(spec.params)
            out[sec] = _plain(d)
        out["train"] = _plain(dataclasses.asdict(self.train))
        methods = []
        for m in self.methods:
            d = {"name": m.name}
            if resolved and m.name in regs["methods"]:
                for p in regs["methods"].get(m.name).params:
                    if not p.required:
                        d[p.name] = _plain(p.default)
            d.update(m.params)
            methods.append(_plain(d))
        out["methods"] = methods
        if self.search:
            out["search"] = {
                k: {
                    f: _plain(v) for f, v in dataclasses.asdict(p).items() if v is not None and v is not False
                }
                for k, p in self.search.items()
            }
        if self.ablation != AblationSpec():
            out["ablation"] = _plain(dataclasses.asdict(self.ablation))
        return out

    def to_yaml(self, resolved: bool = True) -> str:
        return yaml.safe_dump(self.to_dict(resolved), sort_keys=False)

    def method(self, name: str) -> MethodSpec | None:
        return next((m for m in self.methods if m.name == name), None)


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _registries() -> dict[str, Registry]:
    # Imported here: the registries' modules import the recipe types.
    from tunelab.data import DATASETS
    from tunelab.methods import METHODS
    from tunelab.models import MODELS
    from tunelab.optim import OPTIMIZERS, SCHEDULES

    return {
        "data": DATASETS,
        "model": MODELS,
        "optimizer": OPTIMIZERS,
        "schedule": SCHEDULES,
        "methods": METHODS,
    }


SECTIONS = {
    "data": DataSpec,
    "model": ModelSpec,
    "optimizer": OptimizerSpec,
    "schedule": ScheduleSpec,
    "train": TrainSpec,
    "methods": list,
    "search": dict,
    "ablation": AblationSpec,
}


def _named_section(cls: type, registry: Registry, raw: Any, path: str) -> Any:
    """Build a section made of common fields plus the parameters of the entry it names."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise RecipeError(path, raw, "must be a mapping")
    hints = field_hints(cls)
    common = {f.name for f in dataclasses.fields(cls) if f.name != "params"}
    default_name = next(f.default for f in dataclasses.fields(cls) if f.name == "name")
    name = raw.get("name", default_name)
    if name is dataclasses.MISSING:
        raise RecipeError(f"{path}.name", None, "is required")
    name = check(name, str, f"{path}.name")
    entry = registry.get(name, f"{path}.name")
    kwargs: dict[str, Any] = {"name": entry.name}
    entry_raw: dict[str, Any] = {}
    entry_names = [p.name for p in entry.params]
    for key, v in raw.items():
        if key == "name":
            continue
        p = f"{path}.{key}"
        if key in common:
            kwargs[key] = check(v, hints[key], p)
        elif key in entry_names or entry.tags.get("open"):
            entry_raw[key] = v
        else:
            allowed = sorted(common - {"name"}) + entry_names
            raise RecipeError(
                p,
                v,
                f"unknown key for {registry.kind} {entry.name!r}; allowed: {', '.join(allowed)}",
                did_you_mean(key, allowed),
            )
    kwargs["params"] = entry.check(entry_raw, path)
    return cls(**kwargs)


def validate(raw: Mapping[str, Any]) -> Recipe:
    """Build a Recipe from plain data, checking every key and value."""
    if not isinstance(raw, Mapping):
        raise RecipeError("", raw, "a recipe must be a mapping with sections " + ", ".join(SECTIONS))
    for key in raw:
        if key not in SECTIONS:
            raise RecipeError(
                str(key),
                raw[key],
                "unknown section; allowed: " + ", ".join(SECTIONS),
                did_you_mean(str(key), SECTIONS),
            )
    regs = _registries()
    r = Recipe(
        data=_named_section(DataSpec, regs["data"], raw.get("data"), "data"),
        model=_named_section(ModelSpec, regs["model"], raw.get("model"), "model"),
        optimizer=_named_section(OptimizerSpec, regs["optimizer"], raw.get("optimizer"), "optimizer"),
        schedule=_named_section(ScheduleSpec, regs["schedule"], raw.get("schedule"), "schedule"),
        train=check(raw.get("train") or {}, TrainSpec, "train"),
        methods=_methods(regs["methods"], raw.get("methods")),
        search=check(raw.get("search") or {}, dict[str, SearchParam], "search"),
        ablation=check(raw.get("ablation") or {}, AblationSpec, "ablation"),
    )
    _cross_checks(r)
    return r


def _methods(registry: Registry, raw: Any) -> list[MethodSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RecipeError("methods", raw, "must be a list of {name: ..., <params>}")
    out, seen = [], set()
    for i, item in enumerate(raw):
        path = f"methods[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, Mapping) or "name" not in item:
            raise RecipeError(path, item, "must be a mapping with a name, e.g. {name: l2, weight: 1e-4}")
        entry = registry.get(check(item["name"], str, f"{path}.name"), f"{path}.name")
        if entry.name in seen:
            raise RecipeError(f"{path}.name", entry.name, "each method may appear once")
        seen.add(entry.name)
        params = {k: v for k, v in item.items() if k != "name"}
        out.append(MethodSpec(entry.name, entry.check(params, f"methods.{entry.name}")))
    return out


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _cross_checks(r: Recipe) -> None:
    if not _DEVICE.match(r.train.device):
        raise RecipeError("train.device", r.train.device, "must be auto, cpu, mps, cuda or cuda:N")
    if r.train.monitor != "auto":
        check_monitor(r.train.monitor, "train.monitor")
    from tunelab.optim import check_schedule

    check_schedule(r.schedule, r.optimizer, r.train.epochs)
    if r.search:
        from tunelab.study.space import check_space

        check_space(r)
    if r.ablation != AblationSpec():
        from tunelab.study.ablation import check_ablation

        check_ablation(r)
    regs = _registries()
    for m in r.methods:
        entry = regs["methods"].get(m.name)
        validate_hook = getattr(entry.obj, "validate_recipe", None)
        if validate_hook is not None:
            validate_hook(r, m)


# --- loading and overrides -------------------------------------------------------------------


def parse_override(text: str) -> tuple[list[str], Any]:
    """'optimizer.lr=0.01' -> (['optimizer', 'lr'], 0.01); the value is read as YAML."""
    if "=" not in text:
        raise RecipeError("--set", text, "must look like path.to.key=value, e.g. optimizer.lr=0.01")
    key, _, value = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise RecipeError("--set", text, "must look like path.to.key=value, e.g. optimizer.lr=0.01")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return key.split("."), parsed


def apply_override(raw: dict[str, Any], parts: Sequence[str], value: Any) -> None:
    """Set ``raw[parts...] = value`` in place.

    ``methods.<name>.<param>`` addresses a method by name (``methods.l2.weight=1e-3``);
    ``methods.<name>=null`` removes it and ``methods.<name>={}`` adds it with its defaults, at the
    end of the list (before a method that wraps the final model, ``tta``, which stays last).
    """
    path = ".".join(parts)
    if parts[0] == "methods" and len(parts) >= 2:
        methods = raw.setdefault("methods", []) or []
        raw["methods"] = methods
        name = parts[1]
        idx = next(
            (i for i, m in enumerate(methods) if (m if isinstance(m, str) else m.get("name")) == name), None
        )
        if len(parts) == 2:
            if value is None:
                if idx is not None:
                    methods.pop(idx)
                return
            if not isinstance(value, Mapping):
                raise RecipeError(
                    path, value, "a method is set with a mapping of its parameters, or null to remove it"
                )
            item = {"name": name, **value}
            if idx is None:
                # A method that wraps the final model (Method.wraps_final: tta) stays last: one
                # added here goes before it (else ema, channel_prune or quantize would be refused).
                from tunelab.methods import METHODS

                names = [m if isinstance(m, str) else m.get("name") for m in methods]
                last = [i for i, n in enumerate(names) if n in METHODS and METHODS.get(n).obj.wraps_final]
                methods.insert(last[0] if last else len(methods), item)
            else:
                methods[idx] = item
            return
        if idx is None:
            raise RecipeError(
                path, value, f"the recipe has no method {name!r}; add it first with methods.{name}={{}}"
            )
        if isinstance(methods[idx], str):
            methods[idx] = {"name": methods[idx]}
        node = methods[idx]
        parts = parts[2:]
    else:
        node = raw
        for p in parts[:-1]:
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise RecipeError(path, value, f"{p} is not a section")
            node = nxt
    node[parts[-1]] = value


def load_raw(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """Read a recipe file (YAML) or copy a mapping."""
    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source))
    path = Path(source)
    if not path.is_file():
        raise RecipeError("recipe", str(path), "file not found; give the path of a YAML recipe")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise RecipeError("recipe", str(path), f"is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise RecipeError("recipe", str(path), "must contain a mapping of sections")
    return raw


def load_recipe(
    source: str | Path | Mapping[str, Any] | Recipe,
    overrides: Sequence[str] = (),
) -> Recipe:
    """Load and validate a recipe from a YAML path or a mapping, applying ``a.b=c`` overrides.

    >>> load_recipe({}, overrides=["train.epochs=3"]).train.epochs
    3
    """
    raw = source.to_dict() if isinstance(source, Recipe) else load_raw(source)
    for text in overrides:
        parts, value = parse_override(text)
        apply_override(raw, parts, value)
    return validate(raw)
