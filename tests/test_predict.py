"""tunelab.load_run: a run's predictor reproduces the run's own test figures, for every form of model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from tunelab import fit, load_recipe, load_run
from tunelab.data import load_data
from tunelab.errors import DataError, TunelabError
from tunelab.methods.augment_tta import TTAModel
from tunelab.metrics import full_report
from tunelab.spec import PreprocessSpec
from tunelab.study.compress import compress_run

FAST = {"tensorboard": False, "efficiency": False}
DIGITS_CNN = {
    "data": {"name": "digits"},
    "model": {"name": "cnn2d", "channels": [8, 16], "hidden": [32], "batch_norm": True},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 3, "batch_size": 64, **FAST},
}

# The raw inputs (and targets): what a user hands the predictor.
RAW = PreprocessSpec(scaling="none", target_scaling="none")


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (``one_thread``, tests/conftest.py)."""


def raw_test_split(run_dir):
    """The run's test split before preprocessing: what a user would hand the predictor."""
    recipe = load_recipe(run_dir / "recipe.yaml")
    b = load_data(recipe.data, RAW)
    return b.x_test.numpy(), b.y_test.numpy()


def run_test_accuracy(run_dir):
    return json.loads((run_dir / "result.json").read_text())["test"]["accuracy"]


def predicted_accuracy(predictor, x, y):
    labels = np.asarray(predictor.label_values)[y]
    return float(np.mean(predictor.predict(x) == labels))


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A pruned MLP: final.pt holds zeros where weights were pruned, in the plain architecture."""
    out = tmp_path_factory.mktemp("predict") / "digits"
    torch.set_num_threads(1)
    recipe = {"data": {"name": "digits"}, "model": {"name": "mlp", "hidden": [32]}}
    recipe |= {"train": {"epochs": 3, **FAST}, "methods": [{"name": "prune", "sparsity": 0.5}]}
    fit(recipe, out=out)
    return out


def test_digits_pruned_reproduces_the_test_accuracy_and_outputs(digits_run):
    x, y = raw_test_split(digits_run)
    p = load_run(digits_run)
    assert p.task == "classification" and p.input_shape == (1, 8, 8)
    assert p.classes == [str(i) for i in range(10)] and p.label_values == list(range(10))
    weights = [m.weight for m in p.model.modules() if isinstance(m, nn.Linear)]
    assert sum(int((w == 0).sum()) for w in weights) >= 0.5 * sum(w.numel() for w in weights) - 1
    assert predicted_accuracy(p, x, y) == run_test_accuracy(digits_run)
    # The very logits the run evaluated: the bundle's standardized test split through final.pt.
    bundle = load_data(p.recipe.data, p.recipe.preprocess)
    with torch.no_grad():
        expected = p.model(bundle.x_test)
    assert torch.equal(p.outputs(x), expected)
    proba = p.predict_proba(x.reshape(len(x), -1))  # flattened inputs work too
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert (proba.argmax(axis=1) == expected.argmax(dim=1).numpy()).all()
    assert p.predict(torch.from_numpy(x[:3])).tolist() == p.predict(x[:3]).tolist()


def test_mnist1d_with_tta_averages_the_same_views(tmp_path):
    recipe = {
        "data": {"name": "mnist1d"},
        "model": {"name": "cnn1d", "channels": [8]},
        "train": {"epochs": 1, **FAST},
        "methods": [{"name": "tta", "shifts": [1, 2]}],
    }
    r = fit(recipe, out=tmp_path / "run")
    p = load_run(tmp_path / "run")
    assert isinstance(p.model, TTAModel)
    views = [f"{k}{'' if k == 'id' else f'({a},{n})'}" for k, a, n in p.model.views]
    assert views == r.info["tta"]["views"]
    x, y = raw_test_split(tmp_path / "run")
    assert predicted_accuracy(p, x, y) == r.test["accuracy"]


def test_channel_pruned_run_loads_narrowed(tmp_path):
    r = fit({**DIGITS_CNN, "methods": [{"name": "channel_prune", "ratio": 0.5}]}, out=tmp_path / "run")
    p = load_run(tmp_path / "run")
    assert [m.out_channels for m in p.model.modules() if isinstance(m, nn.Conv2d)] == [4, 8]
    x, y = raw_test_split(tmp_path / "run")
    assert predicted_accuracy(p, x, y) == r.test["accuracy"]


@pytest.fixture(scope="module")
def int8_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("predict") / "int8"
    torch.set_num_threads(1)
    fit({**DIGITS_CNN, "methods": [{"name": "channel_prune"}, {"name": "quantize"}]}, out=out)
    return out


def test_quantized_run_is_the_int8_model_bit_for_bit(int8_run):
    p = load_run(int8_run)
    linears = [m for m in p.model.modules() if isinstance(m, nn.Linear)]
    assert {type(m.weight).__name__ for m in linears} == {"Int8Tensor"}
    x, y = raw_test_split(int8_run)
    assert predicted_accuracy(p, x, y) == run_test_accuracy(int8_run)
    floats = load_run(int8_run, dequantize=True)  # the float copy an exporter can write
    assert {type(m.weight) for m in floats.model.modules() if isinstance(m, nn.Linear)} == {nn.Parameter}
    assert np.mean(floats.predict(x) == p.predict(x)) > 0.9


def test_compress_variants_reproduce_their_rows(int8_run):
    res = compress_run(
        int8_run, sparsities=[0.5], structured=True, quantize=True, finetune_epochs=1, budget_s=0.05
    )
    x, y = raw_test_split(int8_run)
    for row in res.rows[1:]:
        p = load_run(int8_run, variant=row.name)
        assert predicted_accuracy(p, x, y) == row.test["accuracy"], row.name
        assert not isinstance(p.model, TTAModel)
    by_path = load_run(int8_run / "compress" / "structured-0.5" / "seed-0")
    assert by_path.variant == "structured-0.5/seed-0"
    assert np.array_equal(by_path.predict(x), load_run(int8_run, variant="structured-0.5").predict(x))
    with pytest.raises(
        TunelabError, match=r"no compressed variant 'int9'; the variants are: int8, int8-weight"
    ):
        load_run(int8_run, variant="int9")
    with pytest.raises(
        TunelabError, match=r"seed-7: no saved model \(meta\.json\) here; the seeds of int8 are"
    ):
        load_run(int8_run, variant="int8/seed-7")


def test_regression_predicts_in_the_targets_units(tmp_path):
    recipe = {
        "data": {"name": "diabetes"},
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"epochs": 5, **FAST},
    }
    r = fit(recipe, out=tmp_path / "run")
    p = load_run(tmp_path / "run")
    assert p.task == "regression" and p.classes is None and p.targets == ["y"]
    b = load_data(r.recipe.data, RAW)
    pred = p.predict(b.x_test.numpy())
    assert pred.shape == (len(b.x_test),)
    assert abs(pred.mean() - float(b.y_train.mean())) < 3 * float(b.y_train.std())  # units of the target
    report = full_report("regression", torch.from_numpy(pred)[:, None], b.y_test)
    for metric in ("mse", "mae", "r2"):
        assert report[metric] == pytest.approx(r.test[metric], rel=1e-5)
    with pytest.raises(TunelabError, match="this run is a regression; use predict"):
        p.predict_proba(b.x_test.numpy())


def test_bad_inputs_and_runs_get_clear_errors(digits_run, tmp_path):
    p = load_run(digits_run)
    with pytest.raises(DataError, match=r"inputs of shape \[2, 63\] do not fit this model"):
        p.predict(np.zeros((2, 63)))
    bad = np.zeros((3, 64))
    bad[1, 5] = np.nan
    with pytest.raises(DataError, match=r"NaN or inf values in 1 of 3 samples \(first: sample 1\)"):
        p.predict(bad)
    with pytest.raises(TunelabError, match="no such run directory"):
        load_run(tmp_path / "nothing")
    old = tmp_path / "old"
    shutil.copytree(digits_run, old)
    (old / "data.json").unlink()
    with pytest.raises(
        TunelabError, match=r"no data\.json; not a tunelab run directory \(or one trained before"
    ):
        load_run(old)


def test_a_run_of_your_own_module_needs_it_again(tmp_path):
    def net():
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    fit({"data": {"name": "digits"}, "train": {"epochs": 1, **FAST}}, model=net(), out=tmp_path / "run")
    with pytest.raises(TunelabError, match=r"pass the same architecture: load_run\(run_dir, model=net\)"):
        load_run(tmp_path / "run")
    x, y = raw_test_split(tmp_path / "run")
    p = load_run(tmp_path / "run", model=net())
    assert predicted_accuracy(p, x, y) == run_test_accuracy(tmp_path / "run")


def test_an_edited_recipe_is_named(digits_run, tmp_path):
    run = tmp_path / "edited"
    shutil.copytree(digits_run, run)
    text = (run / "recipe.yaml").read_text().replace("- 32", "- 48")
    (run / "recipe.yaml").write_text(text)
    with pytest.raises(TunelabError, match=r"final\.pt does not fit the model its recipe\.yaml builds"):
        load_run(run)


def test_image_folder_runs_read_image_files_as_training_did(tmp_path):
    from PIL import Image

    from tunelab.data.image_folder import image_folder

    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    for name, shade in (("dark", 40), ("light", 200)):
        (root / name).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(rng.normal(shade, 30, size=(10, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    data = {"name": "image_folder", "path": str(root), "size": [6, 8]}
    fit({"data": data, "model": {"name": "linear"}, "train": {"epochs": 2, **FAST}}, out=tmp_path / "run")
    p = load_run(tmp_path / "run")
    assert p.card["image"] == {"size": [6, 8], "grayscale": False} and p.classes == ["dark", "light"]
    raw = image_folder(path=str(root), size=[6, 8])  # what training read, in file order
    table = p.table(root)
    assert table["row"][:2] == ["dark/0.png", "dark/1.png"] and len(table["row"]) == 24
    assert table["prediction"] == p.predict(raw.x).tolist()
    assert np.array_equal(np.array([table["p_dark"], table["p_light"]]).T, p.predict_proba(raw.x))
    # Files sort as text: light/0, light/1, light/10, light/11 -> index 12 + 3
    assert np.array_equal(p.predict_proba(root / "light" / "11.png"), p.predict_proba(raw.x[15:16]))


# --- tables as users bring them -------------------------------------------------------------------


def _write_rows(path, columns, rows):
    """Raw rows as a CSV (None: an empty cell), columns in the order given."""
    text = [",".join(columns)] + [",".join("" if v is None else str(v) for v in r) for r in rows]
    path.write_text("\n".join(text) + "\n")
    return path


@pytest.mark.slow
def test_a_mixed_table_trains_with_a_default_recipe_and_predicts_raw_rows(mixed_csv, tmp_path):
    recipe = {"data": {"name": "csv", "path": str(mixed_csv), "target": "label"}, "train": FAST}
    r = fit(recipe, out=tmp_path / "run")
    assert r.ok and r.test["accuracy"] > 0.8
    info = r.info["preprocess"]
    assert info["rows"] == {"read": 243, "dropped_missing_target": 2, "target": "label"}
    assert info["dropped_columns"] == {
        "id": "ID-like: a different text on every row",
        "site": "constant: a single value in train",
    }
    assert set(info["imputed"]) == {"colour", "x1"} and set(info["encoded"]) == {"colour", "size"}
    dup = info["duplicates"]
    assert sum(dup["within"].values()) + sum(dup["across"].values()) == 1 and dup["action"] == "dropped"
    saved = json.loads((tmp_path / "run" / "result.json").read_text())["info"]["preprocess"]
    assert saved == json.loads(json.dumps(info))

    # The raw test rows, as text cells with missing values, reproduce the run's test accuracy.
    pool = load_data(r.recipe.data, r.recipe.preprocess, keep_raw=True)
    columns = pool.feature_names
    p = load_run(tmp_path / "run")
    labels = np.asarray(p.label_values)[pool.raw.y_test]
    assert any(v is None for v in pool.raw.x_test.ravel())
    reversed_csv = _write_rows(tmp_path / "new.csv", columns[::-1], [row[::-1] for row in pool.raw.x_test])
    assert float(np.mean(p.predict(reversed_csv) == labels)) == r.test["accuracy"]
    assert float(np.mean(p.predict(pool.raw.x_test) == labels)) == r.test["accuracy"]  # an object array

    # A colour never seen in training is encoded as no colour at all (one-hot zeros), not an error.
    unseen = pool.raw.x_test.copy()
    unseen[:, columns.index("colour")] = "purple"
    encoded = p.preprocessing.transform(unseen)
    names = p.preprocessing.table.output_names
    colour_columns = [i for i, n in enumerate(names) if n.startswith("colour=")]
    assert colour_columns and not encoded[:, colour_columns].any()
    assert p.predict_proba(unseen).shape == (len(unseen), 2)


@pytest.mark.slow
def test_embeddings_for_categories_train_save_and_predict(mixed_csv, tmp_path):
    recipe = {
        "data": {"name": "csv", "path": str(mixed_csv), "target": "label"},
        "preprocess": {"encoding": "embedding"},
        "model": {"name": "mlp", "hidden": [32], "embedding_dim": 4},
        "train": {"epochs": 10, **FAST},
    }
    r = fit(recipe, out=tmp_path / "run")
    assert r.ok
    card = json.loads((tmp_path / "run" / "data.json").read_text())
    # x1 and x2, then colour (blue, green, missing, red) and size (L, M, S), each with code 0 for unseen
    assert card["embeddings"] == {"numeric": 2, "cardinalities": [5, 4]}
    p = load_run(tmp_path / "run")
    tables = [m for m in p.model.modules() if isinstance(m, nn.Embedding)]
    assert [t.num_embeddings for t in tables] == [5, 4]
    pool = load_data(r.recipe.data, r.recipe.preprocess, keep_raw=True)
    labels = np.asarray(p.label_values)[pool.raw.y_test]
    assert float(np.mean(p.predict(pool.raw.x_test) == labels)) == r.test["accuracy"]
    with pytest.raises(TunelabError, match=r"preprocess\.encoding: embedding needs model mlp"):
        fit({**recipe, "model": {"name": "linear"}}, save=False)
