"""Deterministic, resumable, rank-aware data loading.

:class:`EpochSampler` draws the order of epoch ``e`` from ``seed + e`` alone (no global RNG), and
gives rank ``r`` of ``R`` the indices ``order[r::R]``. So a run resumed in the middle of an epoch
sees the same batches as one that never stopped, and ``R`` processes with batch ``B / R`` see,
step for step, the same global batches as one process with batch ``B``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from sitsformer.data.sample import collate


def _process_group() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group; ``(0, 1)`` without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class EpochSampler(Sampler[int]):
    """Shuffle (or not) with a per-epoch seed and shard over ranks.

    Args:
        num_samples: dataset length.
        shuffle: random order per epoch (``seed + epoch``), else ``0..n-1``.
        seed: base seed.
        num_replicas, rank: sharding; default: the process group's (1 and 0 without one).
        pad: repeat the first indices so every rank gets the same count (needed for training
            with DDP, where every rank must make the same number of steps). Evaluation uses
            ``pad=False`` so no sample is counted twice.
    """

    def __init__(self, num_samples: int, shuffle: bool = True, seed: int = 0,
                 num_replicas: int | None = None, rank: int | None = None, pad: bool = True):
        self.num_samples = int(num_samples)
        self.shuffle = shuffle
        self.seed = int(seed)
        group_rank, group_size = _process_group()
        self.num_replicas = group_size if num_replicas is None else int(num_replicas)
        self.rank = group_rank if rank is None else int(rank)
        self.pad = pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _order(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_samples, generator=g).tolist()
        else:
            order = list(range(self.num_samples))
        if self.pad and self.num_replicas > 1 and order:
            extra = (-len(order)) % self.num_replicas
            order += (order * (extra // len(order) + 1))[:extra]
        return order[self.rank::self.num_replicas]

    def __iter__(self):  # type: ignore[override]
        return iter(self._order())

    def __len__(self) -> int:
        if self.pad and self.num_replicas > 1:
            return -(-self.num_samples // self.num_replicas)
        return len(range(self.rank, self.num_samples, self.num_replicas))


class SampleDataset(Dataset):
    """A list of samples (dicts following the sample contract) with an optional transform
    applied to each returned sample (the stored sample is never modified)."""

    def __init__(self, samples: Sequence[dict[str, Any]],
                 transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None):
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.samples[index])
        return self.transform(sample) if self.transform else sample


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool = True, seed: int = 0,
                num_workers: int = 0, train: bool = True, collate_fn: Callable | None = None,
                **kwargs: Any) -> DataLoader:
    """A DataLoader over ``dataset`` with an :class:`EpochSampler` (sharded over ranks when
    distributed; ``batch_size`` is per rank) and the library's ``collate``.

    ``train=False`` turns off shuffling and padding (every sample evaluated exactly once).
    """
    sampler = EpochSampler(len(dataset), shuffle=shuffle and train, seed=seed, pad=train)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                      collate_fn=collate_fn or collate, num_workers=num_workers,
                      generator=torch.Generator().manual_seed(seed),
                      persistent_workers=num_workers > 0, **kwargs)
