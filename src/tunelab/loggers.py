"""Experiment trackers a run directory also writes to: ``train.loggers: [mlflow]``.

The MLflow logger is a sink of the run directory writer (``tunelab.runs.RunDir``), beside
TensorBoard, and not a ``Method``: it logs what the writer already holds at the moments it holds
it. Parameters at ``start`` (the resolved recipe), each epoch's record, and at ``finish`` the final
metrics, the model and the whole run directory as artifacts. A method's last hook, ``fit_end``,
comes before the final evaluation, ``final.pt`` and ``result.json``: a Method could not log them.

MLflow goes into ``./mlruns`` by default (an SQLite store, ``mlruns/mlflow.db``, with the artifacts
beside it: MLflow 3 refuses its old plain-file store), or wherever ``MLFLOW_TRACKING_URI`` (or
``mlflow.set_tracking_uri``) points. MLflow's usage telemetry is switched off: a run sends nothing
over the network unless the tracking URI is a server.

    >>> from tunelab.loggers import check_loggers
    >>> check_loggers([])  # nothing asked, nothing to import
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.errors import RecipeError
from tunelab.redact import mask_url

if TYPE_CHECKING:
    from tunelab.recipe import Recipe
    from tunelab.runs import RunResult

LOGGERS = ("mlflow",)
DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
EXPERIMENT = "tunelab"
# MLflow caps a parameter's value at 6000 characters; a recipe value is never near it, but a
# pretrained path or a long list could be.
MAX_PARAM = 500


def check_loggers(loggers: Sequence[str]) -> None:
    """Raise RecipeError when a logger's package is missing, before anything trains."""
    if "mlflow" in loggers:
        try:
            _import_mlflow()
        except ImportError:
            raise RecipeError(
                "train.loggers", list(loggers), "mlflow is not installed", "pip install 'tunelab[mlflow]'"
            ) from None


def _import_mlflow() -> Any:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no usage reports to MLflow's servers
    import mlflow

    return mlflow


def flat_params(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The recipe as ``section.key`` parameters; methods by name (``methods.l2.weight``).

    >>> flat_params({"train": {"epochs": 3}, "methods": [{"name": "l2", "weight": 0.1}]})
    {'train.epochs': 3, 'methods.l2.weight': 0.1}
    """
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if k == "methods" and isinstance(v, list):
            for m in v:
                params = {p: x for p, x in m.items() if p != "name"}
                out.update(
                    flat_params(params, f"{key}.{m['name']}.") if params else {f"{key}.{m['name']}": True}
                )
        elif isinstance(v, Mapping) and v:
            out.update(flat_params(v, key + "."))
        else:
            out[key] = v
    return out


def scalar_metrics(record: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of a (nested) record as ``a.b`` metric names; lists are left out."""
    out: dict[str, float] = {}
    for k, v in record.items():
        if isinstance(v, Mapping):
            out.update(scalar_metrics(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[f"{prefix}{k}"] = float(v)
    return out


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, a URI set in this process with ``mlflow.set_tracking_uri``, or ./mlruns."""
    mlflow = _import_mlflow()
    from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

    if is_tracking_uri_set():
        return str(mlflow.get_tracking_uri())
    Path("mlruns").mkdir(exist_ok=True)
    return DEFAULT_TRACKING_URI


class MlflowLogger:
    """One MLflow run per tunelab run, through ``MlflowClient`` (no global "active run" state)."""

    def __init__(self, run_dir: Path) -> None:
        mlflow = _import_mlflow()
        self.run_dir = run_dir
        self.uri = tracking_uri()
        self.client = mlflow.MlflowClient(tracking_uri=self.uri)
        exp = self.client.get_experiment_by_name(EXPERIMENT)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(EXPERIMENT)
        self.run_id: str = self.client.create_run(exp_id, run_name=run_dir.name).info.run_id

    def start(self, recipe: Recipe, env: Mapping[str, Any]) -> None:
        from mlflow.entities import Param, RunTag

        params = [Param(k, str(v)[:MAX_PARAM]) for k, v in flat_params(recipe.to_dict()).items()]
        tags = [RunTag("tunelab.run_dir", str(self.run_dir))]
        tags += [RunTag(f"tunelab.{k}", str(env[k])) for k in ("torch", "tunelab", "device") if k in env]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100], tags=tags if i == 0 else [])

    def epoch(self, record: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        step = int(record["epoch"])
        metrics = {k: v for k, v in scalar_metrics(record).items() if k != "epoch"}
        stamp = _now_ms()
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, stamp, step) for k, v in metrics.items()])

    def ids(self) -> dict[str, str]:
        """What result.json records: where the MLflow run is (a password in the URI masked)."""
        return {"run_id": self.run_id, "tracking_uri": mask_url(self.uri)}

    def finish(self, result: RunResult, example: Any = None) -> None:
        """Final metrics, the model (an MLflow PyTorch model when it exports), the run directory."""
        from mlflow.entities import Metric

        final = scalar_metrics(
            {"final": {"val": result.val, "test": result.test}, "efficiency": result.efficiency}
        )
        stamp = _now_ms()
        self.client.log_batch(
            self.run_id, metrics=[Metric(k, v, stamp, result.epochs) for k, v in final.items()]
        )
        if result.model is not None and example is not None:
            self._log_model(result, example)
        self.client.log_artifacts(self.run_id, str(self.run_dir))
        status = {"completed": "FINISHED", "stopped_early": "FINISHED", "interrupted": "KILLED"}
        self.client.set_terminated(self.run_id, status.get(result.status, "FAILED"))

    def _log_model(self, result: RunResult, example: Any) -> None:
        """The evaluated model in MLflow's PyTorch format under the run's ``model/`` artifacts.

        Saved to a temporary directory and uploaded with the client: ``mlflow.pytorch.log_model``
        would need MLflow's process-wide active run and tracking URI, which a library must not set.
        """
        import tempfile

        _import_mlflow()
        import mlflow.pytorch
        import torch

        try:
            with tempfile.TemporaryDirectory() as tmp:
                mlflow.pytorch.save_model(
                    result.model,
                    f"{tmp}/model",
                    input_example=example.detach().cpu().numpy(),
                    # Named, so MLflow does not infer requirements by importing and inspecting packages.
                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
                )
                self.client.log_artifacts(self.run_id, f"{tmp}/model", "model")
        except Exception as e:  # a model torch.export cannot trace (a quantized copy): weights still logged
            result.info.setdefault("mlflow", {})["model"] = (
                f"not logged as an MLflow model ({type(e).__name__}); final.pt is among the artifacts"
            )


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def log_files(info: Mapping[str, Any], paths: Sequence[Path]) -> None:
    """Add files written after the run (its report) to the run's MLflow artifacts, if it has a run.

    Called in the process that made the run, so the tracking URI is found as the run found it
    (result.json keeps it masked, which may not connect)."""
    where = info.get("mlflow") or {}
    if not where.get("run_id"):
        return
    mlflow = _import_mlflow()
    client = mlflow.MlflowClient(tracking_uri=tracking_uri())
    for path in paths:
        client.log_artifact(where["run_id"], str(path))
