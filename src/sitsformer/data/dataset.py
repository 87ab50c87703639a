"""The dataset classes every reader returns: :class:`SITSDataset` and its two storage kinds.

* :class:`ArrayDataset` holds ``N`` samples as arrays (CSV tables, ``.npz`` files, patches).
* :class:`RasterPixelDataset` holds one raster cube ``(T, C, H, W)`` and cuts the labelled
  pixels (or ``patch_size`` patches around them) out of it on access, so a 10 000-pixel label
  map does not multiply the memory by 10 000.

Every dataset has the same attributes (``classes``, ``bands``, ``labels``, ``groups``,
``coords``, ``meta``) and returns samples that follow the contract of
:mod:`sitsformer.data.sample`. ``meta["exclusions"]`` counts everything that was left out
or masked, with the reason: nothing is dropped silently.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from sitsformer.data.errors import DataError, DataWarning, NoClearDateError

Transform = Callable[[dict[str, Any]], dict[str, Any]]


def shared_data_dir() -> Path:
    """Folder of the real example datasets.

    Looked up in this order: ``$SITSFORMER_SHARED_DATA`` when set (it must be a folder), then
    ``shared/data`` beside a clone of the repository (``<clone>/../shared/data``).

    Raises:
        DataError: when neither exists (an installed package has no clone beside it), saying
            where it looked and how to point at the data.
    """
    env = os.environ.get("SITSFORMER_SHARED_DATA")
    if env:
        if not Path(env).is_dir():
            raise DataError(f"SITSFORMER_SHARED_DATA={env!r} is not a folder; expected the "
                            "folder holding the example datasets (s2_victoria_igarss2019/ ...)")
        return Path(env)
    clone = Path(__file__).resolve().parents[3]  # src/sitsformer/data/dataset.py -> <clone>
    beside = clone.parent / "shared" / "data"
    if (clone / "pyproject.toml").is_file() and beside.is_dir():
        return beside
    raise DataError(f"example data folder not found: SITSFORMER_SHARED_DATA is not set and "
                    f"{beside} does not exist (sitsformer is installed at "
                    f"{Path(__file__).resolve().parents[1]}, not run from a clone); set "
                    "SITSFORMER_SHARED_DATA=/path/to/shared/data")


def dates_to_doy(dates: np.ndarray) -> np.ndarray:
    """Day of year (1..366) of ``datetime64`` dates, any shape."""
    d = np.asarray(dates).astype("datetime64[D]")
    years = d.astype("datetime64[Y]")
    return (d - years).astype(np.int64) + 1


def add_exclusion(meta: dict[str, Any], reason: str, count: int, examples: list[Any] | None = None,
                  ) -> None:
    """Record ``count`` excluded/masked items under ``reason`` in ``meta['exclusions']``."""
    if count <= 0:
        return
    ex = meta.setdefault("exclusions", {})
    entry = ex.setdefault(reason, {"count": 0, "examples": []})
    entry["count"] += int(count)
    if examples:
        entry["examples"] = (entry["examples"] + [str(e) for e in examples])[:10]


def exclusion_report(meta: dict[str, Any]) -> str:
    """One line per exclusion reason, for messages and ``data inspect``."""
    ex = meta.get("exclusions") or {}
    if not ex:
        return "nothing excluded"
    return "; ".join(f"{k}: {v['count']}" + (f" (e.g. {', '.join(v['examples'][:3])})"
                                             if v["examples"] else "") for k, v in ex.items())


class SITSDataset(Dataset):
    """Base class of all sitsformer datasets (a ``torch.utils.data.Dataset`` of samples).

    Attributes:
        classes: class names (index = label value), or None when unlabelled.
        bands: band names.
        labels: ``(N,)`` int64 class index per sample, or None (unlabelled or per-pixel maps).
        groups: ``(N,)`` polygon/parcel/field id per sample, or None.
        coords: ``(N, 2)`` pixel row/col or map x/y per sample, or None.
        meta: ``crs`` (WKT/EPSG string), ``transform`` (6 floats), ``scale``, ``source``,
            ``date_range``, ``time_axis`` (``"dates"`` or ``"t_index"``), ``exclusions``.
        transform: optional callable applied to every sample dict (see ``transforms``).
    """

    classes: list[str] | None
    bands: list[str]
    labels: np.ndarray | None
    groups: np.ndarray | None
    coords: np.ndarray | None
    meta: dict[str, Any]
    transform: Transform | None
    label_maps: np.ndarray | None = None

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def raw_sample(self, index: int) -> dict[str, Any]:
        """Sample ``index`` before ``transform`` (numpy arrays)."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= int(index) < n:
            raise IndexError(f"sample index {index} out of range for {n} samples")
        sample = self.raw_sample(int(index) % n)
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    def with_transform(self, transform: Transform | None) -> "SITSDataset":
        """A shallow copy sharing the data, with another ``transform`` (train vs test)."""
        other = copy.copy(self)
        other.transform = transform
        return other

    # -- summaries -------------------------------------------------------------------------
    @property
    def num_classes(self) -> int | None:
        return None if self.classes is None else len(self.classes)

    def class_counts(self) -> dict[str, int] | None:
        """Samples (or labelled pixels for per-pixel maps) per class name."""
        if self.classes is None:
            return None
        if self.labels is not None:
            lab = self.labels
        elif self.label_maps is not None:
            lab = self.label_maps.ravel()
        else:
            return None
        counts = np.bincount(lab[(lab >= 0) & (lab < len(self.classes))],
                             minlength=len(self.classes))
        return {c: int(k) for c, k in zip(self.classes, counts)}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(n={len(self)}, bands={self.bands}, "
                f"classes={None if self.classes is None else len(self.classes)}, "
                f"source={self.meta.get('source')!r})")


def _time_fields(dates: np.ndarray | None, t: int, index: int, meta: dict[str, Any]
                 ) -> dict[str, Any]:
    if dates is None:
        # Dates unknown: positions 1..T stand in for the day of year (documented, warned once
        # when the dataset was opened; meta["time_axis"] == "t_index").
        return {"doy": np.arange(1, t + 1, dtype=np.int64)}
    d = dates if dates.ndim == 1 else dates[index]
    d = d[:t]
    return {"doy": dates_to_doy(d), "dates": d.astype("datetime64[D]")}


def warn_unknown_dates(source: str, t: int) -> None:
    warnings.warn(
        f"{source}: acquisition dates are unknown; samples carry no 'dates' and 'doy' holds the "
        f"time-step position 1..{t} (meta['time_axis'] = 't_index'), not a day of year. Pass "
        f"start_date=/interval_days= to state a date grid explicitly if you know it.",
        DataWarning, stacklevel=3)


def regular_dates(start_date: str, interval_days: int, t: int) -> np.ndarray:
    """An explicitly assumed regular date grid (only when the user asks for it)."""
    return np.datetime64(start_date, "D") + np.arange(t) * np.timedelta64(int(interval_days), "D")


def clean_values(x: np.ndarray, nodata: float | None, where: str, meta: dict[str, Any]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Replace NaN/inf/nodata by 0 and return (x, valid) with valid ``x.shape`` minus the band axis.

    ``x`` has the band axis at position -3 (``(..., C, H, W)``); an observation is invalid when
    any of its bands is NaN, infinite or equal to ``nodata``. The count goes to ``meta``.
    """
    bad = ~np.isfinite(x)
    if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
        bad |= x == nodata
    invalid = bad.any(axis=-3)
    if invalid.any():
        add_exclusion(meta, "nan_or_nodata_observations", int(invalid.sum()), [where])
        x = np.where(bad, 0.0, x).astype(np.float32)
    return x, ~invalid


class ArrayDataset(SITSDataset):
    """``N`` samples held as arrays (pixel samples have ``H = W = 1``).

    Args:
        x: ``(N, T, C, H, W)`` or ``(N, T, C)`` values.
        mask: ``(N, T)`` True = valid date; default: derived from ``pixel_mask`` (any clear
            pixel) or all True.
        pixel_mask: optional ``(N, T, H, W)`` True = clear pixel.
        dates: ``(T,)`` or ``(N, T)`` ``datetime64`` dates, or None when unknown.
        lengths: optional ``(N,)`` true length of each sample (the rest is padding).
        labels: ``(N,)`` class indices; label_maps: ``(N, H, W)`` per-pixel class indices.
        on_no_clear: ``"exclude"`` (count in ``meta['exclusions']``) or ``"error"`` for
            samples without any valid date.
    """

    def __init__(self, x: np.ndarray, *, mask: np.ndarray | None = None,
                 pixel_mask: np.ndarray | None = None, dates: np.ndarray | None = None,
                 lengths: np.ndarray | None = None, labels: np.ndarray | None = None,
                 label_maps: np.ndarray | None = None, groups: np.ndarray | None = None,
                 coords: np.ndarray | None = None, classes: list[str] | None = None,
                 bands: list[str] | None = None, meta: dict[str, Any] | None = None,
                 transform: Transform | None = None, nodata: float | None = None,
                 on_no_clear: str = "exclude", sample_names: list[str] | None = None) -> None:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 3:
            x = x[..., None, None]
        if x.ndim != 5:
            raise DataError(f"expected x of shape (N, T, C[, H, W]), found {x.shape}")
        self.meta = dict(meta or {})
        self.meta.setdefault("exclusions", {})
        src = str(self.meta.get("source", "arrays"))
        x, valid = clean_values(x, nodata, src, self.meta)  # valid (N, T, H, W)
        if pixel_mask is not None:
            pixel_mask = np.asarray(pixel_mask, dtype=bool) & valid
        elif not valid.all():
            pixel_mask = valid
        n, t = x.shape[:2]
        if mask is None:
            mask = pixel_mask.any(axis=(2, 3)) if pixel_mask is not None else np.ones((n, t), bool)
        else:
            mask = np.asarray(mask, dtype=bool)
            if pixel_mask is not None:
                mask = mask & pixel_mask.any(axis=(2, 3))
        if lengths is not None:
            lengths = np.asarray(lengths, dtype=np.int64)
            mask = mask & (np.arange(t)[None] < lengths[:, None])
        if dates is not None:
            dates = np.asarray(dates).astype("datetime64[D]")
        self.x, self.mask, self.pixel_mask = x, mask, pixel_mask
        self.dates, self.lengths = dates, lengths
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.label_maps = None if label_maps is None else np.asarray(label_maps, dtype=np.int64)
        self.groups = None if groups is None else np.asarray(groups)
        self.coords = None if coords is None else np.asarray(coords)
        self.classes = None if classes is None else [str(c) for c in classes]
        self.bands = [str(b) for b in bands] if bands is not None else [
            f"band{i}" for i in range(x.shape[2])]
        if len(self.bands) != x.shape[2]:
            raise DataError(f"{src}: {len(self.bands)} band names given for {x.shape[2]} bands")
        self.transform = transform
        self.sample_names = sample_names
        self.kept = np.arange(n)  # positions in the source of the samples kept
        if self.classes is not None and self.labels is not None:
            bad = (self.labels < 0) | (self.labels >= len(self.classes))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(f"{src}: label {int(self.labels[i])} of sample {i} is outside "
                                f"the class list 0..{len(self.classes) - 1}")
        no_clear = ~self.mask.any(axis=1)
        if no_clear.any():
            bad_idx = np.flatnonzero(no_clear)
            names = [self._name(int(i)) for i in bad_idx[:5]]
            if on_no_clear == "error":
                raise NoClearDateError(f"{src}: {len(bad_idx)} sample(s) have no valid date, "
                                       f"first: {', '.join(names)}")
            add_exclusion(self.meta, "samples_without_clear_date", len(bad_idx), names)
            warnings.warn(f"{src}: excluded {len(bad_idx)} sample(s) with no valid date "
                          f"({', '.join(names)}); see meta['exclusions']", DataWarning,
                          stacklevel=2)
            self._keep(~no_clear)
        self.meta.setdefault("time_axis", "t_index" if dates is None else "dates")
        if dates is not None and dates.size:
            self.meta.setdefault("date_range", [str(dates.min()), str(dates.max())])

    def _name(self, i: int) -> str:
        return self.sample_names[i] if self.sample_names else f"sample {i}"

    def _keep(self, keep: np.ndarray) -> None:
        for attr in ("x", "mask", "pixel_mask", "lengths", "labels", "label_maps", "groups",
                     "coords", "kept"):
            v = getattr(self, attr)
            if v is not None:
                setattr(self, attr, v[keep])
        if self.dates is not None and self.dates.ndim == 2:
            self.dates = self.dates[keep]
        if self.sample_names:
            self.sample_names = [s for s, k in zip(self.sample_names, keep) if k]

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def raw_sample(self, index: int) -> dict[str, Any]:
        t = int(self.lengths[index]) if self.lengths is not None else self.x.shape[1]
        s: dict[str, Any] = {"sequence": self.x[index, :t], "mask": self.mask[index, :t]}
        s.update(_time_fields(self.dates, t, index, self.meta))
        if self.pixel_mask is not None:
            s["pixel_mask"] = self.pixel_mask[index, :t]
        if self.labels is not None:
            s["label"] = np.int64(self.labels[index])
        elif self.label_maps is not None:
            s["label"] = self.label_maps[index]
        if self.groups is not None and np.issubdtype(self.groups.dtype, np.number):
            s["group"] = np.int64(self.groups[index])
        s["index"] = np.int64(index)
        return s


class RasterPixelDataset(SITSDataset):
    """Pixels (or patches around them) cut on access from one raster cube.

    Args:
        cube: ``(T, C, H, W)`` values (already cleaned of NaN/nodata).
        pixel_mask: ``(T, H, W)`` True = clear.
        dates: ``(T,)`` dates or None.
        rows, cols: pixel position of every sample.
        patch_size: odd side of the patch around each pixel (1 = pixel time series). Cells
            outside the raster are zeros with ``pixel_mask`` False.
        labels, groups: per sample. The date mask of a sample is the centre pixel's clear flag.
    """

    def __init__(self, cube: np.ndarray, pixel_mask: np.ndarray, dates: np.ndarray | None,
                 rows: np.ndarray, cols: np.ndarray, *, patch_size: int = 1,
                 labels: np.ndarray | None = None, groups: np.ndarray | None = None,
                 classes: list[str] | None = None, bands: list[str] | None = None,
                 meta: dict[str, Any] | None = None, transform: Transform | None = None,
                 on_no_clear: str = "exclude") -> None:
        if patch_size < 1 or patch_size % 2 == 0:
            raise DataError(f"patch_size must be a positive odd number, got {patch_size}")
        self.meta = dict(meta or {})
        self.meta.setdefault("exclusions", {})
        src = str(self.meta.get("source", "raster"))
        self.cube = np.asarray(cube, dtype=np.float32)
        self.pixel_mask_cube = np.asarray(pixel_mask, dtype=bool)
        self.dates = None if dates is None else np.asarray(dates).astype("datetime64[D]")
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.groups = None if groups is None else np.asarray(groups)
        self.patch_size = int(patch_size)
        self.classes = None if classes is None else [str(c) for c in classes]
        self.bands = [str(b) for b in bands] if bands is not None else [
            f"band{i}" for i in range(self.cube.shape[1])]
        self.transform = transform
        centre = self.pixel_mask_cube[:, rows, cols]  # (T, N)
        no_clear = ~centre.any(axis=0)
        if no_clear.any():
            bad = np.flatnonzero(no_clear)
            names = [f"pixel (row {rows[i]}, col {cols[i]})" for i in bad[:5]]
            if on_no_clear == "error":
                raise NoClearDateError(f"{src}: {len(bad)} sample(s) have no clear date, "
                                       f"first: {', '.join(names)}")
            add_exclusion(self.meta, "samples_without_clear_date", len(bad), names)
            warnings.warn(f"{src}: excluded {len(bad)} pixel(s) with no clear date "
                          f"({', '.join(names)}); see meta['exclusions']", DataWarning,
                          stacklevel=2)
            keep = ~no_clear
            rows, cols = rows[keep], cols[keep]
            if self.labels is not None:
                self.labels = self.labels[keep]
            if self.groups is not None:
                self.groups = self.groups[keep]
        self.rows, self.cols = rows, cols
        self.coords = np.stack([rows, cols], axis=1)
        self.meta.setdefault("coords", "pixel row/col")
        self.meta.setdefault("time_axis", "t_index" if self.dates is None else "dates")
        if self.dates is not None and self.dates.size:
            self.meta.setdefault("date_range", [str(self.dates.min()), str(self.dates.max())])

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def raw_sample(self, index: int) -> dict[str, Any]:
        r, c, k = int(self.rows[index]), int(self.cols[index]), self.patch_size
        t, ch, h, w = self.cube.shape
        h0, w0 = r - k // 2, c - k // 2
        rs, re_ = max(h0, 0), min(h0 + k, h)
        cs, ce = max(w0, 0), min(w0 + k, w)
        seq = np.zeros((t, ch, k, k), np.float32)
        pm = np.zeros((t, k, k), bool)
        seq[:, :, rs - h0:re_ - h0, cs - w0:ce - w0] = self.cube[:, :, rs:re_, cs:ce]
        pm[:, rs - h0:re_ - h0, cs - w0:ce - w0] = self.pixel_mask_cube[:, rs:re_, cs:ce]
        s: dict[str, Any] = {"sequence": seq, "mask": self.pixel_mask_cube[:, r, c].copy(),
                             "pixel_mask": pm}
        s.update(_time_fields(self.dates, t, index, self.meta))
        if self.labels is not None:
            s["label"] = np.int64(self.labels[index])
        if self.groups is not None and np.issubdtype(self.groups.dtype, np.number):
            s["group"] = np.int64(self.groups[index])
        s["index"] = np.int64(index)
        return s


def to_torch_sample(sample: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Convenience: the contract's tensors for one sample (``check_sample``)."""
    from sitsformer.data.sample import check_sample

    return check_sample(sample)
