"""Run a sweep: ``run_sweep(config_or_path, ...)`` and the per-process worker loop.

``run_sweep`` opens (or continues) the study, runs trials in this process or in ``workers``
worker processes sharing the study's storage, then writes the results into ``output_dir``:

* ``trials.csv`` and ``trials.md``: one row per trial (state, status, value, parameters, error);
* ``best_config.yaml``: the best trial's training config, ready for
  ``sitsformer train --config best_config.yaml``;
* ``best.json``: the best trial's number, value and parameters;
* ``plots/*.png``: optimisation history, per-epoch curves, parameter importances;
* ``sweep.yaml``: the resolved sweep (absolute paths, storage URL with any password masked)
  the workers read;
* ``sweep.db``: the SQLite study (unless ``storage`` names another database);
* ``trials/trial_NNNN/``: each trial's training run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from sitsformer._progress import progress_bar

from sitsformer.tuning.objective import InvalidTrialConfig, TrialRunner, run_trial, trial_overrides
from sitsformer.tuning.spec import STORAGE_ENV, SweepSpec, SweepSpecError, load_sweep_spec
from sitsformer.tuning.study import acquire_trial, counted_trials, open_study

BACKENDS = ("optuna", "wandb")


@dataclass
class SweepResult:
    """Summary of a sweep (all workers), with the paths of what was written."""

    study_name: str
    storage: str
    output_dir: Path
    n_trials: int
    counts: dict[str, int]
    best_number: int | None
    best_value: float | None
    best_params: dict[str, Any]
    best_config: Path | None
    table_csv: Path
    table_md: Path
    plots: dict[str, Path] = field(default_factory=dict)
    note: str | None = None
    running: list[str] = field(default_factory=list)  # "trial N (worker HOST:PID)"
    heartbeat: float | None = None

    def summary(self) -> str:
        if self.note:
            return self.note
        c = self.counts
        lines = [f"sweep {self.study_name!r}: {self.n_trials} trial(s): "
                 f"{c.get('complete', 0)} complete, {c.get('pruned', 0)} pruned, "
                 f"{c.get('invalid', 0)} invalid, {c.get('failed', 0)} failed"
                 + "".join(f", {c[k]} {k}" for k in ("stale", "running") if c.get(k))]
        if self.running:
            later = (f"once its heartbeat is {2 * self.heartbeat:g} s old, any worker queues "
                     "it again" if self.heartbeat else "with the heartbeat off, a worker on "
                     "another host that died leaves it RUNNING for good")
            lines.append(f"still RUNNING: {', '.join(self.running)}; another worker may be "
                         "running it. If its worker died, the next sweep run on that host "
                         f"queues it again at once; {later}")
        if self.best_number is not None:
            lines.append(f"best: trial {self.best_number}, value {self.best_value:.6g}, "
                         f"params {self.best_params}")
            lines.append(f"best config: {self.best_config}")
        else:
            lines.append("no trial completed: no best config written")
        lines.append(f"table: {self.table_md}")
        if self.plots:
            lines.append("plots: " + ", ".join(str(p) for p in self.plots.values()))
        lines.append(f"storage: {self.storage}")
        return "\n".join(lines)


def default_runner(spec: SweepSpec) -> TrialRunner:
    """The sweep's ``runner`` (``"package.module:factory"``, called with no argument), else
    the training-engine runner on the sweep's ``base_config``."""
    if spec.runner:
        import importlib

        module, _, attr = spec.runner.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise SweepSpecError(f"{spec.source}: runner: cannot load {spec.runner!r}: {err}") \
                from err
        return factory()
    from sitsformer.tuning.engine import ExperimentRunner

    return ExperimentRunner(spec.base_config)


def run_worker(spec: SweepSpec, runner: TrialRunner | None = None, progress: bool = True,
               study: optuna.Study | None = None) -> int:
    """Take trials from the shared study until the sweep's budget is spent.

    Returns:
        How many trials this worker ran.
    """
    runner = runner if runner is not None else default_runner(spec)
    study = study if study is not None else open_study(spec)
    total = spec.n_trials()
    deadline = time.monotonic() + spec.timeout if spec.timeout else None
    bar = progress_bar(total=total, initial=len(counted_trials(study)), desc="trials",
                       unit="trial", enabled=progress, dynamic_ncols=True)
    ran = 0
    try:
        while deadline is None or time.monotonic() < deadline:
            trial = acquire_trial(study, spec)
            if trial is None:
                break
            state = run_trial(study, trial, spec, runner)
            ran += 1
            bar.n = len(counted_trials(study))
            bar.set_postfix(last=f"#{trial.number} {state.name.lower()}")
            bar.refresh()
    finally:
        bar.close()
    return ran


def write_results(spec: SweepSpec, study: optuna.Study | None = None,
                  runner: TrialRunner | None = None, plots: bool = True) -> SweepResult:
    """Write the table, best config, ``best.json`` and plots of a sweep's study."""
    # imported here: worker processes never need pandas or matplotlib
    from sitsformer.tuning.results import best_trial, save_plots, to_markdown, trials_table

    study = study if study is not None else open_study(spec)
    out = spec.output_dir
    out.mkdir(parents=True, exist_ok=True)
    df = trials_table(study, spec)
    csv_path, md_path = out / "trials.csv", out / "trials.md"
    df.to_csv(csv_path, index=False)
    md_path.write_text(f"# Sweep {spec.study_name}\n\nmetric: {spec.metric_name} "
                       f"({spec.goal})\n\n" + to_markdown(df))
    counts: dict[str, int] = {}
    for s in (df["status"] if len(df) else []):
        counts[s] = counts.get(s, 0) + 1
    best = best_trial(study)
    best_cfg: Path | None = None
    info: dict[str, Any] = {"study_name": spec.study_name, "metric": spec.metric_name,
                            "goal": spec.goal, "counts": counts}
    if best is not None:
        params = dict(best.user_attrs.get("overrides") or trial_overrides(spec, best.params))
        runner = runner if runner is not None else default_runner(spec)
        best_cfg = runner.dump(runner.prepare(params), out / "best_config.yaml")
        info.update(best_number=best.number, best_value=best.value, best_params=best.params,
                    best_overrides=params, best_config=str(best_cfg),
                    best_run_dir=best.user_attrs.get("run_dir"))
    (out / "best.json").write_text(json.dumps(info, indent=2, default=str))
    plot_paths = save_plots(study, spec, out / "plots") if plots else {}
    return SweepResult(
        study_name=spec.study_name, storage=spec.masked_storage(), output_dir=out,
        n_trials=len(df), counts=counts,
        best_number=best.number if best else None, best_value=best.value if best else None,
        best_params=dict(best.params) if best else {}, best_config=best_cfg,
        table_csv=csv_path, table_md=md_path, plots=plot_paths,
        running=[f"trial {t.number} (worker {t.user_attrs.get('worker', '?')})"
                 for t in study.get_trials(deepcopy=False,
                                           states=(optuna.trial.TrialState.RUNNING,))],
        heartbeat=spec.heartbeat_interval,
    )


def _spawn_workers(spec_path: Path, workers: int, progress: bool, storage: str) -> None:
    """Start ``workers`` ``sitsformer sweep --worker`` processes and wait for all of them.

    ``sweep.yaml`` holds the storage URL with its password masked; the workers get the real one
    through their environment (:data:`~sitsformer.tuning.spec.STORAGE_ENV`), never a file or
    their command line."""
    env = dict(os.environ)
    env[STORAGE_ENV] = storage
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    cmd = [sys.executable, "-m", "sitsformer.cli", "sweep", "--config", str(spec_path),
           "--worker", *([] if progress else ["--quiet"])]
    procs = [subprocess.Popen(cmd, env=env) for _ in range(workers)]
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            p.send_signal(2)
        for p in procs:
            p.wait()
        raise
    bad = [c for c in codes if c != 0]
    if bad:
        raise RuntimeError(f"{len(bad)} of {workers} sweep worker(s) exited with codes {bad}; "
                           f"command: {' '.join(cmd)}")


def run_sweep(config_or_path: str | os.PathLike[str] | dict[str, Any] | SweepSpec, *,
              output_dir: str | os.PathLike[str] | None = None, workers: int = 1,
              trials: int | None = None, backend: str = "optuna",
              runner: TrialRunner | None = None, storage: str | None = None,
              progress: bool = True, plots: bool = True) -> SweepResult:
    """Run (or continue) a hyper-parameter sweep and write its results.

    Args:
        config_or_path: a sweep YAML file, a dict in the same format, or a parsed spec.
        output_dir: overrides the sweep's ``output_dir``.
        workers: worker processes sharing the study (1 = run in this process). Each runs
            ``sitsformer sweep --worker`` on the resolved ``output_dir/sweep.yaml``.
        trials: overrides the sweep's ``trials`` (the total over all workers and runs).
        backend: ``"optuna"``, or ``"wandb"`` to run the same file as a W&B sweep.
        runner: how a trial trains (see :mod:`sitsformer.tuning.objective`); default: the
            sweep file's ``runner``, else the training engine on ``base_config``. An object
            given here needs ``workers=1``.
        storage: a database URL overriding the sweep's ``storage``.
        progress: show progress bars.
        plots: write PNG plots.

    Returns:
        A :class:`SweepResult`; its ``summary()`` is what the CLI prints.
    """
    spec = load_sweep_spec(config_or_path, output_dir=output_dir)
    if trials is not None:
        if trials < 1:
            raise SweepSpecError(f"trials must be >= 1, got {trials}")
        spec.trials = trials
    if storage is not None:
        spec.storage = storage
    if workers < 1:
        raise SweepSpecError(f"workers must be >= 1, got {workers}")
    if backend not in BACKENDS:
        raise SweepSpecError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "wandb":
        from sitsformer.tuning.wandb_backend import run_wandb_sweep

        sweep_id = run_wandb_sweep(spec, runner if runner is not None else default_runner(spec))
        out = spec.output_dir
        return SweepResult(spec.study_name, "wandb", out, spec.n_trials(), {}, None, None, {},
                           None, out / "trials.csv", out / "trials.md",
                           note=f"W&B sweep {sweep_id}: ran up to {spec.n_trials()} trial(s) "
                                "here; the table, best run and plots are in the W&B project")
    spec.output_dir.mkdir(parents=True, exist_ok=True)
    custom = runner is not None
    if runner is None:
        runner = default_runner(spec)
    if hasattr(runner, "validate_keys"):
        runner.validate_keys([p.key for p in spec.parameters])  # a typo fails here, once
        try:
            runner.prepare(trial_overrides(spec, {}))  # so does a broken base config
        except InvalidTrialConfig:
            pass  # the base model alone may be invalid; the swept values decide
    study = open_study(spec)
    # the resolved sweep (absolute paths, storage URL): what workers and joining machines read
    spec_path = spec.output_dir / "sweep.yaml"
    spec_path.write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    if workers == 1:
        run_worker(spec, runner, progress=progress, study=study)
    else:
        if custom:
            raise SweepSpecError("a runner object runs in this process only: use workers=1, "
                                 "or name it in the sweep file (runner: 'module:factory') so "
                                 "that worker processes can build their own")
        _spawn_workers(spec_path, workers, progress, spec.resolved_storage())
    return write_results(spec, study, runner, plots=plots)


__all__ = ["BACKENDS", "SweepResult", "run_sweep", "run_worker", "write_results"]
