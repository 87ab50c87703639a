"""One trial: sample parameters, build the training config, train, report every epoch.

The sweep does not train by itself: a *trial runner* does. Any object with this surface works
(:class:`~sitsformer.tuning.engine.ExperimentRunner`, which uses the training engine, is the
default)::

    prepare(overrides: dict[str, Any]) -> config
        Build the training config of one trial from dotted-key overrides. Raise
        ``ValueError`` (or :class:`InvalidTrialConfig`) for an invalid combination, such as heads
        that do not divide the width: the trial is then recorded as invalid, not run.
    run(config, report: Callable[[int, dict[str, float]], None], run_dir: Path) -> list[dict]
        Train, calling ``report(epoch, metrics)`` after every epoch's validation, and return the
        per-epoch records. ``report`` raises ``optuna.TrialPruned`` to stop a poor trial.
    dump(config, path: Path) -> Path
        Write a config as a ready-to-run training YAML.

Trial outcomes (``status`` user attribute): ``complete``; ``pruned`` by the pruner;
``invalid`` (the config could not be built: the trial is marked pruned, so samplers steer away,
and the reason is in the ``error`` attribute); ``failed`` (training raised: state FAIL, with
``error``, ``error_type`` and ``traceback``); ``interrupted`` (Ctrl-C: failed and queued again).
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.trial import TrialState

from sitsformer.tuning.spec import SweepSpec
from sitsformer.tuning.study import heartbeat, requeue, suggest, worker_id

# Names the tutorial (and W&B habits) use for a validation metric -> the trainer's names.
METRIC_ALIASES = {
    "val_accuracy": "val_oa",
    "val_acc": "val_oa",
    "accuracy": "val_oa",
    "val_f1": "val_macro_f1",
    "val_kappa": "val_kappa",
}


class InvalidTrialConfig(ValueError):
    """The sampled parameters do not make a valid training config."""


class TrialRunner(Protocol):
    def prepare(self, overrides: dict[str, Any]) -> Any: ...

    def run(self, config: Any, report: Callable[[int, dict[str, float]], None],
            run_dir: Path) -> list[dict[str, Any]]: ...

    def dump(self, config: Any, path: Path) -> Path: ...


def metric_value(record: dict[str, Any], name: str) -> float:
    """The sweep metric from one epoch's record (accepting the tutorial's names).

    Raises:
        KeyError: naming the metric and listing what the record has.
    """
    for key in (name, METRIC_ALIASES.get(name), f"val_{name}"):
        if key and key in record:
            return float(record[key])
    raise KeyError(f"sweep metric {name!r} is not among the epoch's metrics {sorted(record)}; "
                   f"use one of them in the sweep file's metric.name")


def trial_overrides(spec: SweepSpec, params: dict[str, Any]) -> dict[str, Any]:
    """Fixed overrides, then the sweep's epochs, then the sampled parameters."""
    out = dict(spec.overrides)
    if spec.epochs is not None:
        out["train.epochs"] = spec.epochs
    out.update(params)
    return out


def _short(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}"
    return text if len(text) < 2000 else text[:2000] + " ..."


def run_trial(study: optuna.Study, trial: optuna.Trial, spec: SweepSpec,
              runner: TrialRunner) -> TrialState:
    """Run one acquired trial to its end and tell the study how it went."""
    t0 = time.perf_counter()
    trial.set_user_attr("worker", worker_id())
    run_dir = spec.output_dir / "trials" / f"trial_{trial.number:04d}"
    trial.set_user_attr("run_dir", str(run_dir))
    params: dict[str, Any] = {}
    goal_max = spec.goal == "maximize"
    values: list[float] = []

    def finish(state: TrialState, status: str, value: float | None = None) -> TrialState:
        trial.set_user_attr("status", status)
        trial.set_user_attr("duration_s", round(time.perf_counter() - t0, 3))
        trial.set_user_attr("epochs_run", len(values))
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        return state

    outcome: tuple[TrialState, str, float | None]
    try:
        params = suggest(trial, spec.parameters)
        overrides = trial_overrides(spec, params)
        trial.set_user_attr("overrides", dict(overrides))
        try:
            config = runner.prepare(overrides)
        except (ValueError, TypeError, KeyError) as err:
            trial.set_user_attr("error", _short(err))
            trial.set_user_attr("error_type", type(err).__name__)
            return finish(TrialState.PRUNED, "invalid")

        def report(epoch: int, record: dict[str, Any]) -> None:
            value = metric_value(record, spec.metric_name)
            if not math.isfinite(value):
                raise FloatingPointError(f"metric {spec.metric_name!r} is {value} at epoch {epoch}")
            values.append(value)
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"pruned at epoch {epoch} ({spec.metric_name}={value:.4g})")

        with heartbeat(study, trial):
            runner.run(config, report, run_dir)
        if not values:
            raise RuntimeError(f"training reported no epoch with metric {spec.metric_name!r}")
        best = max(values) if goal_max else min(values)
        trial.set_user_attr("best_epoch", 1 + values.index(best))
        outcome = (TrialState.COMPLETE, "complete", best)
    except optuna.TrialPruned:
        outcome = (TrialState.PRUNED, "pruned", None)
    except KeyboardInterrupt:
        trial.set_user_attr("status", "interrupted")
        requeue(study, trial, params, "interrupted (KeyboardInterrupt); queued again")
        raise
    except Exception as err:  # noqa: BLE001 - recorded on the trial; the sweep goes on
        trial.set_user_attr("error", _short(err))
        trial.set_user_attr("error_type", type(err).__name__)
        trial.set_user_attr("traceback", "".join(traceback.format_exc(limit=-6))[-4000:])
        outcome = (TrialState.FAIL, "failed", None)
    return finish(*outcome)
