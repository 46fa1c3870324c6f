"""epoch_metrics against scikit-learn, and full_report's content and JSON shape.

Labels: both sides use ``labels=range(C)`` (C = number of logits), so a class absent from y_true,
never predicted, or both, counts in the macro average on both sides in the same way.
"""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    r2_score,
)

from tunelab.errors import DataError, ModelError
from tunelab.metrics import epoch_metrics, full_report
from tunelab.metrics import quality as quality_module

TOL = 1e-9


def root_mean_squared_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """scikit-learn's root_mean_squared_error (uniform average over targets), written with
    mean_squared_error because it appeared only in scikit-learn 1.4 and the floor is 1.3."""
    return float(np.sqrt(mean_squared_error(y_true, y_pred, multioutput="raw_values")).mean())


def _sk_classification(out: torch.Tensor, y: torch.Tensor, c: int) -> dict[str, float]:
    pred = out.argmax(1).numpy()
    p, r, f, _ = precision_recall_fscore_support(
        y.numpy(), pred, labels=list(range(c)), average="macro", zero_division=0
    )
    return {"accuracy": accuracy_score(y.numpy(), pred), "precision": p, "recall": r, "f1": f}


def _random_classification(seed: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Random logits and labels with one class never predicted and another absent from y_true."""
    g = torch.Generator().manual_seed(seed)
    c = int(torch.randint(3, 8, (1,), generator=g))
    n = int(torch.randint(1, 80, (1,), generator=g))
    out = torch.randn(n, c, generator=g)
    never_predicted, absent = 0, c - 1
    out[:, never_predicted] = -1e9
    y = torch.randint(0, c - 1, (n,), generator=g)  # labels 0 .. c-2: class c-1 is absent
    assert not (out.argmax(1) == never_predicted).any() and not (y == absent).any()
    return out, y, c


@pytest.mark.parametrize("seed", range(40))
def test_classification_epoch_metrics_equal_sklearn(seed: int) -> None:
    out, y, c = _random_classification(seed)
    got = epoch_metrics("classification", out, y, num_classes=c)
    want = _sk_classification(out, y, c)
    assert set(got) == {"accuracy", "precision", "recall", "f1"}
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=TOL), k


def test_class_absent_from_both_counts_as_zero_in_the_macro_average() -> None:
    # Class 2 is neither true nor predicted: with labels=range(3) it adds a 0 to each average.
    out = torch.tensor([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    y = torch.tensor([0, 1])
    got = epoch_metrics("classification", out, y, num_classes=3)
    assert got["accuracy"] == 1.0
    assert got["precision"] == pytest.approx(2 / 3) and got["f1"] == pytest.approx(2 / 3)
    assert got == pytest.approx(_sk_classification(out, y, 3), abs=TOL)


def test_num_classes_defaults_to_the_number_of_logits() -> None:
    out, y, c = _random_classification(3)
    assert epoch_metrics("classification", out, y) == epoch_metrics("classification", out, y, c)


def test_perfect_and_all_wrong_predictions() -> None:
    y = torch.tensor([0, 1, 2, 1])
    perfect = torch.nn.functional.one_hot(y, 3).float()
    assert epoch_metrics("classification", perfect, y) == {
        "accuracy": 1.0,
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
    }
    wrong = torch.nn.functional.one_hot((y + 1) % 3, 3).float()
    assert epoch_metrics("classification", wrong, y) == {
        "accuracy": 0.0,
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
    }


def _random_regression(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(2, 60, (1,), generator=g))
    t = int(torch.randint(1, 4, (1,), generator=g))
    y = torch.randn(n, t, generator=g) * 3 + 1
    out = y + torch.randn(n, t, generator=g)  # float32, as a model gives
    return out, y


@pytest.mark.parametrize("seed", range(40))
def test_regression_epoch_metrics_equal_sklearn(seed: int) -> None:
    out, y = _random_regression(seed)
    got = epoch_metrics("regression", out, y, None)
    yn, on = y.double().numpy(), out.double().numpy()
    want = {
        "mse": mean_squared_error(yn, on),
        "rmse": root_mean_squared_error(yn, on),
        "mae": mean_absolute_error(yn, on),
        "r2": r2_score(yn, on),
    }
    assert set(got) == set(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=TOL, abs=TOL), k


def test_regression_constant_target_follows_sklearn_force_finite() -> None:
    # Target 0 is constant and predicted exactly (R² 1), target 1 constant and missed (R² 0),
    # target 2 varies: sklearn's force_finite rule, not nan or -inf.
    y = torch.tensor([[1.0, 2.0, 0.0], [1.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    out = torch.tensor([[1.0, 2.5, 0.5], [1.0, 2.0, 1.0], [1.0, 2.0, 2.0]])
    got = epoch_metrics("regression", out, y)
    assert got["r2"] == pytest.approx(r2_score(y.double().numpy(), out.double().numpy()), abs=TOL)
    raw = r2_score(y.numpy(), out.numpy(), multioutput="raw_values")
    assert raw[0] == 1.0 and raw[1] == 0.0


def test_regression_accepts_flat_targets_and_matches_single_column() -> None:
    out, y = _random_regression(1)
    flat = epoch_metrics("regression", out[:, 0], y[:, 0])
    column = epoch_metrics("regression", out[:, :1], y[:, :1])
    assert flat == column


def test_regression_single_sample_r2_is_nan_like_sklearn() -> None:
    got = epoch_metrics("regression", torch.tensor([[2.0]]), torch.tensor([[1.0]]))
    assert np.isnan(got["r2"]) and got["mse"] == 1.0


def test_epoch_metrics_errors_say_what_to_fix() -> None:
    with pytest.raises(ValueError, match="classification, regression"):
        epoch_metrics("clasification", torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ModelError, match="output size to 4"):
        epoch_metrics("classification", torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), 4)
    with pytest.raises(ModelError, match="output size to 2"):
        epoch_metrics("regression", torch.zeros(5, 3), torch.zeros(5, 2))
    with pytest.raises(DataError, match="empty"):
        epoch_metrics("regression", torch.zeros(0, 1), torch.zeros(0, 1))


def test_full_report_classification_matches_sklearn_and_is_json() -> None:
    out, y, c = _random_classification(7)
    names = [f"class_{i}" for i in range(c)]
    r = full_report("classification", out, y, names)
    json.loads(json.dumps(r))  # plain Python types only
    pred = out.argmax(1).numpy()
    p, rec, f, s = precision_recall_fscore_support(
        y.numpy(), pred, labels=list(range(c)), average=None, zero_division=0
    )
    assert r["labels"] == names and r["n"] == len(y)
    assert r["confusion_matrix"] == confusion_matrix(y.numpy(), pred, labels=list(range(c))).tolist()
    assert r["per_class"]["class_1"] == {
        "precision": pytest.approx(p[1]),
        "recall": pytest.approx(rec[1]),
        "f1": pytest.approx(f[1]),
        "support": int(s[1]),
    }
    # The end-of-run report and the per-epoch metrics agree on the headline numbers.
    fast = epoch_metrics("classification", out, y, c)
    for k in fast:
        assert r[k] == pytest.approx(fast[k], abs=TOL), k


def test_full_report_confusion_matrix_rows_are_true_classes() -> None:
    out = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # predicts 0, 1, 1
    y = torch.tensor([0, 0, 1])
    r = full_report("classification", out, y)
    assert r["confusion_matrix"] == [[1, 1], [0, 1]]
    assert r["labels"] == ["0", "1"]
    with pytest.raises(ModelError, match="one name per model output"):
        full_report("classification", out, y, ["only_one"])


def test_full_report_regression_matches_sklearn_with_per_target() -> None:
    out, y = _random_regression(2)
    out, y = torch.cat([out, out], 1), torch.cat([y, y * 2], 1)  # at least two targets
    r = full_report("regression", out, y)
    json.loads(json.dumps(r))
    yn, on = y.double().numpy(), out.double().numpy()
    assert r["mse"] == pytest.approx(mean_squared_error(yn, on))
    assert r["rmse"] == pytest.approx(root_mean_squared_error(yn, on))
    assert r["r2"] == pytest.approx(r2_score(yn, on))
    assert len(r["per_target"]) == y.shape[1]
    assert r["per_target"][1]["mae"] == pytest.approx(mean_absolute_error(yn[:, 1], on[:, 1]))
    fast = epoch_metrics("regression", out, y)
    for k in fast:
        assert r[k] == pytest.approx(fast[k], rel=1e-9), k
    assert "per_target" not in full_report("regression", out[:, :1], y[:, :1])


def test_docstring_examples_run() -> None:
    result = doctest.testmod(quality_module)
    assert result.attempted > 0 and result.failed == 0
