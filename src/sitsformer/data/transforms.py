"""Transforms on whole sample dicts (numpy arrays or torch tensors), and normalisation stats.

Every transform takes a sample dict and returns a new one; keys along the time axis
(``sequence``, ``mask``, ``doy``, ``dates``, ``pixel_mask``) are always changed together, and
spatial transforms move ``pixel_mask`` and a per-pixel ``label`` with the image. Random
transforms draw from ``torch``'s generator, so DataLoader workers get distinct streams and
``torch.manual_seed`` makes a run repeatable.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from sitsformer.data.errors import DataError

TIME_KEYS = ("sequence", "mask", "doy", "dates", "pixel_mask")


def _np(x: Any) -> np.ndarray:
    return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _like(new: np.ndarray, old: Any) -> Any:
    return torch.from_numpy(np.ascontiguousarray(new)) if isinstance(old, torch.Tensor) else new


def _take_time(sample: dict[str, Any], idx: np.ndarray) -> dict[str, Any]:
    out = dict(sample)
    for k in TIME_KEYS:
        if k in out and out[k] is not None:
            out[k] = _like(_np(out[k])[idx], out[k])
    return out


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[dict[str, Any]], dict[str, Any]]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        for t in self.transforms:
            sample = t(sample)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms})"


class Scale:
    """Multiply ``sequence`` by ``factor`` (``Scale(1e-4)``: reflectance x 10000 -> reflectance)."""

    def __init__(self, factor: float) -> None:
        self.factor = float(factor)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        out = dict(sample)
        x = out["sequence"]
        out["sequence"] = x * self.factor if isinstance(x, torch.Tensor) else (
            np.asarray(x, np.float32) * np.float32(self.factor))
        return out

    def __repr__(self) -> str:
        return f"Scale({self.factor})"


class Normalize:
    """Per-band ``(x - mean) / std`` on ``sequence`` ``(T, C, ...)``.

    Invalid observations are normalised too (their values do not matter: they are masked);
    use :func:`compute_normalization` on the training split for ``mean``/``std``.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        if self.mean.shape != self.std.shape or self.mean.ndim != 1:
            raise DataError(f"mean and std must be 1-D of equal length, got {self.mean.shape} "
                            f"and {self.std.shape}")
        if (self.std <= 0).any():
            raise DataError(f"std must be > 0 for every band, got {self.std.tolist()}")

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        out = dict(sample)
        x = out["sequence"]
        c = x.shape[1]
        if c != self.mean.size:
            raise DataError(f"Normalize has {self.mean.size} bands, sample "
                            f"{int(_np(sample.get('index', -1)))} has {c}")
        shape = (1, c) + (1,) * (x.ndim - 2)
        if isinstance(x, torch.Tensor):
            m = torch.from_numpy(self.mean).reshape(shape).to(x)
            s = torch.from_numpy(self.std).reshape(shape).to(x)
            out["sequence"] = (x - m) / s
        else:
            out["sequence"] = ((np.asarray(x, np.float32) - self.mean.reshape(shape))
                               / self.std.reshape(shape)).astype(np.float32)
        return out

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


def _valid_obs(sample: dict[str, Any]) -> np.ndarray:
    """(T, H, W) True where the observation counts (clear pixel of a valid date)."""
    x = _np(sample["sequence"])
    t = x.shape[0]
    h, w = (x.shape[2], x.shape[3]) if x.ndim == 4 else (1, 1)
    valid = np.broadcast_to(_np(sample["mask"]).astype(bool)[:, None, None], (t, h, w))
    if sample.get("pixel_mask") is not None:
        valid = valid & _np(sample["pixel_mask"]).astype(bool).reshape(t, h, w)
    return valid


class MaskOutOfRange:
    """Mark observations with a value outside ``[low, high]`` as invalid (set them to 0).

    An observation (a date of a pixel series, a pixel of a date in a patch) is invalid when any
    of its bands is out of range, as for NaN/nodata: ``pixel_mask`` becomes False there and a
    date whose pixels are all invalid gets ``mask`` False. Applied after the scale, so the
    range is in the units the model sees (:attr:`InputSpec.valid_range`).
    """

    def __init__(self, low: float, high: float) -> None:
        if not low < high:
            raise DataError(f"valid range must have low < high, got [{low}, {high}]")
        self.low, self.high = float(low), float(high)

    def out_of_range(self, sample: dict[str, Any]) -> np.ndarray:
        """(T, H, W) True where a valid observation has a band outside the range."""
        x = _np(sample["sequence"])
        if x.ndim == 2:
            x = x[:, :, None, None]
        bad = ((x < self.low) | (x > self.high)).any(axis=1)
        return bad & _valid_obs(sample)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        if "mask" not in sample:  # a bare array (raster window): no mask to mark
            return sample
        bad = self.out_of_range(sample)
        if not bad.any():
            return sample
        out = dict(sample)
        x = _np(sample["sequence"])
        pixel = x.ndim == 2
        x4 = x[:, :, None, None] if pixel else x
        x4 = np.where(bad[:, None], np.float32(0), x4).astype(np.float32)
        out["sequence"] = _like(x4[:, :, 0, 0] if pixel else x4, sample["sequence"])
        t, h, w = bad.shape
        pm = (_np(sample["pixel_mask"]).astype(bool).reshape(t, h, w)
              if sample.get("pixel_mask") is not None
              else np.broadcast_to(_np(sample["mask"]).astype(bool)[:, None, None], (t, h, w)))
        pm = pm & ~bad
        if sample.get("pixel_mask") is not None:
            out["pixel_mask"] = _like(pm.reshape(_np(sample["pixel_mask"]).shape),
                                      sample["pixel_mask"])
        out["mask"] = _like(_np(sample["mask"]).astype(bool) & pm.any(axis=(1, 2)),
                            sample["mask"])
        return out

    def __repr__(self) -> str:
        return f"MaskOutOfRange({self.low}, {self.high})"


def chunked_values(dataset: Any, indices: Iterable[int] | None = None,
                   transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                   ) -> Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
    """``(index (m,), sequence (m, T, C, H, W) float64, valid (m, T, H, W))`` per few chunks of a
    chunked dataset (one with ``iter_chunks``, e.g. a :class:`~sitsformer.data.SampleStore`),
    after ``transform`` (None or a :class:`Scale`); None when the dataset is not chunked or the
    transform is another one (the caller then goes sample by sample)."""
    chunks = getattr(dataset, "iter_chunks", None)
    if chunks is None or not (transform is None or isinstance(transform, Scale)):
        return None

    def values() -> Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for part in chunks(None if indices is None else [int(i) for i in indices]):
            x = part["sequence"]
            if transform is not None:
                x = transform({"sequence": x})["sequence"]  # the same float32 product
            yield part["index"], np.asarray(x).astype(np.float64), part["valid"]

    return values()


def collect_values(dataset: Any, indices: Iterable[int] | None = None,
                   transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                   per_sample: int = 64, progress: bool = False) -> np.ndarray:
    """``(M, C)`` float64 valid band values of ``indices`` (at most ``per_sample`` evenly
    spaced observations per sample), after ``transform``: the values robust statistics and
    scale inference are computed from."""
    idx = range(len(dataset)) if indices is None else [int(i) for i in indices]
    parts = []
    chunked = chunked_values(dataset, idx, transform)
    if chunked is not None:  # whole chunks as arrays; the same values as sample by sample
        for _, x, valid in chunked:
            xs = np.moveaxis(x, 2, -1)  # (m, T, H, W, C)
            for j in range(x.shape[0]):
                sel = xs[j][valid[j]]
                if sel.shape[0] > per_sample:
                    sel = sel[np.linspace(0, sel.shape[0] - 1, per_sample).astype(np.int64)]
                parts.append(sel)
        idx = []
    get = getattr(dataset, "raw_sample", dataset.__getitem__)
    iterator: Iterable[int] = idx
    if progress:
        from sitsformer._progress import progress_bar

        iterator = progress_bar(idx, desc="value statistics", unit="sample")
    for i in iterator:
        s = get(i)
        if transform is not None:
            s = transform(s)
        x = _np(s["sequence"]).astype(np.float64)
        if x.ndim == 2:
            x = x[:, :, None, None]
        sel = np.moveaxis(x, 1, -1)[_valid_obs(s)]
        if sel.shape[0] > per_sample:
            sel = sel[np.linspace(0, sel.shape[0] - 1, per_sample).astype(np.int64)]
        parts.append(sel)
    if not parts or not sum(p.shape[0] for p in parts):
        raise DataError("no valid observation in the given indices")
    return np.concatenate(parts)


def compute_normalization(dataset: Any, indices: Iterable[int] | None = None,
                          transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                          progress: bool = False,
                          valid_range: Sequence[float] | None = None,
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std over the valid observations of ``indices`` (the training split).

    Args:
        dataset: a SITSDataset (its ``raw_sample`` is used, so its own ``transform`` is
            ignored: statistics describe the stored values, or those after ``transform``); a
            chunked one (a sample store) is read whole chunks at a time
            (:func:`chunked_values`).
        indices: the training indices; None = all samples.
        transform: applied before counting (e.g. ``Scale(1e-4)``).
        valid_range: ``(low, high)`` after ``transform``: observations with a band outside it
            are left out (:class:`MaskOutOfRange`), so one corrupt value (``1e30``) cannot
            flatten a band.

    Returns:
        ``(mean, std)`` float64 ``(C,)``; std is the population std (>= 1e-6).
    """
    idx = range(len(dataset)) if indices is None else [int(i) for i in indices]
    get = getattr(dataset, "raw_sample", dataset.__getitem__)
    drop = MaskOutOfRange(*valid_range) if valid_range is not None else None
    total = sq = None
    count = 0
    chunked = chunked_values(dataset, idx, transform)
    if chunked is not None:  # whole chunks as arrays, numpy reductions
        for _, x, valid in chunked:
            if drop is not None:
                valid = valid & ~((x < drop.low) | (x > drop.high)).any(axis=2)
            sel = np.moveaxis(x, 2, -1)[valid]  # (n_valid, C)
            if total is None:
                total, sq = np.zeros(x.shape[2]), np.zeros(x.shape[2])
            total += sel.sum(0)
            sq += (sel ** 2).sum(0)
            count += sel.shape[0]
        idx = []
    iterator: Iterable[int] = idx
    if progress:
        from sitsformer._progress import progress_bar

        iterator = progress_bar(idx, desc="normalisation statistics", unit="sample")
    for i in iterator:
        s = get(i)
        if transform is not None:
            s = transform(s)
        if drop is not None:
            s = drop(s)
        x = _np(s["sequence"]).astype(np.float64)
        if x.ndim == 2:
            x = x[:, :, None, None]
        v = _valid_obs(s)
        sel = np.moveaxis(x, 1, -1)[v]  # (n_valid, C)
        if total is None:
            total, sq = np.zeros(x.shape[1]), np.zeros(x.shape[1])
        total += sel.sum(0)
        sq += (sel ** 2).sum(0)
        count += sel.shape[0]
    if not count:
        raise DataError("compute_normalization: no valid observation in the given indices")
    mean = total / count
    std = np.sqrt(np.maximum(sq / count - mean ** 2, 0.0))
    return mean, np.maximum(std, 1e-6)


class RandomFlipRotate:
    """Random horizontal/vertical flip and 90-degree rotation, the same for every date.

    Applied to ``sequence`` ``(T, C, H, W)``, ``pixel_mask`` ``(T, H, W)`` and a per-pixel
    ``label`` ``(H, W)``. Rotations need ``H == W``.
    """

    def __init__(self, p_flip: float = 0.5, rotate: bool = True) -> None:
        self.p_flip, self.rotate = p_flip, rotate

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        hflip = bool(torch.rand(()) < self.p_flip)
        vflip = bool(torch.rand(()) < self.p_flip)
        k = int(torch.randint(0, 4, ())) if self.rotate else 0
        return self.apply(sample, hflip, vflip, k)

    @staticmethod
    def apply(sample: dict[str, Any], hflip: bool, vflip: bool, k: int) -> dict[str, Any]:
        """Deterministic version: flips, then ``k`` counter-clockwise quarter turns."""
        out = dict(sample)
        for key in ("sequence", "pixel_mask", "label"):
            v = out.get(key)
            if v is None or _np(v).ndim < 2:
                continue
            a = _np(v)
            if hflip:
                a = a[..., :, ::-1]
            if vflip:
                a = a[..., ::-1, :]
            if k:
                if a.shape[-1] != a.shape[-2]:
                    raise DataError(f"rotation needs square samples, got {a.shape[-2:]}")
                a = np.rot90(a, k, axes=(-2, -1))
            out[key] = _like(np.ascontiguousarray(a), v)
        return out


class RandomDateSubsample:
    """Keep at most ``max_len`` dates, drawn at random (order kept).

    Valid dates are drawn first; invalid ones only fill up when fewer than ``max_len`` dates
    are valid.
    """

    def __init__(self, max_len: int) -> None:
        if max_len < 1:
            raise DataError(f"max_len must be >= 1, got {max_len}")
        self.max_len = int(max_len)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        mask = _np(sample["mask"]).astype(bool)
        t = mask.shape[0]
        if t <= self.max_len:
            return sample
        key = torch.rand(t).numpy() - 2.0 * mask  # valid dates sort first, random within
        keep = np.sort(np.argsort(key, kind="stable")[: self.max_len])
        return _take_time(sample, keep)


class DateCrop:
    """Keep a contiguous run of ``max_len`` dates (``mode``: random, first, last)."""

    def __init__(self, max_len: int, mode: str = "random") -> None:
        if mode not in ("random", "first", "last"):
            raise DataError(f"mode must be random/first/last, got {mode!r}")
        self.max_len, self.mode = int(max_len), mode

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        t = _np(sample["mask"]).shape[0]
        if t <= self.max_len:
            return sample
        start = {"first": 0, "last": t - self.max_len}.get(
            self.mode, int(torch.randint(0, t - self.max_len + 1, ())) if self.mode == "random"
            else 0)
        return _take_time(sample, np.arange(start, start + self.max_len))


class DropCloudyDates:
    """Remove dates whose clear fraction (``pixel_mask`` mean, else ``mask``) is below a threshold.

    Invalid dates (``mask`` False) count as 0 % clear. When no date passes, the clearest one is
    kept (so the sample stays usable) and ``self.kept_clearest`` counts such samples.
    """

    def __init__(self, min_clear_fraction: float = 0.5) -> None:
        self.min_clear_fraction = float(min_clear_fraction)
        self.kept_clearest = 0

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        mask = _np(sample["mask"]).astype(bool)
        if sample.get("pixel_mask") is not None:
            pm = _np(sample["pixel_mask"]).astype(bool)
            frac = pm.reshape(pm.shape[0], -1).mean(1) * mask
        else:
            frac = mask.astype(float)
        keep = np.flatnonzero(frac >= self.min_clear_fraction)
        if keep.size == 0:
            self.kept_clearest += 1
            keep = np.array([int(np.argmax(frac))])
        if keep.size == mask.size:
            return sample
        return _take_time(sample, keep)
