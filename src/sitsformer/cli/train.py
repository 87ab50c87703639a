"""``sitsformer train --config FILE.yaml [section.key=value ...]``: train from a YAML config.

Launch with ``torchrun --nproc_per_node=N -m sitsformer.cli train ...`` for several processes
(DDP; ``data.batch_size`` is the global batch). ``--resume RUN/last.pt`` continues a run: the
model and data settings must be those of the checkpoint, a larger ``train.epochs`` extends
the schedule, other changes need ``--allow-changes`` (recorded in ``resume_changes.json``).
Overrides may come before or after any option.
Exit codes: 0 done, 1 error in the config, data, checkpoint or a file that cannot be written
(full disk, read-only folder) or a non-finite loss, 130/143 stopped by SIGINT/SIGTERM after
saving a resumable checkpoint.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable

EXIT_SIGNAL = {int(signal.SIGINT): 130, int(signal.SIGTERM): 143}


def print_summary(out: dict[str, Any]) -> None:
    print(f"run folder:      {out['run_dir']}")
    print(f"status:          {out['status']} after {out['epochs']} epoch(s), "
          f"{out['global_step']} update(s)")
    if out.get("best_epoch") is not None:
        print(f"best checkpoint: {out['best_checkpoint']} (epoch {out['best_epoch']}, "
              f"{out['metric_name']}={out['best_metric']:.4f})")
    extra = "metrics.jsonl" + (", tensorboard/" if (Path(out["run_dir"]) / "tensorboard").is_dir()
                               else "")
    print(f"metrics:         {out['metrics_file']} (and {extra})")
    if Path(out["plots"]).is_file():  # not with logging.plots=false
        print(f"plots:           {out['plots']}")
    if "test" in out:
        t = out["test"]
        shown = " ".join(f"{k[5:]}={t[k]:.4f}" for k in ("test_oa", "test_kappa",
                                                         "test_macro_f1", "test_loss") if k in t)
        print(f"test split:      {shown}  ({out['test_metrics_file']})")


def add_run_arguments(p: argparse.ArgumentParser, example: str) -> None:
    """The arguments ``train``, ``pretrain`` and ``finetune`` share."""
    p.add_argument("--config", "-c", help="YAML experiment file or shipped config name "
                   "(`sitsformer config list`; defaults in code otherwise)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help=f"dotted overrides, e.g. {example}")
    p.add_argument("--resume", help="checkpoint to continue from (e.g. RUN/last.pt); the model "
                   "and data settings must be the checkpoint's, train.epochs may grow")
    p.add_argument("--allow-changes", action="store_true",
                   help="with --resume: accept changed optim/schedule/loss/train settings "
                   "(recorded in the run folder's resume_changes.json)")
    p.add_argument("--output", help="run folder (default: logging.run_dir/logging.name, or a "
                   "new time-stamped folder)")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in a run folder that already holds an earlier run's "
                   "files (checkpoints, config.yaml, metrics.csv ...), replacing them")
    p.add_argument("--quiet", action="store_true", help="no progress bars (logging.progress)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config, exit")
    p.add_argument("--json", action="store_true", help="also print a JSON summary line")
    p.set_defaults(intermixed_overrides=True)  # KEY=VALUE after options: see cli.main


def _run_dir(args: argparse.Namespace, cfg: Any) -> Path | None:
    """The run folder the command will write, when it is known before the run starts."""
    if getattr(args, "output", None):
        return Path(args.output)
    if cfg.logging.name:
        return Path(cfg.logging.run_dir) / cfg.logging.name
    return None


# What a run writes into its folder (besides temporaries and the lock): a folder holding any of
# these is another run's, and is not written over without --resume or --overwrite.
RUN_FILES = ("config.yaml", "data_meta.json", "metrics.csv", "metrics.jsonl", "curves.png",
             "test_metrics.json", "resume_changes.json", "memory_plan.json")


def _run_files(run_dir: Path) -> list[str]:
    """The files of an earlier run in ``run_dir`` (checkpoints and :data:`RUN_FILES`)."""
    if not run_dir.is_dir():
        return []
    return sorted(str(p) for p in run_dir.iterdir()
                  if p.suffix == ".pt" or p.name in RUN_FILES)


def run_config_command(args: argparse.Namespace, load: Callable[[], Any],
                       execute: Callable[[Any, Path | None], dict[str, Any]],
                       summary: Callable[[dict[str, Any]], None], resume_hint: str) -> int:
    """What ``train``, ``pretrain`` and ``finetune`` share: resolve ``--config`` (a file or a
    shipped name, see :func:`sitsformer.configs.resolve_config`), load the config (errors name
    the key), ``--print-config``, refuse a run folder that already holds an earlier run's
    files (:data:`RUN_FILES`, checkpoints; unless ``--resume`` or ``--overwrite``), run, print
    the summary (rank 0), and turn errors and signals into exit codes. ``execute(cfg,
    run_dir)`` runs; ``resume_hint`` is the command line to continue, with ``{run_dir}`` and
    ``{last}`` filled in."""
    from sitsformer.configs import UnknownConfigError, resolve_config
    from sitsformer.parallel.locks import OutputLockedError, check_unlocked
    from sitsformer.training.config import ConfigError
    from sitsformer.training.distributed import cleanup_distributed, is_main_process
    from sitsformer.training.trainer import TrainingError

    try:
        if getattr(args, "config", None):
            args.config = str(resolve_config(args.config))  # a file, or a shipped name
        cfg = load()
    except (ConfigError, UnknownConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if getattr(args, "quiet", False):
        cfg.logging.progress = False
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        return 0
    run_dir = _run_dir(args, cfg)
    # rank 0 only (torchrun's RANK: the process group does not exist yet): a folder another
    # process is writing is reported as in use, not as holding an earlier run's files
    if run_dir is not None and os.environ.get("RANK", "0") == "0":
        try:
            check_unlocked(run_dir, what="run folder")
        except OutputLockedError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    if run_dir is not None and not args.resume and not getattr(args, "overwrite", False):
        existing = _run_files(run_dir)
        if existing:
            again = (f"continue it with --resume {run_dir / 'last.pt'}, "
                     if (run_dir / "last.pt").exists() else "")
            print(f"error: output exists: the run folder {run_dir} already holds "
                  f"{', '.join(existing)}; {again}choose another --output, or pass "
                  "--overwrite to start afresh (replacing them)", file=sys.stderr)
            return 1
    if getattr(args, "allow_changes", False) and not args.resume:
        print("error: --allow-changes only applies with --resume", file=sys.stderr)
        return 1
    try:
        out = execute(cfg, run_dir)
    except (TrainingError, ValueError, FileNotFoundError, OutputLockedError) as err:
        print(f"error: {err}", file=sys.stderr)
        cleanup_distributed()
        return 1
    except OSError as err:  # full disk, read-only or unwritable run folder
        what = (f"cannot write {err.filename}: {err.strerror}" if err.filename
                else (err.strerror or str(err)))
        print(f"error: {what}; the checkpoints already written are intact", file=sys.stderr)
        cleanup_distributed()
        return 1
    if is_main_process():
        summary(out)
        if args.json:
            print(json.dumps({k: v for k, v in out.items() if k not in ("history", "trainer")}))
    # Drop the trainer (its DDP model holds Gloo/NCCL work) before the process group goes:
    # torn down the other way round, at interpreter exit, a rank was seen to abort once in CI
    # ("terminate called without an active exception", tests/training/test_distributed.py)
    trainer = out.pop("trainer", None)
    sig = getattr(trainer, "_stop_signal", None)
    del trainer
    gc.collect()
    cleanup_distributed()
    if out["status"] == "interrupted":
        if is_main_process():
            if "member" in out:  # an ensemble: its interrupted member run is what resumes
                member = out["members"][-1]["run_dir"]
                print(f"stopped by a signal in member {out['member']} of the ensemble; resume "
                      "that member with: " + resume_hint.format(
                          run_dir=member, last=out["last_checkpoint"]))
            else:
                print("stopped by a signal; resume with: "
                      + resume_hint.format(run_dir=out["run_dir"], last=out["last_checkpoint"]))
        return EXIT_SIGNAL.get(int(sig or signal.SIGINT), 130)
    return 0


def run(args: argparse.Namespace) -> int:
    from sitsformer.training.config import load_config
    from sitsformer.training.experiment import run_experiment

    return run_config_command(
        args, lambda: load_config(args.config, args.overrides),
        lambda cfg, run_dir: run_experiment(cfg, resume=args.resume, run_dir=run_dir,
                                  allow_changes=args.allow_changes),
        print_summary, "sitsformer train --config {run_dir}/config.yaml --resume {last}")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train", help="train a model from a YAML experiment config",
        description="Train a SITS-Former model. The config has sections model, data, optim, "
        "schedule, loss, train, logging; any key can be overridden as section.key=value.")
    add_run_arguments(p, "optim.lr=3e-4 train.epochs=50")
    p.set_defaults(func=run)
