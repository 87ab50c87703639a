"""Raster sources for map inference.

A *raster source* is any object with this surface (the data layer's
``sitsformer.data.GeoTiffTimeSeries`` has it, and so has :class:`ArrayRasterSource`):

* ``dates``: ``(T,)`` ``datetime64[D]`` acquisition dates (or None when unknown),
* ``height``, ``width``: raster size in pixels,
* ``crs`` (anything ``rasterio.crs.CRS.from_user_input`` reads, or None),
* ``transform`` (an ``affine.Affine``, or None),
* ``bands``: band names,
* ``read_window(row_off, col_off, h, w) -> dict`` with ``sequence`` float32 ``(T, C, h, w)``,
  ``pixel_mask`` bool ``(T, h, w)`` (True = clear), ``dates`` and ``doy`` ``(T,)``.

Only the window asked for is read, so memory is bounded by the window, not the raster.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from affine import Affine

__all__ = ["ArrayRasterSource", "RasterSource", "open_raster_source"]


@runtime_checkable
class RasterSource(Protocol):
    """The surface map inference needs from a raster time series (see the module doc)."""

    dates: Any
    height: int
    width: int
    crs: Any
    transform: Any
    bands: list[str]

    def read_window(self, row_off: int, col_off: int, h: int, w: int) -> dict[str, Any]: ...


def _doy(dates: np.ndarray) -> np.ndarray:
    d = np.asarray(dates).astype("datetime64[D]")
    return (d - d.astype("datetime64[Y]")).astype(np.int64) + 1


class ArrayRasterSource:
    """An in-memory raster time series ``(T, C, H, W)`` with the raster-source surface.

    Args:
        x: ``(T, C, H, W)`` values (NaN marks missing observations: they become not clear).
        pixel_mask: optional ``(T, H, W)`` True = clear pixel (default: all finite values).
        dates: ``(T,)`` acquisition dates (anything ``numpy.datetime64`` parses), or None.
        bands: band names (default ``band0`` ...).
        crs: coordinate reference system (e.g. ``"EPSG:32633"``), or None.
        transform: ``affine.Affine`` pixel-to-map transform, or None.

    Raises:
        ValueError: on inconsistent shapes (names the argument, expected and found shapes).
    """

    def __init__(self, x: np.ndarray, pixel_mask: np.ndarray | None = None,
                 dates: Any = None, bands: list[str] | None = None, crs: Any = None,
                 transform: Affine | None = None) -> None:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4:
            raise ValueError(f"x must be (T, C, H, W), found shape {x.shape}")
        t, c, h, w = x.shape
        finite = np.isfinite(x).all(axis=1)
        if pixel_mask is None:
            pixel_mask = finite
        else:
            pixel_mask = np.asarray(pixel_mask, dtype=bool)
            if pixel_mask.shape != (t, h, w):
                raise ValueError(f"pixel_mask must be (T, H, W) = {(t, h, w)}, "
                                 f"found {pixel_mask.shape}")
            pixel_mask = pixel_mask & finite
        self.x = np.where(np.isfinite(x), x, 0.0).astype(np.float32)
        self.pixel_mask = pixel_mask
        self.dates = None if dates is None else np.asarray(dates).astype("datetime64[D]")
        if self.dates is not None and self.dates.shape != (t,):
            raise ValueError(f"dates must be (T,) = ({t},), found {self.dates.shape}")
        self.bands = list(bands) if bands is not None else [f"band{i}" for i in range(c)]
        if len(self.bands) != c:
            raise ValueError(f"{len(self.bands)} band names for {c} bands")
        self.crs = crs
        self.transform = transform
        self.height, self.width = h, w

    def read_window(self, row_off: int, col_off: int, h: int, w: int) -> dict[str, Any]:
        """The ``(T, C, h, w)`` block at ``(row_off, col_off)`` (must lie inside the raster)."""
        if row_off < 0 or col_off < 0 or row_off + h > self.height or col_off + w > self.width:
            raise ValueError(f"window rows {row_off}..{row_off + h}, cols {col_off}..{col_off + w} "
                             f"is outside the {self.height}x{self.width} raster")
        out: dict[str, Any] = {
            "sequence": self.x[:, :, row_off:row_off + h, col_off:col_off + w],
            "pixel_mask": self.pixel_mask[:, row_off:row_off + h, col_off:col_off + w],
        }
        if self.dates is not None:
            out["dates"] = self.dates
            out["doy"] = _doy(self.dates)
        return out

    @classmethod
    def from_slovenia_npz(cls, path: str | os.PathLike[str]) -> tuple[ArrayRasterSource,
                                                                     np.ndarray, list[str]]:
        """The Slovenia EOPatch (``s2_slovenia_eopatch.npz``) as a source.

        Returns:
            ``(source, labels, class_names)``: labels ``(H, W)`` are the LULC codes (0 = no data),
            class names are indexed by code.
        """
        with np.load(path, allow_pickle=False) as z:
            x = z["x"][0]
            mask = z["mask"][0]
            dates = np.array([d[:10] for d in z["dates"]], dtype="datetime64[D]")
            bands = [str(b) for b in z["bands"]]
            epsg = int(z["crs_epsg"])
            min_x, _, _, max_y = (float(v) for v in z["bbox"])
            labels = z["y_pixel"][0]
            classes = [str(c) for c in z["classes"]]
        h, w = x.shape[-2:]
        transform = Affine(10.0, 0.0, min_x, 0.0, -10.0, max_y)
        return (cls(x, mask, dates, bands, f"EPSG:{epsg}", transform), labels, classes)


def open_raster_source(source: Any, **options: Any) -> Any:
    """A raster source from a path (via ``sitsformer.data``) or an object that already is one.

    Args:
        source: a raster-source object, a local STAC ``.json`` (read as a lazy
            :class:`sitsformer.data.cube.Cube`), or a path to a folder of per-date GeoTIFFs read by
            ``sitsformer.data.GeoTiffTimeSeries`` (a sen2r-style folder holding one data and
            cloud sub-folder, such as ``SCL`` or ``QAI``, is read as data + cloud layer: the
            data layer's ``split_data_cloud_folders``), or one raster file holding every date
            (``sitsformer.data.stacked.StackedGeoTiff``: dates and bands from the band
            descriptions, a ``<stem>_dates.txt`` beside it, or the ``dates``, ``n_bands``,
            ``layout`` options).
        **options: passed to the data layer's reader.

    Raises:
        FileNotFoundError: the path does not exist.
        TypeError: ``source`` is neither a path nor a raster source.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"raster source not found: {path}")
        if path.suffix.lower() == ".json":  # a local STAC catalog / item collection
            from sitsformer.data.cube import open_cube

            return open_cube(path, **options)
        from sitsformer.data.geotiff import open_stack, split_data_cloud_folders

        if path.is_dir() and "cloud_folder" not in options:
            path, cloud = split_data_cloud_folders(path)
            if cloud is not None:
                options["cloud_folder"] = cloud
        return open_stack(path, **options)  # a folder of per-date rasters, or one stack
    missing = [a for a in ("height", "width", "bands", "read_window") if not hasattr(source, a)]
    if missing:
        raise TypeError(f"expected a raster source (path or object with height, width, bands, "
                        f"read_window), got {type(source).__name__} without {missing}")
    return source
