"""The chunked on-disk sample store (Zarr v3) and ``build_store``.

Why Zarr: each array is split into compressed chunks stored as separate objects (files or
object-store keys), so a reader touches only the chunks it needs, any number of DataLoader
worker processes can read concurrently without a lock (unlike one HDF5 file handle shared
across forks), the same store works on a local disk or S3/GCS through ``fsspec``, and it is a
well-kept, widely used format (xarray, the Pangeo stack). Metadata (bands, classes, dates, CRS,
transform, normalisation statistics) lives in the group's JSON attributes beside the data.

Layout (``N`` samples padded to the longest ``T``; ``length`` holds each sample's true T)::

    sequence   float32 (N, T, C, H, W)   chunks (chunk_size, T, C, H, W)
    mask       bool    (N, T)
    doy        int16   (N, T)
    dates      int64   (N, T) days since 1970-01-01 (only when the dates are known)
    pixel_mask bool    (N, T, H, W)      (when the source has one)
    label      int64   (N,) or (N, H, W) (when labelled)
    group      int64   (N,); coords float64 (N, 2); length int32 (N,)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import zarr

from sitsformer.data.dataset import SITSDataset, Transform
from sitsformer.data.errors import DataError

STORE_FORMAT = "sitsformer-sample-store"
STORE_VERSION = 1


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _fixed_t(dataset: SITSDataset) -> int | None:
    if hasattr(dataset, "x") and getattr(dataset, "lengths", None) is None:
        return int(dataset.x.shape[1])  # type: ignore[attr-defined]
    if hasattr(dataset, "cube"):
        return int(dataset.cube.shape[0])  # type: ignore[attr-defined]
    return None


def build_store(dataset: SITSDataset, out: str | Path, *, chunk_size: int = 64,
                indices: Sequence[int] | None = None,
                train_indices: Sequence[int] | None = None, overwrite: bool = False,
                progress: bool = True) -> "SampleStore":
    """Write ``dataset`` (any source, its ``transform`` ignored) to a Zarr sample store.

    Args:
        out: the store folder (``*.zarr``).
        chunk_size: samples per chunk (a DataLoader batch reads whole chunks; 32-256 is good).
        indices: samples to write (default all), in this order.
        train_indices: positions (in the written order) used for the normalisation statistics
            stored with the data; default all written samples (``attrs['stats_on']`` says which).
        overwrite: replace an existing store.
        progress: show a tqdm progress bar.

    Returns:
        The written store, opened for reading.
    """
    out = Path(out)
    if out.exists():
        if not overwrite:
            raise DataError(f"{out}: already exists (pass overwrite=True / --overwrite)")
        shutil.rmtree(out)
    idx = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    if not idx:
        raise DataError(f"{out}: nothing to write (0 samples)")
    first = dataset.raw_sample(idx[0])
    seq0 = np.asarray(first["sequence"])
    if seq0.ndim == 2:
        seq0 = seq0[:, :, None, None]
    _, c, h, w = seq0.shape
    t_max = _fixed_t(dataset)
    if t_max is None:
        t_max = max(int(np.asarray(dataset.raw_sample(i)["mask"]).shape[0]) for i in idx)
    n = len(idx)
    label0 = first.get("label")
    has_dates = "dates" in first and first["dates"] is not None
    has_pm = "pixel_mask" in first and first["pixel_mask"] is not None
    g = zarr.open_group(str(out), mode="w")
    ck = max(1, min(int(chunk_size), n))
    arrays = {
        "sequence": g.create_array("sequence", shape=(n, t_max, c, h, w), dtype="float32",
                                   chunks=(ck, t_max, c, h, w)),
        "mask": g.create_array("mask", shape=(n, t_max), dtype="bool", chunks=(ck, t_max)),
        "doy": g.create_array("doy", shape=(n, t_max), dtype="int16", chunks=(ck, t_max)),
        "length": g.create_array("length", shape=(n,), dtype="int32", chunks=(max(n, 1),)),
    }
    if has_dates:
        arrays["dates"] = g.create_array("dates", shape=(n, t_max), dtype="int64",
                                         chunks=(ck, t_max))
    if has_pm:
        arrays["pixel_mask"] = g.create_array("pixel_mask", shape=(n, t_max, h, w),
                                              dtype="bool", chunks=(ck, t_max, h, w))
    if label0 is not None:
        lshape = np.asarray(label0).shape
        arrays["label"] = g.create_array("label", shape=(n, *lshape), dtype="int64",
                                         chunks=(ck, *lshape) if lshape else (max(n, 1),))
    if "group" in first:
        arrays["group"] = g.create_array("group", shape=(n,), dtype="int64", chunks=(max(n, 1),))
    stats_set = None if train_indices is None else set(int(i) for i in train_indices)
    total, sq, count = np.zeros(c), np.zeros(c), 0
    iterator: Iterable[int] = range(0, n, ck)
    if progress:
        from sitsformer._progress import progress_bar

        iterator = progress_bar(iterator, total=-(-n // ck), desc=f"writing {out.name}",
                                unit="chunk")
    for start in iterator:
        stop = min(start + ck, n)
        m = stop - start
        buf = {k: np.zeros((m, *a.shape[1:]), dtype=a.dtype) for k, a in arrays.items()
               if k != "length" and k != "group" and not (k == "label" and not a.shape[1:])}
        lengths = np.zeros(m, np.int32)
        labels_1d = np.zeros(m, np.int64)
        groups = np.zeros(m, np.int64)
        for j in range(m):
            s = dataset.raw_sample(idx[start + j])
            x = np.asarray(s["sequence"], np.float32)
            if x.ndim == 2:
                x = x[:, :, None, None]
            if x.shape[1:] != (c, h, w):
                raise DataError(f"{dataset.meta.get('source')}: sample {idx[start + j]} has "
                                f"(C, H, W) = {x.shape[1:]}, expected {(c, h, w)}")
            t = x.shape[0]
            lengths[j] = t
            buf["sequence"][j, :t] = x
            buf["mask"][j, :t] = np.asarray(s["mask"], bool)
            buf["doy"][j, :t] = np.asarray(s["doy"])
            if has_dates:
                buf["dates"][j, :t] = np.asarray(s["dates"]).astype("datetime64[D]").astype(
                    np.int64)
            if has_pm:
                buf["pixel_mask"][j, :t] = np.asarray(s["pixel_mask"], bool).reshape(t, h, w)
            if "label" in arrays:
                if arrays["label"].shape[1:]:
                    buf["label"][j] = np.asarray(s["label"])
                else:
                    labels_1d[j] = int(s["label"])
            if "group" in arrays:
                groups[j] = int(s["group"])
            if stats_set is None or (start + j) in stats_set:
                valid = np.asarray(s["mask"], bool)[:, None, None] & (
                    np.asarray(s["pixel_mask"], bool).reshape(t, h, w) if has_pm else True)
                sel = np.moveaxis(x.astype(np.float64), 1, -1)[np.broadcast_to(valid, (t, h, w))]
                total += sel.sum(0)
                sq += (sel ** 2).sum(0)
                count += sel.shape[0]
        for k, b in buf.items():
            arrays[k][start:stop] = b
        arrays["length"][start:stop] = lengths
        if "label" in arrays and not arrays["label"].shape[1:]:
            arrays["label"][start:stop] = labels_1d
        if "group" in arrays:
            arrays["group"][start:stop] = groups
    coords = getattr(dataset, "coords", None)
    if coords is not None:
        g.create_array("coords", data=np.asarray(coords, np.float64)[idx])
    mean = total / max(count, 1)
    std = np.maximum(np.sqrt(np.maximum(sq / max(count, 1) - mean ** 2, 0)), 1e-6)
    meta = {k: v for k, v in dataset.meta.items() if k not in ("files",)}
    g.attrs.update(_jsonable({
        "format": STORE_FORMAT, "version": STORE_VERSION,
        "bands": list(dataset.bands), "classes": dataset.classes,
        "crs": dataset.meta.get("crs"), "transform": dataset.meta.get("transform"),
        "scale": dataset.meta.get("scale"), "time_axis": dataset.meta.get("time_axis"),
        "date_range": dataset.meta.get("date_range"),
        "mean": mean.tolist(), "std": std.tolist(),
        "stats_on": "all samples" if stats_set is None else f"{len(stats_set)} training samples",
        "generated": bool(dataset.meta.get("generated", False)),
        "source_meta": meta, "source_indices": idx,
    }))
    return SampleStore(out)


class SampleStore(SITSDataset):
    """A Zarr sample store written by :func:`build_store`, read lazily.

    Safe with many DataLoader workers: each process opens its own handle on first access.
    ``__getitems__`` reads a whole batch with one orthogonal selection per array (each chunk
    decompressed once per batch), which the DataLoader uses automatically; ``iter_chunks``
    serves whole arrays for statistics. A damaged chunk raises a :class:`DataError` naming the
    store, the array and the chunk.

    Attributes (besides the SITSDataset ones): ``mean``/``std`` (normalisation statistics
    stored with the data), ``attrs`` (all stored metadata).
    """

    def __init__(self, path: str | Path, transform: Transform | None = None) -> None:
        self.path = Path(path)
        try:
            g = zarr.open_group(str(self.path), mode="r")
        except Exception as err:  # noqa: BLE001
            raise DataError(f"{self.path}: not a readable Zarr store ({err})") from err
        attrs = dict(g.attrs)
        if attrs.get("format") != STORE_FORMAT:
            raise DataError(f"{self.path}: attrs['format'] is {attrs.get('format')!r}, expected "
                            f"{STORE_FORMAT!r} (write stores with build_store)")
        self.attrs = attrs
        self.bands = list(attrs["bands"])
        self.classes = attrs.get("classes")
        self.mean = np.asarray(attrs["mean"])
        self.std = np.asarray(attrs["std"])
        self._n = int(g["sequence"].shape[0])
        self.chunk_size = int(g["sequence"].chunks[0])
        self.lengths = g["length"][:]
        names = set(g.array_keys())
        self._has = {k: k in names for k in ("dates", "pixel_mask", "label", "group")}
        lab = g["label"] if self._has["label"] else None
        self.labels = lab[:] if lab is not None and lab.ndim == 1 else None
        self._label_maps = lab is not None and lab.ndim == 3
        self.groups = g["group"][:] if self._has["group"] else None
        self.coords = g["coords"][:] if "coords" in names else None
        src = attrs.get("source_meta", {})
        self.meta = {**src, "source": str(self.path), "format": "store",
                     "crs": attrs.get("crs"), "transform": attrs.get("transform"),
                     "scale": attrs.get("scale"), "date_range": attrs.get("date_range"),
                     "time_axis": attrs.get("time_axis"),
                     "exclusions": src.get("exclusions", {}),
                     "normalization": {"mean": attrs["mean"], "std": attrs["std"],
                                       "on": attrs.get("stats_on")}}
        self.transform = transform
        self._group = None

    @property
    def label_maps(self) -> np.ndarray | None:  # type: ignore[override]
        return self._open()["label"][:] if self._label_maps else None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_group"] = None  # each worker opens its own handle
        return state

    def _open(self) -> Any:
        if self._group is None:
            self._group = zarr.open_group(str(self.path), mode="r")
        return self._group

    def __len__(self) -> int:
        return self._n

    def _assemble(self, data: dict[str, np.ndarray], j: int, index: int) -> dict[str, Any]:
        t = int(self.lengths[index])
        s: dict[str, Any] = {"sequence": data["sequence"][j, :t], "mask": data["mask"][j, :t],
                             "doy": data["doy"][j, :t].astype(np.int64)}
        if "dates" in data:
            s["dates"] = data["dates"][j, :t].astype("datetime64[D]")
        if "pixel_mask" in data:
            s["pixel_mask"] = data["pixel_mask"][j, :t]
        if self.labels is not None:
            s["label"] = np.int64(self.labels[index])
        elif "label" in data:
            s["label"] = data["label"][j]
        if self.groups is not None:
            s["group"] = np.int64(self.groups[index])
        s["index"] = np.int64(index)
        return s

    def _read(self, sel: Any) -> dict[str, np.ndarray]:
        g = self._open()
        keys = ["sequence", "mask", "doy"] + [k for k in ("dates", "pixel_mask") if self._has[k]]
        if self._label_maps:
            keys.append("label")
        out = {}
        for k in keys:
            try:
                out[k] = g[k].oindex[sel] if isinstance(sel, np.ndarray) else g[k][sel]
            except Exception as err:  # noqa: BLE001 - any codec/IO error of a damaged chunk
                rows = (np.asarray(sel) if isinstance(sel, np.ndarray)
                        else np.arange(*sel.indices(self._n)))
                chunks = np.unique(rows // self.chunk_size).tolist()
                raise DataError(f"{self.path}: array {k!r}, chunk(s) {chunks[:8]} (of "
                                f"{self.chunk_size} samples each) could not be read: expected "
                                f"a readable chunk, found {type(err).__name__}: {err}") from err
        return out

    def iter_chunks(self, indices: Sequence[int] | None = None, max_bytes: int = 1 << 26,
                    ) -> Iterable[dict[str, np.ndarray]]:
        """The samples ``indices`` (default all; sorted, each once) as whole arrays, read
        chunk by chunk (a few chunks, at most about ``max_bytes`` of sequence, per read).

        Yields dicts with ``index`` (m,), ``length`` (m,), ``sequence`` (m, T, C, H, W) and
        ``valid`` (m, T, H, W): True where an observation counts (a valid date, a clear pixel),
        for statistics by array reductions instead of sample by sample.
        """
        idx = (np.arange(self._n) if indices is None
               else np.unique(np.asarray(indices, dtype=np.int64)))
        g = self._open()
        per_sample = int(np.prod(g["sequence"].shape[1:])) * 4
        group = max(1, int(max_bytes) // max(per_sample * self.chunk_size, 1))
        chunk_of = idx // self.chunk_size
        bounds = np.flatnonzero(np.diff(chunk_of // group)) + 1
        for sel in np.split(idx, bounds):
            if not len(sel):
                continue
            data = self._read(sel)
            x = data["sequence"]
            valid = np.broadcast_to(data["mask"][:, :, None, None],
                                    (x.shape[0], x.shape[1], x.shape[3], x.shape[4]))
            if "pixel_mask" in data:
                valid = valid & data["pixel_mask"]
            yield {"index": sel, "length": self.lengths[sel], "sequence": x, "valid": valid}

    def raw_sample(self, index: int) -> dict[str, Any]:
        data = self._read(slice(index, index + 1))
        return self._assemble(data, 0, index)

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        idx = np.asarray([int(i) % self._n for i in indices], dtype=np.int64)
        order = np.unique(idx)  # sorted, unique: one selection per array
        data = self._read(order)
        pos = {int(v): j for j, v in enumerate(order)}
        out = []
        for i in idx:
            s = self._assemble(data, pos[int(i)], int(i))
            out.append(self.transform(s) if self.transform is not None else s)
        return out

    def describe(self) -> str:
        return json.dumps({k: v for k, v in self.attrs.items() if k != "source_indices"},
                          indent=1, default=str)
