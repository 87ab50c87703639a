"""Distributed helpers: ``torchrun`` + DistributedDataParallel (gloo on CPU, NCCL on GPU).

``torchrun --nproc_per_node=N sitsformer train ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`setup_distributed` reads them and starts the process group. Without them
everything runs in one process and every helper here is a no-op.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return get_rank() == 0


# How long a collective waits for the other ranks before it fails (seconds). PyTorch's own
# default is 30 minutes: a frozen rank would block every other one that long.
DEFAULT_TIMEOUT_S = 600.0
TIMEOUT_ENV = "SITSFORMER_DIST_TIMEOUT"
_timeout_s: float = DEFAULT_TIMEOUT_S


class DistributedTimeout(RuntimeError):
    """A collective did not complete within the process-group timeout; names this rank and,
    where the backend can tell, the ranks that did not arrive."""


def dist_timeout_s(timeout_s: float | None = None) -> float:
    """The process-group timeout: ``timeout_s`` if given, else ``$SITSFORMER_DIST_TIMEOUT``,
    else :data:`DEFAULT_TIMEOUT_S` (600 s).

    Raises:
        ValueError: a value that is not a positive number, naming where it came from.
    """
    source, value = "timeout_s", timeout_s
    if value is None and os.environ.get(TIMEOUT_ENV):
        source, value = TIMEOUT_ENV, os.environ[TIMEOUT_ENV]
    if value is None:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: expected a number of seconds > 0, found {value!r}") from None
    if not seconds > 0:
        raise ValueError(f"{source}: expected a number of seconds > 0, found {value!r}")
    return seconds


def setup_distributed(backend: str | None = None,
                      timeout_s: float | None = None) -> torch.device:
    """Start the process group when launched by ``torchrun``; return this rank's device.

    The backend is NCCL when CUDA is available, else gloo (override with ``backend``). Every
    collective fails after ``timeout_s`` seconds of waiting for another rank (default: see
    :func:`dist_timeout_s`, 600 s) instead of PyTorch's 30 minutes.
    """
    global _timeout_s
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not is_distributed():
        use_cuda = torch.cuda.is_available()
        backend = backend or ("nccl" if use_cuda else "gloo")
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        _timeout_s = dist_timeout_s(timeout_s)
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=_timeout_s))
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _timed_out(err: BaseException) -> bool:
    text = str(err).lower()
    return any(k in text for k in ("timed out", "timeout", "failed to pass monitoredbarrier"))


@contextlib.contextmanager
def _named_timeout(op: str) -> Iterator[None]:
    """Turn a collective's timeout into a :class:`DistributedTimeout` naming the ranks."""
    try:
        yield
    except RuntimeError as err:
        if isinstance(err, DistributedTimeout) or not _timed_out(err):
            raise
        stuck = re.search(r"Ranks? ([\d, ]+) failed to pass monitoredBarrier", str(err))
        who = (f"rank(s) {stuck.group(1).strip()} did not arrive (frozen or dead)" if stuck
               else "another rank is frozen or dead")
        raise DistributedTimeout(
            f"rank {get_rank()} of {get_world_size()}: {op} did not complete within "
            f"{_timeout_s:g} s; {who}. The limit is setup_distributed(timeout_s=...) or "
            f"${TIMEOUT_ENV} (default {DEFAULT_TIMEOUT_S:g} s). Backend said: {err}") from err


def cleanup_distributed() -> None:
    if is_distributed():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float] | torch.Tensor, device: Any = "cpu") -> torch.Tensor:
    """Sum a vector of numbers over ranks (float64); returns it unchanged in one process."""
    t = torch.as_tensor(values, dtype=torch.float64, device=device).clone()
    if is_distributed():
        if dist.get_backend() == "nccl" and t.device.type != "cuda":
            t = t.cuda()
        with _named_timeout("all_reduce"):
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu()


def barrier() -> None:
    """Wait for every rank. On gloo a monitored barrier, so that a timeout names the ranks
    that did not arrive."""
    if is_distributed():
        with _named_timeout("barrier"):
            if dist.get_backend() == "gloo":
                dist.monitored_barrier(timeout=timedelta(seconds=_timeout_s),
                                       wait_all_ranks=True)
            else:
                dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Send a picklable object from ``src`` to every rank."""
    if not is_distributed():
        return obj
    holder = [obj]
    with _named_timeout("broadcast_object"):
        dist.broadcast_object_list(holder, src=src)
    return holder[0]
