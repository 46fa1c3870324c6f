"""Saving compressed models so they load without tunelab's compression code.

Each kind of compressed model is written in the form that loads most plainly:

===============  ===================  ===========================================================
kind             file                 load with
===============  ===================  ===========================================================
unstructured     ``model.pt``         ``model.load_state_dict(torch.load(p, weights_only=True))``
                                      into the run's architecture (zeros where pruned)
unstructured     ``model.sparse.pt``  the same weights, sparse ones in CSR (a smaller file); see
                                      ``tunelab.compress.prune.sparse_state_dict``
structured       ``model.pt``         ``torch.load(p, weights_only=False)``: the whole narrower
                                      module (Torch-Pruning's recommendation); needs the model's
                                      class importable, not tunelab's pruning code
structured       ``model.pt2``        ``torch.export.load(p).module()``: needs torch alone
structured       ``weights.pt``       the narrower model's state dict: ``resize_to_state_dict`` the
                                      run's architecture to it, then ``load_state_dict`` (what
                                      ``tunelab.load_run`` does: no pickled code is run)
int8             ``model.pt``         torchao: ``quantize_`` the architecture (``meta.json``'s
                                      ``scheme``), then ``load_state_dict(torch.load(p,
                                      weights_only=True), assign=True)``
===============  ===================  ===========================================================

``meta.json`` beside each says which, with the row's figures.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tunelab.compress.prune import sparse_state_dict
from tunelab.io import atomic_save, atomic_write_text

__all__ = ["LOAD_HOWTO", "save_compressed"]

LOAD_HOWTO = {
    "dense": "model.load_state_dict(torch.load('model.pt', weights_only=True))",
    "unstructured": "model.load_state_dict(torch.load('model.pt', weights_only=True)); or the CSR file: "
    "saved = torch.load('model.sparse.pt', weights_only=True); sd = {k: v.to_dense().reshape("
    "saved['shapes'][k]) if v.layout == torch.sparse_csr else v for k, v in saved['state_dict'].items()}",
    "structured": "model = torch.load('model.pt', weights_only=False)  # or, with torch alone: "
    "model = torch.export.load('model.pt2').module(); or tunelab.load_run(RUN_DIR, variant=ROW) "
    "(weights.pt into the narrowed architecture)",
    "int8": "from torchao.quantization import quantize_, Int8DynamicActivationInt8WeightConfig; "
    "quantize_(model, Int8DynamicActivationInt8WeightConfig()); "
    "model.load_state_dict(torch.load('model.pt', weights_only=True), assign=True)",
}


def _export(model: nn.Module, example: Tensor, path: Path) -> str:
    """torch.export with a dynamic batch dimension; '' on success, else why it failed."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()  # exported for inference: BatchNorm uses its running statistics
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            batch = torch.export.Dim("batch", min=1)
            # Traced at batch 2: export specializes a size of 1, which would fix the batch at 1.
            two = torch.cat([example[:1], example[:1]])
            program = torch.export.export(model, (two,), dynamic_shapes=({0: batch},))
            torch.export.save(program, str(path))
        return ""
    except Exception as e:  # export supports most, not all, Python in forward(): say so, keep going
        path.unlink(missing_ok=True)
        why = str(e).splitlines()[0][:200] if str(e) else ""
        return f"torch.export failed ({type(e).__name__}: {why}); model.pt still loads"
    finally:
        for m, f in flags:
            m.training = f


def save_compressed(
    model: nn.Module, kind: str, directory: str | Path, example: Tensor, meta: dict[str, Any]
) -> dict[str, Any]:
    """Write ``model`` (a compressed model of ``kind``) and ``meta.json`` into ``directory``.

    ``kind``: "dense", "unstructured", "structured" or "int8"; ``example`` is one input batch (for
    ``torch.export``). Returns ``{"files": {...: bytes}, "notes": [...]}``.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = save_compressed(nn.Linear(3, 2), "dense", d, torch.zeros(1, 3), {})
    >>> sorted(out["files"])
    ['meta.json', 'model.pt']
    """
    if kind not in LOAD_HOWTO:
        raise ValueError(f"kind must be one of {', '.join(LOAD_HOWTO)}; got {kind!r}")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    if kind == "structured":
        atomic_save(model, d / "model.pt")
        atomic_save(model.state_dict(), d / "weights.pt")
        note = _export(model, example, d / "model.pt2")
        if note:
            notes.append(note)
    else:
        atomic_save(model.state_dict(), d / "model.pt")
        if kind == "unstructured":
            atomic_save(sparse_state_dict(model.state_dict()), d / "model.sparse.pt")
    info = {"kind": kind, "load": LOAD_HOWTO[kind], **meta, "notes": notes}
    atomic_write_text(d / "meta.json", json.dumps(info, indent=2, default=str))
    files = {p.name: p.stat().st_size for p in sorted(d.iterdir()) if p.is_file()}
    return {"files": files, "notes": notes}
