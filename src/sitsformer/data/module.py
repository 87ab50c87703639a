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

import hashlib
import json
import warnings

from sitsformer.data.dataset import add_exclusion
from sitsformer.data.augment import train_augmentation
from sitsformer.data.errors import DataError, DataWarning
from sitsformer.data.loaders import _process_group, make_loader
from sitsformer.data.spec import InputSpec
from sitsformer.data.splits import (group_split, kfold_split, random_split, spatial_block_split,
                                    stratified_split)
from sitsformer.data.transforms import MaskOutOfRange, Scale, chunked_values, collect_values, \
    compute_normalization
from sitsformer.data.values import (check_scale, guess_scale, kind_of_scaled,
                                    valid_range)

__all__ = ["SPLITS", "DataModule", "PreparedDataset", "content_fingerprints", "label_subset", "read_split_file",
           "sample_ids", "split_indices"]

SPLITS = {
    "upstream": "the source's own split: train/val/test file names, or a table's split column",
    "file": "a split file (data.split_file): sample id -> train/val/test",
    "group": "whole groups (polygons/fields) per side, class by class",
    "stratified": "per-class random",
    "random": "plain random",
    "kfold": "fold data.fold of a data.folds-fold cross-validation (by groups when known)",
    "spatial": "square blocks of side data.block_size over the sample coordinates "
               "(lon/lat, map x/y or raster row/col)",
}
"""Every allowed value of ``data.split`` with what it does (docs/data_preparation.md)."""
MAX_SCAN = 20000  # read every sample's length up to this many samples (else assume a year)
STATS_SAMPLES = 5000  # normalisation statistics from at most this many training samples
MAX_IDS = 20000  # run_info stores the split's sample ids up to this many samples (else hashes)


def splits_help() -> str:
    """The allowed ``data.split`` values, one per line (for errors and docs)."""
    return "; ".join(f"{k!r}: {v}" for k, v in SPLITS.items())


def sample_ids(dataset: Any) -> np.ndarray:
    """The id of every sample: the source's ``sample_ids`` (a table's id column, or
    ``<file>:<row>``), else its sample names, else the position as a string."""
    ids = getattr(dataset, "sample_ids", None)
    if ids is None:
        ids = getattr(dataset, "sample_names", None)
    if ids is None:
        ids = [str(i) for i in range(len(dataset))]
    return np.asarray([str(i) for i in ids])


def read_split_file(path: str | Path, ids: np.ndarray) -> np.ndarray:
    """``train``/``val``/``test`` per sample from a split file: a CSV with an id and a split
    column (header ``id,split``) or a JSON object ``{id: split}``.

    Raises:
        DataError: the file is unreadable, a split name is unknown, or ids of the data are
            missing from the file or ids of the file are not in the data (names examples).
    """
    from sitsformer.data.csv_table import SPLIT_VALUES

    path = Path(path)
    if not path.is_file():
        raise DataError(f"data.split_file {str(path)!r}: no such file")
    if path.suffix.lower() == ".json":
        mapping = {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
    else:
        import pandas as pd

        table = pd.read_csv(path, dtype=str)
        if table.shape[1] < 2:
            raise DataError(f"{path}: expected two columns (sample id, split), found "
                            f"{list(table.columns)}")
        id_col = next((c for c in table.columns if c.lower() in ("id", "sample_id")),
                      table.columns[0])
        split_col = next((c for c in table.columns if c.lower() == "split"), table.columns[1])
        mapping = dict(zip(table[id_col].astype(str), table[split_col].astype(str)))
    bad = {k: v for k, v in mapping.items() if v.strip().lower() not in SPLIT_VALUES}
    if bad:
        raise DataError(f"{path}: split values must be train/val/test; found {list(bad.items())[:3]}")
    missing = [str(i) for i in ids if i not in mapping]
    extra = sorted(set(mapping) - set(ids.tolist()))
    if missing or extra:
        raise DataError(f"{path}: {len(missing)} sample id(s) of the data are not in the file "
                        f"(e.g. {missing[:3]}) and {len(extra)} id(s) of the file are not in the "
                        f"data (e.g. {extra[:3]}); the data's ids look like {ids[:2].tolist()}")
    return np.array([SPLIT_VALUES[mapping[i].strip().lower()] for i in ids])


def _hash_ids(ids: np.ndarray) -> str:
    return hashlib.sha256("\n".join(sorted(ids.tolist())).encode()).hexdigest()


def split_indices(labels: np.ndarray, how: str, val_fraction: float, test_fraction: float,
                  seed: int, groups: np.ndarray | None = None,
                  source_split: np.ndarray | None = None, *, coords: np.ndarray | None = None,
                  folds: int = 5, fold: int = 0, block_size: float | None = None,
                  ) -> dict[str, np.ndarray]:
    """Train / val / test indices, from :mod:`sitsformer.data.splits` (see :data:`SPLITS`).

    ``upstream`` / ``file``: the given ``source_split`` (``train``/``val``/``test`` per
    sample; val carved out of train by groups when it has none); ``group``: whole groups
    (fields/polygons) per split, assigned class by class, so no field is on two sides;
    ``stratified``: per-class random; ``random``: plain random; ``kfold``: the test part is
    fold ``fold`` of ``folds`` (val carved out of the rest); ``spatial``: square blocks of
    ``block_size`` over ``coords``.
    """
    n = len(labels)

    def carve_val(pool: np.ndarray, test: np.ndarray) -> dict[str, np.ndarray]:
        if val_fraction <= 0:
            return {"train": pool, "val": np.array([], np.int64), "test": test}
        if groups is not None:
            train, val = group_split(groups[pool], test_size=val_fraction, seed=seed,
                                     labels=labels[pool])
        else:
            train, val = stratified_split(labels[pool], test_size=val_fraction, seed=seed)
        return {"train": pool[train], "val": pool[val], "test": test}

    if how in ("upstream", "file"):
        if source_split is None:
            raise ValueError(f"data.split={how!r} but the source has no split; allowed: "
                             f"{splits_help()}")
        all_idx = np.arange(n)
        test = all_idx[source_split == "test"]
        pool = all_idx[source_split == "train"]
        if (source_split == "val").any():
            return {"train": pool, "val": all_idx[source_split == "val"], "test": test}
        return carve_val(pool, test)
    if how == "kfold":
        rest, test = kfold_split(labels, folds, fold, seed=seed, groups=groups)
        return carve_val(rest, test)
    if how == "spatial":
        if coords is None:
            raise ValueError("data.split='spatial' needs sample coordinates (lon/lat or x/y "
                             "columns of a table, or raster positions); this source has none")
        if block_size is None or not block_size > 0:
            raise ValueError(f"data.split='spatial' needs data.block_size > 0 (the block side "
                             f"in coordinate units), got {block_size!r}")
        parts = spatial_block_split(coords, block_size, test_fraction, val_fraction, seed,
                                    labels=labels)
    elif how == "group":
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
        raise ValueError(f"data.split must be one of {', '.join(SPLITS)}, got {how!r} "
                         f"({splits_help()})")
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

    @property
    def chunk_size(self) -> int | None:
        """Samples per chunk of a chunked source (a sample store; its loaders read whole
        chunks, :class:`~sitsformer.data.ChunkBatchSampler`); None for other sources."""
        return getattr(self.samples, "chunk_size", None)

    def _finish(self, s: dict[str, Any]) -> dict[str, Any]:
        s = self.prepare(s)
        if self.augment is not None:
            s = self.augment(s)
        s.pop("group", None)
        return s

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self._finish(self.samples[int(self.indices[i])])

    def __getitems__(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        """A batch; from a store one read per array (each chunk decompressed once)."""
        many = getattr(self.samples, "__getitems__", None)
        wanted = [int(self.indices[int(i)]) for i in positions]
        raw = many(wanted) if many is not None else [self.samples[i] for i in wanted]
        return [self._finish(s) for s in raw]


def content_fingerprints(samples: Any, indices: Sequence[int], spec: InputSpec) -> list[str]:
    """A 64-bit fingerprint (16 hex digits) of each sample's values as the model sees them
    (``spec.transform()``: scale, standardisation), on its valid dates, rounded to 1e-4.

    Ids differ between files (a CSV's id column, an npz's row numbers); values do not: the
    same pixels read from another export of the training data get the same fingerprints, so
    ``evaluate`` recognises samples the model trained on.
    """
    prepared = PreparedDataset(samples, indices, spec)
    out = [""] * len(prepared)
    # batches in source order: a store reads each chunk once (one __getitems__ per batch)
    order = np.argsort(prepared.indices, kind="stable")
    step = 4 * (prepared.chunk_size or 64)
    for start in range(0, len(order), step):
        positions = order[start:start + step].tolist()
        for i, s in zip(positions, prepared.__getitems__(positions)):
            x = np.asarray(s["sequence"], np.float64)
            valid = np.asarray(s["mask"], bool)
            q = np.round(x[valid] * 1e4).astype(np.int64)
            h = hashlib.blake2b(np.asarray(q.shape, np.int64).tobytes(), digest_size=8)
            h.update(q.tobytes())
            out[i] = h.hexdigest()
    return out


def count_out_of_range(samples: Any, idx: Any, scale: float | None,
                       rng: Sequence[float] | None, names: Any, meta: dict[str, Any],
                       where: str = "samples") -> int:
    """The validity rule of training, in one place: count the valid observations of the
    samples ``idx`` that fall outside ``rng`` after ``scale`` (a ``1e30`` fill value, a
    saturated sensor) and record them in ``meta["exclusions"]["out_of_range_observations"]``
    (with up to 10 sample names). Returns the longest series seen. A store is read whole
    chunks at a time, its lengths from its metadata
    (:func:`~sitsformer.data.transforms.chunked_values`)."""
    factor = Scale(1.0 / scale) if scale not in (None, 1.0) else None
    check = MaskOutOfRange(*rng) if rng is not None else None
    get = getattr(samples, "raw_sample", samples.__getitem__)
    longest, bad, examples = 0, 0, []
    chunked = chunked_values(samples, idx, factor)
    if chunked is not None:  # a store: whole chunks as arrays, lengths from its metadata
        for index, x, valid in chunked:
            longest = max(longest, int(np.max(samples.lengths[index])))
            if check is not None:
                per = (((x < check.low) | (x > check.high)).any(axis=2)
                       & valid).sum(axis=(1, 2, 3))
                bad += int(per.sum())
                examples += [str(names[int(i)]) for i in index[per > 0]][:10 - len(examples)]
        idx = []
    for i in idx:
        s = get(int(i))
        longest = max(longest, int(np.asarray(s["mask"]).shape[0]))
        if check is not None:
            k = int(check.out_of_range(factor(s) if factor else s).sum())
            if k:
                bad += k
                if len(examples) < 10:
                    examples.append(str(names[int(i)]))
    if bad:
        add_exclusion(meta, "out_of_range_observations", bad, examples)
        meta["exclusions"]["out_of_range_observations"]["range"] = (
            f"outside {rng} after the scale ({where})")
    return longest


class DataModule:
    """Reading, splitting, label budget, statistics, input spec, datasets and loaders of a run.

    Args:
        source: ``"demo"`` (GENERATED data) or a path :func:`~sitsformer.data.open_source` reads.
        options: reader options for ``open_source``.
        split: one of :data:`SPLITS` (see :func:`split_indices`).
        split_file: the split file of ``split="file"`` (:func:`read_split_file`).
        folds, fold: ``split="kfold"``: the number of folds and the fold held out as test.
        block_size: ``split="spatial"``: the block side, in the units of the coordinates.
        val_fraction, test_fraction: split sizes (the upstream split only carves ``val``).
        scale: the factor the values are stored with (models see ``value / scale``);
            ``"auto"`` (default) infers it from the training values
            (:mod:`sitsformer.data.values`); None = values used as stored.
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
                 split_file: str | None = None, folds: int = 5, fold: int = 0,
                 block_size: float | None = None,
                 scale: float | str | None = "auto", normalize: bool = True, batch_size: int = 64,
                 eval_batch_size: int | None = None, num_workers: int = 0, seed: int = 0,
                 demo_samples: int = 800, demo_img_size: int = 1, demo_classes: int = 8,
                 labelled: bool = True, label_fraction: float = 1.0,
                 date_dropout: float = 0.0, date_shift_days: int = 0, band_noise: float = 0.0,
                 **_: Any):
        self.source, self.options = str(source), dict(options or {})
        self.split, self.val_fraction, self.test_fraction = split, val_fraction, test_fraction
        self.split_file, self.folds, self.fold, self.block_size = (split_file, folds, fold,
                                                                   block_size)
        self.scale, self.normalize = check_scale(scale), normalize
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
            self.coords = None
            self.ids = np.array([str(i) for i in range(len(demo.samples))])
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
        self.coords = getattr(ds, "coords", None)
        self.ids = sample_ids(ds)
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
        given = self.source_split
        if how == "file":
            if not self.split_file:
                raise DataError("data.split='file' needs data.split_file (a CSV 'id,split' or "
                                "a JSON {id: split} file)")
            given = read_split_file(self.split_file, self.ids)
        self.splits = split_indices(self.labels, how, self.val_fraction, self.test_fraction,
                                    self.seed, groups=self.groups, source_split=given,
                                    coords=self.coords, folds=self.folds, fold=self.fold,
                                    block_size=self.block_size)
        self.train_pool_size = int(len(self.splits["train"]))
        if self.labelled and self.val_fraction > 0 and len(self.splits["val"]) == 0:
            groups = (f" ({len(np.unique(self.groups))} groups: whole groups go to one side)"
                      if how == "group" and self.groups is not None else "")
            warnings.warn(f"{self.source}: data.val_fraction={self.val_fraction} but the "
                          f"{how!r} split of {len(self.labels)} samples left no validation "
                          f"sample{groups}; training monitors the training loss",
                          DataWarning, stacklevel=2)
        if self.labelled and self.label_fraction < 1.0:
            self.splits["train"] = label_subset(self.labels, self.splits["train"],
                                                self.label_fraction, self.seed)
        if len(self.splits["train"]) == 0:
            raise DataError(f"{self.source}: the train split is empty "
                            f"(split={self.split!r}, {len(self.labels)} samples)")
        if self.labelled:
            self._warn_untrained_classes()

    def _warn_untrained_classes(self) -> None:
        """Warn, naming them, about the classes without a training sample (seen only in the
        validation or test split, or nowhere): the model cannot learn them; and about a
        validation or test split that holds a single class (its kappa is 0). Both before
        training, when the data module is read."""
        k = len(self.classes or [])
        labels = np.asarray(self.labels)
        if not k or labels.size == 0:
            return

        def counts(idx: Any) -> np.ndarray:
            y = labels[np.asarray(idx, np.int64)] if len(idx) else labels[:0]
            y = y[(y >= 0) & (y < k)]
            return np.bincount(y.astype(np.int64), minlength=k)[:k]

        per = {name: counts(self.splits.get(name, [])) for name in ("train", "val", "test")}
        for name in ("val", "test"):  # a split of one class: kappa 0, per-class scores void
            present = np.flatnonzero(per[name])
            if k > 1 and len(present) == 1:
                c = int(present[0])
                warnings.warn(f"{self.source}: the {name} split holds a single class, "
                              f"{self.classes[c]!r} ({int(per[name][c])} samples), of the {k} "
                              f"classes {list(self.classes)}: its kappa will be 0 and the other "
                              f"classes' scores undefined (split={self.split!r}; a stratified "
                              "split or more samples of the other classes helps)",
                              DataWarning, stacklevel=3)
        missing = np.flatnonzero(per["train"] == 0)
        if not len(missing):
            return
        told = []
        for c in missing:
            where = [f"{int(per[s][c])} in the {s} split" for s in ("val", "test") if per[s][c]]
            told.append(f"{self.classes[c]!r} ({', '.join(where) or 'no sample at all'})")
        warnings.warn(f"{self.source}: {len(missing)} class(es) have no training sample: "
                      f"{'; '.join(told)}; the model cannot learn them (split="
                      f"{self.split!r}; a stratified split or more samples of them helps)",
                      DataWarning, stacklevel=3)

    def _scan(self, spec: InputSpec) -> int:
        """The longest series, and the out-of-range observations counted into
        ``meta["exclusions"]`` (every sample up to :data:`MAX_SCAN`, else the training
        statistics samples and a year). A store is read whole chunks at a time, its lengths
        from its metadata (:func:`~sitsformer.data.transforms.chunked_values`)."""
        n = len(self.labels)
        idx = range(n) if n <= MAX_SCAN else list(self.splits["train"])[:STATS_SAMPLES]
        longest = count_out_of_range(self.samples, idx, spec.scale, spec.valid_range,
                                     self.ids, self.meta,
                                     "samples" if n <= MAX_SCAN else "statistics samples")
        return 366 if n > MAX_SCAN else longest

    def _statistics(self) -> dict[str, Any]:
        """Scale (given or inferred), valid range, robust mean/std and medians, over the
        first :data:`STATS_SAMPLES` training samples (a store: read whole chunks at a time).

        A store's own ``mean``/``std`` (written at build time) are not used: they describe the
        stored values before the scale and the valid range, over all samples or the build's
        split, not this run's training split."""
        train = list(self.splits["train"])[:STATS_SAMPLES]
        where = f"data.source {self.source!r}"
        raw = collect_values(self.samples, train)
        out: dict[str, Any] = {"scale": self.scale}
        if self.scale == "auto":
            scale, kind, reason, _ = guess_scale(raw, self.bands, where)
            out.update(scale=scale, scale_source=reason)
        else:
            scale = self.scale
            kind = kind_of_scaled(raw / scale if scale else raw)
            out["scale_source"] = "given (data.scale)" if scale is not None else \
                "given: none (values used as stored)"
        factor = 1.0 / scale if scale not in (None, 1.0) else None
        scaled = raw * factor if factor else raw
        rng = valid_range(kind, scaled)
        out["valid_range"] = list(rng) if rng is not None else None
        keep = np.ones(len(scaled), bool) if rng is None else (
            (scaled >= rng[0]) & (scaled <= rng[1])).all(axis=1)
        out["median"] = (np.median(scaled[keep], axis=0) if keep.any()
                         else np.median(scaled, axis=0)).astype(np.float32).tolist()
        if self.normalize:
            mean, std = compute_normalization(
                self.samples, train, transform=Scale(factor) if factor else None,
                valid_range=rng)
            out["mean"] = mean.astype(np.float32).tolist()
            out["std"] = std.astype(np.float32).tolist()
        else:
            out["mean"] = out["std"] = None
        return out

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
            f = statistics_from
            stats = {"scale": f.scale, "mean": f.mean, "std": f.std, "median": f.median,
                     "valid_range": f.valid_range,
                     "scale_source": f"from the pre-trained model ({f.scale_source or 'given'})"}
        else:
            stats = self._statistics()
        first = self.samples[int(self.splits["train"][0])]
        seq = np.asarray(first["sequence"])
        codes = (getattr(self.samples, "meta", None) or {}).get("class_codes")
        colors = (getattr(self.samples, "meta", None) or {}).get("class_colors")
        self.spec = InputSpec(
            bands=self.bands, classes=self.classes if self.labelled else None,
            class_values=codes if self.labelled and codes is not None
            and len(codes) == len(self.classes) else None,
            class_colors=colors if self.labelled and colors is not None
            and len(colors) == len(self.classes) else None, **stats,
            time_axis="t_index" if self.meta["time_axis"] == "t_index" else "dates",
            max_t=None, sample_size=int(seq.shape[-1]) if seq.ndim == 4 else 1)
        self.spec.max_t = self._scan(self.spec)
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
        ids = {k: self.ids[v] for k, v in self.splits.items()}
        settings: dict[str, Any] = {"val_fraction": self.val_fraction,
                                    "test_fraction": self.test_fraction, "seed": self.seed}
        if self.split == "file":
            settings["split_file"] = str(self.split_file)
        elif self.split == "kfold":
            settings.update(folds=self.folds, fold=self.fold)
        elif self.split == "spatial":
            settings["block_size"] = self.block_size
        return {"source": self.meta["source"], "split": self.split,
                "split_settings": settings,
                "split_sizes": self.split_sizes(), "train_pool_size": self.train_pool_size,
                "label_fraction": self.label_fraction, "generated": self.meta["generated"],
                "exclusions": self.meta["exclusions"],
                "scale": self.spec.scale if self.spec else None,
                "scale_source": self.spec.scale_source if self.spec else None,
                # which samples were train/val/test: the ids, or their hashes when many
                "split_ids": ({k: v.tolist() for k, v in ids.items()}
                              if len(self.ids) <= MAX_IDS else None),
                "split_hashes": {k: _hash_ids(v) for k, v in ids.items()},
                # the training samples by value, for evaluate on another file of the same data
                "train_fingerprints": (
                    content_fingerprints(self.samples, self.splits["train"], self.spec)
                    if self.spec is not None and len(self.splits["train"]) <= MAX_IDS
                    else None)}
