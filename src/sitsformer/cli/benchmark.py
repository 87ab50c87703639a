"""``sitsformer benchmark``: deep models beside the classic baselines on identical splits.

Without ``--data`` it runs every labelled real set of the shared data folder
(``SITSFORMER_SHARED_DATA`` or ``shared/data`` beside the clone); with ``--data SOURCE`` (and
``-o`` reader options, ``--split``) it runs on your own data, so you see the comparison before
trusting a map. Small sets are cross-validated (``--folds`` x ``--repeats``, grouped when the
source has group ids), larger ones use one split and ``--seeds`` training seeds (see
``sitsformer.training.benchmark``). Writes ``benchmark.json``, ``benchmark.md``,
``benchmark.csv`` and ``benchmark.png`` into ``--output``; each finished (set, method, run) row
is appended to ``benchmark_rows.jsonl`` at once, so ``--resume`` continues an interrupted
benchmark, and Ctrl-C or SIGTERM writes the table of the rows already finished.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sitsformer.cli._common import (
    UsageError,
    add_overwrite,
    add_quiet,
    add_reader_options,
    reader_options,
)

INTERRUPTED = 130  # the exit status of a benchmark stopped by Ctrl-C or SIGTERM


def run(args: argparse.Namespace) -> int:
    from sitsformer.configs import UnknownConfigError
    from sitsformer.data.errors import DataError
    from sitsformer.parallel.locks import OutputLockedError, output_lock
    from sitsformer.training.benchmark import (
        DEFAULT_SETS,
        ROWS_FILE,
        BenchmarkInterrupted,
        BenchmarkSet,
        Protocol,
        parse_models,
        run_benchmark,
    )
    from sitsformer.training.config import ConfigError

    out = Path(args.output)
    if args.resume and args.overwrite:
        print("error: --resume continues the benchmark in --output, --overwrite replaces it: "
              "pass one of them", file=sys.stderr)
        return 2
    for name in ("benchmark.json", ROWS_FILE):
        if (out / name).exists() and not (args.overwrite or args.resume):
            print(f"error: output exists: {out / name} (pass --resume to continue it, or "
                  f"--overwrite to replace it)", file=sys.stderr)
            return 1
    try:
        if args.data:
            sets = [BenchmarkSet(Path(args.data).stem or "data", str(Path(args.data).resolve()),
                                 args.split or "auto", reader_options(args.option))]
        else:
            names = args.sets.split(",") if args.sets else list(DEFAULT_SETS)
            unknown = [n for n in names if n not in DEFAULT_SETS]
            if unknown:
                raise UsageError(f"--sets: unknown set(s) {unknown}; known: {list(DEFAULT_SETS)}")
            sets = [DEFAULT_SETS[n] for n in names]
            if args.split:
                sets = [BenchmarkSet(s.name, s.source, args.split, s.options, s.overrides)
                        for s in sets]
        protocol = Protocol(args.protocol, args.folds, args.repeats, args.cv_max_samples,
                            tuple(range(args.seeds)))
        with output_lock(out, what="benchmark folder"):
            res = run_benchmark(sets, models=parse_models(args.models),
                                baselines=args.baselines, protocol=protocol,
                                config=args.config, overrides=args.overrides, output=out,
                                trees=args.trees, rounds=args.rounds, progress=not args.quiet,
                                resume=args.resume, units=args.units)
    except BenchmarkInterrupted as stop:
        files = stop.result.get("files", {})
        if files:
            print(Path(files["markdown"]).read_text())
        print(f"{stop}: the table above holds the rows finished before; continue with "
              f"--resume (same command otherwise)", file=sys.stderr)
        return INTERRUPTED
    except (UsageError, ConfigError, UnknownConfigError, DataError, ValueError,
            FileNotFoundError, ImportError, OutputLockedError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # a full disk, a read-only folder: one line, what is written stays
        print(f"error: {err.strerror or err}; the rows and checkpoints already written are "
              f"intact (continue with --resume once there is room)", file=sys.stderr)
        return 1
    print(Path(res["files"]["markdown"]).read_text())
    for kind, path in res["files"].items():
        print(f"{kind}: {path}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "benchmark", help="deep models vs a random forest and LightGBM, on identical splits",
        description="Train deep models (the default recipe and its variants) and the classic "
        "baselines (random forest, LightGBM) on identical splits: repeated stratified k-fold "
        "(grouped when the source has group ids) on small sets, one split and several seeds on "
        "large ones; on the real shared sets or on --data SOURCE. Prints and writes mean +- std "
        "OA, kappa and macro-F1, the paired OA difference to each baseline with a 95 %% "
        "interval and verdict, and McNemar's p.")
    p.add_argument("--data", help="your own labelled source (anything open_source reads)")
    add_reader_options(p)
    p.add_argument("--split", help="data.split for every set (default: each set's own; for "
                   "--data: group when the source has group ids, else stratified)")
    p.add_argument("--sets", help="comma-separated names of the shared sets (default: all)")
    p.add_argument("--models", help="comma-separated deep models: a known NAME (sitsformer: "
                   "the recipe as shipped; tempcnn, ltae: the baselines by the same recipe; "
                   "default all three) or NAME:KEY=VALUE[:KEY=VALUE...] (recipe overrides)")
    p.add_argument("--baselines", help="comma-separated baselines among random_forest, "
                   "lightgbm (default both; '' for none)")
    p.add_argument("--protocol", choices=("auto", "cv", "fixed"), default="auto",
                   help="cv: repeated k-fold; fixed: one split, several seeds; auto (default): "
                   "cv on sets of at most --cv-max-samples samples whose split is not given")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--repeats", type=int, default=2,
                   help="cross-validation repeats (default 2)")
    p.add_argument("--cv-max-samples", type=int, default=3000,
                   help="the largest set the auto protocol cross-validates (default 3000)")
    p.add_argument("--seeds", type=int, default=3,
                   help="fixed protocol: training seeds 0..N-1 (default 3)")
    p.add_argument("--config", "-c", help="the recipe: a training config file or shipped name "
                   "(default victoria_pixel; its data source and split are replaced)")
    p.add_argument("--trees", type=int, default=500, help="random-forest trees (default 500)")
    p.add_argument("--rounds", type=int, default=300,
                   help="LightGBM boosting rounds (default 300)")
    p.add_argument("--output", default="benchmark", help="output folder (default benchmark/)")
    add_overwrite(p)
    p.add_argument("--units", help="run only these runs: comma-separated shell patterns of "
                   "their units (r<repeat>f<fold> of cv, s<seed> of fixed), e.g. s1 or 'r0f*'; "
                   "parts run apart are joined by sitsformer.training.benchmark."
                   "merge_benchmarks")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted benchmark in --output: keep the rows done, "
                   "continue a training run from its last.pt, run the rest")
    add_quiet(p)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="recipe overrides for every set and model, e.g. train.epochs=5")
    p.set_defaults(func=run)
