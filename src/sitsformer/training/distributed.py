"""Distributed helpers: ``torchrun`` + DistributedDataParallel (gloo on CPU, NCCL on GPU).

``torchrun --nproc_per_node=N sitsformer train ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`setup_distributed` reads them and starts the process group. Without them
everything runs in one process and every helper here is a no-op.
"""

from __future__ import annotations

import os
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


def setup_distributed(backend: str | None = None) -> torch.device:
    """Start the process group when launched by ``torchrun``; return this rank's device.

    The backend is NCCL when CUDA is available, else gloo (override with ``backend``).
    """
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not is_distributed():
        use_cuda = torch.cuda.is_available()
        backend = backend or ("nccl" if use_cuda else "gloo")
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend=backend)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def cleanup_distributed() -> None:
    if is_distributed():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float] | torch.Tensor, device: Any = "cpu") -> torch.Tensor:
    """Sum a vector of numbers over ranks (float64); returns it unchanged in one process."""
    t = torch.as_tensor(values, dtype=torch.float64, device=device).clone()
    if is_distributed():
        if dist.get_backend() == "nccl" and t.device.type != "cuda":
            t = t.cuda()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Send a picklable object from ``src`` to every rank."""
    if not is_distributed():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]
