"""Reading rasters as dask arrays and writing results block by block with rasterio.

:class:`RasterArray` is a small picklable object (a path) that dask slices window by window,
so the raster is never read whole, also on remote workers. :class:`BlockWriter` writes GeoTIFFs
with the input's CRS and transform under a temporary name and renames them when every block is
written; an existing output is refused unless ``overwrite``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["BlockWriter", "RasterArray", "check_outputs", "open_dask", "output_profile"]

CLASS_NODATA = 255
"""Nodata of ``uint8`` class maps (as ``sitsformer predict`` writes them)."""
PROBABILITY_NODATA = -1.0
"""Nodata of probability and uncertainty rasters (as ``sitsformer predict`` writes them)."""


def data_error(message: str) -> Exception:
    """A :class:`sitsformer.data.DataError`, imported when needed (``sitsformer.data.errors``
    loads neither torch nor anything else heavy, but ``maps`` modules stay import-light)."""
    from sitsformer.data.errors import DataError

    return DataError(message)


class RasterArray:
    """Array-like view of a raster file for ``dask.array.from_array``: ``(bands, rows, cols)``.

    Only the path is pickled; each slice opens the file and reads one window.
    """

    def __init__(self, path: str | os.PathLike[str], bands: Sequence[int] | None = None) -> None:
        self.path = str(path)
        if not Path(self.path).is_file():
            raise FileNotFoundError(f"raster not found: {self.path}")
        import rasterio

        with rasterio.open(self.path) as ds:
            self.count = ds.count
            self.bands = list(bands) if bands is not None else list(range(1, ds.count + 1))
            self.shape = (len(self.bands), ds.height, ds.width)
            self.dtype = np.dtype(ds.dtypes[0])
            self.nodata = ds.nodata
            self.crs = ds.crs
            self.transform = ds.transform
            self.descriptions = [ds.descriptions[b - 1] for b in self.bands]
            self.scales = [ds.scales[b - 1] for b in self.bands]
            self.tags = ds.tags()
        self.ndim = 3

    def __getitem__(self, key: tuple[slice, slice, slice]) -> np.ndarray:
        b, r, c = key
        bands = self.bands[b]
        r0, r1, _ = r.indices(self.shape[1])
        c0, c1, _ = c.indices(self.shape[2])
        if not bands or r1 <= r0 or c1 <= c0:
            return np.zeros((len(bands), max(r1 - r0, 0), max(c1 - c0, 0)), self.dtype)
        import rasterio
        from rasterio.windows import Window

        with rasterio.open(self.path) as ds:
            return ds.read(bands, window=Window(c0, r0, c1 - c0, r1 - r0))


def open_dask(path: str | os.PathLike[str], block: int, bands: Sequence[int] | None = None,
              strips: bool = False) -> tuple[da.Array, RasterArray]:
    """The raster as a dask array ``(bands, rows, cols)`` in ``block x block`` chunks (all
    bands in each chunk), and its :class:`RasterArray` (CRS, transform, nodata).

    ``strips=True`` chunks it in full-width row strips of about ``block^2`` pixels instead,
    so that visiting the chunks in order visits the pixels in raster order."""
    import dask.array as da

    src = RasterArray(path, bands)
    chunks = ((src.shape[0], max(1, block * block // src.shape[2]), src.shape[2]) if strips
              else (src.shape[0], block, block))
    arr = da.from_array(src, chunks=chunks, lock=False, asarray=True,
                        name=f"read-{Path(src.path).name}-{os.stat(src.path).st_mtime_ns}-{chunks}")
    return arr, src


def output_profile(like: RasterArray, count: int, dtype: str, nodata: float,
                   block: int = 256) -> dict[str, Any]:
    """GeoTIFF profile with ``like``'s grid (size, CRS, transform), tiled when large enough."""
    _, h, w = like.shape
    profile: dict[str, Any] = {"driver": "GTiff", "height": h, "width": w, "count": count,
                               "dtype": dtype, "nodata": nodata, "compress": "deflate"}
    tile = 256 if block >= 256 else 16 * max(1, block // 16)
    if h >= tile and w >= tile >= 16:
        profile.update(tiled=True, blockxsize=tile, blockysize=tile)
    if like.crs is not None:
        profile["crs"] = like.crs
    profile["transform"] = like.transform
    return profile


def check_outputs(paths: Sequence[str | os.PathLike[str]], overwrite: bool) -> None:
    """Raise ``FileExistsError`` naming every existing output unless ``overwrite``."""
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"output exists: {', '.join(existing)} (pass --overwrite / "
                              "overwrite=True to replace it)")


class BlockWriter:
    """Several GeoTIFFs written together, block by block, under temporary names.

    ``with BlockWriter({"probs": (path, profile), ...}) as w: w.write("probs", arr, r0, c0)``;
    on a clean exit every file is renamed to its final name, on an error the partial files are
    removed. ``prepare`` maps a key to a function called with the open dataset before any
    block (a legend: :func:`sitsformer.data.legend.write_class_legend`); ``cog`` maps a key to
    its overview resampling: that file is finished as a Cloud-Optimized GeoTIFF
    (:func:`sitsformer.data.cog.to_cog`, as ``predict`` writes its maps).
    """

    def __init__(self, targets: dict[str, tuple[str | os.PathLike[str], dict[str, Any]]],
                 descriptions: dict[str, Sequence[str]] | None = None,
                 tags: dict[str, dict[str, str]] | None = None, *,
                 prepare: dict[str, Callable[[Any], None]] | None = None,
                 cog: dict[str, str] | None = None) -> None:
        self.targets = {k: (Path(p), prof) for k, (p, prof) in targets.items()}
        self.descriptions = descriptions or {}
        self.tags = tags or {}
        self.prepare = prepare or {}
        self.cog = cog or {}
        self._tmp = {k: p.with_name(f".{p.name}.blocks.partial")
                     for k, (p, _) in self.targets.items()}
        self._stack = contextlib.ExitStack()
        self._ds: dict[str, Any] = {}

    def __enter__(self) -> BlockWriter:
        import rasterio

        for k, (path, prof) in self.targets.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            ds = self._stack.enter_context(rasterio.open(self._tmp[k], "w", **prof))
            for i, d in enumerate(self.descriptions.get(k, []), start=1):
                ds.set_band_description(i, str(d))
            if self.tags.get(k):
                ds.update_tags(**self.tags[k])
            if k in self.prepare:
                self.prepare[k](ds)
            self._ds[k] = ds
        return self

    def write(self, key: str, block: np.ndarray, row_off: int, col_off: int) -> None:
        from rasterio.windows import Window

        block = block if block.ndim == 3 else block[None]
        ds = self._ds[key]
        ds.write(block.astype(ds.dtypes[0], copy=False),
                 window=Window(col_off, row_off, block.shape[2], block.shape[1]))

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        from sitsformer.data.cog import to_cog

        try:
            self._stack.close()
            if exc_type is None:
                for k, (path, _) in self.targets.items():
                    if k in self.cog:
                        to_cog(self._tmp[k], path, self.cog[k])
                    else:
                        os.replace(self._tmp[k], path)
        finally:
            for t in self._tmp.values():
                if t.exists():
                    t.unlink()


def iter_chunks(arr: da.Array) -> Iterator[tuple[tuple[int, ...], int, int]]:
    """``(block_index, row_off, col_off)`` of every spatial chunk of a ``(B, H, W)`` array."""
    rows = np.concatenate([[0], np.cumsum(arr.chunks[1])[:-1]])
    cols = np.concatenate([[0], np.cumsum(arr.chunks[2])[:-1]])
    for i, r0 in enumerate(rows):
        for j, c0 in enumerate(cols):
            yield (0, i, j), int(r0), int(c0)


def check_probabilities(src: RasterArray) -> None:
    """Refuse a raster that is not a probability raster: two or more bands, float, or
    integers with their scale stored in the file (``predict --probabilities-dtype uint8``)."""
    if src.shape[0] < 2:
        raise data_error(f"{src.path}: expected a probability raster with one band per class "
                        f"(2 or more bands, as `sitsformer predict --probabilities` writes), "
                        f"found {src.shape[0]} band")
    if src.dtype.kind in "ui" and all(sc not in (None, 0.0, 1.0) for sc in src.scales):
        return
    if src.dtype.kind != "f":
        raise data_error(f"{src.path}: expected float probabilities, or integers with their "
                        "scale stored in the file (as `sitsformer predict --probabilities-dtype "
                        f"uint8` writes them), found dtype {src.dtype} without a scale")


PROBABILITY_TOLERANCE = 1e-4
"""How far outside [0, 1] a stored probability may be (float rounding) before it is refused."""


def open_probabilities(path: str | os.PathLike[str], block: int
                       ) -> tuple[da.Array, RasterArray, float]:
    """A probability raster (:func:`check_probabilities`) as float ``(K, rows, cols)`` dask
    array, its :class:`RasterArray` and its nodata value. Integer rasters are multiplied by
    their stored scale (their nodata becomes :data:`PROBABILITY_NODATA`). Each block is
    checked when it is computed: a value outside [0, 1] (nodata and NaN aside) raises a
    ``DataError`` naming the file, the band, the range found and where."""
    arr, src = open_dask(path, block)
    check_probabilities(src)
    nodata = src.nodata if src.nodata is not None else PROBABILITY_NODATA
    if src.dtype.kind in "ui":
        arr = arr.map_blocks(_unscale, np.asarray(src.scales, np.float32), src.nodata,
                             dtype=np.float32)
        nodata = PROBABILITY_NODATA
    arr = arr.map_blocks(_check_range, src.path, nodata, src.descriptions, dtype=arr.dtype)
    return arr, src, nodata


def _unscale(block: np.ndarray, scales: np.ndarray, nodata: float | None) -> np.ndarray:
    out = block.astype(np.float32) * scales[:, None, None]
    if nodata is not None:
        out[:, (block == nodata).any(0)] = PROBABILITY_NODATA
    return out


def _check_range(block: np.ndarray, path: str, nodata: float, names: Sequence[str | None],
                 block_info: dict[Any, Any] | None = None) -> np.ndarray:
    valid = np.isfinite(block).all(0) & ~(block == nodata).any(0)
    if not valid.any():
        return block
    v = block[:, valid]
    bad = ((v < -PROBABILITY_TOLERANCE) | (v > 1 + PROBABILITY_TOLERANCE)).any(1)
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        name = f" ({names[b]})" if names[b] else ""
        where = ""
        if block_info and block_info.get(0):
            (_, _), (r0, r1), (c0, c1) = block_info[0]["array-location"]
            where = f" in rows {r0}..{r1 - 1}, cols {c0}..{c1 - 1}"
        others = ", ".join(str(i + 1) for i in np.flatnonzero(bad)[1:])
        raise data_error(f"{path}: band {b + 1}{name} holds values from {v[b].min():g} to "
                         f"{v[b].max():g}{where}; expected probabilities in [0, 1] (nodata "
                         f"{nodata:g})" + (f"; bands {others} too" if others else ""))
    return block


def warn_no_crs(src: RasterArray, consequence: str) -> None:
    """Warn (``DataWarning``) that ``src`` has no CRS, naming the file and what it implies."""
    if src.crs is None:
        import warnings

        from sitsformer.data.errors import DataWarning

        warnings.warn(f"{src.path} has no CRS: {consequence}", DataWarning, stacklevel=3)


def check_class_map(src: RasterArray) -> None:
    """Refuse a raster that is not a single-band integer class map."""
    if src.shape[0] != 1 or src.dtype.kind not in "ui":
        raise data_error(f"{src.path}: expected a single-band integer class map (as "
                        f"`sitsformer predict` writes), found {src.shape[0]} band(s) of "
                        f"{src.dtype}")
