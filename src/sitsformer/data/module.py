"""``DataModule``: the data side of every run, in one place.

It reads a source (the GENERATED demo data, or anything :func:`~sitsformer.data.open_source`
reads), splits it (the source's own split, or grouped / stratified / random), keeps a label
budget of the training split when asked (fine-tuning with few labels), computes the per-band
statistics on the training split, scans for the longest series, and so builds the run's
:class:`~sitsformer.data.InputSpec`; then it serves train / val / test datasets prepared with
``spec.transform()`` and deterministic, rank-aware loaders. Training, pre-training and
fine-tuning all use it (:mod:`sitsformer.training`)::

    dm = DataModule(source="demo", split="group").setup()
    dm.spec.bands, dm.split_sizes(), next(iter(dm.train_loader()))["sequence"].shape
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset

from sitsformer.data.augment import train_augmentation
from sitsformer.data.errors import DataError
from sitsformer.data.loaders import _process_group, make_loader
from sitsformer.data.spec import InputSpec
from sitsformer.data.splits import group_split, random_split, stratified_split
from sitsformer.data.transforms import Scale, compute_normalization

__all__ = ["SPLITS", "DataModule", "PreparedDataset", "label_subset", "split_indices"]

SPLITS = ("upstream", "group", "stratified", "random")
MAX_SCAN = 20000  # read every sample's length up to this many samples (else assume a year)
STATS_SAMPLES = 5000  # normalisation statistics from at most this many training samples


def split_indices(labels: np.ndarray, how: str, val_fraction: float, test_fraction: float,
                  seed: int, groups: np.ndarray | None = None,
                  source_split: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Train / val / test indices, from :mod:`sitsformer.data.splits`.

    ``upstream``: the source's own ``split`` (val carved out of train by groups when known);
    ``group``: whole groups (fields/polygons) per split, assigned class by class, so no field
    is on two sides; ``stratified``: per-class random; ``random``: plain random.
    """
    n = len(labels)
    if how == "upstream":
        if source_split is None:
            raise ValueError("data.split='upstream' but the source has no split; use "
                             "'group', 'stratified' or 'random'")
        all_idx = np.arange(n)
        test = all_idx[source_split == "test"]
        pool = all_idx[source_split == "train"]
        if (source_split == "val").any():
            return {"train": pool, "val": all_idx[source_split == "val"], "test": test}
        if groups is not None:
            train, val = group_split(groups[pool], test_size=val_fraction, seed=seed,
                                     labels=labels[pool])
        else:
            train, val = stratified_split(labels[pool], test_size=val_fraction, seed=seed)
        return {"train": pool[train], "val": pool[val], "test": test}
    if how == "group":
        if groups is None:
            raise ValueError("data.split='group' needs group ids in the source; use 'stratified'")
        parts = group_split(groups, test_size=test_fraction, val_size=val_fraction,
                            seed=seed, labels=labels)
    elif how == "stratified":
        parts = stratified_split(labels, test_size=test_fraction, val_size=val_fraction,
                                 seed=seed)
    elif how == "random":
        parts = random_split(n, test_size=test_fraction, val_size=val_fraction, seed=seed)
    else:
        raise ValueError(f"data.split must be one of {', '.join(SPLITS)}, got {how!r}")
    if val_fraction > 0:
        train, val, test = parts
    else:
        (train, test), val = parts, np.array([], dtype=np.int64)
    return {"train": train, "val": val, "test": test}


def label_subset(labels: np.ndarray, indices: np.ndarray, fraction: float, seed: int,
                 ) -> np.ndarray:
    """A per-class random share ``fraction`` of ``indices`` (at least one sample per class
    present), sorted: a label budget. ``fraction >= 1`` returns ``indices`` unchanged."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"label_fraction must be in (0, 1], got {fraction}")
    if fraction >= 1.0:
        return np.asarray(indices)
    rng = np.random.default_rng(seed)
    keep = []
    lab = labels[indices]
    for c in np.unique(lab):
        sel = np.asarray(indices)[lab == c]
        k = max(1, int(round(fraction * len(sel))))
        keep.append(rng.choice(sel, size=k, replace=False))
    return np.sort(np.concatenate(keep))


class PreparedDataset(Dataset):
    """``samples[indices]`` prepared with an input spec's ``transform()`` (scale, then
    standardisation), then, for a training split, a random ``augment`` (see
    :mod:`sitsformer.data.augment`); the stored samples are never modified."""

    def __init__(self, samples: Any, indices: Sequence[int], spec: InputSpec,
                 augment: Any = None):
        self.samples, self.indices, self.spec = samples, np.asarray(indices), spec
        self.prepare = spec.transform()
        self.augment = augment

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        s = self.prepare(self.samples[int(self.indices[i])])
        if self.augment is not None:
            s = self.augment(s)
        s.pop("group", None)
        return s


class DataModule:
    """Reading, splitting, label budget, statistics, input spec, datasets and loaders of a run.

    Args:
        source: ``"demo"`` (GENERATED data) or a path :func:`~sitsformer.data.open_source` reads.
        options: reader options for ``open_source``.
        split: one of :data:`SPLITS` (see :func:`split_indices`).
        val_fraction, test_fraction: split sizes (the upstream split only carves ``val``).
        scale: the factor the values are stored with (models see ``value / scale``).
        normalize: standardise per band with training-split statistics.
        batch_size: global training batch (divided over the processes of a ``torchrun``).
        eval_batch_size: evaluation batch per process (default ``max(per-process batch, 64)``).
        num_workers: DataLoader workers.
        seed: seed of the split, the label budget, the demo data and the shuffling.
        demo_samples, demo_img_size, demo_classes: size of the GENERATED demo data.
        labelled: False for self-supervised runs: a source without labels is accepted, and a
            ``group`` (``upstream``) split without group ids (source split) becomes ``random``.
        label_fraction: share of the training split's labels kept (per class, >= 1 each).
        date_dropout, date_shift_days, band_noise: random augmentation of the training split
            only (:func:`~sitsformer.data.augment.train_augmentation`; 0 = off).

    Other keyword arguments are ignored, so ``DataModule.from_config(cfg.data)`` accepts a
    config section with more keys.
    """

    def __init__(self, source: str = "demo", options: dict[str, Any] | None = None, *,
                 split: str = "group", val_fraction: float = 0.15, test_fraction: float = 0.2,
                 scale: float | None = 10000.0, normalize: bool = True, batch_size: int = 64,
                 eval_batch_size: int | None = None, num_workers: int = 0, seed: int = 0,
                 demo_samples: int = 800, demo_img_size: int = 1, demo_classes: int = 8,
                 labelled: bool = True, label_fraction: float = 1.0,
                 date_dropout: float = 0.0, date_shift_days: int = 0, band_noise: float = 0.0,
                 **_: Any):
        self.source, self.options = str(source), dict(options or {})
        self.split, self.val_fraction, self.test_fraction = split, val_fraction, test_fraction
        self.scale, self.normalize = scale, normalize
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.seed = num_workers, seed
        self.demo = dict(n_samples=demo_samples, img_size=demo_img_size, num_classes=demo_classes)
        self.labelled, self.label_fraction = labelled, label_fraction
        self.augment = train_augmentation(date_dropout, date_shift_days, band_noise)
        self.spec: InputSpec | None = None
        self.splits: dict[str, np.ndarray] = {}
        self.datasets: dict[str, PreparedDataset] = {}

    @classmethod
    def from_config(cls, section: Any, **overrides: Any) -> DataModule:
        """From a config section (a dataclass such as ``ExperimentConfig.data``) or a dict."""
        values = dataclasses.asdict(section) if dataclasses.is_dataclass(section) else dict(section)
        return cls(**{**values, **overrides})

    # ----------------------------------------------------------------------------- reading
    def _read(self) -> None:
        if self.source == "demo":
            from sitsformer.data.synthetic import make_demo_data

            demo = make_demo_data(**self.demo, seed=self.seed)
            self.samples: Any = demo.samples
            self.labels = np.array([s["label"] for s in demo.samples])
            self.classes, self.bands = list(demo.classes), list(demo.bands)
            self.groups = np.array([s["group"] for s in demo.samples])
            self.source_split = None
            self.meta = {"source": "demo (GENERATED synthetic data)", "time_axis": "dates",
                         "generated": True, "exclusions": {}}
            return
        from sitsformer.data.sources import open_source

        ds = open_source(self.source, **self.options)
        labels = getattr(ds, "labels", None)
        if labels is None and self.labelled:
            raise DataError(f"data.source {self.source!r} has no per-sample labels to train on")
        self.samples = ds
        self.labels = (np.zeros(len(ds), np.int64) if labels is None or not self.labelled
                       else np.asarray(labels))
        self.classes = list(getattr(ds, "classes", None) or [])
        self.bands = list(ds.bands)
        self.groups = getattr(ds, "groups", None)
        split = getattr(ds, "split", None)
        self.source_split = None if split is None or not self.labelled else np.asarray(split)
        meta = dict(getattr(ds, "meta", {}) or {})
        self.meta = {"source": str(Path(self.source)), "time_axis": meta.get("time_axis", "dates"),
                     "generated": bool(meta.get("generated", False)),
                     "exclusions": meta.get("exclusions", {})}

    def _split(self) -> None:
        how = self.split
        if not self.labelled and how == "group" and self.groups is None:
            print("note: the source has no group ids; pre-training uses a random split")
            how = "random"
        if not self.labelled and how == "upstream":
            how = "random"
        self.splits = split_indices(self.labels, how, self.val_fraction, self.test_fraction,
                                    self.seed, groups=self.groups, source_split=self.source_split)
        self.train_pool_size = int(len(self.splits["train"]))
        if self.labelled and self.label_fraction < 1.0:
            self.splits["train"] = label_subset(self.labels, self.splits["train"],
                                                self.label_fraction, self.seed)
        if len(self.splits["train"]) == 0:
            raise DataError(f"{self.source}: the train split is empty "
                            f"(split={self.split!r}, {len(self.labels)} samples)")

    def _max_t(self) -> int:
        n = len(self.labels)
        if n > MAX_SCAN:
            return 366
        return max(int(np.asarray(self.samples[i]["mask"]).shape[0]) for i in range(n))

    def setup(self, statistics_from: InputSpec | None = None) -> DataModule:
        """:meth:`read`, then :meth:`prepare`."""
        return self.read().prepare(statistics_from)

    def read(self) -> DataModule:
        """Read the source and split it (with the label budget); sets ``samples``,
        ``labels``, ``classes``, ``bands``, ``groups`` and ``splits``."""
        self._read()
        self._split()
        return self

    def prepare(self, statistics_from: InputSpec | None = None) -> DataModule:
        """Compute the statistics and build :attr:`spec` and :attr:`datasets`.

        Args:
            statistics_from: reuse this spec's scale and statistics instead of computing them
                (fine-tuning prepares inputs exactly as pre-training did).
        """
        if statistics_from is not None:
            scale, mean, std = statistics_from.scale, statistics_from.mean, statistics_from.std
        else:
            scale, mean, std = self.scale, None, None
            if self.normalize:
                mean, std = compute_normalization(
                    self.samples, list(self.splits["train"])[:STATS_SAMPLES],
                    transform=Scale(1.0 / scale) if scale else None)
                mean, std = mean.astype(np.float32).tolist(), std.astype(np.float32).tolist()
        first = self.samples[int(self.splits["train"][0])]
        seq = np.asarray(first["sequence"])
        self.spec = InputSpec(
            bands=self.bands, classes=self.classes if self.labelled else None,
            scale=scale, mean=mean, std=std,
            time_axis="t_index" if self.meta["time_axis"] == "t_index" else "dates",
            max_t=self._max_t(), sample_size=int(seq.shape[-1]) if seq.ndim == 4 else 1)
        self.datasets = {k: PreparedDataset(self.samples, v, self.spec,
                                            augment=self.augment if k == "train" else None)
                         for k, v in self.splits.items()}
        return self

    # ----------------------------------------------------------------------------- serving
    @property
    def num_classes(self) -> int:
        """Classes to learn (0 for an unlabelled, self-supervised module)."""
        return len(self.classes) if self.labelled else 0

    @property
    def num_bands(self) -> int:
        return len(self.bands)

    def split_sizes(self) -> dict[str, int]:
        return {k: int(len(v)) for k, v in self.splits.items()}

    def per_process_batch(self) -> int:
        _, world = _process_group()
        if self.batch_size % world:
            raise ValueError(f"data.batch_size={self.batch_size} must be divisible by the "
                             f"number of processes ({world})")
        return self.batch_size // world

    def train_loader(self) -> DataLoader:
        return make_loader(self.datasets["train"], self.per_process_batch(), seed=self.seed,
                           num_workers=self.num_workers)

    def _eval_loader(self, name: str) -> DataLoader | None:
        ds = self.datasets[name]
        if not len(ds):
            return None
        bs = self.eval_batch_size or max(self.per_process_batch(), 64)
        return make_loader(ds, bs, train=False, num_workers=self.num_workers)

    def val_loader(self) -> DataLoader | None:
        return self._eval_loader("val")

    def test_loader(self) -> DataLoader | None:
        return self._eval_loader("test")

    def run_info(self) -> dict[str, Any]:
        """Facts about the data of a run, for ``data_meta.json`` and checkpoints."""
        return {"source": self.meta["source"], "split": self.split,
                "split_sizes": self.split_sizes(), "train_pool_size": self.train_pool_size,
                "label_fraction": self.label_fraction, "generated": self.meta["generated"],
                "exclusions": self.meta["exclusions"]}
