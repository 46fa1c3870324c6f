"""train.loggers: [mlflow] logs params, per-epoch metrics, the model and the run directory;
read back with MLflow's own client."""

import json
import sys

import pytest

from tunelab.errors import RecipeError
from tunelab.train import fit

RECIPE = {
    "data": {"name": "iris"},
    "model": {"name": "mlp", "hidden": [8]},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 3, "threads": 1, "efficiency": False, "loggers": ["mlflow"]},
    "methods": [{"name": "l2", "weight": 0.001}],
}


@pytest.fixture(scope="module")
def default_store(tmp_path_factory):
    """One run into the default store, ./mlruns (MLflow creates its tables once: seconds)."""
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    tmp_path = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as m:
        m.chdir(tmp_path)
        m.delenv("MLFLOW_TRACKING_URI", raising=False)
        result = fit(RECIPE, out=tmp_path / "run")
    return tmp_path, result


def test_mlflow_gets_params_metrics_the_model_and_the_run_directory(default_store):
    import mlflow

    tmp_path, result = default_store
    where = result.info["mlflow"]
    assert (
        where["tracking_uri"] == "sqlite:///mlruns/mlflow.db"
        and (tmp_path / "mlruns" / "mlflow.db").is_file()
    )
    assert json.loads((tmp_path / "run" / "result.json").read_text())["info"]["mlflow"] == where
    client = mlflow.MlflowClient(tracking_uri=where["tracking_uri"])
    run = client.get_run(where["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["optimizer.lr"] == "0.01" and run.data.params["methods.l2.weight"] == "0.001"
    history = client.get_metric_history(where["run_id"], "val.accuracy")
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == [h["val"]["accuracy"] for h in result.history]
    assert run.data.metrics["final.val.accuracy"] == result.val["accuracy"]
    artifacts = {a.path for a in client.list_artifacts(where["run_id"])}
    assert {"recipe.yaml", "result.json", "final.pt", "metrics.jsonl", "model"} <= artifacts
    local = client.download_artifacts(where["run_id"], "model", str(tmp_path))
    model = mlflow.pytorch.load_model(local)  # MLflow's own loader reads the logged model back
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in result.model.parameters())


def test_the_tracking_uri_comes_from_the_environment(default_store, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{default_store[0] / 'mlruns' / 'mlflow.db'}"  # an existing store, named by path
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    result = fit({**RECIPE, "train": {**RECIPE["train"], "epochs": 1}}, out=tmp_path / "run")
    assert result.info["mlflow"]["tracking_uri"] == uri
    assert (
        mlflow.MlflowClient(tracking_uri=uri).get_run(result.info["mlflow"]["run_id"]).info.status
        == "FINISHED"
    )


def test_a_missing_extra_is_a_clear_error_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed: import raises ImportError
    with pytest.raises(RecipeError, match=r"train\.loggers.*pip install 'tunelab\[mlflow\]'"):
        fit(RECIPE, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_an_unknown_logger_is_refused_by_the_recipe(tmp_path):
    with pytest.raises(RecipeError, match=r"train\.loggers"):
        fit({**RECIPE, "train": {**RECIPE["train"], "loggers": ["wandb"]}}, out=tmp_path / "run")


def test_a_resumed_run_logs_its_whole_history_to_a_new_mlflow_run(tmp_path, monkeypatch):
    """The killed session's MLflow run stays as it was left; the resumed one holds every epoch."""
    import mlflow

    from tunelab.methods._base import Method

    pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    # Its own store (MLflow caches a store per URI: the relative default would be another test's).
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")

    class Killed(BaseException):
        pass

    class KillAt(Method):
        def epoch_start(self, state):
            if state.epoch == 2:
                raise Killed

    with pytest.raises(Killed):
        fit(RECIPE, out=tmp_path / "run", methods=[KillAt()])
    result = fit(None, resume=tmp_path / "run")
    where = result.info["mlflow"]
    client = mlflow.MlflowClient(tracking_uri=where["tracking_uri"])
    history = client.get_metric_history(where["run_id"], "val.accuracy")
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == [h["val"]["accuracy"] for h in result.history]
    assert client.get_run(where["run_id"]).info.status == "FINISHED"
    runs = client.search_runs([client.get_experiment_by_name("tunelab").experiment_id])
    assert len(runs) == 2  # the killed session's run and the resumed one
