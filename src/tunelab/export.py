"""Export a trained run for deployment: ONNX, torch.export (pt2), safetensors, TorchScript.

``export_run(RUN_DIR, "onnx")`` writes one file that takes **raw** inputs (as the run's data
holds them, before preprocessing) and returns what ``Predictor.predict_proba`` returns
(probabilities; a TTA run's averaged over its views) or, for regression, what ``predict`` returns
(values in the targets' units, ``[N, T]``). The graph is ``Deployable``: the preprocessing as a
first layer, the evaluated model, then softmax or the targets' unscaling, so a deployer
re-implements nothing. Every file also carries the run's ``data.json`` (class names, label
values, input shape, feature columns) and ``preprocess.json``:

==============  ===================================================================================
format          how it is made, checked and read back
==============  ===================================================================================
onnx            ``torch.onnx.export`` (the torch.export-based exporter, torch's default since 2.9;
                the TorchScript-based one is deprecated) with a dynamic batch axis; checked with
                onnxruntime on 256 inputs; the JSON in the model's ``metadata_props``
pt2             ``torch.export.export`` + ``torch.export.save``, dynamic batch; reloaded with
                ``torch.export.load`` and checked; the JSON in its extra files
torchscript     ``torch.jit.trace`` (deprecated by torch in favour of torch.export, still the form
                C++ libtorch and older servers load); reloaded and checked; JSON in extra files
safetensors     the model's weights (no code) and, in the header's metadata, ``tunelab.data``,
                ``tunelab.preprocess`` and ``tunelab.recipe``; reloaded and compared tensor by tensor
==============  ===================================================================================

The check feeds 256 inputs drawn around the training data's mean and spread (from the saved
standardization) to the exported file and to the predictor, and reports the largest absolute
difference (``max abs diff``); above 1e-4 the export is an error.

int8 models (a ``quantize`` run, an int8 compress variant) hold torchao tensors: ONNX and
TorchScript cannot express their dynamic activation quantization and safetensors cannot store
them. pt2 keeps them (loading needs torchao). ``dequantize=True`` exports a float copy whose
weights are the int8 values dequantized (its outputs differ slightly from the int8 model's).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from tunelab.errors import TunelabError
from tunelab.io import atomic_write_bytes
from tunelab.predict import Predictor, load_run

__all__ = ["FORMATS", "TOLERANCE", "Deployable", "ExportResult", "export_run"]

Format = Literal["onnx", "pt2", "safetensors", "torchscript"]
FORMATS: dict[str, str] = {
    "onnx": ".onnx",
    "pt2": ".pt2",
    "safetensors": ".safetensors",
    "torchscript": ".torchscript.pt",
}
# fp32 outputs of two runtimes differ by rounding (different kernels, fused ops): ~1e-6 here.
# A larger gap means the exported graph computes something else.
TOLERANCE = 1e-4
CHECK_SAMPLES = 256
_NEEDS = {"onnx": ("onnx", "onnxscript", "onnxruntime"), "safetensors": ("safetensors",)}


class Deployable(nn.Module):
    """Raw inputs -> preprocessing -> the run's model -> probabilities, or values in target units."""

    def __init__(self, predictor: Predictor, model: nn.Module | None = None) -> None:
        super().__init__()
        self.preprocess = predictor.preprocessing.layers(len(predictor.input_shape) + 1)
        self.model = predictor.model if model is None else model
        self.classification = predictor.task == "classification"
        mean, std = predictor.preprocessing.y_tensors()
        outputs = int(predictor.card["num_outputs"])
        self.register_buffer("y_mean", mean if mean is not None else torch.zeros(outputs))
        self.register_buffer("y_std", std if std is not None else torch.ones(outputs))

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(self.preprocess(x))
        if self.classification:
            return torch.softmax(out, dim=1)
        return out * self.y_std + self.y_mean


@dataclass
class ExportResult:
    path: Path
    format: str
    bytes: int
    max_abs_diff: float  # exported file vs the predictor, on the check inputs
    samples: int
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "bytes": self.bytes,
            "max_abs_diff": self.max_abs_diff,
            "samples": self.samples,
            "notes": self.notes,
        }


def export_run(
    run_dir: str | Path,
    format: Format,
    out: str | Path | None = None,
    *,
    variant: str | None = None,
    dequantize: bool = False,
) -> ExportResult:
    """Export the run's evaluated model (or a compress ``variant``) with its preprocessing.

    ``out`` defaults to ``RUN_DIR/export/model<ext>`` (``<variant>`` instead of ``model`` for a
    variant). Returns the file, its size and the checked ``max_abs_diff``.

    >>> r = export_run("runs/demo", "onnx")  # doctest: +SKIP
    >>> r.path.name, r.max_abs_diff < 1e-4  # doctest: +SKIP
    ('model.onnx', True)
    """
    if format not in FORMATS:
        raise TunelabError(f"--format: got {format!r}; choose one of {', '.join(FORMATS)}")
    _require(format)
    predictor = load_run(run_dir, variant=variant)
    notes = []
    if dequantize and _is_int8(predictor.model):
        predictor = load_run(run_dir, variant=variant, dequantize=True)
        notes.append("int8 weights dequantized to float32: outputs differ slightly from the int8 model's")
    elif _is_int8(predictor.model) and format != "pt2":
        which = f"{predictor.run_dir}" + (f" (variant {predictor.variant})" if predictor.variant else "")
        raise TunelabError(
            f"{which}: its model is int8 (torchao), which {format} cannot hold; what works: "
            "--format pt2 (keeps the int8 ops; loading needs torchao), --dequantize (a float copy of the "
            "int8 weights), or export the run trained without quantize"
        )
    path = Path(out) if out is not None else _default_path(predictor, format)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = Deployable(predictor).eval()
    x = _check_inputs(predictor)
    writer = {"onnx": _onnx, "pt2": _pt2, "torchscript": _torchscript, "safetensors": _safetensors}[format]
    with _quiet():
        diff = writer(net, predictor, path, x)
    if not diff <= TOLERANCE:
        raise TunelabError(
            f"{path}: the exported model differs from the run's by up to {diff:.3g} (more than {TOLERANCE}) "
            f"on {len(x)} inputs; {format} does not reproduce this model: try another --format"
        )
    return ExportResult(path, format, path.stat().st_size, diff, len(x), notes)


def _require(format: str) -> None:
    missing = [m for m in _NEEDS.get(format, ()) if importlib.util.find_spec(m) is None]
    if missing:
        raise TunelabError(
            f"--format {format} needs the package(s) {', '.join(missing)}: pip install 'tunelab[export]'"
        )


def _is_int8(model: nn.Module) -> bool:
    return any(type(p) not in (Tensor, nn.Parameter) for p in model.state_dict().values())


def _default_path(predictor: Predictor, format: str) -> Path:
    stem = predictor.variant.replace("/", "-") if predictor.variant else "model"
    return predictor.run_dir / "export" / f"{stem}{FORMATS[format]}"


def _check_inputs(predictor: Predictor) -> Tensor:
    """``CHECK_SAMPLES`` raw inputs around the training data's per-feature/channel center and spread."""
    return predictor.preprocessing.typical_inputs(predictor.input_shape, CHECK_SAMPLES)


def _reference(predictor: Predictor, x: Tensor) -> np.ndarray:
    """What the predictor gives for ``x``: probabilities, or values ``[N, T]``."""
    if predictor.task == "classification":
        return predictor.predict_proba(x.numpy())
    return predictor.preprocessing.inverse_y(predictor.outputs(x.numpy())).numpy()


def _max_diff(a: Any, b: np.ndarray) -> float:
    a = a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def _metadata(predictor: Predictor) -> dict[str, str]:
    return {
        "tunelab.data": json.dumps(predictor.card),
        "tunelab.preprocess": json.dumps(predictor.preprocessing.to_json()),
        "tunelab.recipe": predictor.recipe.to_yaml(),
    }


def _batch_dim() -> Any:
    return torch.export.Dim("batch", min=1)


def _traced_example(x: Tensor) -> Tensor:
    # Traced at batch 2: export specializes a dimension of size 1, which would fix the batch at 1.
    return x[:2].clone()


def _onnx(net: Deployable, predictor: Predictor, path: Path, x: Tensor) -> float:
    import onnxruntime

    output = "probabilities" if net.classification else "values"
    try:
        program = torch.onnx.export(
            net,
            (_traced_example(x),),
            None,
            input_names=["x"],
            output_names=[output],
            dynamic_shapes=({0: _batch_dim()},),
            verbose=False,
        )
    except Exception as e:  # an operator without an ONNX translation: one line, and what else works
        why = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise TunelabError(
            f"{predictor.run_dir}: torch.onnx.export failed ({type(e).__name__}: {why}); try --format pt2"
        ) from None
    assert program is not None
    program.model.metadata_props.update(_metadata(predictor))
    buffer = io.BytesIO()
    program.save(buffer)
    atomic_write_bytes(path, buffer.getvalue())
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.numpy()})[0]
    return _max_diff(got, _reference(predictor, x))


def _pt2(net: Deployable, predictor: Predictor, path: Path, x: Tensor) -> float:
    program = torch.export.export(net, (_traced_example(x),), dynamic_shapes=({0: _batch_dim()},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files=_metadata(predictor))
    atomic_write_bytes(path, buffer.getvalue())
    loaded = torch.export.load(str(path)).module()
    with torch.inference_mode():
        return _max_diff(loaded(x), _reference(predictor, x))


def _torchscript(net: Deployable, predictor: Predictor, path: Path, x: Tensor) -> float:
    traced = torch.jit.trace(net, _traced_example(x), check_trace=False)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer, _extra_files=_metadata(predictor))
    atomic_write_bytes(path, buffer.getvalue())
    loaded = torch.jit.load(str(path))
    with torch.inference_mode():
        return _max_diff(loaded(x), _reference(predictor, x))


def _safetensors(net: Deployable, predictor: Predictor, path: Path, x: Tensor) -> float:
    """Weights and metadata only: the check is that every tensor reads back equal."""
    from safetensors.torch import load_file, save_file

    # The model's own weights (a TTA wrapper saves its inner model's); contiguous copies, since
    # safetensors refuses views that share storage.
    state = {k: v.detach().cpu().contiguous().clone() for k, v in predictor.model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp), metadata=_metadata(predictor))
    tmp.replace(path)
    back = load_file(str(path))
    if set(back) != set(state):
        return float("inf")
    return max((_max_diff(back[k].float(), state[k].float().numpy()) for k in state), default=0.0)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters print progress to stdout and log warnings about optional packages
    (torchvision) and deprecations: a command that prints one result line keeps them out."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "torchao")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
