from __future__ import annotations

import pytest

from tunelab.recipe import load_recipe
from tunelab.study.auto.profile import FAMILIES
from tunelab.study.auto.space import baseline_recipe, epochs_for_budget, search_recipe
from tunelab.study.search.space import check_space

SHAPES = {"table": ([13], "wine"), "signal": ([1, 40], "mnist1d"), "image": ([1, 8, 8], "digits")}


@pytest.mark.parametrize("modality", sorted(SHAPES))
def test_the_space_of_each_modality_is_a_valid_search(modality):
    shape, name = SHAPES[modality]
    base = baseline_recipe({"name": name}, modality, FAMILIES[modality][0], epochs=20)
    raw = search_recipe(base, modality, shape, 1000, lr_range=(1e-4, 1e-2), epochs=20, missing=True)
    check_space(load_recipe(raw))  # every bound and choice makes a valid recipe
    space = raw["search"]
    assert space["model.name"]["choices"] == list(FAMILIES[modality])
    assert space["optimizer.name"]["choices"] == ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"]
    assert space["schedule.name"]["choices"] == ["step", "exponential", "cosine", "onecycle", "cyclic"]
    assert (space["optimizer.lr"]["low"], space["optimizer.lr"]["high"]) == (1e-4, 1e-2)
    assert "schedule.warmup_epochs" in space and "train.batch_size" in space
    for method in ("l1", "l2", "elastic_net", "label_smoothing", "grad_clip", "ema"):
        assert space[f"methods.{method}"]["choices"] == [True, False]
    mixing = "methods.cutmix" if modality == "image" else "methods.mixup"
    augment = {"table": "feature_noise", "signal": "signal_augment", "image": "image_augment"}[modality]
    assert mixing in space and f"methods.{augment}" in space
    # Early stopping is always on: in the recipe, never a switch of the space.
    assert raw["methods"][0]["name"] == "early_stopping" and "methods.early_stopping" not in space
    if modality != "image":
        assert "preprocess.scaling" in space
    if modality == "table":
        assert {"preprocess.outliers", "preprocess.impute"} <= set(space)


def test_the_text_space_searches_text_models_and_augmentation_and_no_other_modalitys(text_csv):
    base = baseline_recipe({"name": "text_csv", "path": str(text_csv)}, "text", "embedding_bag", epochs=10)
    assert base["model"] == {"name": "embedding_bag", "embed_dim": 64}
    raw = search_recipe(base, "text", [256], 100, lr_range=(1e-3, 1e-1), epochs=10)
    check_space(load_recipe(raw))  # every family, rate and tokenizer bound makes a valid recipe
    space = raw["search"]
    assert space["model.name"]["choices"] == ["embedding_bag", "textcnn", "gru"]  # no 83 MB transformer
    assert {"model.embed_dim", "model.dropout", "optimizer.weight_decay", "train.batch_size"} <= set(space)
    assert {"methods.label_smoothing", "methods.text_augment", "methods.text_augment.crop"} <= set(space)
    assert {f"methods.text_augment.{op}" for op in ("insert", "delete", "swap", "replace")} <= set(space)
    assert {"preprocess.max_length", "preprocess.max_vocab"} <= set(space)
    # No mixing of token ids, no augmentation or preprocessing made for other modalities.
    others = ("mixup", "cutmix", "tta", "feature_noise", "signal_augment", "image_augment")
    assert not any(k.startswith(f"methods.{m}") for k in space for m in others)
    assert "preprocess.scaling" not in space and "model.batch_norm" not in space


def test_epochs_fit_the_budget_within_bounds():
    assert epochs_for_budget(3300, 0.7, 31) == 77
    assert epochs_for_budget(10, 1.0, 30) == 5 and epochs_for_budget(1e6, 0.01, 0) == 100
