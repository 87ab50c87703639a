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
    distributed; ``batch_size`` is per rank) and the library's ``collate``. A dataset over a
    chunked store (a ``chunk_size``, ``indices`` and ``__getitems__``: ``PreparedDataset`` of a
    :class:`~sitsformer.data.SampleStore`) gets a :class:`ChunkBatchSampler` instead: whole
    chunks per batch, read in one ``__getitems__`` call, in the main process or a worker.

    ``train=False`` turns off shuffling and padding (every sample evaluated exactly once).
    """
    chunk = getattr(dataset, "chunk_size", None)
    if chunk and hasattr(dataset, "__getitems__") and hasattr(dataset, "indices"):
        # a store: chunk-aligned batches, each read with one call of __getitems__
        batches = ChunkBatchSampler(len(dataset), batch_size, indices=dataset.indices,
                                    chunk_size=chunk, positions=True, seed=seed,
                                    shuffle=shuffle and train, even=train,
                                    drop_last=bool(kwargs.pop("drop_last", False)))
        return DataLoader(dataset, batch_sampler=batches, collate_fn=collate_fn or collate,
                          num_workers=num_workers, generator=torch.Generator().manual_seed(seed),
                          persistent_workers=num_workers > 0, **kwargs)
    sampler = EpochSampler(len(dataset), shuffle=shuffle and train, seed=seed, pad=train)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                      collate_fn=collate_fn or collate, num_workers=num_workers,
                      generator=torch.Generator().manual_seed(seed),
                      persistent_workers=num_workers > 0, **kwargs)


class ChunkBatchSampler:
    """Batches that read few store chunks: shuffle chunks, then samples within chunk windows.

    A fully shuffled batch of 128 from a store with chunks of 64 touches up to 128 chunks, and
    every touched chunk is decompressed whole. This sampler shuffles the order of the chunks,
    takes ``chunks_per_group`` chunks at a time (a window), shuffles their samples together and
    cuts batches from the result, so a batch decompresses at most ``2 * chunks_per_group``
    chunks (one more per extra window a batch larger than a window spans). Use it as
    ``DataLoader(store, batch_sampler=ChunkBatchSampler(store, 128, indices=train_idx))``;
    :func:`make_loader` uses it for a dataset with a ``chunk_size`` (a store's training split).

    Randomness against a full shuffle: every sample is seen once per epoch and the chunk order
    and the order inside a window change every epoch, but a batch draws its samples from
    ``chunks_per_group`` chunks rather than from the whole split, so samples written close
    together (the same chunk: a polygon, a raster block) meet in a batch more often. With
    ``chunks_per_group * chunk_size`` a few times the batch, batches mix several chunks.

    Sharding (``num_replicas`` > 1, default the process group's): the epoch's order is cut
    into ``num_replicas`` contiguous parts, so each rank reads its own chunks (only the window
    at each cut is shared by two ranks) and no sample comes twice in an epoch; for training
    (``even=True``) each part has ``n // num_replicas`` samples (every rank makes the same
    number of steps; the remainder, other samples each epoch, waits for the next epoch).

    Args:
        store: a store (its ``chunk_size`` is used) or a length.
        batch_size: samples per batch (per rank).
        indices: the store indices to draw (a training split); default all.
        chunks_per_group: chunks mixed together (more = better mixing, more reading).
        shuffle: False gives the store order (for evaluation).
        drop_last: drop the last incomplete batch.
        seed: base seed; the epoch (``set_epoch``) is added so each epoch differs.
        chunk_size: samples per chunk (default the store's, else 64).
        positions: yield positions into ``indices`` instead of the indices themselves (for a
            dataset over a split, such as ``PreparedDataset``).
        num_replicas, rank, even: sharding over processes, see above.
    """

    def __init__(self, store: Any, batch_size: int, *, indices: Sequence[int] | None = None,
                 chunks_per_group: int = 4, shuffle: bool = True, drop_last: bool = False,
                 seed: int = 0, chunk_size: int | None = None, positions: bool = False,
                 num_replicas: int | None = None, rank: int | None = None,
                 even: bool = True) -> None:
        import numpy as np

        n = store if isinstance(store, int) else len(store)
        if chunk_size is None:
            chunk_size = getattr(store, "chunk_size", None) or 64
        self.chunk_size = int(chunk_size)
        self.indices = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
        if batch_size < 1 or chunks_per_group < 1:
            raise ValueError(f"ChunkBatchSampler: expected batch_size >= 1 and "
                             f"chunks_per_group >= 1, found {batch_size} and {chunks_per_group}")
        self.batch_size, self.chunks_per_group = int(batch_size), int(chunks_per_group)
        self.shuffle, self.drop_last, self.seed, self.epoch = shuffle, drop_last, int(seed), 0
        self.positions, self.even = positions, even
        group_rank, group_size = _process_group()
        self.num_replicas = group_size if num_replicas is None else int(num_replicas)
        self.rank = group_rank if rank is None else int(rank)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _bounds(self) -> tuple[int, int]:
        import numpy as np

        n, r = len(self.indices), self.num_replicas
        if self.even:
            part = n // r
            return self.rank * part, (self.rank + 1) * part
        cuts = [len(a) for a in np.array_split(np.arange(n), r)]
        start = sum(cuts[:self.rank])
        return start, start + cuts[self.rank]

    def _order(self) -> Any:
        """This rank's positions into ``indices``, in the order of the epoch."""
        import numpy as np

        chunk_of = self.indices // self.chunk_size
        if not self.shuffle:
            order = np.argsort(self.indices, kind="stable")
        else:
            rng = np.random.default_rng(self.seed + self.epoch)
            chunks, inverse = np.unique(chunk_of, return_inverse=True)
            place = rng.permutation(len(chunks))  # where each chunk comes in the epoch
            window = place[inverse.reshape(-1)] // self.chunks_per_group
            order = np.lexsort((rng.random(len(self.indices)), window))
        start, stop = self._bounds()
        return order[start:stop]

    def __len__(self) -> int:
        start, stop = self._bounds()
        n = stop - start
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Any:
        order = self._order()
        items = order if self.positions else self.indices[order]
        for start in range(0, len(items), self.batch_size):
            batch = items[start:start + self.batch_size]
            if self.drop_last and len(batch) < self.batch_size:
                return
            yield batch.tolist()
