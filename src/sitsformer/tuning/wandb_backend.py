"""Run a sweep file as a Weights & Biases sweep (``sitsformer sweep --backend wandb``).

W&B reads the same ``method`` / ``metric`` / ``parameters`` keys; its server picks the
parameters and ``wandb.agent`` calls our trial function ``count`` times in this process. Every
trial trains with the same runner as the Optuna backend and logs each epoch's metrics with
``wandb.log``; W&B's ``early_terminate`` (hyperband) does the pruning. Needs ``pip install
wandb``, a login (``wandb login``) and network access; it refuses to start in CI or with
``WANDB_MODE=offline``/``disabled`` (a W&B sweep needs the server), saying why.
"""

from __future__ import annotations

import os
from typing import Any

from sitsformer.tuning.objective import TrialRunner, metric_value, trial_overrides
from sitsformer.tuning.spec import SweepSpec, resolve_key

_OURS = ("base_config", "trials", "epochs", "seed", "pruner", "storage", "study_name",
         "output_dir", "workers", "timeout", "overrides", "heartbeat_interval", "count")


class WandbUnavailable(RuntimeError):
    """W&B is not installed, not online, or not allowed here."""


def wandb_sweep_config(spec: SweepSpec) -> dict[str, Any]:
    """The sweep file as W&B expects it (our own keys removed, the metric name as logged)."""
    raw = {k: v for k, v in spec.raw.items() if k not in _OURS}
    raw["method"] = spec.method
    raw["metric"] = {"name": spec.metric_name, "goal": spec.goal}
    if "early_terminate" not in raw and spec.pruner.get("type") == "hyperband":
        raw["early_terminate"] = {"type": "hyperband",
                                  "min_iter": int(spec.pruner.get("min_resource", 1))}
    raw.setdefault("name", spec.study_name)
    return raw


def check_wandb_available() -> Any:
    """Import wandb and check it can reach its server; returns the module.

    Raises:
        WandbUnavailable: saying what is missing.
    """
    if os.environ.get("CI"):
        raise WandbUnavailable("--backend wandb is disabled in CI (CI is set); use the optuna "
                               "backend")
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "disabled", "dryrun"):
        raise WandbUnavailable(f"WANDB_MODE={mode}: a W&B sweep needs the W&B server; unset it "
                               "or use --backend optuna")
    try:
        import wandb
    except ImportError as err:
        raise WandbUnavailable("--backend wandb needs the wandb package: pip install "
                               "'sitsformer[wandb]' (then wandb login)") from err
    return wandb


def run_wandb_sweep(spec: SweepSpec, runner: TrialRunner, project: str | None = None,
                    entity: str | None = None, sweep_id: str | None = None) -> str:
    """Create (or join, with ``sweep_id``) a W&B sweep and run ``spec.n_trials()`` trials here.

    Returns:
        The W&B sweep id (give it to ``wandb agent`` on other machines to add workers).
    """
    wandb = check_wandb_available()
    project = project or spec.raw.get("project") or "sitsformer-sweeps"
    entity = entity or spec.raw.get("entity")
    if sweep_id is None:
        sweep_id = wandb.sweep(wandb_sweep_config(spec), project=project, entity=entity)
    counter = {"n": 0}

    def train_one() -> None:  # pragma: no cover - needs a W&B server
        run = wandb.init()
        try:
            params = {resolve_key(k): v for k, v in dict(run.config).items()}
            config = runner.prepare(trial_overrides(spec, params))
            values: list[float] = []

            def report(epoch: int, record: dict[str, Any]) -> None:
                values.append(metric_value(record, spec.metric_name))
                wandb.log({**{k: v for k, v in record.items() if isinstance(v, (int, float))},
                           spec.metric_name: values[-1]}, step=epoch)

            counter["n"] += 1
            run_dir = spec.output_dir / "wandb_trials" / run.id
            runner.run(config, report, run_dir)
            if values:
                best = max(values) if spec.goal == "maximize" else min(values)
                run.summary[f"best_{spec.metric_name}"] = best
        except ValueError as err:  # invalid combination: recorded on the run, sweep goes on
            run.summary["error"] = f"{type(err).__name__}: {err}"
            run.finish(exit_code=1)
            return
        run.finish()

    wandb.agent(sweep_id, function=train_one, count=spec.n_trials(), project=project,
                entity=entity)
    return sweep_id
