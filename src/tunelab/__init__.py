"""tunelab: measured, reproducible deep-learning performance tuning.

    >>> import tunelab
    >>> recipe = tunelab.load_recipe("examples/mnist1d_cnn.yaml", ["train.epochs=3"])  # doctest: +SKIP
    >>> result = tunelab.fit(recipe)  # doctest: +SKIP
    >>> result.val["accuracy"], result.test["accuracy"], result.run_dir  # doctest: +SKIP
    >>> tunelab.load_run(result.run_dir).predict("new_inputs.csv")  # doctest: +SKIP

The names below are imported on first use (PEP 562), so ``import tunelab.schema`` or the CLI's
listing commands do not pay for importing every subpackage.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"  # the one place the version is written; pyproject.toml reads it

_EXPORTS = {
    "DATASETS": "tunelab.data",
    "DataBundle": "tunelab.data",
    "load_data": "tunelab.data",
    "TunelabError": "tunelab.errors",
    "RecipeError": "tunelab.errors",
    "DataError": "tunelab.errors",
    "ModelError": "tunelab.errors",
    "METHODS": "tunelab.methods",
    "Method": "tunelab.methods",
    "TrainState": "tunelab.methods",
    "MODELS": "tunelab.models",
    "build_model": "tunelab.models",
    "Recipe": "tunelab.recipe",
    "load_recipe": "tunelab.recipe",
    "RunResult": "tunelab.runs",
    "fit": "tunelab.train",
    "load_run": "tunelab.predict",
    "Predictor": "tunelab.predict",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tunelab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
