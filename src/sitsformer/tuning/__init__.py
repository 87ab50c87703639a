"""Hyper-parameter sweeps with Optuna (and, when installed and online, Weights & Biases).

A sweep file in the W&B format (``method``, ``metric``, ``parameters``) plus ``base_config``,
``trials``, ``epochs``, ``pruner`` and ``storage`` runs as an Optuna study: TPE for ``bayes``,
the grid sampler for ``grid``, the random sampler for ``random``, a median pruner fed each
epoch's validation metric, an SQLite file (or a database URL) shared by every worker::

    from sitsformer.tuning import run_sweep
    result = run_sweep("my_sweep.yaml", trials=20)
    print(result.summary())

See ``docs/hyperparameter_search.md``.
"""

from sitsformer.tuning.objective import (
    METRIC_ALIASES,
    InvalidTrialConfig,
    TrialRunner,
    metric_value,
    run_trial,
)
from sitsformer.tuning.spec import (
    PARAM_ALIASES,
    ParamSpec,
    SweepSpec,
    SweepSpecError,
    load_sweep_spec,
    parse_parameter,
    resolve_key,
)
from sitsformer.tuning.study import acquire_trial, make_pruner, make_sampler, open_study, suggest
from sitsformer.tuning.sweep import SweepResult, run_sweep, run_worker, write_results

_LAZY = {"save_plots", "to_markdown", "trials_table"}  # need pandas/matplotlib: loaded on use


def __getattr__(name: str):
    if name in _LAZY:
        from sitsformer.tuning import results

        return getattr(results, name)
    raise AttributeError(f"module 'sitsformer.tuning' has no attribute {name!r}")


__all__ = [
    "METRIC_ALIASES",
    "PARAM_ALIASES",
    "InvalidTrialConfig",
    "ParamSpec",
    "SweepResult",
    "SweepSpec",
    "SweepSpecError",
    "TrialRunner",
    "acquire_trial",
    "load_sweep_spec",
    "make_pruner",
    "make_sampler",
    "metric_value",
    "open_study",
    "parse_parameter",
    "resolve_key",
    "run_sweep",
    "run_trial",
    "run_worker",
    "save_plots",
    "suggest",
    "to_markdown",
    "trials_table",
    "write_results",
]
