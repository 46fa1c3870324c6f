"""The samplers and pruners a search may use, as registries: ``--sampler NAME``, ``--pruner NAME``.

Each entry is a factory with a one-line description; the command line reads its choices from the
registries' names, and an unknown name gets "did you mean". Optuna is imported when an entry is
built, not when this module is: ``tunelab --help`` reads the names without paying for it (and
the factories return ``Any``: the registry reads their signatures, where Optuna's types are unknown).

    >>> SAMPLERS.names(), PRUNERS.names()
    (['cmaes', 'gp', 'nsga2', 'random', 'tpe'], ['asha', 'hyperband', 'median', 'none'])
    >>> type(make_sampler("tpe", seed=0)).__name__, type(make_pruner("asha", epochs=10)).__name__
    ('TPESampler', 'SuccessiveHalvingPruner')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunelab.errors import TunelabError
from tunelab.registry import Registry

if TYPE_CHECKING:
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler

SAMPLERS = Registry("sampler")
PRUNERS = Registry("pruner")


# --- samplers: factory(seed, n_objectives) -----------------------------------------------------


@SAMPLERS.register(
    "tpe", "Tree-structured Parzen estimator, multivariate and grouped (Optuna's default).", skip=2
)
def _tpe(seed: int | None, n_objectives: int) -> Any:
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # multivariate + group: one joint density per set of parameters that occur together
        # (an optimizer and its own momentum), which Optuna finds better than independent
        # densities on conditional spaces. constant_liar: running trials count as bad
        # guesses, so parallel workers spread out.
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)


@SAMPLERS.register("random", "Independent uniform draws: the baseline every sampler should beat.", skip=2)
def _random(seed: int | None, n_objectives: int) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("cmaes", "CMA-ES on the continuous dimensions; one objective only.", skip=2)
def _cmaes(seed: int | None, n_objectives: int) -> Any:
    import optuna

    if n_objectives > 1:
        raise TunelabError("--sampler cmaes optimizes one objective; use tpe, nsga2 or gp for several")
    try:
        import cmaes  # noqa: F401
    except ImportError:
        raise TunelabError("--sampler cmaes needs the cmaes package: pip install cmaes") from None
    # Categorical and conditional dimensions fall back to random sampling, which is expected.
    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


@SAMPLERS.register("gp", "Gaussian-process Bayesian optimization: few, expensive trials.", skip=2)
def _gp(seed: int | None, n_objectives: int) -> Any:
    import optuna

    return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)


@SAMPLERS.register("nsga2", "NSGA-II genetic algorithm: Pareto fronts of several objectives.", skip=2)
def _nsga2(seed: int | None, n_objectives: int) -> Any:
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed)


# --- pruners: factory(epochs); a step is an epoch (1 .. epochs) ----------------------------------


@PRUNERS.register("none", "No pruning: every trial trains all its epochs.", skip=1)
def _none(epochs: int) -> Any:
    import optuna

    return optuna.pruners.NopPruner()


@PRUNERS.register("median", "Stop a trial below the median of earlier trials at the same epoch.", skip=1)
def _median(epochs: int) -> Any:
    import optuna

    # Optuna's defaults: the first 5 trials run in full to give the median something to stand on.
    return optuna.pruners.MedianPruner(n_startup_trials=5)


@PRUNERS.register("asha", "Asynchronous successive halving: rungs at 1, 3, 9, ... epochs.", skip=1)
def _asha(epochs: int) -> Any:
    import optuna

    # Rungs at 1, 3, 9, ... epochs; each keeps the best third (reduction factor 3).
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)


@PRUNERS.register("hyperband", "Hyperband: successive halving over several budgets up to all epochs.", skip=1)
def _hyperband(epochs: int) -> Any:
    import optuna

    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(1, epochs), reduction_factor=3)


def make_sampler(name: str, seed: int | None, n_objectives: int = 1) -> BaseSampler:
    """The Optuna sampler for ``--sampler NAME``, seeded (None: fresh entropy)."""
    return SAMPLERS.get(name, "--sampler").build(seed, n_objectives)


def make_pruner(name: str, epochs: int) -> BasePruner:
    """The Optuna pruner for ``--pruner NAME``; its steps are epochs (1 .. ``epochs``)."""
    return PRUNERS.get(name, "--pruner").build(epochs)


__all__ = ["PRUNERS", "SAMPLERS", "make_pruner", "make_sampler"]
