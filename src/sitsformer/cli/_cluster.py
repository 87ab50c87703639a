"""Options shared by the commands that process rasters block by block with dask."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any


def add_where_options(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """``--workers``, ``--scheduler`` (the group is returned for more options)."""
    g = p.add_argument_group("where blocks run")
    g.add_argument("--workers", type=int, default=0, metavar="N",
                   help="start a local dask cluster of N worker processes (threads per worker "
                   "= cores // N); default: no cluster, blocks run on threads in this process")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="use an existing dask.distributed scheduler, e.g. tcp://10.0.0.5:8786 "
                   "(its workers must see the input and output paths)")
    return g


def add_cluster_options(p: argparse.ArgumentParser, block: int = 512) -> None:
    """``--workers``, ``--scheduler``, ``--block``, ``--overwrite``, ``--quiet``."""
    g = add_where_options(p)
    g.add_argument("--block", type=int, default=block,
                   help=f"block side in pixels ({block}); memory grows with it, results do not "
                   "change")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")


@contextlib.contextmanager
def runner_from_args(args: argparse.Namespace) -> Iterator[Any]:
    from sitsformer.parallel.cluster import dask_cluster

    with dask_cluster(workers=args.workers or None, scheduler=args.scheduler) as runner:
        yield runner


def say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text)
