"""CSV pixel tables: one row per pixel, a label and a polygon-id column, then band x date values.

This is the TempCNN / IGARSS 2019 layout (``lc_id,objectid,b0,...``). A file or a folder of
CSV files (e.g. ``train_dataset.csv`` + ``test_dataset.csv``, kept apart in ``split``) is read.
Band and date counts are given or inferred; values are date-major by default
(``d1.B1, d1.B2, ..., d2.B1``) or band-major (``layout="band_major"``).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from einops import rearrange

from sitsformer.data.dataset import ArrayDataset, regular_dates, warn_unknown_dates
from sitsformer.data.errors import (BandCountError, DataError, DataWarning, DateParseError,
                                    LabelError)
from sitsformer.data.synthetic import S2_BANDS

LABEL_COLUMNS = ("lc_id", "label", "class", "class_id", "y", "code")
GROUP_COLUMNS = ("objectid", "polygon_id", "group", "parcel_id", "field_id", "poly_id", "fid")
_BAND_DATE = re.compile(r"^(?P<band>[A-Za-z][A-Za-z0-9]*)_(?P<date>\d{4}-?\d{2}-?\d{2})$")


def _csv_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    order = {"train": 0, "val": 1, "valid": 1, "validation": 1, "test": 2}
    files = sorted(path.glob("*.csv"),
                   key=lambda f: (order.get(f.stem.split("_")[0].lower(), 3), f.name))
    if not files:
        raise DataError(f"{path}: no *.csv file in this folder")
    return files


def _class_map(folder: Path) -> list[tuple[int, str]] | None:
    """Legend file ``map/class_map.txt`` or ``class_map.txt`` (``value,class[,colour]``)."""
    for cand in (folder / "class_map.txt", folder / "map" / "class_map.txt"):
        if cand.is_file():
            rows = [line.split(",", 2) for line in cand.read_text().splitlines()[1:] if line]
            try:
                return [(int(r[0]), r[1].strip()) for r in rows]
            except (ValueError, IndexError) as err:
                raise DataError(f"{cand}: expected lines 'value,class[,colour]' ({err})") from err
    return None


def read_csv_table(path: str | Path, *, label_column: str | None = None,
                   group_column: str | None = None, n_bands: int | None = None,
                   n_dates: int | None = None, bands: Sequence[str] | None = None,
                   layout: str = "date_major", dates: Sequence[str] | None = None,
                   start_date: str | None = None, interval_days: int | None = None,
                   classes: Sequence[str] | None = None, nodata: float | None = None,
                   scale: float | None = None, **kwargs: Any) -> ArrayDataset:
    """Read a CSV pixel table (file or folder of CSVs) into an :class:`ArrayDataset`.

    Args:
        path: a ``.csv`` file or a folder of them (each file's name stem goes to ``split``).
        label_column, group_column: default: the first known name present
            (``lc_id``/``label``/``class``..., ``objectid``/``polygon_id``/``group``...).
        n_bands, n_dates, bands: give one; the other is inferred from the value count. When
            the value columns are named ``<band>_<YYYYMMDD>`` both are inferred. With nothing
            given and a value count divisible by 10, the 10 Sentinel-2 bands (B2..B12) are
            assumed, with a warning.
        layout: ``"date_major"`` or ``"band_major"``.
        dates, start_date/interval_days: the acquisition dates when known (otherwise samples
            carry time-step positions, see the warning).
        classes: class names (index = label value). Default: a ``class_map.txt`` legend beside
            the files (its row ``i`` names label ``i``), else the label values as strings.
        nodata: value marking missing observations (NaN always does).
        scale: stored in ``meta['scale']`` (e.g. 10000 for reflectance x 10000); values are not
            changed here, use the ``Scale`` transform.
    """
    path = Path(path)
    files = _csv_files(path)
    frames, split, names = [], [], []
    for f in files:
        try:
            df = pd.read_csv(f)
        except Exception as err:  # noqa: BLE001
            raise DataError(f"{f}: cannot be read as CSV ({err})") from err
        frames.append(df)
        split += [f.stem.replace("_dataset", "")] * len(df)
        names += [f"{f.name} row {i}" for i in range(len(df))]
    cols = list(frames[0].columns)
    for f, df in zip(files, frames):
        if list(df.columns) != cols:
            raise DataError(f"{f}: columns differ from {files[0].name}")
    df = pd.concat(frames, ignore_index=True)
    lower = {c.lower(): c for c in cols}
    label_column = label_column or next((lower[c] for c in LABEL_COLUMNS if c in lower), None)
    group_column = group_column or next((lower[c] for c in GROUP_COLUMNS if c in lower), None)
    for name, col in (("label", label_column), ("group", group_column)):
        if col is not None and col not in df.columns:
            raise DataError(f"{files[0]}: {name} column {col!r} not found; columns start with "
                            f"{cols[:5]}")
    value_cols = [c for c in cols if c not in (label_column, group_column)]
    nv = len(value_cols)
    parsed = [_BAND_DATE.match(str(c)) for c in value_cols]
    inferred_dates = None
    if bands is not None:
        n_bands = len(bands)
    if n_bands is None and n_dates is None and all(parsed):
        band_names = list(dict.fromkeys(m["band"] for m in parsed))  # type: ignore[index]
        date_strs = list(dict.fromkeys(m["date"].replace("-", "")  # type: ignore[index]
                                       for m in parsed))
        n_bands, n_dates = len(band_names), len(date_strs)
        bands = bands or band_names
        first_bands = [m["band"] for m in parsed[:2]]  # type: ignore[index]
        layout = "date_major" if len(set(first_bands)) > 1 or n_dates == 1 else "band_major"
        try:
            inferred_dates = np.array([np.datetime64(f"{d[:4]}-{d[4:6]}-{d[6:]}")
                                       for d in date_strs])
        except ValueError as err:
            raise DateParseError(f"{files[0]}: a date in the column names is not a calendar "
                                 f"date ({err})") from err
    if n_bands is None and n_dates is None:
        if nv % len(S2_BANDS):
            raise BandCountError(f"{files[0]}: {nv} value columns; give n_bands= or n_dates= "
                                 f"(cannot infer the band count)")
        n_bands = len(S2_BANDS)
        bands = bands or list(S2_BANDS)
        warnings.warn(f"{files[0]}: band count not given; assuming the 10 Sentinel-2 bands "
                      f"{S2_BANDS} in {layout} order ({nv} values = {nv // 10} dates x 10)",
                      DataWarning, stacklevel=2)
    if n_bands is None:
        n_bands = nv // n_dates  # type: ignore[operator]
    if n_dates is None:
        n_dates = nv // n_bands
    if n_bands * n_dates != nv:
        raise BandCountError(f"{files[0]}: expected {n_bands} bands x {n_dates} dates = "
                             f"{n_bands * n_dates} value columns, found {nv}")
    values = df[value_cols].to_numpy(dtype=np.float32)
    if layout == "date_major":
        x = rearrange(values, "n (t c) -> n t c", c=n_bands)
    elif layout == "band_major":
        x = rearrange(values, "n (c t) -> n t c", c=n_bands)
    else:
        raise DataError(f"layout must be 'date_major' or 'band_major', got {layout!r}")
    meta: dict[str, Any] = {"source": str(path), "format": "csv", "layout": layout,
                            "crs": None, "transform": None, "scale": scale,
                            "files": [str(f) for f in files]}
    labels = None
    if label_column is not None:
        raw = df[label_column].to_numpy()
        legend = _class_map(path if path.is_dir() else path.parent)
        if classes is None and legend is not None and set(np.unique(raw)) <= set(
                range(len(legend))):
            classes = [name for _, name in legend]
            meta["class_codes"] = [code for code, _ in legend]
        if classes is None:
            values_sorted = np.unique(raw)
            classes = [str(v) for v in values_sorted]
            labels = np.searchsorted(values_sorted, raw)
            meta["label_values"] = values_sorted.tolist()
        else:
            labels = raw.astype(np.int64)
            bad = (labels < 0) | (labels >= len(classes))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise LabelError(f"{files[0] if len(files) == 1 else path}: label {labels[i]} "
                                 f"of row {i} is outside the class list (0..{len(classes) - 1})")
    if dates is not None:
        dates_arr = np.array(dates, dtype="datetime64[D]")
    elif inferred_dates is not None:
        dates_arr = inferred_dates
    elif start_date is not None and interval_days is not None:
        dates_arr = regular_dates(start_date, interval_days, n_dates)
        meta["dates_assumed"] = f"regular grid from {start_date} every {interval_days} days " \
                                "(given by the user)"
    else:
        dates_arr = None
        warn_unknown_dates(str(path), n_dates)
    if dates_arr is not None and len(dates_arr) != n_dates:
        raise DataError(f"{path}: {len(dates_arr)} dates given for {n_dates} time steps")
    groups = df[group_column].to_numpy() if group_column is not None else None
    ds = ArrayDataset(x, dates=dates_arr, labels=labels, groups=groups, classes=classes,
                      bands=list(bands) if bands is not None else None, meta=meta,
                      nodata=nodata, sample_names=names, **kwargs)
    ds.split = np.array(split)[ds.kept]
    return ds
