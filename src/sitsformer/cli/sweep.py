"""``sitsformer sweep --config SWEEP.yaml``: hyper-parameter search with Optuna (or W&B)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sweep", help="hyper-parameter sweep (Optuna: TPE, grid or random search, pruning)",
        description="Run or continue a hyper-parameter sweep described by a sweep YAML file "
                    "(method, metric, parameters, base_config ...). Results go to the sweep's "
                    "output folder: trials.csv/md, best_config.yaml, plots/*.png, sweep.db.",
    )
    p.add_argument("--config", required=True,
                   help="sweep YAML file or shipped sweep name (e.g. demo; `sitsformer config "
                        "list`)")
    p.add_argument("--output", "--output-dir", dest="output_dir", default=None,
                   help="output folder (overrides the file's output_dir; an existing one is "
                   "continued: the sweep resumes)")
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes sharing the sweep on this machine (default 1)")
    p.add_argument("--trials", type=int, default=None,
                   help="total trials of the sweep (overrides trials/count)")
    p.add_argument("--storage", default=None,
                   help="database URL overriding storage, e.g. postgresql+psycopg://user:pw@"
                        "host/db (the postgres extra); its password is never printed or saved")
    p.add_argument("--backend", choices=("optuna", "wandb"), default="optuna")
    p.add_argument("--worker", action="store_true",
                   help="only take trials from the shared study (no reports); for machines "
                        "joining a sweep and for the processes --workers starts")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sitsformer.configs import UnknownConfigError, resolve_config
    from sitsformer.tuning import SweepSpecError, load_sweep_spec, run_sweep, run_worker
    from sitsformer.tuning.wandb_backend import WandbUnavailable

    try:
        args.config = str(resolve_config(args.config, kind="sweep"))  # a file or shipped name
        if args.worker:
            spec = load_sweep_spec(args.config, output_dir=args.output_dir)
            if args.trials is not None:
                spec.trials = args.trials
            if args.storage:
                spec.storage = args.storage
            n = run_worker(spec, progress=not args.quiet)
            print(f"worker finished: ran {n} trial(s)", flush=True)
            return 0
        result = run_sweep(args.config, output_dir=args.output_dir, workers=args.workers,
                           trials=args.trials, backend=args.backend, storage=args.storage,
                           progress=not args.quiet, plots=not args.no_plots)
    except (SweepSpecError, UnknownConfigError, WandbUnavailable, ValueError) as err:
        print(f"sitsformer sweep: error: {err}", file=sys.stderr)
        return 2
    print(result.summary(), flush=True)
    return 0
