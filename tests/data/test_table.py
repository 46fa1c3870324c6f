"""The table step: column types, and a numpy apply that equals scikit-learn's transformers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, RobustScaler, StandardScaler

from tunelab.data.table import TableStep, cell_text, detect_columns, to_numbers
from tunelab.errors import DataError, RecipeError
from tunelab.spec import PreprocessSpec

NAMES = ["n1", "n2", "colour", "size"]


def mixed_table(n: int, seed: int, unseen: bool = False) -> np.ndarray:
    """Two numeric columns with NaNs and outliers, two text columns with missing cells."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, 4), dtype=object)
    a = rng.normal(10, 3, n)
    a[rng.random(n) < 0.2] = np.nan
    a[:2] = [80.0, -60.0]  # outliers
    b = rng.exponential(5, n)
    b[rng.random(n) < 0.1] = np.nan
    x[:, 0] = [None if np.isnan(v) else repr(float(v)) for v in a]
    x[:, 1] = [None if np.isnan(v) else repr(float(v)) for v in b]
    colours = ["red", "green", "blue"] + (["violet"] if unseen else [])
    x[:, 2] = [None if rng.random() < 0.15 else colours[i] for i in rng.integers(0, len(colours), n)]
    x[:, 3] = [["S", "M", "L", "XL"][i] for i in rng.integers(0, 3 + unseen, n)]
    return x


def sklearn_reference(train: np.ndarray, new: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """The same preprocessing written with the scikit-learn transformers themselves."""
    num = lambda t: np.array([[np.nan if v is None else float(v) for v in r] for r in t[:, :2]])  # noqa: E731
    cat = lambda t: np.where(t[:, 2:] == None, np.nan, t[:, 2:]).astype(object)  # noqa: E711, E731
    a = num(train)
    imputer = SimpleImputer(
        strategy=spec.impute, fill_value=spec.impute_value, add_indicator=spec.missing_indicator
    )
    filled = imputer.fit(a).transform(a)
    k = a.shape[1]
    low = high = None
    if spec.outliers == "quantile":
        low, high = np.nanquantile(a, spec.outlier_quantiles, axis=0)
    elif spec.outliers == "zscore":
        low = np.nanmean(a, 0) - spec.outlier_z * np.nanstd(a, 0)
        high = np.nanmean(a, 0) + spec.outlier_z * np.nanstd(a, 0)
    clip = (lambda v: np.clip(v, low, high)) if low is not None else (lambda v: v)
    scaler = {
        "standard": StandardScaler(),
        "minmax": MinMaxScaler(feature_range=spec.minmax_range),
        "robust": RobustScaler(),
        "none": None,
    }[spec.scaling]
    if scaler is not None:
        scaler.fit(clip(filled[:, :k]))
    c = cat(train)
    cat_imputer = SimpleImputer(
        strategy=spec.categorical_impute, fill_value=spec.categorical_fill, missing_values=np.nan
    ).fit(c)
    if spec.encoding == "onehot":
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    else:
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    encoder.fit(cat_imputer.transform(c))

    out = imputer.transform(num(new))
    scaled = clip(out[:, :k])
    scaled = scaler.transform(scaled) if scaler is not None else scaled
    codes = encoder.transform(cat_imputer.transform(cat(new)))
    if spec.encoding == "embedding":
        codes = codes + 1
    return np.concatenate([scaled, out[:, k:], codes], axis=1)


SPECS = [
    PreprocessSpec(),
    PreprocessSpec(impute="mean", scaling="minmax", minmax_range=(-1.0, 1.0), missing_indicator=True),
    PreprocessSpec(impute="constant", impute_value=-5.0, scaling="robust", outliers="quantile"),
    PreprocessSpec(scaling="none", outliers="zscore", outlier_z=2.0, encoding="ordinal"),
    PreprocessSpec(categorical_impute="most_frequent", encoding="embedding", missing_indicator=True),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.scaling}-{s.impute}-{s.outliers}-{s.encoding}")
def test_apply_from_plain_data_equals_the_sklearn_transformers(spec):
    train = mixed_table(300, seed=0)
    new = mixed_table(200, seed=1, unseen=True)  # NaNs, and categories never seen in train
    step, _ = TableStep.fit(train, NAMES, spec, text=True)
    step = TableStep.from_json(json.loads(json.dumps(step.to_json())))  # only what is saved
    got = step.apply(new)
    expected = sklearn_reference(train, new, spec)
    np.testing.assert_array_equal(got, expected)  # bit for bit: the same formulas
    assert got.shape[1] == len(step.output_names)


def test_onehot_names_unseen_categories_and_missing_cells():
    train = np.array([["red", "1"], ["blue", None], ["red", "3"], [None, "2"]], dtype=object)
    step, notes = TableStep.fit(train, ["c", "v"], PreprocessSpec(scaling="none"), text=True)
    assert step.output_names == ["v", "c=blue", "c=missing", "c=red"]
    out = step.apply(np.array([["green", None], [None, "5"]], dtype=object))
    assert out.tolist() == [[2.0, 0.0, 0.0, 0.0], [5.0, 0.0, 1.0, 0.0]]  # median fill; unseen: zeros
    assert notes["imputed"] == {
        "v": "1 missing in train, filled with median 2",
        "c": "1 missing in train, filled with 'missing'",
    }
    assert notes["encoded"] == {"c": "onehot, 3 categories (text)"}


def test_detection_of_types_ids_and_constants():
    rng = np.random.default_rng(0)
    n = 40
    x = np.empty((n, 7), dtype=object)
    x[:, 0] = [f"u{i:03d}" for i in rng.permutation(n)]  # text id
    x[:, 1] = [str(i) for i in rng.permutation(np.arange(100, 100 + n))]  # integer id, shuffled
    x[:, 2] = "same"
    x[:, 3] = [str(v) for v in rng.integers(1, 4, n)]  # a few integer codes
    x[:, 4] = [repr(float(v)) for v in rng.normal(size=n)]
    x[:, 5] = [["yes", "no"][i % 2] for i in range(n)]
    x[:, 6] = [str(v) for v in rng.integers(0, 1000, n)]  # many distinct integers: a number
    names = ["user", "row", "const", "grade", "score", "member", "count"]
    plan = detect_columns(x, names, PreprocessSpec(), text=True)
    assert plan.kinds == {
        "user": "drop",
        "row": "drop",
        "const": "drop",
        "grade": "categorical",
        "score": "numeric",
        "member": "categorical",
        "count": "numeric",
    }
    assert plan.why["user"].startswith("ID-like") and plan.why["row"].startswith("ID-like")
    assert plan.why["const"].startswith("constant") and plan.why["member"] == "booleans"
    assert plan.why["grade"] == "integers with 3 distinct values"
    # The recipe's lists win over the detection.
    spec = PreprocessSpec(numeric=["grade"], categorical=["row"], drop=["score"])
    plan = detect_columns(x, names, spec, text=True)
    assert (plan.kinds["grade"], plan.kinds["row"], plan.kinds["score"]) == ("numeric", "categorical", "drop")
    assert plan.why["score"] == "listed in preprocess.drop"
    assert (
        detect_columns(x, names, PreprocessSpec(max_int_categories=0), text=True).kinds["grade"] == "numeric"
    )
    # Arrays are numbers already: no detection.
    assert set(detect_columns(np.zeros((5, 2)), ["a", "b"], PreprocessSpec(), text=False).kinds.values()) == {
        "numeric"
    }


def test_unknown_listed_columns_and_all_dropped_are_clear_errors():
    x = np.array([["a", "1"], ["b", "2"]], dtype=object)
    with pytest.raises(
        RecipeError, match=r'preprocess\.categorical: got \'colr\'.*columns are: colour, v.*"colour"'
    ):
        detect_columns(x, ["colour", "v"], PreprocessSpec(categorical=["colr"]), text=True)
    with pytest.raises(DataError, match="every feature column was dropped"):
        detect_columns(x, ["colour", "v"], PreprocessSpec(drop=["colour", "v"]), text=True)


def test_cells_and_numbers():
    assert [cell_text(v) for v in ("a ", 2.0, 2.5, True, "FALSE", "", "NA", None, "3.0")] == [
        "a",
        "2",
        "2.5",
        "true",
        "false",
        None,
        None,
        None,
        "3",
    ]
    assert np.isnan(to_numbers(np.array(["1", "n/a"], dtype=object), "c", "data")[1])
    with pytest.raises(DataError, match=r"data: column 'c' is numeric but holds 'x' \(row 2\)"):
        to_numbers(np.array(["1", "x"], dtype=object), "c", "data")


def test_a_table_of_the_wrong_width_is_named():
    step, _ = TableStep.fit(np.zeros((5, 3)), ["a", "b", "c"], text=False)
    with pytest.raises(DataError, match=r"new\.csv: has shape \[2, 2\] .* 3 columns \(a, b, c\)"):
        step.check(np.zeros((2, 2)), "new.csv")
