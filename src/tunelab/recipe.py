"""The recipe: a typed, validated description of one training run: load, validate, override, dump.

A recipe is YAML with the sections ``data``, ``preprocess``, ``model``, ``optimizer``, ``schedule``,
``train`` and ``methods`` (plus ``search`` and ``ablation``, read by the studies). Every field has exactly one
default, written in ``tunelab.spec`` (for the common fields) or in the signature of the registry
entry it names (for an entry's own parameters, such as ``mlp.hidden``). Everything is checked
before anything runs; errors name the dotted path, the value and what is allowed.

The ``search`` and ``ablation`` sections are checked here for their form (keys and types); their
paths and values are checked against the rest of the recipe by the study that reads them
(``tunelab.study.search.space.check_space``, ``tunelab.study.ablation.check_ablation``), before its first
run: the config layer does not import the study layer.

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
from typing import Any

import yaml

from tunelab.data import DATASETS
from tunelab.encoders import ENCODERS, is_encoder
from tunelab.errors import RecipeError, did_you_mean
from tunelab.methods import METHODS
from tunelab.models import MODELS
from tunelab.optim import OPTIMIZERS, SCHEDULES, check_schedule
from tunelab.registry import Registry
from tunelab.schema import check, field_hints
from tunelab.spec import (
    AblationSpec,
    DataSpec,
    MethodSpec,
    ModelSpec,
    OptimizerSpec,
    PreprocessSpec,
    ScheduleSpec,
    SearchParam,
    TrainSpec,
    check_monitor,
)
from tunelab.yaml_loader import DuplicateKeyError, load_yaml


@dataclass
class Recipe:
    data: DataSpec = field(default_factory=DataSpec)
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
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
        regs = registries()
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
            if sec == "data":
                out["preprocess"] = _plain(dataclasses.asdict(self.preprocess))
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


def registries() -> dict[str, Registry]:
    """The registry each recipe section names its entry in (``methods`` for the method list)."""
    return {
        "data": DATASETS,
        "model": MODELS,
        "optimizer": OPTIMIZERS,
        "schedule": SCHEDULES,
        "methods": METHODS,
    }


SECTIONS = {
    "data": DataSpec,
    "preprocess": PreprocessSpec,
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
    _moved_keys(raw)
    regs = registries()
    r = Recipe(
        data=_named_section(DataSpec, regs["data"], raw.get("data"), "data"),
        preprocess=check(raw.get("preprocess") or {}, PreprocessSpec, "preprocess"),
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


# Keys that moved to another section: (section, key) -> what to write instead.
MOVED = {("data", "standardize"): "moved; use preprocess.scaling: standard|none"}


def _moved_keys(raw: Mapping[str, Any]) -> None:
    for (section, key), how in MOVED.items():
        sec = raw.get(section)
        if isinstance(sec, Mapping) and key in sec:
            raise RecipeError(f"{section}.{key}", sec[key], how)


def _check_text(r: Recipe) -> None:
    """The tokenizer names something that exists, and a model or features reading a pretrained
    encoder's token ids get that encoder's tokenizer (``tunelab.data.tokenize``)."""
    p = r.preprocess
    for name, value in (("tokenizer", p.tokenizer), ("features", p.features)):
        if value is not None and not (value == "word" and name == "tokenizer") and not is_encoder(value):
            known = "word, " if name == "tokenizer" else ""
            raise RecipeError(
                f"preprocess.{name}",
                value,
                f"must be {known}a pretrained encoder ({', '.join(sorted(ENCODERS))}) or a directory with "
                "its config.json and tokenizer.json",
                did_you_mean(value, ["word", *ENCODERS]),
            )
    if p.features is not None and p.tokenizer != p.features:
        raise RecipeError(
            "preprocess.tokenizer",
            p.tokenizer,
            f"the features of {p.features!r} read its own token ids; set preprocess.tokenizer: {p.features}",
        )
    entry = registries()["model"].get(r.model.name)
    param = entry.tags.get("tokenizer_param")  # the model reads this encoder's token ids
    encoder = None
    if param is not None:
        declared = {q.name: q.default for q in entry.params}
        encoder = r.model.params.get(param, declared[param])
        if p.features is not None:
            raise RecipeError(
                "preprocess.features",
                p.features,
                f"model {entry.name} reads token ids, and features replace them; set preprocess.features: "
                f"null (or train a head on them: model.name: mlp)",
            )
        if p.tokenizer != encoder:
            raise RecipeError(
                "preprocess.tokenizer",
                p.tokenizer,
                f"model {entry.name} with {param} {encoder!r} reads that encoder's token ids; set "
                f"preprocess.tokenizer: {encoder}",
            )
    pretrained = r.model.pretrained
    if pretrained in ENCODERS and param is None:
        raise RecipeError(
            "model.pretrained",
            pretrained,
            f"is a text encoder; it loads into model.name: transformer (with encoder: {pretrained})",
        )
    if pretrained in ENCODERS and encoder is not None and pretrained != encoder:
        raise RecipeError(
            "model.pretrained", pretrained, f"loads {pretrained}'s weights, but model.{param} is {encoder!r}"
        )


def _check_preprocess(p: PreprocessSpec) -> None:
    """What the types alone cannot say: ordered bounds, and each column in one list at most."""
    for name, (low, high) in (("minmax_range", p.minmax_range), ("outlier_quantiles", p.outlier_quantiles)):
        if not low < high:
            raise RecipeError(f"preprocess.{name}", [low, high], "must be [low, high] with low < high")
    seen: dict[str, str] = {}
    for kind in ("categorical", "numeric", "drop"):
        for column in getattr(p, kind):
            if column in seen:
                raise RecipeError(
                    f"preprocess.{kind}",
                    column,
                    f"is also listed in preprocess.{seen[column]}; list each column in one of categorical, "
                    "numeric or drop",
                )
            seen[column] = kind


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
    check_schedule(r.schedule, r.optimizer, r.train.epochs)
    _check_preprocess(r.preprocess)
    _check_text(r)
    regs = registries()
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
        parsed = load_yaml(value) if value.strip() else None
    except DuplicateKeyError as e:
        raise RecipeError("--set", text, e.inline(key)) from None
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


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, Mapping):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: d}


def recipe_changes(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 5) -> list[str]:
    """Dotted paths whose values differ between two recipe dicts, as ``path: old -> new``.

    Used wherever a recipe must match the one a run or study was made with (a resumed run, a
    resumed ablation).

    >>> recipe_changes({"train": {"epochs": 3}}, {"train": {"epochs": 5}})
    ['train.epochs: 3 -> 5']
    """
    a, b = _flatten(old), _flatten(new)
    keys = sorted(a.keys() | b.keys())
    diffs = [f"{k}: {a.get(k, '(absent)')} -> {b.get(k, '(absent)')}" for k in keys if a.get(k) != b.get(k)]
    return diffs[:limit] + ([f"... and {len(diffs) - limit} more"] if len(diffs) > limit else [])


def load_raw(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """Read a recipe file (YAML) or copy a mapping."""
    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source))
    path = Path(source)
    if not path.is_file():
        raise RecipeError("recipe", str(path), "file not found; give the path of a YAML recipe")
    try:
        raw = load_yaml(path.read_text()) or {}
    except DuplicateKeyError as e:  # PyYAML alone would keep the last value without a word
        raise RecipeError("recipe", str(path), str(e)) from None
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
