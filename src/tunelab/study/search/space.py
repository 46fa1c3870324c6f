"""The search space: the recipe's ``search:`` section, validated and sampled through Optuna.

``search:`` maps dotted recipe paths to distributions::

    search:
      optimizer.lr:        {type: loguniform, low: 1.0e-4, high: 1.0e-1}
      model.dropout:       {type: uniform, low: 0.0, high: 0.5}
      train.batch_size:    {type: int, low: 32, high: 256, log: true}
      model.hidden:        {type: categorical, choices: [[64], [128, 128]]}
      optimizer.name:      {type: categorical, choices: [adam, adamw, momentum]}
      optimizer.momentum:  {type: uniform, low: 0.8, high: 0.99}   # only when the optimizer has it
      methods.ema:         {type: categorical, choices: [true, false]}

Three kinds of dimension:

* **A value** (``optimizer.lr``, ``train.batch_size``, ``methods.l2.weight``): the sampled value is
  set at that path, as ``--set path=value`` would.
* **An entry switch** (``optimizer.name``, ``schedule.name``, ``model.name``, ``data.name``): the
  section is rebuilt for the chosen entry. Its common fields (``decay_bias_and_norm``,
  ``warmup_epochs``, ``init``, ...) are kept, and of the parameters the base recipe gives the old
  entry, only those the new entry also accepts are kept (``lr`` and ``weight_decay`` survive
  adamw -> sgd, ``betas`` is dropped); the new entry's own defaults fill the rest.
* **A method switch** (``methods.<name>`` with choices ``[true, false]``): true puts the method in
  the recipe, with the parameters the base recipe gives it when it has it, else its defaults;
  false removes it.

Values under a switched entry are *conditional*: ``optimizer.momentum`` is sampled only in trials
whose optimizer accepts ``momentum``, ``methods.l2.weight`` only in trials where ``l2`` is on
(Optuna handles such dynamic spaces natively). Every path and bound is checked before anything
runs (``check_space``): each bound and each choice is applied to the base recipe as an override,
and the result must validate like any recipe.

Categorical choices that are not scalars (``[64, 64]``, mappings) are stored in Optuna as their
YAML text, so the storage and optuna-dashboard show them readably.

    >>> import optuna
    >>> from tunelab.recipe import load_recipe
    >>> r = load_recipe({"data": {"name": "iris"},
    ...                  "search": {"optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1}}})
    >>> check_space(r)
    >>> suggest(optuna.trial.FixedTrial({"optimizer.lr": 0.003}), r)
    ['optimizer.lr=0.003']
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import yaml

from tunelab.errors import RecipeError, did_you_mean
from tunelab.methods import METHODS
from tunelab.recipe import SECTIONS, Recipe, apply_override, load_recipe, parse_override, registries, validate
from tunelab.spec import DataSpec, ModelSpec, OptimizerSpec, ScheduleSpec, SearchParam

if TYPE_CHECKING:  # optuna is only needed to sample; recipe validation (check_space) runs without it
    import optuna

# Sections made of common fields plus the parameters of the registry entry they name.
NAMED_SECTIONS: dict[str, type] = {
    "data": DataSpec,
    "model": ModelSpec,
    "optimizer": OptimizerSpec,
    "schedule": ScheduleSpec,
}
# Beyond this many combinations of switch choices, check_space varies one switch at a time
# (every choice is still checked; only combinations of two switches are sampled less).
MAX_COMBINATIONS = 256
_SCALARS = (type(None), bool, int, float, str)

Kind = Literal["value", "entry", "method"]


@dataclass(frozen=True)
class Dimension:
    """One validated dimension of the space.

    ``kind`` is "value" (a field), "entry" (``<section>.name``: swaps the registry entry) or
    "method" (``methods.<name>``: a method on or off).
    """

    path: str
    param: SearchParam
    kind: Kind

    @property
    def section(self) -> str:
        return self.path.split(".")[0]

    def encoded_choices(self) -> list[Any]:
        """Choices as Optuna stores them: scalars as they are, anything else as YAML text."""
        return [_encode(c) for c in self.param.choices or []]

    def decode(self, value: Any) -> Any:
        """The recipe value behind a choice Optuna returned."""
        for choice in self.param.choices or []:
            if _encode(choice) == value and type(_encode(choice)) is type(value):
                return choice
        return value


def _encode(choice: Any) -> Any:
    return choice if isinstance(choice, _SCALARS) else to_yaml_text(choice)


def to_yaml_text(value: Any) -> str:
    """One-line YAML for ``value``, as an override's right-hand side: ``{name: sgd, lr: 0.1}``."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False)
    # safe_dump ends a bare scalar with an explicit document end ("...").
    return text.removesuffix("\n").removesuffix("\n...").strip()


# --- parsing and intrinsic checks ----------------------------------------------------------------


def dimensions(recipe: Recipe) -> list[Dimension]:
    """The dimensions of ``recipe.search``, switches first, each checked on its own.

    Raises RecipeError at ``search.<path>`` for a malformed distribution (bounds in the wrong
    order, a log scale through zero, a categorical without choices, a switch that is not
    categorical). Paths are checked against the recipe by ``check_space``.

    >>> from tunelab.recipe import load_recipe
    >>> r = load_recipe({"search": {"methods.ema": {"type": "categorical", "choices": [True, False]},
    ...                             "optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 0.1}}})
    >>> [(d.path, d.kind) for d in dimensions(r)]
    [('methods.ema', 'method'), ('optimizer.lr', 'value')]
    """
    dims = [_dimension(path, p) for path, p in recipe.search.items()]
    return [d for d in dims if d.kind != "value"] + [d for d in dims if d.kind == "value"]


def _dimension(path: str, p: SearchParam) -> Dimension:
    where = f"search.{path}"
    parts = path.split(".")
    if not path or any(not s for s in parts):
        raise RecipeError(where, path, "a search key is a dotted recipe path, e.g. optimizer.lr")
    if parts[0] not in SECTIONS:
        raise RecipeError(
            where,
            path,
            "must start with a recipe section: " + ", ".join(s for s in SECTIONS if s not in _UNSEARCHABLE),
            did_you_mean(parts[0], SECTIONS),
        )
    if parts[0] in _UNSEARCHABLE:
        raise RecipeError(where, path, f"the {parts[0]} section describes studies and cannot be searched")
    _check_distribution(where, p)
    kind: Kind = "value"
    if parts[0] == "methods":
        if len(parts) == 1:
            raise RecipeError(where, path, "name a method: methods.<name> (on/off) or methods.<name>.<param>")
        METHODS.get(parts[1], f"{where}")  # unknown method: "did you mean"
        if len(parts) == 2:
            kind = "method"
            if p.type != "categorical" or any(not isinstance(c, bool) for c in p.choices or []):
                raise RecipeError(
                    where,
                    _shown(p),
                    "a method is switched on or off with {type: categorical, choices: [true, false]}; "
                    f"to search its parameters use methods.{parts[1]}.<param>",
                )
    elif parts[0] in NAMED_SECTIONS and parts[1:] == ["name"]:
        kind = "entry"
        if p.type != "categorical":
            raise RecipeError(
                where, _shown(p), f"{path} picks a registry entry: use {{type: categorical, choices: [...]}}"
            )
    return Dimension(path, p, kind)


_UNSEARCHABLE = ("search", "ablation")


def _shown(p: SearchParam) -> dict[str, Any]:
    """The distribution as the user wrote it, for error messages."""
    return {k: v for k, v in dataclasses.asdict(p).items() if v is not None and v is not False}


def _check_distribution(where: str, p: SearchParam) -> None:
    shown = _shown(p)
    numeric = p.type in ("uniform", "loguniform", "int")
    if numeric:
        if p.choices is not None:
            raise RecipeError(where, shown, f"choices belong to type categorical, not {p.type}")
        if p.low is None or p.high is None:
            raise RecipeError(where, shown, f"type {p.type} needs low and high, e.g. {{low: 0.0, high: 0.5}}")
        if not (math.isfinite(p.low) and math.isfinite(p.high)):
            raise RecipeError(where, shown, "low and high must be finite numbers")
        if p.low >= p.high:
            raise RecipeError(where, shown, f"low must be < high (got low {p.low}, high {p.high})")
    if p.type == "uniform":
        if p.log:
            raise RecipeError(where, shown, "for a log scale use type: loguniform")
        if p.step is not None:
            assert p.low is not None and p.high is not None
            if not p.step > 0 or p.step > p.high - p.low:
                raise RecipeError(where, shown, f"step must be > 0 and <= high - low ({p.high - p.low})")
    elif p.type == "loguniform":
        assert p.low is not None
        if p.low <= 0:
            raise RecipeError(where, shown, "loguniform needs low > 0 (a log scale cannot reach 0)")
        if p.step is not None:
            raise RecipeError(where, shown, "loguniform takes no step; use type: uniform with a step")
        if p.log:
            raise RecipeError(where, shown, "loguniform is already on a log scale; drop log")
    elif p.type == "int":
        assert p.low is not None and p.high is not None
        for name, v in (("low", p.low), ("high", p.high), ("step", p.step)):
            if v is not None and float(v) != int(v):
                raise RecipeError(where, shown, f"type int needs a whole {name} (got {v})")
        if p.step is not None and p.step < 1:
            raise RecipeError(where, shown, "type int needs step >= 1")
        if p.log and p.low < 1:
            raise RecipeError(where, shown, "a log-scale int needs low >= 1")
        if p.log and p.step not in (None, 1):
            raise RecipeError(where, shown, "a log-scale int takes no step (Optuna samples every integer)")
    elif p.type == "categorical":
        extra = [k for k in ("low", "high", "step") if getattr(p, k) is not None] + (["log"] if p.log else [])
        if extra:
            raise RecipeError(where, shown, f"type categorical takes only choices, not {', '.join(extra)}")
        if not p.choices:
            raise RecipeError(where, shown, "type categorical needs choices, e.g. {choices: [adam, sgd]}")
        if len(p.choices) < 2:
            raise RecipeError(where, shown, "a single choice is a fixed value: set it in the recipe instead")
        encoded = [_encode(c) for c in p.choices]
        if len({(type(c), c) for c in encoded}) != len(encoded):
            raise RecipeError(where, shown, "choices must be distinct")


# --- checking the space against the recipe ---------------------------------------------------------


def base_raw(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain data with only the parameters it gives (no defaults written) and
    without its ``search`` section: what each trial's overrides apply to."""
    raw = recipe.to_dict(resolved=False)
    raw.pop("search", None)
    return raw


def _rest(e: RecipeError) -> str:
    """What a nested error says after its 'path: got value;' prefix."""
    text = str(e)
    prefix = f"{e.path or '<recipe>'}: got {e.value!r}; "
    rest = text[len(prefix) :] if text.startswith(prefix) else text
    return rest if e.path in ("", None) else f"{rest} (at {e.path})"


def _try(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply overrides to a copy of ``raw`` and validate it; return the new raw (RecipeError if bad)."""
    out = _apply(raw, overrides)
    validate(out)
    return out


def _apply(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    out = copy.deepcopy(dict(raw))
    for text in overrides:
        apply_override(out, *parse_override(text))
    return out


def check_space(recipe: Recipe) -> None:
    """Raise RecipeError at ``search.<path>`` unless every trial of the space is a valid recipe.

    Checks each distribution (see ``dimensions``), then applies each bound and each choice to the
    base recipe as an override and validates the result: an unknown path, a bound outside a
    field's range or a choice of the wrong type is reported before any trial runs. Entry and
    method switches are checked in every combination (one switch at a time beyond
    ``MAX_COMBINATIONS`` combinations), and each value in every setting of the switch that governs
    its path; a value whose path exists in no setting (a parameter of an optimizer never chosen)
    is an error.

    >>> from tunelab.recipe import load_recipe
    >>> check_space(load_recipe({"search": {"optimizer.lr": {"type": "uniform", "low": -1, "high": 1}}}))
    Traceback (most recent call last):
    ...
    tunelab.errors.RecipeError: search.optimizer.lr: got -1.0; must be > 0 (at optimizer.lr)
    """
    dims = dimensions(recipe)
    if not dims:
        return
    raw = base_raw(recipe)
    switches = [d for d in dims if d.kind != "value"]
    settings = _switch_settings(switches, raw)
    for d in dims:
        if d.kind == "value":
            _check_value(d, raw, switches, settings)


def _switch_settings(
    switches: list[Dimension], raw: dict[str, Any]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every setting of the switches as (choices by path, recipe), each validated."""
    combos = list(itertools.product(*[d.param.choices or [] for d in switches]))
    if len(combos) <= MAX_COMBINATIONS:
        settings = [dict(zip([d.path for d in switches], combo, strict=True)) for combo in combos]
    else:  # one switch at a time; the others stay as the base recipe has them
        settings = [{d.path: c} for d in switches for c in d.param.choices or []]
    by_path = {d.path: d for d in switches}
    out = []
    for setting in settings:
        current = raw
        for path, choice in setting.items():
            # Applied together, then validated once: two switches may only make sense jointly.
            current = _apply(current, _switch_overrides(by_path[path], choice, current))
        try:
            validate(current)
        except RecipeError as e:
            if len(setting) == 1:
                ((path, choice),) = setting.items()
                raise RecipeError(f"search.{path}", choice, f"makes an invalid recipe: {_rest(e)}") from None
            raise RecipeError(
                "search", setting, f"this combination of choices makes an invalid recipe: {_rest(e)}"
            ) from None
        out.append((setting, current))
    return out


def _contexts(
    d: Dimension,
    raw: dict[str, Any],
    switches: list[Dimension],
    settings: list[tuple[dict[str, Any], dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Recipes standing for each choice of the switch that governs ``d``'s path (or the base)."""
    parts = d.path.split(".")
    governing = [
        s
        for s in switches
        if (s.kind == "entry" and s.section == parts[0])
        or (s.kind == "method" and parts[0] == "methods" and s.path == ".".join(parts[:2]))
    ]
    if not governing:
        return [raw]
    path = governing[0].path
    seen: dict[str, dict[str, Any]] = {}
    for setting, recipe_raw in settings:
        if path in setting:
            seen.setdefault(repr(setting[path]), recipe_raw)
    return list(seen.values())


def _test_values(p: SearchParam) -> list[Any]:
    """The values whose validity stands for the whole distribution."""
    if p.type == "categorical":
        return list(p.choices or [])
    assert p.low is not None and p.high is not None
    if p.type == "int":
        return [int(p.low), int(p.high)]
    # A float field of the recipe takes any value between valid bounds. An inner point that is
    # not a whole number (0.37 of the way) catches an int field searched with a float distribution.
    inner = p.low + 0.37 * (p.high - p.low)
    if p.step is not None:  # on the grid, as Optuna samples it
        inner = p.low + p.step * round((inner - p.low) / p.step)
    return [float(p.low), float(p.high), inner]


def _check_value(
    d: Dimension,
    raw: dict[str, Any],
    switches: list[Dimension],
    settings: list[tuple[dict[str, Any], dict[str, Any]]],
) -> None:
    active = [ctx for ctx in _contexts(d, raw, switches, settings) if is_active(ctx, d.path)]
    where = f"search.{d.path}"
    if not active:
        # The path exists in no setting: validating it against the base recipe names the reason
        # (unknown key with "did you mean", a method that is not in the recipe, ...).
        value = _test_values(d.param)[0]
        try:
            _try(raw, [f"{d.path}={to_yaml_text(value)}"])
        except RecipeError as e:
            raise RecipeError(where, value, _rest(e)) from None
        raise RecipeError(where, value, "is not a field of the recipe in any trial")  # pragma: no cover
    for ctx in active:
        for value in _test_values(d.param):
            try:
                _try(ctx, [f"{d.path}={to_yaml_text(value)}"])
            except RecipeError as e:
                raise RecipeError(where, value, _rest(e)) from None


# --- the state of a trial's recipe -------------------------------------------------------------------


def is_active(raw: Mapping[str, Any], path: str) -> bool:
    """Whether ``path`` is a field of the recipe ``raw`` (a conditional value may not be).

    ``methods.<name>.<param>`` exists when the method is in the recipe; ``<section>.<key>`` of a
    named section when the section's entry (or the section itself) has that key.

    >>> is_active({"optimizer": {"name": "adam"}}, "optimizer.momentum")
    False
    >>> is_active({"optimizer": {"name": "momentum"}}, "optimizer.momentum")
    True
    """
    parts = path.split(".")
    if parts[0] == "methods" and len(parts) >= 3:
        return _method_index(raw, parts[1]) is not None
    if parts[0] in NAMED_SECTIONS and len(parts) >= 2 and parts[1] != "name":
        entry = _entry(parts[0], (raw.get(parts[0]) or {}).get("name"))
        if entry is None:
            return True  # an unknown entry fails validation with its own message
        common = {f.name for f in dataclasses.fields(NAMED_SECTIONS[parts[0]])} - {"params"}
        return (
            parts[1] in common or parts[1] in {p.name for p in entry.params} or bool(entry.tags.get("open"))
        )
    return True


def _entry(section: str, name: str | None) -> Any:
    reg = registries()[section]
    if name is None:
        name = next(f.default for f in dataclasses.fields(NAMED_SECTIONS[section]) if f.name == "name")
    return reg.get(name) if name in reg else None


def _method_index(raw: Mapping[str, Any], name: str) -> int | None:
    for i, m in enumerate(raw.get("methods") or []):
        if (m if isinstance(m, str) else m.get("name")) == name:
            return i
    return None


def _switch_overrides(d: Dimension, choice: Any, raw: Mapping[str, Any]) -> list[str]:
    """The overrides that put switch ``d`` in state ``choice`` on the recipe ``raw``."""
    if d.kind == "method":
        name = d.path.split(".")[1]
        if not choice:
            return [f"{d.path}=null"]
        idx = _method_index(raw, name)
        params: dict[str, Any] = {}
        if idx is not None:
            m = raw["methods"][idx]
            params = {} if isinstance(m, str) else {k: v for k, v in m.items() if k != "name"}
        return [f"{d.path}={to_yaml_text(params)}"]
    # An entry switch: rebuild the section for the new entry (see the module docstring).
    section = d.section
    old = dict(raw.get(section) or {})
    common = {f.name for f in dataclasses.fields(NAMED_SECTIONS[section])} - {"params", "name"}
    new = _entry(section, choice)
    accepted = {p.name for p in new.params} if new is not None else set()
    keep_all = new is not None and bool(new.tags.get("open"))
    rebuilt: dict[str, Any] = {"name": choice}
    for k, v in old.items():
        if k != "name" and (k in common or k in accepted or keep_all):
            rebuilt[k] = v
    return [f"{section}={to_yaml_text(rebuilt)}"]


# --- sampling --------------------------------------------------------------------------------------


def suggest(trial: optuna.trial.BaseTrial, recipe: Recipe) -> list[str]:
    """Sample one point of ``recipe.search`` with ``trial``; return it as ``--set`` overrides.

    Switches are sampled first; a value whose path does not exist in this trial's recipe (a
    parameter of an optimizer or method the trial does not use) is not sampled. The Optuna
    parameter names are the dotted paths. Apply the result with ``trial_recipe``.

    >>> import optuna
    >>> from tunelab.recipe import load_recipe
    >>> r = load_recipe({"search": {"optimizer.name": {"type": "categorical", "choices": ["adam", "sgd"]},
    ...                             "methods.ema": {"type": "categorical", "choices": [True, False]}}})
    >>> t = optuna.trial.FixedTrial({"optimizer.name": "sgd", "methods.ema": True})
    >>> overrides = suggest(t, r)
    >>> overrides[-1]
    'methods.ema={}'
    >>> trial_recipe(r, overrides).optimizer.name
    'sgd'
    """
    raw = base_raw(recipe)
    overrides: list[str] = []
    for d in dimensions(recipe):
        if d.kind != "value":
            choice = d.decode(trial.suggest_categorical(d.path, d.encoded_choices()))
            step = _switch_overrides(d, choice, raw)
            for text in step:
                apply_override(raw, *parse_override(text))
            overrides += step
            continue
        if not is_active(raw, d.path):
            continue
        value = _sample(trial, d)
        overrides.append(f"{d.path}={to_yaml_text(value)}")
    return overrides


def _sample(trial: optuna.trial.BaseTrial, d: Dimension) -> Any:
    p = d.param
    if p.type == "categorical":
        return d.decode(trial.suggest_categorical(d.path, d.encoded_choices()))
    assert p.low is not None and p.high is not None
    if p.type == "int":
        return trial.suggest_int(d.path, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    if p.type == "loguniform":
        return trial.suggest_float(d.path, p.low, p.high, log=True)
    return trial.suggest_float(d.path, p.low, p.high, step=p.step)


def fixed_params(recipe: Recipe, point: Mapping[str, Any]) -> dict[str, Any]:
    """``point`` (recipe values by dimension path) as the Optuna parameters of ``recipe.search``,
    for ``study.enqueue_trial``: each path must be a dimension, each value one of its choices or
    within its range (RecipeError at ``search.<path>`` otherwise).

    >>> from tunelab.recipe import load_recipe
    >>> r = load_recipe({"search": {"model.hidden": {"type": "categorical", "choices": [[64], [128]]}}})
    >>> fixed_params(r, {"model.hidden": [128]})
    {'model.hidden': '[128]'}
    """
    by_path = {d.path: d for d in dimensions(recipe)}
    params: dict[str, Any] = {}
    for path, value in point.items():
        d = by_path.get(path)
        if d is None:
            raise RecipeError(
                f"search.{path}", value, "names no dimension of this search", did_you_mean(path, by_path)
            )
        p = d.param
        if p.type == "categorical":
            if _encode(value) not in d.encoded_choices():
                raise RecipeError(f"search.{path}", value, f"must be one of {p.choices}")
        elif p.low is not None and p.high is not None and not p.low <= value <= p.high:
            raise RecipeError(f"search.{path}", value, f"must be within [{p.low}, {p.high}]")
        params[path] = _encode(value)
    return params


def trial_recipe(recipe: Recipe, overrides: Sequence[str]) -> Recipe:
    """The recipe of one trial: ``recipe`` without its ``search`` section, plus ``overrides``.

    >>> from tunelab.recipe import load_recipe
    >>> trial_recipe(load_recipe({}), ["optimizer.lr=0.01"]).optimizer.params["lr"]
    0.01
    """
    return load_recipe(base_raw(recipe), overrides)
