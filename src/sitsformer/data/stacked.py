"""One multi-band raster holding every date: the stacks users export.

Google Earth Engine ``Export.image`` of ``collection.toBands()``, openEO and xarray
``to_raster`` stacks, and the SITS-Former authors' ``test_img.tif`` (447 bands = 149 dates x 3
bands) hold a whole time series in one file, ``T x C`` bands. :class:`StackedGeoTiff` reads
such a file window by window with the raster-source surface of
:class:`~sitsformer.data.GeoTiffTimeSeries` (same values, masks, dates for the same data).

Which band is which date and band is resolved, in this order, and nothing is guessed:

1. **band descriptions** (GDAL band names, what GEE and ``rioxarray`` write):
   ``<band>_<date>`` (``B4_20200105``) or ``<date>_<band>`` (``20200105_B4``; also GEE's
   Sentinel-2 ``system:index`` prefix ``20200105T104431_..._B4``), dates ``YYYYMMDD`` or
   ``YYYY-MM-DD``. The layout (date-major ``d1.b1, d1.b2, ..., d2.b1, ...`` or band-major
   ``b1.d1, b1.d2, ..., b2.d1, ...``) follows from the order of the dates.
   Per-band tags (GDAL metadata) ``date``/``datetime``/``time`` (a date, or an ISO time)
   with ``band``/``band_name``/``name`` (or a plain band-name description) count the same;
2. a **sidecar dates file** beside the raster, ``<stem>_dates.txt`` or ``<stem>_dates.csv``
   (one date per line, ``YYYY-MM-DD`` or ``YYYYMMDD``; the first field of each line, a header
   line without a date is skipped);
3. **options**: ``dates`` (a dates file as above, or a list of dates; ``False`` reads the file
   as undated), ``n_bands`` (bands per date), ``layout`` (``"date_major"`` or
   ``"band_major"``), ``bands`` (band names).

Without dates from any of these, ``n_bands`` (or ``bands``) alone reads the file as an undated
series (``dates`` is None: the time axis is the step positions 1..T, what a model trained
without dates, ``time_axis="t_index"``, was trained on). Descriptions where only some bands
carry a date, a band count that is not a multiple of ``n_bands``, dates that disagree with the
descriptions, and a layout that cannot be told apart are errors naming the file, what was found
and the option that decides. Time steps are put in date order. Masked observations are the
file's nodata value or NaN (a stack has no separate cloud layer: mask clouds before export).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from sitsformer.data.dataset import dates_to_doy
from sitsformer.data.errors import BandCountError, DataError, DateParseError

__all__ = ["LAYOUTS", "StackedGeoTiff", "read_dates_file", "sidecar_dates_file"]

LAYOUTS = ("date_major", "band_major")
_DATE = r"(?P<date>\d{8}|\d{4}-\d{2}-\d{2})"
_BAND = r"(?P<band>[A-Za-z][A-Za-z0-9]*)"
_DESCRIPTION_PATTERNS = (
    re.compile(rf"^{_BAND}_{_DATE}$"),  # B4_20200105
    re.compile(rf"^{_DATE}_{_BAND}$"),  # 20200105_B4
    re.compile(rf"^{_DATE}T\d{{6}}\w*_{_BAND}$"),  # GEE S2 system:index prefix
)
_ANY_DATE = re.compile(r"(?<!\d)(\d{8}|\d{4}-\d{2}-\d{2})(?!\d)")
_DATE_TAGS = ("date", "datetime", "acquisition_date", "date_acquired", "start_datetime", "time")
_BAND_TAGS = ("band", "band_name", "name")
_HINT = ("dates=FILE (one date per time step) with n_bands=C and layout=date_major|band_major, "
         "or n_bands=C and layout= alone for an undated series")


def _to_date(text: str) -> np.datetime64 | None:
    text = text.strip().strip('"').strip("'")
    m = re.fullmatch(r"(\d{4})-?(\d{2})-?(\d{2})(?:[T ].*)?", text)
    if not m:
        return None
    try:
        return np.datetime64(f"{m[1]}-{m[2]}-{m[3]}", "D")
    except ValueError:
        return None


def sidecar_dates_file(path: str | Path) -> Path | None:
    """The dates file beside a stacked raster (``<stem>_dates.txt``/``.csv``), or None."""
    path = Path(path)
    for suffix in (".txt", ".csv"):
        cand = path.with_name(f"{path.stem}_dates{suffix}")
        if cand.is_file():
            return cand
    return None


def read_dates_file(path: str | Path) -> np.ndarray:
    """The dates of a dates file: one per line, the first field of each line (fields split by
    ``,``, ``;``, tabs or spaces); a first line without a date is a header and skipped.

    Raises:
        DateParseError: naming the file and line of a field that is not a date.
    """
    path = Path(path)
    out = []
    header_possible = True
    for no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        first = re.split(r"[,;\t ]+", line.strip())[0]
        d = _to_date(first)
        if d is None and header_possible:
            header_possible = False
            continue  # a header line
        header_possible = False
        if d is None:
            raise DateParseError(f"{path} line {no}: {first!r} is not a date (expected "
                                 "YYYY-MM-DD or YYYYMMDD)")
        out.append(d)
    if not out:
        raise DateParseError(f"{path}: no dates found (one date per line expected)")
    return np.array(out, dtype="datetime64[D]")


def _dates_option(value: Any, where: str) -> tuple[np.ndarray, str]:
    """``dates=`` as given: a file, a list of dates, or a comma-separated string."""
    if isinstance(value, (str, Path)) and Path(value).is_file():
        return read_dates_file(value), f"dates file {value}"
    if isinstance(value, Path) or (isinstance(value, str) and re.search(r"\.(txt|csv)$", value)):
        raise DataError(f"{where}: dates={str(value)!r}: no such dates file")
    items = [v for v in re.split(r"[,;\s]+", value.strip()) if v] if isinstance(value, str) \
        else list(value)
    out = []
    for v in items:
        d = _to_date(str(v))
        if d is None:
            raise DateParseError(f"{where}: dates={value!r}: {str(v)!r} is neither an existing "
                                 "dates file nor a date (YYYY-MM-DD or YYYYMMDD)")
        out.append(d)
    return np.array(out, dtype="datetime64[D]"), "the dates option"


def _parse_description(text: str | None) -> tuple[str | None, np.datetime64 | None]:
    if not text:
        return None, None
    for regex in _DESCRIPTION_PATTERNS:
        m = regex.match(text)
        if m:
            return m["band"], _to_date(m["date"])
    m = _ANY_DATE.search(text)
    return None, (_to_date(m[1]) if m else None)


def _band_date(description: str | None, tags: dict[str, str]
               ) -> tuple[str | None, np.datetime64 | None, bool]:
    """(band, date, the date came from a tag) of one file band: its description first, then
    its per-band tags (``date``/``datetime``/``time``...; ``band``/``band_name``/``name``)."""
    band, date = _parse_description(description)
    if date is not None:
        return band, date, False
    low = {k.lower(): str(v) for k, v in tags.items()}
    date = next((d for k in _DATE_TAGS if k in low and (d := _to_date(low[k])) is not None), None)
    if date is None:
        return None, None, False
    band = next((low[k] for k in _BAND_TAGS if low.get(k)), None)
    if band is None and description and not _ANY_DATE.search(description):
        band = description  # a plain band name, the date in a tag
    return band, date, True


def _order(layout: str, t: int, c: int) -> np.ndarray:
    """``(T, C)`` 0-based file band index of each date and band."""
    ti, ci = np.meshgrid(np.arange(t), np.arange(c), indexing="ij")
    return ti * c + ci if layout == "date_major" else ci * t + ti


def _layouts_fitting(values: Sequence[Any], t: int, c: int) -> list[str]:
    """The layouts under which ``values`` (one per file band) depend on the band only
    (descriptions without dates) or on the date only (dates)."""
    arr = np.asarray([str(v) for v in values], dtype=object)
    return [lay for lay in LAYOUTS if (arr[_order(lay, t, c)] == arr[_order(lay, t, c)][:1]).all()]


def _dates_fitting(dates: np.ndarray, t: int, c: int) -> list[str]:
    return [lay for lay in LAYOUTS
            if (dates[_order(lay, t, c)] == dates[_order(lay, t, c)][:, :1]).all()]


class StackedGeoTiff:
    """A single raster file of ``T x C`` bands read window by window (module doc).

    Args:
        path: the raster (GeoTIFF, VRT, anything rasterio opens).
        dates: a dates file or a list of dates (default: band descriptions, then the sidecar
            ``<stem>_dates.txt``/``.csv``); False reads the file as undated, the dates in it
            unused (for a model trained without dates, ``time_axis="t_index"``).
        n_bands: bands per date.
        layout: ``"date_major"`` or ``"band_major"`` (needed when neither the descriptions nor
            the band names settle it and there are several bands and dates).
        bands: band names (default: from the descriptions, else ``band0..``).
        scale: the factor the values are stored with; they are divided by it when read.
        nodata: overrides the file's nodata value.

    Attributes:
        dates (datetime64[D] ``(T,)`` or None when undated), height, width, crs, transform,
        bands, nodata, layout, index (``(T, C)`` file band of each date and band, 0-based),
        files (``[path]``), dates_from (where the dates came from).

    Raises:
        DataError: the layout cannot be resolved (names the option that decides).
        BandCountError: the band count does not fit ``n_bands``/``bands``/the dates.
    """

    def __init__(self, path: str | Path, *, dates: Any = None, n_bands: int | None = None,
                 layout: str | None = None, bands: Sequence[str] | str | None = None,
                 scale: float | None = None, nodata: float | None = None,
                 **unknown: Any) -> None:
        from sitsformer.data.geotiff import open_raster

        self.path = Path(path)
        where = str(self.path)
        if unknown:
            raise DataError(f"{where}: option(s) {sorted(unknown)} do not apply to a single "
                            "stacked raster (it takes dates, n_bands, layout, bands, scale, "
                            "nodata; clouds are masked as nodata in the file)")
        if layout is not None and layout not in LAYOUTS:
            raise DataError(f"{where}: layout must be one of {LAYOUTS}, got {layout!r}")
        if isinstance(bands, str):
            bands = [b.strip() for b in bands.split(",") if b.strip()]
        if bands is not None and n_bands is not None and len(bands) != int(n_bands):
            raise BandCountError(f"{where}: n_bands={n_bands} but {len(bands)} band names "
                                 f"given ({list(bands)})")
        with open_raster(self.path, check_complete=True) as ds:
            self.height, self.width, self.count = ds.height, ds.width, ds.count
            self.crs, self.transform = ds.crs, ds.transform
            self.nodata = ds.nodata if nodata is None else nodata
            descriptions = list(ds.descriptions)
            tags = [ds.tags(i + 1) for i in range(ds.count)]
        n = self.count
        c_given = int(n_bands) if n_bands is not None else (len(bands) if bands else None)
        if c_given is not None and (c_given < 1 or n % c_given):
            fits = [f"{n // c} dates x {c} bands" for c in range(1, min(n, 12) + 1) if not n % c]
            raise BandCountError(
                f"{where}: {n} bands is not a multiple of n_bands={c_given} (bands per date); "
                f"{n} bands fit {', '.join(fits)}")
        found = [_band_date(d, g) for d, g in zip(descriptions, tags)]
        if dates is False:  # read as undated: the dates in the file are not used
            found = [(b, None, False) for b, _, _ in found]
            dates = None
        parsed = [(b, d) for b, d, _ in found]
        labels = [b or d for (b, _), d in zip(parsed, descriptions)]  # band names, or None
        dated = [d is not None for _, d in parsed]
        from_tags = any(f for _, _, f in found)
        self.dates_from: str | None = None
        given: np.ndarray | None = None
        if dates is not None:
            given, self.dates_from = _dates_option(dates, where)
        elif not any(dated) and (side := sidecar_dates_file(self.path)) is not None:
            given, self.dates_from = read_dates_file(side), f"dates file {side}"
        if any(dated) and not all(dated) and given is None:
            with_date = [descriptions[i] for i in range(n) if dated[i]][:2]
            without = [descriptions[i] for i in range(n) if not dated[i]][:2]
            raise DateParseError(
                f"{where}: {sum(dated)} of {n} band descriptions hold a date (e.g. {with_date}), "
                f"{n - sum(dated)} do not (e.g. {without}); give {_HINT}")
        names: list[str] | None = None
        if all(dated) and n:
            band_dates = np.array([d for _, d in parsed], dtype="datetime64[D]")
            uniq = list(dict.fromkeys(band_dates.tolist()))
            t = len(uniq)
            counts = {str(u): int((band_dates == np.datetime64(u, "D")).sum()) for u in uniq}
            if len(set(counts.values())) != 1:
                raise BandCountError(
                    f"{where}: the band descriptions hold the dates unevenly ({counts}); every "
                    f"date needs the same bands; give {_HINT}")
            c = n // t
            if c_given is not None and c_given != c:
                raise BandCountError(f"{where}: n_bands={c_given} but the band descriptions "
                                     f"hold {t} dates x {c} bands")
            fits = _dates_fitting(band_dates, t, c)
            if layout is not None and fits and layout not in fits:
                raise DataError(f"{where}: layout={layout!r} but the dates in the band "
                                f"descriptions are in {fits[0]} order")
            if not fits:
                raise DataError(f"{where}: the dates in the band descriptions are in neither "
                                f"date-major nor band-major order (first: "
                                f"{descriptions[:4]}); give {_HINT}")
            layout = layout or fits[0]
            idx = _order(layout, t, c)
            desc_dates = band_dates[idx[:, 0]]
            if given is not None and not np.array_equal(np.sort(given), np.sort(desc_dates)):
                raise DateParseError(f"{where}: the {self.dates_from} ({len(given)} dates, "
                                     f"{given[:3]}...) disagrees with the band descriptions "
                                     f"({t} dates, {desc_dates[:3]}...)")
            per_date = [[parsed[i][0] for i in row] for row in idx]
            if all(p == per_date[0] for p in per_date) and all(per_date[0]):
                names = [str(b) for b in per_date[0]]
            self.dates_from = self.dates_from or ("band tags" if from_tags
                                                  else "band descriptions")
            date_values: np.ndarray | None = desc_dates
        else:
            if given is not None:
                if n % len(given):
                    raise BandCountError(f"{where}: {n} bands is not a multiple of the "
                                         f"{len(given)} dates of the {self.dates_from}")
                c = n // len(given)
                if c_given is not None and c_given != c:
                    raise BandCountError(f"{where}: n_bands={c_given} but {n} bands / "
                                         f"{len(given)} dates ({self.dates_from}) = {c}")
            elif c_given is not None:
                c = c_given
            else:
                raise DataError(f"{where}: {n} bands and no dates: none in the band "
                                f"descriptions (e.g. {descriptions[:2]}), no sidecar "
                                f"{self.path.stem}_dates.txt/.csv; give {_HINT}")
            t = n // c
            fits = _layouts_fitting(labels, t, c) if all(labels) and c > 1 < t else []
            if layout is not None and len(fits) == 1 and layout not in fits:
                raise DataError(f"{where}: layout={layout!r} but the band descriptions repeat "
                                f"in {fits[0]} order ({labels[:2 * c]}...)")
            if layout is None:
                if c == 1 or t == 1:
                    layout = "date_major"
                elif len(fits) == 1:
                    layout = fits[0]
                else:
                    raise DataError(f"{where}: {n} bands = {t} dates x {c} bands, in date-major "
                                    f"(d1.b1, d1.b2, ...) or band-major (b1.d1, b1.d2, ...) "
                                    "order? The band descriptions do not tell; give "
                                    "layout=date_major or layout=band_major")
            idx = _order(layout, t, c)
            if all(labels) and _layouts_fitting(labels, t, c).count(layout):
                names = [str(labels[i]) for i in idx[0]]
            date_values = given
        if bands is not None:
            names = [str(b) for b in bands]
        self.bands = names or [f"band{i}" for i in range(c)]
        order = np.argsort(date_values, kind="stable") if date_values is not None else None
        if order is not None:
            idx, date_values = idx[order], date_values[order]
        self.layout, self.index = layout, idx
        self.dates = date_values
        self.scale = scale
        self.files = [self.path]
        self.cloud_files = None
        self.missing_cloud_dates: list[str] = []

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @property
    def folder(self) -> Path:
        """The file (the name the per-date folder reader uses for its source)."""
        return self.path

    @property
    def doy(self) -> np.ndarray | None:
        return None if self.dates is None else dates_to_doy(self.dates)

    @property
    def crs_string(self) -> str | None:
        from sitsformer.data.geotiff import crs_string

        return crs_string(self.crs)

    def read_window(self, row_off: int, col_off: int, height: int, width: int
                    ) -> dict[str, Any]:
        """One window of every date, as :meth:`GeoTiffTimeSeries.read_window` returns it
        (no ``dates``/``doy`` when undated)."""
        from sitsformer.data.geotiff import _read, open_raster

        if row_off < 0 or col_off < 0 or height < 1 or width < 1 or \
                row_off + height > self.height or col_off + width > self.width:
            raise DataError(f"{self.path}: window rows {row_off}..{row_off + height}, cols "
                            f"{col_off}..{col_off + width} outside the raster "
                            f"{self.height}x{self.width}")
        win = Window(col_off, row_off, width, height)
        with open_raster(self.path) as ds:
            data = _read(ds, self.path, window=win).astype(np.float32)
        data = data[self.index]  # (T, C, h, w)
        bad = ~np.isfinite(data)
        if self.nodata is not None and np.isfinite(self.nodata):
            bad |= data == np.float32(self.nodata)
        seq = np.where(bad, np.float32(0.0), data)
        if self.scale is not None:
            seq /= np.float32(self.scale)
        out: dict[str, Any] = {"sequence": seq, "pixel_mask": ~bad.any(axis=1),
                               "transform": window_transform(win, self.transform)}
        if self.dates is not None:
            out["dates"] = self.dates.copy()
            out["doy"] = dates_to_doy(self.dates)
        return out

    def meta(self) -> dict[str, Any]:
        out = {"source": str(self.path), "format": "geotiff-stack", "crs": self.crs_string,
               "transform": list(self.transform)[:6], "scale": None,
               "scale_applied": self.scale, "nodata": self.nodata, "height": self.height,
               "width": self.width, "layout": self.layout, "dates_from": self.dates_from,
               "time_axis": "t_index" if self.dates is None else "dates",
               "files": [self.path.name]}
        if self.dates is not None:
            out["date_range"] = [str(self.dates.min()), str(self.dates.max())]
        return out
