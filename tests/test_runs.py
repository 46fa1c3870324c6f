"""The run directory writer: TensorBoard's HParams tab gets the recipe and the final metrics."""

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams import plugin_data_pb2

from tunelab.train import fit


def test_tensorboard_gets_the_flattened_recipe_and_final_metrics(tmp_path):
    recipe = {
        "data": {"name": "iris"},
        "model": {"name": "mlp", "hidden": [8]},
        "train": {"epochs": 2, "threads": 1, "efficiency": False},
        "methods": [{"name": "l2", "weight": 0.001}],
    }
    result = fit(recipe, out=tmp_path / "run")
    hparams, scalars = {}, {}
    for f in sorted((tmp_path / "run" / "tb").iterdir()):
        for event in EventFileLoader(str(f)).Load():
            for v in event.summary.value:
                if v.metadata.plugin_data.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(v.metadata.plugin_data.content)
                    if data.HasField("session_start_info"):
                        for k, x in data.session_start_info.hparams.items():
                            hparams[k] = x.number_value if x.HasField("number_value") else x.string_value
                elif v.HasField("tensor"):
                    scalars.setdefault(v.tag, []).append(
                        v.tensor.float_val[0] if v.tensor.float_val else None
                    )
    assert hparams["optimizer.name"] == "adam" and hparams["methods.l2.weight"] == 0.001
    assert hparams["model.hidden"] == "[8]" and hparams["train.epochs"] == 2
    assert scalars["final.val.accuracy"][-1] == pytest_approx(result.val["accuracy"])
    assert len(list((tmp_path / "run" / "tb").iterdir())) == 2  # no subdirectory: a rerun can clear tb/


def pytest_approx(v):
    import pytest

    return pytest.approx(v, rel=1e-6)
