"""Folders of per-date GeoTIFFs (date in the file name), with an optional cloud layer.

:class:`GeoTiffTimeSeries` reads windows of the stack (for map inference: memory bounded by the
window); :func:`read_geotiff_folder` turns the stack plus a label raster or label polygons into a
dataset of labelled pixels (or patches around them).

File-name dates work out of the box for sen2r (``S2A2A_20200109_022_roi_NDVI_10.tif``), FORCE
(``20200109_LEVEL2_SEN2A_BOA.tif``), Sentinel-2 product names
(``S2A_MSIL2A_20200109T101401_N0213_R022_T32TQQ_...``: the first date followed by ``T`` + time,
the sensing time) and ISO dates (``2020-01-09``). Pass ``pattern`` (a regular expression with a
group named ``date``, or its first group) and ``date_format`` for anything else.
"""

from __future__ import annotations

import re
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import rasterio
import rasterio.errors
from rasterio.enums import Resampling
from rasterio.warp import reproject
from rasterio.windows import Window, from_bounds
from rasterio.windows import transform as window_transform

from sitsformer.data.dataset import RasterPixelDataset, add_exclusion, dates_to_doy
from sitsformer.data.errors import (BandCountError, CorruptFileError, DataError, DataWarning,
                                    DateParseError, GeoReferenceError, LabelError)

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt")
DEFAULT_DATE_PATTERNS = (
    (re.compile(r"(?<!\d)(?P<date>\d{4}-\d{2}-\d{2})(?!\d)"), "%Y-%m-%d"),
    (re.compile(r"(?<!\d)(?P<date>\d{8})(?=T\d{6})"), "%Y%m%d"),  # Sentinel-2 product names
    (re.compile(r"(?<!\d)(?P<date>\d{8})(?!\d)"), "%Y%m%d"),  # sen2r, FORCE
)
SCL_CLEAR = (4, 5, 6)  # Sentinel-2 scene classification: vegetation, not vegetated, water
_NOT_CLEAR = {"scl": 0, "cloud_mask": 1, "clear_mask": 0, "probability": 1.0, "force_qai": 1}
CLOUD_FOLDER_NAMES = ("SCL", "CLM", "CLOUD", "CLOUDS", "MASK", "QA", "QAI")
_FORCE = re.compile(r"^\d{8}_LEVEL2_[A-Z0-9]+_(?P<product>[A-Z]{3})\.", re.I)


def split_data_cloud_folders(folder: Path) -> tuple[Path, Path | None]:
    """A sen2r-style parent folder (one data sub-folder + one ``SCL``-like sub-folder).

    Returns ``(data_folder, cloud_folder)``; ``(folder, None)`` when ``folder`` itself holds
    rasters or the layout is not that one.
    """
    if any(f.suffix.lower() in RASTER_SUFFIXES for f in folder.iterdir() if f.is_file()):
        return folder, None
    subs = sorted(d for d in folder.iterdir() if d.is_dir())
    clouds = [d for d in subs if d.name.upper() in CLOUD_FOLDER_NAMES]
    data = [d for d in subs if d not in clouds]
    if len(data) == 1 and len(clouds) <= 1:
        return data[0], (clouds[0] if clouds else None)
    return folder, None


def _reason(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return re.sub(r"^'[^']*' ", "", text[0]) if text else type(err).__name__  # no 2nd path


def open_raster(path: str | Path, check_complete: bool = False) -> Any:
    """``rasterio.open(path)`` for reading, with one :class:`CorruptFileError` line naming the
    file when it is unreadable; with ``check_complete`` a TIFF whose first or last block lies
    beyond the end of the file is reported as truncated (a cut file often still opens, but
    without its geo-referencing, and would otherwise look like a grid mismatch)."""
    path = Path(path)
    try:
        ds = rasterio.open(path)
    except rasterio.errors.RasterioIOError as err:
        size = path.stat().st_size if path.exists() else 0
        raise CorruptFileError(f"{path}: unreadable raster ({size} bytes; {_reason(err)}); the "
                               "file is corrupt, truncated or not a GeoTIFF") from None
    if check_complete and ds.driver == "GTiff":
        size = path.stat().st_size
        rows, cols = ds.block_shapes[0] if ds.block_shapes else (ds.height, ds.width)
        last = ((ds.width - 1) // max(cols, 1), (ds.height - 1) // max(rows, 1))
        for band in sorted({1, ds.count}):
            for x, y in ((0, 0), last):
                off = ds.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=band)
                n = ds.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=band)
                if off and n and int(off) + int(n) > size:
                    ds.close()
                    raise CorruptFileError(
                        f"{path}: truncated GeoTIFF: band {band} data end at byte "
                        f"{int(off) + int(n)} but the file has {size} bytes")
    return ds


def _read(ds: Any, path: Path, **kwargs: Any) -> np.ndarray:
    try:
        return ds.read(**kwargs)
    except rasterio.errors.RasterioIOError as err:
        raise CorruptFileError(f"{path}: cannot read the raster data ({_reason(err)}); the "
                               "file is corrupt or truncated") from None


def _xy(t: Any, col: float, row: float) -> tuple[float, float]:
    """Map coordinates of a (col, row) grid position under an affine transform."""
    return t.a * col + t.b * row + t.c, t.d * col + t.e * row + t.f


def parse_file_date(name: str, pattern: str | None = None, date_format: str | None = None
                    ) -> np.datetime64:
    """The acquisition date in a file name.

    Raises:
        DateParseError: naming the file when no date is found or it is not a calendar date.
    """
    candidates = ([(re.compile(pattern), date_format or "%Y%m%d")] if pattern
                  else list(DEFAULT_DATE_PATTERNS))
    for regex, fmt in candidates:
        m = regex.search(name)
        if not m:
            continue
        text = m.group("date") if "date" in regex.groupindex else m.group(1)
        try:
            return np.datetime64(datetime.strptime(text, fmt).date(), "D")
        except ValueError as err:
            raise DateParseError(f"{name}: found {text!r} where a date ({fmt}) was expected "
                                 f"({err})") from err
    raise DateParseError(f"{name}: no date found in the file name (expected e.g. YYYYMMDD, "
                         f"YYYY-MM-DD; pass pattern= with a 'date' group)")


def _list_dated(folder: Path, pattern: str | None, date_format: str | None, glob: str | None
                ) -> list[tuple[np.datetime64, Path]]:
    if folder.is_file() and folder.suffix.lower() in RASTER_SUFFIXES:
        raise DataError(f"{folder}: a single raster, not a folder of per-date rasters; a "
                        "stack of every date in one file is read by open_stack / StackedGeoTiff")
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    files = sorted(folder.glob(glob)) if glob else sorted(
        f for f in folder.iterdir() if f.suffix.lower() in RASTER_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no raster files ({', '.join(RASTER_SUFFIXES)})")
    dated = [(parse_file_date(f.name, pattern, date_format), f) for f in files]
    dated.sort(key=lambda p: (p[0], p[1].name))
    return dated


def open_stack(path: str | Path, **options: Any) -> Any:
    """The raster time series at ``path``: a folder of per-date rasters
    (:class:`GeoTiffTimeSeries`) or one raster holding every date
    (:class:`~sitsformer.data.stacked.StackedGeoTiff`); ``options`` go to that reader."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in RASTER_SUFFIXES:
        from sitsformer.data.stacked import StackedGeoTiff

        return StackedGeoTiff(path, **options)
    return GeoTiffTimeSeries(path, **options)



def crs_string(crs: Any) -> str | None:
    """``"EPSG:<code>"`` when the CRS has one, else its WKT (None without a CRS)."""
    if crs is None:
        return None
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()

class GeoTiffTimeSeries:
    """A per-date GeoTIFF stack read window by window.

    Args:
        folder: folder of one multi-band raster per date.
        pattern, date_format: how to find the date in a file name (see module docs).
        glob: optional file glob (e.g. ``"*_NDVI_10.tif"``).
        cloud_folder: optional folder of per-date cloud/scene-classification rasters, matched
            by date, on any grid (nearest-neighbour resampled onto the data grid per window).
        cloud_kind: ``"scl"`` (clear where the value is in ``clear_values``, default
            vegetation/not-vegetated/water), ``"cloud_mask"`` (non-zero = cloudy),
            ``"clear_mask"`` (non-zero = clear), ``"probability"`` (cloudy above
            ``cloud_threshold``) or ``"force_qai"`` (FORCE quality bits: clear when valid and
            free of cloud, shadow and snow). Cloud-layer nodata counts as not clear.

    Layouts found without options: a sen2r parent folder (one data sub-folder and one
    ``SCL``-like sub-folder) and a FORCE level-2 folder (``*_BOA.tif`` data with ``*_QAI.tif``
    quality in the same folder).
        bands: band names (default: band descriptions, else the file stem's last token for
            single-band files, else ``band0..``).
        scale: the factor the values are stored with; they are divided by it when read
            (``10000`` turns reflectance x 10000 into reflectance, the library's one meaning of
            ``scale``); None keeps them as stored.
        nodata: overrides the files' nodata value.

    Attributes:
        dates (datetime64[D] ``(T,)``), height, width, crs, transform (Affine), bands, nodata,
        files, cloud_files (``None`` where a date has no cloud layer).
    """

    def __init__(self, folder: str | Path, pattern: str | None = None, *,
                 date_format: str | None = None, glob: str | None = None,
                 cloud_folder: str | Path | None = None, cloud_pattern: str | None = None,
                 cloud_glob: str | None = None, cloud_kind: str = "scl",
                 clear_values: Sequence[int] = SCL_CLEAR, cloud_threshold: float = 0.5,
                 bands: Sequence[str] | None = None, scale: float | None = None,
                 nodata: float | None = None) -> None:
        self.folder = Path(folder)
        if self.folder.is_dir() and cloud_folder is None and glob is None:
            self.folder, cloud_folder = split_data_cloud_folders(self.folder)
        if self.folder.is_dir() and glob is None:
            products = {m["product"].upper() for f in self.folder.iterdir()
                        if (m := _FORCE.match(f.name))}
            if "BOA" in products:  # FORCE level-2 folder: BOA reflectance + QAI quality bits
                glob = "*_BOA.tif"
                if "QAI" in products and cloud_folder is None:
                    cloud_folder, cloud_glob, cloud_kind = self.folder, "*_QAI.tif", "force_qai"
        dated = _list_dated(self.folder, pattern, date_format, glob)
        self.files = [f for _, f in dated]
        self.dates = np.array([d for d, _ in dated], dtype="datetime64[D]")
        with open_raster(self.files[0], check_complete=True) as ds:
            self.height, self.width, self.count = ds.height, ds.width, ds.count
            self.crs, self.transform = ds.crs, ds.transform
            self.nodata = ds.nodata if nodata is None else nodata
            descriptions = ds.descriptions
        for f in self.files[1:]:
            with open_raster(f, check_complete=True) as ds:
                if ds.count != self.count:
                    raise BandCountError(f"{f}: {ds.count} bands, expected {self.count} "
                                         f"(as in {self.files[0].name})")
                if (ds.height, ds.width) != (self.height, self.width) or \
                        ds.transform != self.transform or ds.crs != self.crs:
                    raise GeoReferenceError(
                        f"{f}: grid {ds.height}x{ds.width} {ds.transform} {ds.crs} differs "
                        f"from {self.files[0].name} ({self.height}x{self.width} "
                        f"{self.transform} {self.crs})")
        if bands is not None:
            if len(bands) != self.count:
                raise BandCountError(f"{self.files[0]}: {self.count} bands in the file, "
                                     f"{len(bands)} band names given ({list(bands)})")
            self.bands = list(bands)
        elif all(descriptions):
            self.bands = list(descriptions)
        elif self.count == 1:
            stem = re.sub(r"_\d+m?$", "", self.files[0].stem)
            self.bands = [stem.split("_")[-1]]
        else:
            self.bands = [f"band{i}" for i in range(self.count)]
        self.scale = scale
        self.cloud_kind, self.clear_values = cloud_kind, tuple(clear_values)
        self.cloud_threshold = cloud_threshold
        if cloud_kind not in ("scl", "cloud_mask", "clear_mask", "probability", "force_qai"):
            raise DataError(f"cloud_kind must be scl/cloud_mask/clear_mask/probability/"
                            f"force_qai, got {cloud_kind!r}")
        self.cloud_files: list[Path | None] | None = None
        self.missing_cloud_dates: list[str] = []
        if cloud_folder is not None:
            by_date: dict[np.datetime64, Path] = {}
            for d, f in _list_dated(Path(cloud_folder), cloud_pattern, date_format, cloud_glob):
                by_date.setdefault(d, f)
            self.cloud_files = [by_date.get(d) for d in self.dates]
            self.missing_cloud_dates = [str(d) for d, f in zip(self.dates, self.cloud_files)
                                        if f is None]
            if self.missing_cloud_dates:
                warnings.warn(f"{cloud_folder}: no cloud layer for {len(self.missing_cloud_dates)}"
                              f" date(s) ({', '.join(self.missing_cloud_dates[:3])}...); those "
                              f"dates are taken as clear", DataWarning, stacklevel=2)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def doy(self) -> np.ndarray:
        return dates_to_doy(self.dates)

    @property
    def crs_string(self) -> str | None:
        return crs_string(self.crs)

    def _clear(self, values: np.ndarray, nodata: float | None) -> np.ndarray:
        valid = np.ones(values.shape, bool) if nodata is None else values != nodata
        if self.cloud_kind == "scl":
            clear = np.isin(values, self.clear_values)
        elif self.cloud_kind == "cloud_mask":
            clear = values == 0
        elif self.cloud_kind == "clear_mask":
            clear = values != 0
        elif self.cloud_kind == "force_qai":
            # FORCE QAI bits: 0 valid (0 = valid), 1-2 cloud state, 3 cloud shadow, 4 snow
            clear = (values.astype(np.int64) & 0b11111) == 0
        else:
            clear = values <= self.cloud_threshold
        return clear & valid

    def _cloud_window(self, path: Path, dst_transform: Any, h: int, w: int) -> np.ndarray:
        """Clear mask of one cloud raster resampled (nearest) onto the destination grid."""
        with open_raster(path) as src:
            # cells the cloud layer does not cover get its nodata, else a "not clear" value
            fill = src.nodata if src.nodata is not None else _NOT_CLEAR[self.cloud_kind]
            left, top = _xy(dst_transform, 0, 0)
            right, bottom = _xy(dst_transform, w, h)
            if src.crs == self.crs or src.crs is None:
                win = from_bounds(min(left, right), min(top, bottom), max(left, right),
                                  max(top, bottom), src.transform)
                win = Window(int(np.floor(win.col_off)) - 1, int(np.floor(win.row_off)) - 1,
                             int(np.ceil(win.width)) + 3, int(np.ceil(win.height)) + 3)
                data = _read(src, path, indexes=1, window=win, boundless=True,
                             fill_value=fill)
                src_transform = window_transform(win, src.transform)
            else:  # another CRS: reproject from the whole layer (cloud layers are small)
                data, src_transform = _read(src, path, indexes=1), src.transform
            dst = np.full((h, w), fill, dtype=data.dtype)
            reproject(data, dst, src_transform=src_transform, src_crs=src.crs or self.crs,
                      dst_transform=dst_transform, dst_crs=self.crs,
                      resampling=Resampling.nearest, src_nodata=src.nodata, dst_nodata=fill)
            return self._clear(dst, src.nodata)

    def read_window(self, row_off: int, col_off: int, height: int, width: int
                    ) -> dict[str, np.ndarray]:
        """Read one window of every date (only that window is read from disk).

        Returns:
            ``sequence`` float32 ``(T, C, h, w)`` (divided by ``scale``, 0 at nodata),
            ``pixel_mask`` bool ``(T, h, w)`` True = clear (cloud layer resampled onto the data
            grid; nodata False), ``dates`` datetime64[D] ``(T,)``, ``doy`` int64 ``(T,)``,
            ``transform`` (Affine of the window).
        """
        if row_off < 0 or col_off < 0 or height < 1 or width < 1 or \
                row_off + height > self.height or col_off + width > self.width:
            raise DataError(f"{self.folder}: window rows {row_off}..{row_off + height}, cols "
                            f"{col_off}..{col_off + width} outside the raster "
                            f"{self.height}x{self.width}")
        win = Window(col_off, row_off, width, height)
        t = len(self.files)
        seq = np.empty((t, self.count, height, width), np.float32)
        pm = np.ones((t, height, width), bool)
        wt = window_transform(win, self.transform)
        for i, f in enumerate(self.files):
            with open_raster(f) as ds:
                data = _read(ds, f, window=win).astype(np.float32)
            bad = ~np.isfinite(data)
            if self.nodata is not None and np.isfinite(self.nodata):
                bad |= data == np.float32(self.nodata)
            pm[i] = ~bad.any(axis=0)
            seq[i] = np.where(bad, 0.0, data)
            if self.cloud_files is not None and self.cloud_files[i] is not None:
                pm[i] &= self._cloud_window(self.cloud_files[i], wt, height, width)
        if self.scale is not None:
            seq /= np.float32(self.scale)
        return {"sequence": seq, "pixel_mask": pm, "dates": self.dates.copy(),
                "doy": dates_to_doy(self.dates), "transform": wt}

    def meta(self) -> dict[str, Any]:
        return {"source": str(self.folder), "format": "geotiff", "crs": self.crs_string,
                "transform": list(self.transform)[:6],
                # meta["scale"] is the factor still in the values (unknown when not given);
                # a factor the reader already divided out is recorded as scale_applied.
                "scale": None, "scale_applied": self.scale,
                "nodata": self.nodata, "height": self.height, "width": self.width,
                "date_range": [str(self.dates.min()), str(self.dates.max())],
                "files": [f.name for f in self.files]}


def _label_colors(path: Path, codes: list[int]) -> list[str] | None:
    """``#rrggbb`` of each code from a label raster's colour table, or None when it has none
    (or leaves a code out)."""
    with open_raster(path) as src:
        if src.count != 1 or src.dtypes[0] not in ("uint8", "uint16"):
            return None
        try:
            table = src.colormap(1)
        except ValueError:
            return None
    if not all(c in table for c in codes):
        return None
    return ["#{:02x}{:02x}{:02x}".format(*table[c][:3]) for c in codes]


def _read_label_raster(path: Path, stack: GeoTiffTimeSeries) -> tuple[np.ndarray, float | None]:
    with open_raster(path) as src:
        nodata = src.nodata
        if (src.height, src.width) == (stack.height, stack.width) and \
                src.transform == stack.transform and (src.crs == stack.crs or src.crs is None):
            return _read(src, path, indexes=1), nodata
        fill = nodata if nodata is not None else 0
        dst = np.full((stack.height, stack.width), fill, dtype=src.dtypes[0])
        reproject(rasterio.band(src, 1), dst, dst_transform=stack.transform, dst_crs=stack.crs,
                  resampling=Resampling.nearest, src_nodata=fill, dst_nodata=fill)
        return dst, fill


def read_label_features(path: Path, crs: Any, column: str | None, meta: dict[str, Any]
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Label polygons or points of a vector file in ``crs`` (a rasterio CRS or None):
    ``(shapely geometries, class values)``; the class column is found as documented in
    :func:`read_geotiff_folder`."""
    import pyogrio.raw
    import shapely
    from pyproj import Transformer

    info, _, geoms, fields = pyogrio.raw.read(path)
    names = list(info["fields"])
    if column is None:
        column = next((c for c in names if c.lower() in ("class", "label", "class_name",
                                                           "classname", "code", "lc_id")), None)
    if column is None or column not in names:
        raise LabelError(f"{path}: class column {column!r} not found; columns: {names}")
    values = np.asarray(fields[names.index(column)])
    shapes = shapely.from_wkb(geoms)
    src_crs = info.get("crs")
    if src_crs and crs is not None:
        tr = Transformer.from_crs(src_crs, crs.to_wkt(), always_xy=True)
        shapes = np.array([shapely.transform(g, lambda xy: np.column_stack(
            tr.transform(xy[:, 0], xy[:, 1]))) for g in shapes], dtype=object)
        epsg = crs.to_epsg()
        if str(src_crs) != (f"EPSG:{epsg}" if epsg else crs.to_wkt()):
            meta["label_polygons_reprojected_from"] = str(src_crs)
    return shapes, values


def _read_label_polygons(path: Path, stack: GeoTiffTimeSeries, column: str | None,
                         meta: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Rasterise label polygons: (class value index raster, polygon id raster, class values)."""
    import shapely
    from rasterio.features import rasterize

    shapes, values = read_label_features(path, stack.crs, column, meta)
    classes = sorted({v for v in values.tolist() if v is not None})
    index = {v: i for i, v in enumerate(classes)}
    left, top = _xy(stack.transform, 0, 0)
    right, bottom = _xy(stack.transform, stack.width, stack.height)
    bounds = shapely.box(min(left, right), min(top, bottom), max(left, right), max(top, bottom))
    cls = np.full((stack.height, stack.width), -1, np.int64)
    pid = np.full((stack.height, stack.width), -1, np.int64)
    outside, inside = [], []
    for i, (g, v) in enumerate(zip(shapes, values)):
        if g is None or v is None or not g.intersects(bounds):
            outside.append(i)
            continue
        inside.append(i)
    if outside:
        add_exclusion(meta, "label_polygons_outside_raster", len(outside),
                      [f"{path.name} feature {i}" for i in outside])
        warnings.warn(f"{path}: {len(outside)} label polygon(s) lie outside the raster "
                      f"(features {outside[:5]}...); see meta['exclusions']", DataWarning,
                      stacklevel=3)
    if not inside:
        raise GeoReferenceError(f"{path}: no label polygon overlaps the raster {stack.folder} "
                                f"(bounds {bounds.bounds}, CRS {stack.crs_string})")
    shape = (stack.height, stack.width)
    cls = rasterize(((shapes[i], index[values[i]]) for i in inside), out_shape=shape,
                    transform=stack.transform, fill=-1, dtype="int32").astype(np.int64)
    pid = rasterize(((shapes[i], i) for i in inside), out_shape=shape,
                    transform=stack.transform, fill=-1, dtype="int32").astype(np.int64)
    empty = sorted(set(inside) - set(np.unique(pid[pid >= 0]).tolist()))
    if empty:
        add_exclusion(meta, "label_polygons_without_pixel", len(empty),
                      [f"{path.name} feature {i}" for i in empty])
    return cls, pid, classes


def read_geotiff_folder(folder: str | Path, *, labels: str | Path | None = None,
                        label_column: str | None = None,
                        class_names: dict[int, str] | Sequence[str] | None = None,
                        label_nodata: Sequence[int] = (0,), patch_size: int = 1,
                        on_unknown_label: str = "error", on_no_clear: str = "exclude",
                        **stack_options: Any) -> RasterPixelDataset:
    """Per-date GeoTIFFs plus labels -> a dataset of labelled pixels (or patches around them).

    Args:
        folder: the per-date rasters (options of :class:`GeoTiffTimeSeries` pass through), or
            one raster holding every date (options of
            :class:`~sitsformer.data.stacked.StackedGeoTiff`: ``dates``, ``n_bands``, ``layout``).
        labels: a label raster (``.tif``; resampled by nearest neighbour onto the data grid
            if needed) or label polygons (GeoPackage/Shapefile/GeoJSON; reprojected to the
            raster CRS; polygons outside the raster are counted in ``meta['exclusions']``).
            None: every pixel is an unlabelled sample.
        label_column: class column of the polygons (default: ``class``/``label``/``code``...).
        class_names: for label rasters, ``{code: name}`` or names of codes ``0..K-1``. Codes
            not in it raise :class:`LabelError` (``on_unknown_label="exclude"`` counts them
            instead). Default: the codes present, as strings.
        label_nodata: label raster codes meaning "no label" (excluded, counted).
        patch_size: 1 for pixel time series, or an odd patch side around each pixel.
    """
    if isinstance(class_names, str):  # would be one class per character
        raise LabelError(f"{folder}: class_names must be {{code: name}} or a list of names, got "
                         f"the string {class_names!r} (on the command line: -o "
                         "'class_names={1: wheat, 2: maize}' or -o 'class_names=[wheat, maize]')")
    stack = open_stack(folder, **stack_options)
    window = stack.read_window(0, 0, stack.height, stack.width)
    meta = stack.meta()
    meta["exclusions"] = {}
    add_exclusion(meta, "nodata_or_cloudy_observations", int((~window["pixel_mask"]).sum()))
    if stack.missing_cloud_dates:
        add_exclusion(meta, "dates_without_cloud_layer_taken_as_clear",
                      len(stack.missing_cloud_dates), stack.missing_cloud_dates)
    classes: list[str] | None = None
    groups = None
    if labels is None:
        rows, cols = np.divmod(np.arange(stack.height * stack.width), stack.width)
        lab = None
    else:
        labels = Path(labels)
        if not labels.exists():
            raise DataError(f"{labels}: label file not found")
        if labels.suffix.lower() in RASTER_SUFFIXES:
            raw, lnodata = _read_label_raster(labels, stack)
            raw = raw.astype(np.int64)
            skip = np.isin(raw, list(label_nodata)) | (
                (raw == lnodata) if lnodata is not None else False)
            add_exclusion(meta, "pixels_without_label", int(skip.sum()))
            if class_names is None:
                codes = np.unique(raw[~skip])
                cmap = {int(c): str(int(c)) for c in codes}
            elif isinstance(class_names, dict):
                cmap = {int(k): str(v) for k, v in class_names.items()}
            else:
                cmap = {i: str(n) for i, n in enumerate(class_names)}
            codes_sorted = sorted(cmap)
            unknown = ~skip & ~np.isin(raw, codes_sorted)
            if unknown.any():
                r, c = np.argwhere(unknown)[0]
                if on_unknown_label == "error":
                    raise LabelError(f"{labels}: label code {raw[r, c]} at pixel (row {r}, col "
                                     f"{c}) is not in the class list {codes_sorted}")
                add_exclusion(meta, "pixels_with_unknown_label", int(unknown.sum()),
                              [f"{labels.name} (row {r}, col {c}) code {raw[r, c]}"])
                skip |= unknown
            rows, cols = np.nonzero(~skip)
            lab = np.searchsorted(codes_sorted, raw[rows, cols])
            classes = [cmap[c] for c in codes_sorted]
            meta["class_codes"] = codes_sorted
            colors = _label_colors(labels, codes_sorted)
            if colors is not None:  # the label raster's colour table: the maps' colours
                meta["class_colors"] = colors
        else:
            cls, pid, values = _read_label_polygons(labels, stack, label_column, meta)
            rows, cols = np.nonzero(cls >= 0)
            lab, groups = cls[rows, cols], pid[rows, cols]
            classes = [str(v) for v in values]
        meta["labels"] = str(labels)
    return RasterPixelDataset(window["sequence"], window["pixel_mask"], stack.dates, rows, cols,
                              patch_size=patch_size, labels=lab, groups=groups, classes=classes,
                              bands=stack.bands, meta=meta, on_no_clear=on_no_clear)
