"""Start a model from pretrained weights: a tunelab run, a checkpoint file, or a hub name.

``model.pretrained`` in a recipe names the source; ``tunelab.fit`` calls ``load_pretrained`` right
after building the model (before the optimizer and the methods' ``setup``) and reports what was
loaded under ``info["pretrained"]``. Sources:

* a tunelab run directory: its ``final.pt`` (the evaluated weights), or ``best.pt`` when the run
  has no ``final.pt`` (it was interrupted);
* a checkpoint file: a state dict read with ``torch.load(..., weights_only=True)`` (no code from
  the file is run), or a dict holding one under ``state_dict`` / ``model_state_dict`` / ``model``;
  ``.safetensors`` files are read with the ``safetensors`` package;
* a pretrained text encoder (``minilm``, or a directory in Hugging Face's layout holding a
  ``model.safetensors``: ``tunelab.encoders``), for the ``transformer`` model, whose new head is
  the one tensor group the checkpoint lacks;
* ``hf:REPO[/FILE]`` (a Hugging Face hub repository, ``FILE`` defaulting to ``model.safetensors``
  then ``pytorch_model.bin``) and ``timm:NAME`` (timm's weights, published as ``hf:timm/NAME``):
  downloaded with ``huggingface_hub`` into its cache, then read as a checkpoint file. Hub
  weights use their own architecture's tensor names, so they load into a model built with the
  same code (a ``custom`` factory calling timm, say).

Tensors are matched by name: same name and shape -> copied ("loaded"); same name, other shape
(a head for a new number of classes) -> left as freshly initialized ("reinitialized"); only in
the model -> "missing" (left as initialized, with a warning); only in the checkpoint ->
"unexpected" (ignored). A checkpoint that matches nothing is another architecture: ModelError.
A run trained with ``channel_prune`` saved a narrower model: the model is narrowed to its widths
first (all but the output layer's outputs), reported as ``narrowed``.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tunelab.encoders import ENCODERS, weights_file
from tunelab.errors import ModelError, RecipeError, TunelabError

__all__ = ["HUB_PREFIXES", "load_pretrained", "load_state_dict_file", "match_state_dict", "resolve_source"]

HUB_PREFIXES = ("hf:", "timm:")
# Files tried, in order, when an hf: source names no file: the two names the hub libraries write.
HUB_FILES = ("model.safetensors", "pytorch_model.bin")
# Keys under which training scripts commonly nest the weights in a checkpoint dict.
_NESTED_KEYS = ("state_dict", "model_state_dict", "model")
# Prefixes added by wrappers: DataParallel / DistributedDataParallel ("module."), torch.compile's
# OptimizedModule ("_orig_mod."). They are stripped when every key carries them.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_PATH = "model.pretrained"


def load_pretrained(model: nn.Module, source: str | Path) -> dict[str, Any]:
    """Copy the tensors of ``source`` into ``model`` where names and shapes match; return a report.

    The report has ``source``, ``file`` (the checkpoint read), the lists of tensor names
    ``loaded``, ``reinitialized`` (same name, other shape: left as initialized), ``missing``
    (only in the model) and ``unexpected`` (only in the checkpoint), and ``warnings``.

    >>> import tempfile, torch
    >>> src = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> path = tempfile.mkdtemp() + "/weights.pt"
    >>> torch.save(src.state_dict(), path)
    >>> new = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 5))
    >>> report = load_pretrained(new, path)
    >>> report["loaded"], report["reinitialized"]
    (['0.weight', '0.bias'], ['2.weight', '2.bias'])
    >>> torch.equal(new[0].weight, src[0].weight)
    True
    """
    file = resolve_source(source)
    state = load_state_dict_file(file)
    narrowed = _narrow_to_pruned_run(model, source, state)
    report = match_state_dict(model, state)
    params = {n for n, _ in model.named_parameters()}
    loaded = [n for n in report["loaded"] if n in params]
    # Counters such as batch norm's num_batches_tracked match any architecture: only weights count.
    if not loaded:
        raise ModelError(
            f"{_PATH}: no weight of {source} matches the model by name and shape, so it is from another "
            f"architecture; the model has {_first([n for n in model.state_dict() if n in params])}, the "
            f"checkpoint {_first(list(state))}. Build the model with the recipe (model section) that "
            "produced the checkpoint"
        )
    # load_state_dict copies in place (converting dtype), so parameters keep their identity.
    model.load_state_dict({k: state[k] for k in report["loaded"]}, strict=False)
    report = {"source": str(source), "file": str(file), **report}
    if narrowed:
        report["narrowed"] = narrowed
    reinit = [n for n in report["reinitialized"] if n in params]
    if len(reinit) > len(loaded):
        msg = (
            f"more weights were re-initialized ({len(reinit)}) than loaded ({len(loaded)}): {source} may "
            "be from a different architecture (sizes such as channels or hidden differ)"
        )
        report["warnings"].append(msg)
        warnings.warn(f"{_PATH}: {msg}", stacklevel=2)
    encoder = str(source) in ENCODERS or Path(str(source), "config.json").is_file()
    new_head = encoder and all(n.startswith("head.") for n in report["missing"])
    if report["missing"] and not new_head:  # a transformer's head is new by design: no warning
        msg = (
            f"{len(report['missing'])} tensor(s) of the model are not in {source} and keep their "
            f"initialization: {_first(report['missing'])}"
        )
        report["warnings"].append(msg)
        warnings.warn(f"{_PATH}: {msg}", stacklevel=2)
    return report


def _narrow_to_pruned_run(
    model: nn.Module, source: str | Path, state: Mapping[str, Tensor]
) -> dict[str, list[int]]:
    """A run trained with ``channel_prune`` saved a narrower model: narrow ``model`` to it.

    Only for a tunelab run directory whose recipe names ``channel_prune`` (anywhere else a shape
    mismatch means a new head, re-initialized as usual). The output layer keeps its own outputs,
    so transfer to a new task still gets a fresh head. Returns the new widths, by layer name.
    """
    from tunelab.compress.structured import PRUNABLE, output_layer, resize_to_state_dict

    run = Path(str(source)).expanduser()
    if not (run.is_dir() and (run / "recipe.yaml").is_file()):
        return {}
    import yaml

    methods = (yaml.safe_load((run / "recipe.yaml").read_text()) or {}).get("methods") or []
    if not any((m if isinstance(m, str) else m.get("name")) == "channel_prune" for m in methods):
        return {}
    before = {n: tuple(m.weight.shape[:2]) for n, m in model.named_modules() if isinstance(m, PRUNABLE)}
    resize_to_state_dict(model, state, keep_outputs=output_layer(model))
    return {
        n: list(m.weight.shape[:2])
        for n, m in model.named_modules()
        if isinstance(m, PRUNABLE) and tuple(m.weight.shape[:2]) != before[n]
    }


def match_state_dict(model: nn.Module, state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Compare a state dict with ``model``'s by tensor name and shape; nothing is copied.

    >>> import torch
    >>> net = torch.nn.Linear(3, 2)
    >>> r = match_state_dict(net, {"weight": torch.zeros(4, 3), "bias": torch.zeros(2), "x": torch.zeros(1)})
    >>> r["loaded"], r["reinitialized"], r["missing"], r["unexpected"]
    (['bias'], ['weight'], [], ['x'])
    """
    own = model.state_dict()
    loaded = [k for k, v in own.items() if k in state and tuple(state[k].shape) == tuple(v.shape)]
    reinit = [k for k, v in own.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    warnings_: list[str] = []
    if reinit:
        shapes = ", ".join(f"{k} {tuple(state[k].shape)} -> {tuple(own[k].shape)}" for k in reinit[:4]) + (
            ", ..." if len(reinit) > 4 else ""
        )
        warnings_.append(f"re-initialized (shape differs, e.g. a new head): {shapes}")
    return {
        "loaded": loaded,
        "reinitialized": reinit,
        "missing": [k for k in own if k not in state],
        "unexpected": [k for k in state if k not in own],
        "warnings": warnings_,
    }


def resolve_source(source: str | Path) -> Path:
    """The checkpoint file ``source`` names: a run's ``final.pt`` / ``best.pt``, a file, or a download.

    >>> import tempfile, torch
    >>> run = tempfile.mkdtemp()
    >>> torch.save({}, run + "/best.pt")
    >>> resolve_source(run).name
    'best.pt'
    """
    text = str(source)
    if text.startswith(HUB_PREFIXES):
        return _from_hub(text)
    if text in ENCODERS:
        return weights_file(text)
    path = Path(text).expanduser()
    if path.is_dir() and (path / "config.json").is_file() and (path / "model.safetensors").is_file():
        return path / "model.safetensors"  # a text encoder's directory (Hugging Face's layout)
    if path.is_dir():
        for name in ("final.pt", "best.pt"):
            if (path / name).is_file():
                return path / name
        what = "a tunelab run without a checkpoint (it failed before its first epoch)"
        if not (path / "recipe.yaml").is_file():
            what = "a directory that is not a tunelab run"
        raise RecipeError(
            _PATH,
            text,
            f"is {what}: no final.pt or best.pt; give a finished run directory or a checkpoint file",
        )
    if not path.is_file():
        raise RecipeError(
            _PATH,
            text,
            "no such file or directory; give a tunelab run directory, a checkpoint file (.pt), "
            "or hf:REPO[/FILE] / timm:NAME",
        )
    return path


def load_state_dict_file(path: str | Path, *, dequantize: bool = True) -> dict[str, Tensor]:
    """The state dict in a checkpoint file, read safely (``weights_only=True``, or safetensors).

    A dict nesting the weights under ``state_dict`` / ``model_state_dict`` / ``model`` is
    unwrapped, and a ``module.`` / ``_orig_mod.`` prefix on every key (DataParallel,
    torch.compile) is stripped. The int8 weights of a quantized run are dequantized to floats,
    unless ``dequantize=False`` (to load them into a model quantized the same way).

    >>> import tempfile, torch
    >>> path = tempfile.mkdtemp() + "/ckpt.pt"
    >>> torch.save({"epoch": 3, "state_dict": {"module.w": torch.ones(2)}}, path)
    >>> load_state_dict_file(path)
    {'w': tensor([1., 1.])}
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise TunelabError(
                f"{_PATH}: {path} is a .safetensors file, which needs the safetensors package: "
                "pip install safetensors"
            ) from None
        try:
            obj: Any = load_file(str(path), device="cpu")
        except Exception as e:  # a corrupt file: one line, not a traceback
            raise ModelError(f"{_PATH}: cannot read {path} as safetensors: {e}") from None
    else:
        try:
            obj = _torch_load(path)
        except Exception as e:  # UnpicklingError for pickled objects, RuntimeError for a non-torch file
            raise ModelError(
                f"{_PATH}: cannot read {path} with torch.load(weights_only=True): {str(e).splitlines()[0]}. "
                "Give a file saved with torch.save(model.state_dict(), path)"
            ) from None
    if isinstance(obj, Mapping) and not _is_state_dict(obj):
        nested = next((obj[k] for k in _NESTED_KEYS if k in obj and _is_state_dict(obj[k])), None)
        if nested is not None:
            obj = nested
    if not isinstance(obj, Mapping) or not _is_state_dict(obj):
        kind = (
            f"a dict with keys {_first([str(k) for k in obj])}"
            if isinstance(obj, Mapping)
            else type(obj).__name__
        )
        raise ModelError(
            f"{_PATH}: {path} holds {kind}, not a state dict (tensor names -> tensors); save one with "
            "torch.save(model.state_dict(), path)"
        )
    from tunelab.compress.quantize import dequantized

    state = dequantized(dict(obj)) if dequantize else dict(obj)  # int8 weights of a quantized run
    for prefix in _WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        if "torchao" not in str(e):
            raise
    # A checkpoint of a quantized run (methods.quantize) holds torchao tensors, which
    # weights_only=True accepts once torchao has registered them as safe: import it and retry.
    from tunelab.compress.quantize import _torchao

    _torchao()
    return torch.load(path, map_location="cpu", weights_only=True)


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    )


def _first(names: list[str], n: int = 5) -> str:
    if not names:
        return "no tensors"
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")


def _from_hub(text: str) -> Path:
    """Download the checkpoint of an ``hf:`` or ``timm:`` source; TunelabError when unreachable."""
    prefix, _, name = text.partition(":")
    parts = [p for p in name.split("/") if p]
    if not parts:
        raise RecipeError(
            _PATH, text, f"needs a name after {prefix}:, e.g. hf:owner/repo or timm:resnet18.a1_in1k"
        )
    if prefix == "timm":
        if len(parts) != 1:
            raise RecipeError(_PATH, text, "timm:NAME takes one model name, e.g. timm:resnet18.a1_in1k")
        repo, files = f"timm/{parts[0]}", list(HUB_FILES)  # timm publishes its weights there
    else:
        # Two parts are owner/repo (the common form); a third and further parts name the file.
        repo = "/".join(parts[:2])
        files = ["/".join(parts[2:])] if len(parts) > 2 else list(HUB_FILES)
    if len(files) > 1 and importlib.util.find_spec("safetensors") is None:
        files = [f for f in files if not f.endswith(".safetensors")]  # could not be read here
    errors = []
    for filename in files:
        try:
            return Path(_hub_download(repo, filename))
        except TunelabError:
            raise
        except Exception as e:  # offline, unknown repo, missing file: all end in the same advice
            errors.append(f"{filename}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    raise TunelabError(
        f"{_PATH}: could not download {text} (Hugging Face repository {repo}): the hub is unreachable "
        f"from this machine or the repository has no such file ({'; '.join(errors)}). Download the "
        "checkpoint where there is network and pass its local path: --set model.pretrained=PATH"
    )


def _hub_download(repo: str, filename: str) -> str:
    """``huggingface_hub.hf_hub_download`` (cached), imported on use: it is an optional dependency."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise TunelabError(
            f"{_PATH}: hub sources (hf:, timm:) need the huggingface_hub package (pip install "
            "huggingface_hub) and network; or download the checkpoint yourself and pass its local path"
        ) from None
    return hf_hub_download(repo_id=repo, filename=filename)
