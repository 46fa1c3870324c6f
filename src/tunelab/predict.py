"""Use a trained run on new data: ``tunelab.load_run(RUN_DIR) -> Predictor``.

A run directory is self-contained for inference: ``recipe.yaml`` rebuilds the architecture,
``final.pt`` holds the evaluated weights, ``preprocess.json`` the preprocessing fit on train and
``data.json`` the task, input shape, classes with their original label values, feature columns and
image decoding. The predictor applies exactly what training applied (the same
``tunelab.data.preprocess`` object and functions), to the model the run evaluated:

* a ``channel_prune`` run's narrowed model, a ``quantize`` run's int8 model (torchao), a ``prune``
  run's sparse weights, an EMA run's averaged weights: whatever ``final.pt`` holds;
* a ``tta`` run predicts with the same views averaged as its evaluation (``TTA.model_for``).

``variant=`` picks a model that ``tunelab compress`` wrote under ``RUN_DIR/compress/``:
``"unstructured-0.9"`` (its first seed) or ``"unstructured-0.9/seed-1"``; a path to such a
folder works as ``run_dir`` too. A compressed variant is the bare model, as compress evaluated it
(no TTA).

    >>> import tunelab
    >>> p = tunelab.load_run("runs/demo")  # doctest: +SKIP
    >>> p.predict("new.csv")[:3], p.predict_proba(x_array).shape  # doctest: +SKIP
    (array(['cat', 'dog', 'cat'], dtype='<U3'), (200, 2))

Loading runs no code from the run directory: JSON, YAML (safe loader) and ``torch.load`` with
``weights_only=True``. (A recipe whose model is ``custom`` imports that factory, as training did.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from tunelab.compress.quantize import dequantized, quantize_int8
from tunelab.compress.structured import resize_to_state_dict
from tunelab.data.inputs import read_inputs
from tunelab.data.preprocess import Preprocessing
from tunelab.errors import ModelError, TunelabError
from tunelab.evaluation import predict as forward_in_batches
from tunelab.methods import METHODS
from tunelab.models import build_model
from tunelab.models.pretrained import load_state_dict_file
from tunelab.recipe import Recipe, load_recipe
from tunelab.runs import DATA_CARD_FORMAT

__all__ = ["Predictor", "load_run", "run_model"]


def load_run(
    run_dir: str | Path,
    *,
    variant: str | None = None,
    model: nn.Module | None = None,
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    dequantize: bool = False,
) -> Predictor:
    """A ``Predictor`` for the run in ``run_dir`` (see the module docstring).

    Args:
        run_dir: a run directory written by ``tunelab train`` / ``tunelab.fit``, or a folder under
            its ``compress/``.
        variant: a model ``tunelab compress`` wrote: a row ("structured-0.5") or "row/seed-N".
        model: the architecture, for a run trained with ``fit(model=...)`` (its recipe does not
            describe it); the run's weights are loaded into it.
        device: where the model runs.
        batch_size: samples per forward pass; default the recipe's ``train.eval_batch_size``.
        dequantize: load int8 weights (a ``quantize`` run, an int8 variant) as floats into the
            float architecture: not the evaluated model, but one every exporter can write.
    """
    run_dir, variant = _resolve(Path(run_dir), variant)
    recipe, card, pre = read_run(run_dir)
    if not card.get("model_from_recipe", True) and model is None:
        raise TunelabError(
            f"{run_dir}: this run trained a model passed to fit(model=...), which recipe.yaml does not "
            "describe; pass the same architecture: load_run(run_dir, model=net)"
        )
    shape, outputs = tuple(card["input_shape"]), int(card["num_outputs"])
    if variant is None:
        final = _final_pt(run_dir)
        state = load_state_dict_file(final, dequantize=False)
        net = run_model(
            recipe,
            shape,
            outputs,
            state,
            quantized=not dequantize,
            model=model,
            source=str(final),
            embeddings=card.get("embeddings"),
            text=card.get("text"),
        )
        net = _wrap_final(net, recipe, shape, card["task"])
    else:
        net = _variant_model(run_dir, variant, recipe, shape, outputs, model, dequantize, card)
    net = net.to(device).eval()
    if recipe.train.channels_last:  # evaluated in that memory layout: the same kernels, the same bits
        net = net.to(memory_format=torch.channels_last)
    return Predictor(
        net,
        recipe,
        card,
        pre,
        run_dir=run_dir,
        variant=variant,
        device=device,
        batch_size=batch_size or recipe.train.eval_batch_size,
    )


def read_run(run_dir: Path) -> tuple[Recipe, dict[str, Any], Preprocessing]:
    """The recipe, ``data.json`` and preprocessing of a run directory, with errors saying what is off."""
    if not run_dir.is_dir():
        raise TunelabError(
            f"{run_dir}: no such run directory; give the directory `tunelab train --out` wrote"
        )
    for name in ("recipe.yaml", "data.json", "preprocess.json"):
        if not (run_dir / name).is_file():
            older = " (or one trained before runs saved it: train it again)"
            raise TunelabError(
                f"{run_dir}: no {name}; not a tunelab run directory{older if name != 'recipe.yaml' else ''}"
            )
    card = _read_json(run_dir / "data.json")
    if card.get("format") != DATA_CARD_FORMAT:
        raise TunelabError(
            f"{run_dir}/data.json: format {card.get('format')!r} is not {DATA_CARD_FORMAT}, the one this "
            f"tunelab reads (the run was written by tunelab {card.get('tunelab')}); use that version"
        )
    pre = Preprocessing.from_json(_read_json(run_dir / "preprocess.json"), str(run_dir / "preprocess.json"))
    return load_recipe(run_dir / "recipe.yaml"), card, pre


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TunelabError(
            f"{path}: not valid JSON ({e}); the run directory is damaged: train it again"
        ) from None
    if not isinstance(data, dict):
        raise TunelabError(f"{path}: holds {type(data).__name__}, not a JSON object; train the run again")
    return data


def _final_pt(run_dir: Path) -> Path:
    path = run_dir / "final.pt"
    if not path.is_file():
        raise TunelabError(
            f"{run_dir}: no final.pt; the run did not finish (see its result.json): train it to the end"
        )
    return path


def run_model(
    recipe: Recipe,
    input_shape: tuple[int, ...],
    num_outputs: int,
    state: dict[str, Tensor],
    *,
    quantized: bool = True,
    model: nn.Module | None = None,
    source: str = "final.pt",
    embeddings: dict[str, Any] | None = None,
    text: dict[str, Any] | None = None,
) -> nn.Module:
    """The recipe's architecture holding ``state``, the evaluated weights of a run (``final.pt``).

    A ``channel_prune`` run saved a narrowed model: the architecture is narrowed to its widths
    (``resize_to_state_dict``). A ``quantize`` run saved int8 weights: with ``quantized`` the
    architecture is quantized the same way and loads them as they are (the run's int8 model,
    bit for bit); without, they load dequantized into the float architecture (to fine-tune or
    compress it). ``model``, when given, is used instead of building the recipe's; ``source``
    names the weights in errors; ``embeddings`` is the data's category codes and ``text`` its
    token vocabulary (both from ``data.json``).
    """
    specs = {m.name: m.params for m in recipe.methods}
    # Building initializes weights from the global RNG: a side effect the caller should not see.
    with torch.random.fork_rng(devices=[]):
        net = (
            model
            if model is not None
            else build_model(recipe.model, input_shape, num_outputs, embeddings, text=text)
        )
    floats = dequantized(state)
    int8 = quantized and "quantize" in specs and any(type(v) is not type(floats[k]) for k, v in state.items())
    try:
        if "channel_prune" in specs:
            resize_to_state_dict(net, floats)
        if int8:
            quantize_int8(net, METHODS.get("quantize").build(**specs["quantize"]).scheme)
            net.load_state_dict(state, assign=True)
        else:
            net.load_state_dict(floats)
    except (RuntimeError, ModelError) as e:
        raise TunelabError(
            f"{source} does not fit the model its recipe.yaml builds ({str(e).splitlines()[0]}); "
            "was the recipe edited after training?"
        ) from None
    return net


def _wrap_final(net: nn.Module, recipe: Recipe, input_shape: tuple[int, ...], task: str) -> nn.Module:
    """Apply the methods that wrap the final model (tta), as the run's evaluation did."""
    for spec in recipe.methods:
        entry = METHODS.get(spec.name)
        if getattr(entry.obj, "wraps_final", False):
            net = entry.build(**spec.params).model_for(net, input_shape, task)
    return net


def _resolve(path: Path, variant: str | None) -> tuple[Path, str | None]:
    """(run directory, variant) for a run directory, or for a folder under its ``compress/``."""
    if (path / "recipe.yaml").is_file() or variant is not None:
        return path, variant
    for up in (path.parent, path.parent.parent):
        if up.name == "compress" and (up.parent / "recipe.yaml").is_file():
            return up.parent, str(path.relative_to(up))
    return path, variant


def _variant_model(
    run_dir: Path,
    variant: str,
    recipe: Recipe,
    shape: tuple[int, ...],
    outputs: int,
    model: nn.Module | None,
    dequantize: bool = False,
    card: dict[str, Any] | None = None,
) -> nn.Module:
    """The model ``tunelab compress`` saved as ``variant`` (see ``tunelab.compress.artifacts``)."""
    root = run_dir / "compress"
    rows = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    row, _, seed = variant.partition("/")
    if row not in rows:
        what = f"the variants are: {', '.join(rows)}" if rows else "run `tunelab compress` on it first"
        raise TunelabError(f"{run_dir}: no compressed variant {row!r}; {what}")
    seeds = sorted((p for p in (root / row).glob("seed-*") if p.is_dir()), key=lambda p: int(p.name[5:]))
    folder = root / row / seed if seed else (seeds[0] if seeds else root / row)
    if not (folder / "meta.json").is_file():
        names = ", ".join(p.name for p in seeds) or "none"
        raise TunelabError(f"{folder}: no saved model (meta.json) here; the seeds of {row} are: {names}")
    meta = _read_json(folder / "meta.json")
    kind = meta.get("kind")
    # The compressed models start from the run's float model (dequantized, narrowed if the run was).
    final = _final_pt(run_dir)
    net = run_model(
        recipe,
        shape,
        outputs,
        load_state_dict_file(final),
        quantized=False,
        model=model,
        source=str(final),
        embeddings=(card or {}).get("embeddings"),
        text=(card or {}).get("text"),
    )
    if kind == "structured":
        if not (folder / "weights.pt").is_file():
            raise TunelabError(
                f"{folder}: no weights.pt (written since tunelab 0.1's predictor); re-run compress"
            )
        state = load_state_dict_file(folder / "weights.pt")
        resize_to_state_dict(net, state)
        net.load_state_dict(state)
    elif kind == "int8" and dequantize:
        net.load_state_dict(load_state_dict_file(folder / "model.pt"))
    elif kind == "int8":
        if "scheme" not in meta:
            raise TunelabError(f"{folder}: meta.json names no int8 scheme (older tunelab); re-run compress")
        quantize_int8(net, meta["scheme"])
        net.load_state_dict(load_state_dict_file(folder / "model.pt", dequantize=False), assign=True)
    elif kind in ("unstructured", "dense"):
        net.load_state_dict(load_state_dict_file(folder / "model.pt"))
    else:
        raise TunelabError(f"{folder}/meta.json: unknown kind {kind!r} of compressed model")
    return net


class Predictor:
    """A trained run's model with its preprocessing and label encoding (``load_run`` makes one).

    Attributes: ``model`` (the evaluated ``nn.Module``, in eval mode), ``recipe``, ``classes``
    (class names in output order; None for regression), ``label_values`` (the original label of
    each class), ``task``, ``input_shape``, ``card`` (``data.json``), ``preprocessing``.
    """

    def __init__(
        self,
        model: nn.Module,
        recipe: Recipe,
        card: dict[str, Any],
        preprocessing: Preprocessing,
        *,
        run_dir: Path,
        variant: str | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 1024,
    ) -> None:
        self.model, self.recipe, self.card, self.preprocessing = model, recipe, card, preprocessing
        self.run_dir, self.variant, self.batch_size = run_dir, variant, batch_size
        self.device = torch.device(device)
        self.task: str = card["task"]
        self.input_shape = tuple(card["input_shape"])
        self.classes: list[str] | None = card.get("classes") if self.task == "classification" else None
        self.label_values: list[Any] | None = card.get("label_values") or self.classes
        self.targets: list[str] = card.get("targets") or []

    def __repr__(self) -> str:
        what = f"{len(self.classes)} classes" if self.classes else f"{len(self.targets)} target(s)"
        variant = f", variant={self.variant!r}" if self.variant else ""
        return (
            f"Predictor({str(self.run_dir)!r}{variant}: {self.task}, input {list(self.input_shape)}, {what})"
        )

    def read(self, x: Any) -> tuple[np.ndarray, list[str]]:
        """Raw float32 inputs ``[N, *input_shape]`` and row names (``tunelab.data.inputs``)."""
        return read_inputs(x, self.card)

    def outputs(self, x: Any) -> Tensor:
        """The model's raw outputs ``[N, C]`` (logits) or ``[N, T]`` (standardized targets), on CPU."""
        raw, _ = self.read(x)
        return self._outputs(raw)

    def _outputs(self, raw: np.ndarray) -> Tensor:
        inputs = torch.from_numpy(self.preprocessing.transform(raw, "input")).to(self.device)
        if self.recipe.train.channels_last and inputs.dim() == 4:  # evaluated in that layout
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return forward_in_batches(self.model, inputs, self.batch_size).cpu()

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class probabilities ``[N, C]`` (a TTA run's: the average over its views)."""
        if self.task != "classification":
            raise TunelabError("predict_proba: this run is a regression; use predict for its values")
        return torch.softmax(self.outputs(x), dim=1).numpy()

    def predict(self, x: Any) -> np.ndarray:
        """Labels (the original label values) ``[N]`` for classification; for regression, values in
        the targets' units, ``[N]`` for one target, ``[N, T]`` for several."""
        return self._decode(self.outputs(x))

    def _decode(self, out: Tensor) -> np.ndarray:
        if self.task == "classification":
            assert self.label_values is not None
            return np.asarray(self.label_values)[out.argmax(dim=1).numpy()]
        values = self.preprocessing.inverse_y(out).numpy()
        return values[:, 0] if values.shape[1] == 1 else values

    def table(self, x: Any) -> dict[str, list[Any]]:
        """Column -> values, in the order ``tunelab predict`` writes them: ``row``, ``prediction``
        and one ``p_<class>`` per class (regression: ``prediction``, or ``prediction_<target>`` for
        each of several targets)."""
        raw, rows = self.read(x)
        out = self._outputs(raw)
        columns: dict[str, list[Any]] = {"row": rows}
        predicted = self._decode(out)
        if self.task == "classification":
            assert self.classes is not None
            columns["prediction"] = predicted.tolist()
            probs = torch.softmax(out, dim=1).numpy()
            for j, name in enumerate(self.classes):
                columns[f"p_{name}"] = probs[:, j].tolist()
        elif predicted.ndim == 1:
            columns["prediction"] = predicted.tolist()
        else:
            for j, name in enumerate(self.targets):
                columns[f"prediction_{name}"] = predicted[:, j].tolist()
        return columns
