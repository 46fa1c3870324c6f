"""Quality metrics: a fast per-epoch set in torch, and a full end-of-run report with scikit-learn.

Two functions, two jobs:

* ``epoch_metrics`` runs on the validation split after every epoch, inside the training loop. It is
  written in torch on the model's device and reads one small tensor back to the host at the end,
  because a scikit-learn call would copy the whole prediction tensor to the CPU and block on it
  every epoch. It is tested against scikit-learn to 1e-9, so the two never disagree.
* ``full_report`` runs once, at the end of a run. Speed does not matter there, so it is plain
  scikit-learn: the reference everybody trusts, with per-class detail and the confusion matrix.

Label convention (both functions): classes are ``0 .. C-1`` with ``C`` the number of logits, and
the macro average is over all ``C`` classes (scikit-learn's ``labels=range(C)``), not over the
classes that happen to occur. A fixed label set keeps the score comparable from epoch to epoch and
from run to run (the denominator never changes), and it matches the confusion matrix's shape. A
class the model never predicts gets precision 0 (``zero_division=0``); a class absent from
``y_true`` gets recall 0; a class absent from both gets 0 for all three and still counts in the
average. Splits are stratified, so the last case only happens on tiny data.

scikit-learn is imported inside the report functions: ``sklearn.metrics`` takes ~1.7 s to import,
and the training loop, which imports this module, never needs it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tunelab.errors import DataError, ModelError

TASKS = ("classification", "regression")


# The classification metrics above are shares of samples or means of per-class shares: each lies in
# [0, 1], so an interval over seeds is clipped to that range where it is reported.
UNIT_METRICS = frozenset({"accuracy", "precision", "recall", "f1"})


def metric_range(name: str) -> tuple[float, float] | None:
    """The range a metric's values lie in, or None when it is unbounded (losses, errors, R²).

    >>> metric_range("accuracy"), metric_range("val.f1"), metric_range("loss")
    ((0.0, 1.0), (0.0, 1.0), None)
    """
    return (0.0, 1.0) if name.rsplit(".", 1)[-1] in UNIT_METRICS else None


def epoch_metrics(task: str, out: Tensor, y: Tensor, num_classes: int | None = None) -> dict[str, float]:
    """Validation metrics for one epoch, computed on ``out``'s device with one host sync.

    Classification (``out`` logits ``[N, C]``, ``y`` int64 ``[N]``): accuracy and macro precision,
    recall and F1 over classes ``0 .. C-1``, equal to scikit-learn's with ``zero_division=0``.
    Regression (``out`` and ``y`` ``[N, T]`` or ``[N]``): mse, rmse, mae and r2, each averaged
    uniformly over the ``T`` targets (scikit-learn's ``multioutput="uniform_average"``; so rmse is
    the mean of per-target RMSEs, as in ``root_mean_squared_error``). The loss is not here: the
    loop already has it.

    >>> out = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    >>> epoch_metrics("classification", out, torch.tensor([0, 1, 1]))["accuracy"]
    0.6666666666666666
    >>> epoch_metrics("regression", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0]))["mae"]
    1.0
    """
    _check_task(task)
    if out.shape[0] == 0:
        raise DataError("cannot compute metrics on an empty split; give the split at least one sample")
    out = out.detach()
    y = y.detach()
    if task == "classification":
        return _classification_epoch(out, y, num_classes)
    return _regression_epoch(out, y)


def _classification_epoch(out: Tensor, y: Tensor, num_classes: int | None) -> dict[str, float]:
    if out.ndim != 2:
        raise ModelError(f"classification outputs must be logits [N, C]; got shape {tuple(out.shape)}")
    c = out.shape[1] if num_classes is None else num_classes
    if out.shape[1] != c:
        raise ModelError(
            f"the model gives {out.shape[1]} logits but the data has {c} classes; "
            f"set the model's output size to {c}"
        )
    y = y.reshape(-1).long()
    if y.shape[0] != out.shape[0]:
        raise DataError(f"{out.shape[0]} outputs but {y.shape[0]} targets")
    pred = out.argmax(dim=1)  # [N]
    # Confusion matrix, rows = true class, columns = predicted. Not torch.bincount: on CUDA it
    # reads min() and max() back to the host to size its output (two hidden syncs per call);
    # scatter_add_ into a fixed C*C buffer stays on the device, and it is deterministic on CUDA
    # for 1-D input under torch.use_deterministic_algorithms.
    idx = y * c + pred  # [N]
    cm = torch.zeros(c * c, dtype=torch.int64, device=out.device)
    cm = cm.scatter_add_(0, idx, torch.ones_like(idx)).reshape(c, c)  # [C, C]
    tp = cm.diagonal()  # [C]
    stats = torch.stack([tp, cm.sum(dim=0), cm.sum(dim=1)])  # [3, C]: tp, predicted, true
    # The one sync: 3*C integers, exact. The ratios are taken in float64 on the host so the result
    # equals scikit-learn's bit for bit whatever the device (MPS has no float64).
    tp_, n_pred, n_true = stats.cpu().double()
    n = float(y.shape[0])
    precision = _safe_div(tp_, n_pred)
    recall = _safe_div(tp_, n_true)
    # F1 as scikit-learn >= 1.3 computes it: 2tp / (2tp + fp + fn), 0 when that is 0/0.
    f1 = _safe_div(2 * tp_, n_pred + n_true)
    return {
        "accuracy": float(tp_.sum()) / n,
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
    }


def _regression_epoch(out: Tensor, y: Tensor) -> dict[str, float]:
    n = out.shape[0]
    out = out.reshape(n, -1)
    y = y.reshape(y.shape[0], -1)
    if out.shape != y.shape:
        raise ModelError(
            f"the model gives {out.shape[1]} outputs per sample but the data has {y.shape[1]} targets; "
            f"set the model's output size to {y.shape[1]}"
        )
    # float64 where the device has it, so the sums over N match scikit-learn's to ~1e-12.
    dt = torch.float32 if out.device.type == "mps" else torch.float64
    out, y = out.to(dt), y.to(dt)
    err = out - y  # [N, T]
    stats = torch.stack(
        [
            err.square().sum(dim=0),  # sse
            err.abs().sum(dim=0),  # sae
            (y - y.mean(dim=0)).square().sum(dim=0),  # total sum of squares
        ]
    )  # [3, T]
    sse, sae, sst = stats.cpu().double()  # the one sync
    mse_t = sse / n
    r2 = _r2(sse, sst, n)
    return {
        "mse": float(mse_t.mean()),
        "rmse": float(mse_t.sqrt().mean()),
        "mae": float((sae / n).mean()),
        "r2": r2,
    }


def _r2(sse: Tensor, sst: Tensor, n: int) -> float:
    """Uniform mean of per-target R², with scikit-learn's ``force_finite`` rules."""
    if n < 2:
        return math.nan  # scikit-learn: "not well-defined with less than two samples"
    # A constant target (sst == 0) scores 1 when predicted exactly and 0 otherwise, as in
    # scikit-learn, instead of -inf or nan, so one flat target cannot wreck the average.
    r2 = torch.where(sst > 0, 1 - sse / torch.where(sst > 0, sst, 1), (sse == 0).double())
    return float(r2.mean())


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """num / den with 0 where den is 0 (scikit-learn's zero_division=0)."""
    return torch.where(den > 0, num / den.clamp(min=1), torch.zeros_like(num))


def full_report(task: str, out: Tensor, y: Tensor, class_names: list[str] | None = None) -> dict[str, Any]:
    """End-of-run quality report from scikit-learn; plain floats, ints and lists (JSON-ready).

    Classification: accuracy, macro precision / recall / f1 (``zero_division=0``, labels
    ``0 .. C-1``), ``per_class`` ``{name: {precision, recall, f1, support}}``, ``confusion_matrix``
    (rows = true class, columns = predicted), ``labels`` (the class names in matrix order) and
    ``n``. Regression: mse, rmse, mae, r2 (uniform average over targets), ``n``, and
    ``per_target`` (a list, one dict per target) when there is more than one target.

    >>> r = full_report("classification", torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]),
    ...                 class_names=["cat", "dog"])
    >>> r["confusion_matrix"], r["per_class"]["dog"]["support"]
    ([[1, 1], [0, 0]], 0)
    """
    _check_task(task)
    out_np = torch.as_tensor(out).detach().cpu().numpy()
    y_np = torch.as_tensor(y).detach().cpu().numpy()
    if out_np.shape[0] == 0:
        raise DataError("cannot report metrics on an empty split; give the split at least one sample")
    if task == "classification":
        return _classification_report(out_np, y_np, class_names)
    return _regression_report(out_np, y_np)


def _classification_report(out: np.ndarray, y: np.ndarray, class_names: list[str] | None) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    if out.ndim != 2:
        raise ModelError(f"classification outputs must be logits [N, C]; got shape {out.shape}")
    c = out.shape[1]
    names = [str(i) for i in range(c)] if class_names is None else [str(n) for n in class_names]
    if len(names) != c:
        raise ModelError(f"{len(names)} class names for {c} logits; give one name per model output")
    labels = list(range(c))
    y = y.reshape(-1)
    pred = out.argmax(axis=1)
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=labels, average=None, zero_division=0)
    return {
        "n": len(y),
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(np.mean(p)),
        "recall": float(np.mean(r)),
        "f1": float(np.mean(f)),
        "per_class": {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, name in enumerate(names)
        },
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),
        "labels": names,
    }


def _regression_report(out: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    n = out.shape[0]
    out = out.reshape(n, -1).astype(np.float64)
    y = y.reshape(y.shape[0], -1).astype(np.float64)
    if out.shape != y.shape:
        raise ModelError(f"outputs {out.shape} and targets {y.shape} differ; match the model's output size")
    mse = mean_squared_error(y, out, multioutput="raw_values")
    # RMSE per target from the MSE: root_mean_squared_error only exists from scikit-learn 1.4.
    rmse = np.sqrt(mse)
    mae = mean_absolute_error(y, out, multioutput="raw_values")
    r2 = _sklearn_r2(y, out)
    report: dict[str, Any] = {
        "n": int(n),
        "mse": float(mse.mean()),
        "rmse": float(rmse.mean()),
        "mae": float(mae.mean()),
        "r2": float(np.mean(r2)),
    }
    if y.shape[1] > 1:
        report["per_target"] = [
            {"mse": float(mse[t]), "rmse": float(rmse[t]), "mae": float(mae[t]), "r2": float(r2[t])}
            for t in range(y.shape[1])
        ]
    return report


def _sklearn_r2(y: np.ndarray, out: np.ndarray) -> np.ndarray:
    from sklearn.metrics import r2_score

    if y.shape[0] < 2:  # scikit-learn warns and returns a scalar nan here
        return np.full(y.shape[1], np.nan)
    return np.atleast_1d(r2_score(y, out, multioutput="raw_values"))


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
