"""Where block computations run: in this process, on a local cluster, or on a scheduler.

Every raster step of :mod:`sitsformer.maps` (and map inference) builds a dask graph of
independent blocks and runs it through one :class:`BlockRunner`, which
:func:`dask_cluster` opens:

- ``dask_cluster()`` (the default): no cluster; blocks run on dask's threaded scheduler in this
  process (``workers=0`` means the same).
- ``dask_cluster(workers=N)``: a ``dask.distributed.LocalCluster`` of ``N`` worker processes on
  127.0.0.1, each with ``cores // N`` threads (at least one), so the machine is not
  oversubscribed; closed again on exit.
- ``dask_cluster(scheduler="tcp://host:8786")``: an existing ``dask.distributed`` scheduler;
  its workers must see the input and output paths (a shared file system).

Results come back to this process block by block (``BlockRunner.iter_blocks``), where they are
written with rasterio; at most ``max_in_flight`` blocks are computed but not yet written, so
memory stays bounded by a few blocks whatever the raster size. Each block is computed by the
same function on the same overlapping input wherever it runs, so results do not depend on the
cluster.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["BlockRunner", "dask_cluster", "threads_per_worker", "tune_worker_malloc",
           "worker_index"]


# dask's nanny starts every worker with MALLOC_TRIM_THRESHOLD_=65536. Setting any glibc trim
# or mmap threshold switches off malloc's dynamic mmap threshold, so every large tensor a
# forward pass allocates becomes a fresh mmap whose pages fault in again: measured here, the
# bare bf16 forward of the original model ran at 0.57-0.63 of its speed with the variable set.
# Local clusters start their workers without it; in any other process that has it (workers
# started by hand with `dask worker`) tune_worker_malloc sets thresholds that measured as fast
# as glibc's defaults (trim 128 MiB, mmap 32 MiB) before the first block runs.
LOCAL_WORKER_ENVIRON = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers
TUNED_TRIM_BYTES, TUNED_MMAP_BYTES = 128 << 20, 32 << 20
_TUNED: dict[int, bool] = {}


def tune_worker_malloc() -> bool:
    """When ``MALLOC_TRIM_THRESHOLD_`` is set (module comment), raise glibc's trim and mmap
    thresholds with ``mallopt``, once per process. Returns whether this process runs with the
    tuned thresholds (False: the variable is not set, so glibc's defaults hold, or not glibc)."""
    pid = os.getpid()
    if pid not in _TUNED:
        _TUNED[pid] = _mallopt_thresholds()
    return _TUNED[pid]


def _mallopt_thresholds() -> bool:
    if os.environ.get("MALLOC_TRIM_THRESHOLD_") is None or not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return (mallopt(_M_TRIM_THRESHOLD, TUNED_TRIM_BYTES) == 1
            and mallopt(_M_MMAP_THRESHOLD, TUNED_MMAP_BYTES) == 1)


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Threads for each of ``workers`` processes so that ``cores`` are not oversubscribed."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def worker_index() -> int:
    """This process's position among the cluster's workers (0 outside a cluster).

    Workers of a local cluster are named ``0 .. N-1``; workers started by hand with
    ``dask worker ... --name 3`` get that number; any other name counts as 0. Map inference
    uses it to give each worker of a multi-GPU machine its own GPU.
    """
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return 0
    try:
        return int(name)
    except (TypeError, ValueError):
        return 0


class BlockRunner:
    """Computes lists of dask tasks (delayed objects or arrays) where :func:`dask_cluster`
    said, yielding each result as it is ready.

    Attributes:
        client: the ``distributed.Client`` or ``None`` (in-process threaded scheduler).
        description: ``"in-process"``, ``"local cluster (N workers x T threads)"`` or the
            scheduler address.
    """

    def __init__(self, client: Any = None, description: str = "in-process",
                 max_in_flight: int | None = None) -> None:
        self.client = client
        self.description = description
        if max_in_flight is None:
            n = (len(client.scheduler_info().get("workers", {})) or 1) if client else 1
            max_in_flight = max(4, 2 * n * (os.cpu_count() or 1))
        self.max_in_flight = int(max_in_flight)
        self._seen: set[str] = set()
        self.lost_workers: set[str] = set()  # workers seen during a run that left or died

    def _watch_workers(self) -> None:
        """Note the scheduler's workers now; those seen before and gone are lost (a killed
        worker's blocks are computed again elsewhere, so the result is complete)."""
        try:
            now = set(self.client.scheduler_info().get("workers", {}))
        except Exception:  # noqa: BLE001 - a failed look must not fail the map
            return
        self._seen |= now
        self.lost_workers = self._seen - now

    @property
    def num_workers(self) -> int:
        """Worker processes (1 in-process)."""
        if self.client is None:
            return 1
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def share(self, obj: Any) -> Any:
        """``obj`` as a task argument sent once to every worker (a model, a source), not once
        per task: a broadcast future on a cluster, ``obj`` itself in-process."""
        if self.client is None:
            return obj
        return self.client.scatter(obj, broadcast=True, hash=False)

    def iter_blocks(self, tasks: Sequence[Any], *, progress: bool = True,
                    desc: str = "blocks") -> Iterator[tuple[int, Any]]:
        """Yield ``(index, result)`` for every task, in completion order, with a tqdm bar.

        ``tasks`` are dask collections (``dask.delayed`` objects or small dask arrays). At
        most ``max_in_flight`` are submitted and not yet consumed.
        """
        from sitsformer._progress import progress_bar

        bar = progress_bar(total=len(tasks), desc=desc, unit="block", enabled=progress)
        try:
            if self.client is None:
                yield from self._iter_local(tasks, bar)
            else:
                yield from self._iter_distributed(tasks, bar)
        finally:
            bar.close()

    def _iter_local(self, tasks: Sequence[Any], bar: Any) -> Iterator[tuple[int, Any]]:
        import dask

        step = self.max_in_flight
        for start in range(0, len(tasks), step):
            batch = tasks[start:start + step]
            with dask.config.set(scheduler="threads"):
                results = dask.compute(*batch)
            for i, res in enumerate(results):
                bar.update(1)
                yield start + i, res

    def _iter_distributed(self, tasks: Sequence[Any], bar: Any) -> Iterator[tuple[int, Any]]:
        from distributed import as_completed

        self._watch_workers()
        looked = time.monotonic()
        pending = deque(range(len(tasks)))
        index_of: dict[str, int] = {}
        done = as_completed()
        for _ in range(min(self.max_in_flight, len(pending))):
            i = pending.popleft()
            fut = self.client.compute(tasks[i])
            index_of[fut.key] = i
            done.add(fut)
        for fut in done:
            i = index_of.pop(fut.key)
            res = fut.result()
            fut.release()
            if pending:
                j = pending.popleft()
                nxt = self.client.compute(tasks[j])
                index_of[nxt.key] = j
                done.add(nxt)
            bar.update(1)
            if time.monotonic() - looked > 1.0:
                self._watch_workers()
                looked = time.monotonic()
            yield i, res
        self._watch_workers()

    def compute(self, *tasks: Any) -> tuple[Any, ...]:
        """Compute small dask collections in one go (counts, statistics)."""
        if self.client is None:
            import dask

            with dask.config.set(scheduler="threads"):
                return dask.compute(*tasks)
        return tuple(self.client.gather(self.client.compute(list(tasks))))


@contextlib.contextmanager
def dask_cluster(workers: int | None = None, scheduler: str | None = None, *,
                 threads: int | None = None, quiet: bool = True,
                 max_in_flight: int | None = None) -> Iterator[BlockRunner]:
    """Open where block computations run (module doc) and close it again.

    Args:
        workers: start a local cluster of this many worker processes (0/None: none).
        scheduler: address of an existing ``dask.distributed`` scheduler (exclusive with
            ``workers``).
        threads: threads per worker (default :func:`threads_per_worker`).
        quiet: silence the cluster's log messages.
        max_in_flight: blocks computed but not yet consumed (default: a few per core).

    Yields:
        A :class:`BlockRunner`.

    Raises:
        ValueError: both ``workers`` and ``scheduler`` given, or ``workers < 0``.
        OSError: the scheduler cannot be reached (the address is named).
    """
    if workers and scheduler:
        raise ValueError(f"give either workers ({workers}) or scheduler ({scheduler!r}), not both")
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if not workers and not scheduler:
        yield BlockRunner(None, "in-process", max_in_flight)
        return
    import logging

    import dask
    from distributed import Client, LocalCluster

    level = logging.ERROR if quiet else logging.WARNING
    loggers = [logging.getLogger(n) for n in ("distributed", "distributed.worker",
                                              "distributed.scheduler", "distributed.nanny")]
    before = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        if scheduler:
            try:
                client = Client(scheduler, timeout="10s")
            except (OSError, TimeoutError) as err:
                raise OSError(f"cannot reach the dask scheduler at {scheduler!r}: {err}") from err
            with client:
                n = len(client.scheduler_info().get("workers", {}))
                yield BlockRunner(client, f"scheduler {scheduler} ({n} workers)", max_in_flight)
        else:
            assert workers is not None
            t = threads or threads_per_worker(workers)
            with dask.config.set(LOCAL_WORKER_ENVIRON), \
                    LocalCluster(n_workers=workers, threads_per_worker=t, processes=True,
                                 host="127.0.0.1", dashboard_address=None,
                                 silence_logs=level) as cluster, Client(cluster) as client:
                yield BlockRunner(client, f"local cluster ({workers} workers x {t} threads)",
                                  max_in_flight)
    finally:
        for lg, lvl in zip(loggers, before):
            lg.setLevel(lvl)

