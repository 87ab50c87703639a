"""CSV pixel tables: one row per pixel (or field), band x date values plus label/id columns.

Three layouts are read (docs/data_preparation.md shows each with the command that reads it):

* **no header row**: column 1 the class, column 2 the polygon/field id, then the values,
  date-major (``d1.b1, d1.b2, ..., d2.b1, ...``) unless ``layout="band_major"``;
* **a header with generic value columns** (``lc_id,objectid,b0,...,b729``, the TempCNN /
  IGARSS 2019 layout): values are positional, as above;
* **a header with named value columns** ``<band>_<date>`` (``B02_20180812``) or
  ``<date>_<band>`` (``20180812_B02``), mixed with any other columns: bands and dates come
  from the names, ``lon``/``lat`` (or ``x``/``y``) become the samples' ``coords``, a
  ``split`` column the source's own split, and every other column is ignored and listed in
  ``meta["columns"]["ignored"]`` (``sitsformer data inspect`` prints them).

Labels are class names (strings), integer codes (with a legend file mapping code -> name,
``class_map.txt`` beside the table or ``legend=``), or both columns at once.

Nothing is guessed silently: a positional value count that fits more than one band x date
factorisation, a named column whose band is not a known band name, value columns that do not
form a complete band x date grid, a label that is not in the legend, integer labels that read
both as legend codes and as legend row numbers, and a row with too few or too many fields are
errors that say what was found and which option decides.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from einops import rearrange

from sitsformer.data.dataset import ArrayDataset, regular_dates, warn_unknown_dates
from sitsformer.data.errors import (BandCountError, DataError, DateParseError, LabelError)
from sitsformer.data.synthetic import S2_BANDS

LABEL_COLUMNS = ("lc_id", "label", "class", "class_id", "class_name", "label_name", "code",
                 "y")
GROUP_COLUMNS = ("objectid", "polygon_id", "group", "parcel_id", "field_id", "poly_id", "fid")
ID_COLUMNS = ("id", "sample_id", "point_id", "pixel_id")
COORD_PAIRS = (("lon", "lat"), ("longitude", "latitude"), ("x", "y"))
SPLIT_COLUMNS = ("split",)
SPLIT_VALUES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                "validation": "val", "test": "test", "testing": "test"}
_DATE = r"(?P<date>\d{8}|\d{4}-\d{2}-\d{2})"
_BAND_DATE = re.compile(rf"^(?P<band>[A-Za-z][A-Za-z0-9]*)_{_DATE}$")
_DATE_BAND = re.compile(rf"^{_DATE}_(?P<band>[A-Za-z][A-Za-z0-9]*)$")
_INDEX = re.compile(r"^(?:b|v|band|val|value)?_?(?P<i>\d+)$", re.IGNORECASE)
# Names a band of an optical / radar sensor or a spectral index may have. A named value column
# whose band is none of these (e.g. cloud_20180812) is refused unless ``bands=`` lists it.
KNOWN_BANDS = re.compile(
    r"^(B0?\d{1,2}A?|SR_B\d+|BAND_?\d+|COASTAL|BLUE|GREEN|RED|NIR|NIR\d*|SWIR\d*|RE\d*|"
    r"REDEDGE\d*|PAN|TIR\d*|VV|VH|HH|HV|NDVI|EVI2?|NDWI|MNDWI|NBR2?|SAVI|MSAVI|NDMI|NDRE|"
    r"GNDVI|NDSI|LAI|FAPAR|FCOVER)$", re.IGNORECASE)
BAND_SETS = {"s2": S2_BANDS, "sentinel2": S2_BANDS}


def _csv_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    order = {"train": 0, "val": 1, "valid": 1, "validation": 1, "test": 2}
    files = sorted(path.glob("*.csv"),
                   key=lambda f: (order.get(f.stem.split("_")[0].lower(), 3), f.name))
    if not files:
        raise DataError(f"{path}: no *.csv file in this folder")
    return files


def _find_legend(folder: Path) -> Path | None:
    """``class_map.txt`` beside the table, in a ``map/`` folder beside it, or in a ``map/``
    folder beside the table's folder (``data/train.csv`` with ``map/class_map.txt``)."""
    for cand in (folder / "class_map.txt", folder / "map" / "class_map.txt",
                 folder.parent / "map" / "class_map.txt"):
        if cand.is_file():
            return cand
    return None


def _names_option(names: Any) -> list[str]:
    """A list option given as a list, or as text typed on a command line: ``B4,B8``, or
    ``[B4, B8]`` / ``['B4','B8']`` (brackets and quotes dropped)."""
    if isinstance(names, str):
        text = names.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        return [n.strip().strip("'\"") for n in text.split(",") if n.strip().strip("'\"")]
    return [str(n) for n in names]


def _bands_option(bands: Any) -> list[str] | None:
    if bands is None:
        return None
    if isinstance(bands, str) and bands.lower() in BAND_SETS:
        return list(BAND_SETS[bands.lower()])
    return _names_option(bands)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text.strip() == ""
    return True


def _scan_rows(f: Path, header: bool | None) -> tuple[bool, int, int]:
    """Check every line has the same number of fields; returns (header, fields, rows)."""
    with f.open(newline="") as fh:
        reader = csv.reader(fh)
        first = next(reader, None)
        if first is None:
            raise DataError(f"{f}: the file is empty")
        if header is None:  # a header row: most fields are not numbers (a row of data with a
            header = sum(not _is_number(v) for v in first) > len(first) / 2  # class name: few)
        n = len(first)
        rows = 0 if header else 1
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != n:
                what = "short" if len(row) < n else "long"
                raise DataError(f"{f} line {line_no}: {what} row: {len(row)} fields, expected "
                                f"{n} (as on line 1)")
            rows += 1
    return header, n, rows


def _factorisations(nv: int) -> list[tuple[int, int]]:
    return [(b, nv // b) for b in range(1, nv + 1) if nv % b == 0]


def _parse_date(d: str, where: str) -> np.datetime64:
    d = d.replace("-", "")
    try:
        return np.datetime64(f"{d[:4]}-{d[4:6]}-{d[6:]}", "D")
    except ValueError as err:
        raise DateParseError(f"{where}: a date in the column names is not a calendar date "
                             f"({d}: {err})") from err


def _rows_text(names: list[str], idx: np.ndarray, values: np.ndarray) -> str:
    shown = [f"{names[i]} ({v.item() if isinstance(v, np.generic) else v!r})"
             for i, v in ((i, values[i]) for i in idx[:5])]
    more = f" and {len(idx) - 5} more" if len(idx) > 5 else ""
    return ", ".join(shown) + more


def _labels(raw_name: np.ndarray | None, raw_code: np.ndarray | None,
            legend: list[tuple[int, str]] | None, legend_path: Any,
            classes: Sequence[str] | None, label_values: str | None, names: list[str],
            where: str) -> tuple[np.ndarray, list[str], list[Any] | None]:
    """(label index per row, class names, class codes or None)."""
    if raw_name is not None and raw_code is not None:  # both: names and codes must agree
        pairs = pd.DataFrame({"code": raw_code, "name": raw_name})
        per_code = pairs.groupby("code")["name"].nunique()
        per_name = pairs.groupby("name")["code"].nunique()
        if (per_code > 1).any() or (per_name > 1).any():
            code = per_code.index[per_code > 1][0] if (per_code > 1).any() else None
            bad = (np.flatnonzero(raw_code == code) if code is not None else np.flatnonzero(
                raw_name == per_name.index[per_name > 1][0]))
            raise LabelError(f"{where}: the class-name and class-code columns disagree (one "
                             f"code with two names, or one name with two codes): rows "
                             f"{_rows_text(names, bad, raw_name)}")
        table = pairs.drop_duplicates().sort_values("code")
        codes, cls = table["code"].tolist(), [str(n) for n in table["name"]]
        if legend is not None:
            lg = dict(legend)
            wrong = [c for c, n in zip(codes, cls) if lg.get(c) != n]
            if wrong:
                raise LabelError(f"{where}: code/name pairs {[(c, cls[codes.index(c)]) for c in wrong]}"
                                 f" differ from the legend {legend_path}")
            codes, cls = [c for c, _ in legend], [n for _, n in legend]
        index = {c: i for i, c in enumerate(codes)}
        return np.array([index[c] for c in raw_code], np.int64), cls, codes
    if raw_name is not None:  # class names
        known = list(classes) if classes is not None else (
            [n for _, n in legend] if legend is not None else sorted(set(raw_name.tolist())))
        codes = [c for c, _ in legend] if legend is not None and classes is None else None
        index = {n: i for i, n in enumerate(known)}
        bad = np.flatnonzero([n not in index for n in raw_name])
        if bad.size:
            source = "classes=" if classes is not None else f"the legend {legend_path}"
            raise LabelError(f"{where}: {bad.size} row(s) have a class name that is not in "
                             f"{source} ({known}): {_rows_text(names, bad, raw_name)}")
        return np.array([index[n] for n in raw_name], np.int64), [str(k) for k in known], codes
    assert raw_code is not None
    codes_in = raw_code.astype(np.int64)
    if classes is not None:  # class names given: the label is the index
        bad = np.flatnonzero((codes_in < 0) | (codes_in >= len(classes)))
        if bad.size:
            raise LabelError(f"{where}: label outside the class list 0..{len(classes) - 1} "
                             f"(classes=): rows {_rows_text(names, bad, codes_in)}")
        return codes_in, [str(c) for c in classes], None
    if legend is None:
        uniq = np.unique(codes_in)
        return np.searchsorted(uniq, codes_in), [str(v) for v in uniq], uniq.tolist()
    lg_codes = [c for c, _ in legend]
    present = set(np.unique(codes_in).tolist())
    fits_codes = present <= set(lg_codes)
    fits_index = present <= set(range(len(legend)))
    if label_values is None:
        if fits_codes and fits_index and lg_codes != list(range(len(legend))):
            raise LabelError(
                f"{where}: the labels {sorted(present)} read both as codes of the legend "
                f"{legend_path} (codes {lg_codes}) and as its row numbers 0..{len(legend) - 1}; "
                "give label_values='codes' or label_values='index'")
        if not fits_codes and not fits_index:  # wrong either way: blame the fewest rows
            off_codes = int(np.isin(codes_in, lg_codes, invert=True).sum())
            off_index = int(((codes_in < 0) | (codes_in >= len(legend))).sum())
            fits_index = off_index < off_codes
        label_values = "index" if fits_index and not fits_codes else "codes"
    if label_values == "index":
        bad = np.flatnonzero((codes_in < 0) | (codes_in >= len(legend)))
        if bad.size:
            raise LabelError(f"{where}: label outside the legend rows 0..{len(legend) - 1} "
                             f"({legend_path}): rows {_rows_text(names, bad, codes_in)}")
        return codes_in, [n for _, n in legend], lg_codes
    if label_values != "codes":
        raise DataError(f"label_values must be 'codes' or 'index', got {label_values!r}")
    index = {c: i for i, c in enumerate(lg_codes)}
    bad = np.flatnonzero([c not in index for c in codes_in])
    if bad.size:
        raise LabelError(f"{where}: {bad.size} row(s) have a class code that is not in the "
                         f"legend {legend_path} (codes {lg_codes}): "
                         f"{_rows_text(names, bad, codes_in)}")
    return np.array([index[c] for c in codes_in], np.int64), [n for _, n in legend], lg_codes


def read_csv_table(path: str | Path, *, label_column: str | None = None,
                   code_column: str | None = None, group_column: str | None = None,
                   id_column: str | None = None, split_column: str | None = None,
                   coord_columns: Sequence[str] | None = None,
                   ignore_columns: Sequence[str] = (), header: bool | None = None,
                   n_bands: int | None = None, n_dates: int | None = None,
                   bands: Sequence[str] | str | None = None, layout: str = "date_major",
                   dates: Sequence[str] | None = None, start_date: str | None = None,
                   interval_days: int | None = None, classes: Sequence[str] | None = None,
                   legend: str | Path | None = None, label_values: str | None = None,
                   nodata: float | None = None, scale: float | None = None,
                   **kwargs: Any) -> ArrayDataset:
    """Read a CSV pixel table (a file or a folder of CSVs) into an :class:`ArrayDataset`.

    Args:
        path: a ``.csv`` file or a folder of them (each file's name stem, e.g. ``train`` of
            ``train_dataset.csv``, goes to ``split`` unless the table has a split column).
        label_column, code_column: the class-name and the integer class-code columns
            (default: the first known name present, ``lc_id``/``label``/``class``/...; a
            string column is read as names, an integer one as codes; give both for both).
        group_column: polygon/field id (default ``objectid``/``polygon_id``/``group``...; an
            ``id`` column whose values repeat is a group too).
        id_column: a unique sample id (default ``id``/``sample_id`` when unique); else the ids
            are ``<file name>:<row>``. Split files and checkpoints refer to samples by id.
        split_column: a column of ``train``/``val``/``test`` (default ``split``).
        coord_columns: two columns of sample coordinates (default ``lon,lat``,
            ``longitude,latitude`` or ``x,y``); they become ``coords`` (spatial splits).
        ignore_columns: columns to leave out although their name looks like a value column.
        header: whether line 1 is a header (default: it is when most fields are not numbers).
            Without a header, column 1 is the class, column 2 the polygon/field id.
        n_bands, n_dates, bands: for positional value columns, give one (``bands`` may be
            ``"s2"`` = the 10 Sentinel-2 bands B2..B12, or comma-separated names); a value
            count that fits several factorisations is otherwise refused. With named value
            columns, ``bands`` selects and orders the bands (and allows unknown band names).
        layout: ``"date_major"`` (default) or ``"band_major"`` for positional values.
        dates, start_date/interval_days: the acquisition dates when known (otherwise samples
            carry time-step positions, see the warning).
        classes: class names, index = integer label value.
        legend: a legend file (``code,class[,colour]`` lines after a header); default:
            ``class_map.txt`` or ``map/class_map.txt`` beside the table.
        label_values: ``"codes"`` or ``"index"``: how integer labels refer to the legend
            (default: whichever fits; both fitting is an error asking for this option).
        nodata: value marking missing observations (NaN always does).
        scale: stored in ``meta['scale']`` (the factor values are stored with); values are not
            changed here.
    """
    path = Path(path)
    files = _csv_files(path)
    where = str(files[0] if len(files) == 1 else path)
    frames, file_split, names, ids = [], [], [], []
    head: bool | None = None
    n_fields = None
    for f in files:
        has_header, nf, _ = _scan_rows(f, header)
        if head is not None and (has_header != head or nf != n_fields):
            raise DataError(f"{f}: {nf} fields {'with' if has_header else 'without'} a header, "
                            f"but {files[0].name} has {n_fields} "
                            f"{'with' if head else 'without'} one")
        head, n_fields = has_header, nf
        try:
            df = pd.read_csv(f, header=0 if has_header else None, skip_blank_lines=True)
        except Exception as err:  # noqa: BLE001
            raise DataError(f"{f}: cannot be read as CSV ({err})") from err
        frames.append(df)
        file_split += [f.stem.replace("_dataset", "").lower()] * len(df)
        names += [f"{f.name} row {i}" for i in range(len(df))]
        ids += [f"{f.name}:{i}" for i in range(len(df))]
    if not head:  # no header: class, polygon/field id, values
        if (n_fields or 0) < 3:
            raise DataError(f"{where}: a table without a header needs a class column, an id "
                            f"column and values; found {n_fields} columns")
        cols = ["label", "group"] + [f"v{i}" for i in range(n_fields - 2)]  # type: ignore[operator]
        for df in frames:
            df.columns = cols
    cols = [str(c) for c in frames[0].columns]
    for f, df in zip(files, frames):
        if [str(c) for c in df.columns] != cols:
            raise DataError(f"{f}: columns differ from {files[0].name}")
        df.columns = cols
    df = pd.concat(frames, ignore_index=True)
    lower = {c.lower(): c for c in cols}
    for opt, col in (("label_column", label_column), ("code_column", code_column),
                     ("group_column", group_column), ("id_column", id_column),
                     ("split_column", split_column), *(("coord_columns", c)
                                                       for c in (coord_columns or ()))):
        if col is not None and col not in df.columns:
            raise DataError(f"{where}: {opt}={col!r} not found; columns: {cols[:12]}"
                            f"{' ...' if len(cols) > 12 else ''}")
    used: dict[str, Any] = {}
    # ---- coordinates first (x/y must not be read as a label column "y")
    if coord_columns is None:
        coord_columns = next(([lower[a], lower[b]] for a, b in COORD_PAIRS
                              if a in lower and b in lower), None)
    if coord_columns is not None and len(coord_columns) != 2:
        raise DataError(f"coord_columns must name two columns, got {coord_columns}")
    taken = set(coord_columns or ())
    # ---- labels: names and/or codes
    label_like = [lower[c] for c in LABEL_COLUMNS if c in lower and lower[c] not in taken]
    if label_column is None and code_column is None and label_like:
        kinds = {c: "code" if pd.api.types.is_numeric_dtype(df[c]) else "name"
                 for c in label_like}
        name_cols = [c for c in label_like if kinds[c] == "name"]
        code_cols = [c for c in label_like if kinds[c] == "code"]
        if len(name_cols) > 1 or len(code_cols) > 1:
            raise DataError(f"{where}: several label columns {label_like}; give label_column= "
                            "(class names) and/or code_column= (integer codes)")
        label_column = name_cols[0] if name_cols else None
        code_column = code_cols[0] if code_cols else None
    elif label_column is not None and code_column is None and pd.api.types.is_numeric_dtype(
            df[label_column]):
        label_column, code_column = None, label_column
    for c in (label_column, code_column):
        if c is not None:
            taken.add(c)
    # ---- ids, groups, split
    if id_column is None:
        id_column = next((lower[c] for c in ID_COLUMNS if c in lower and lower[c] not in taken),
                         None)
        if id_column is not None and df[id_column].duplicated().any() and group_column is None \
                and not any(c in lower for c in GROUP_COLUMNS):
            group_column, id_column = id_column, None  # a repeating id is a polygon id
    if id_column is not None:
        dup = df[id_column].duplicated(keep=False).to_numpy()
        if dup.any():
            if id_column in [lower.get(c) for c in ID_COLUMNS]:
                id_column = None  # not unique: not a sample id (kept as an ignored column)
            else:
                raise DataError(f"{where}: id_column={id_column!r} is not unique: rows "
                                f"{_rows_text(names, np.flatnonzero(dup), df[id_column].to_numpy())}")
    if id_column is not None:
        taken.add(id_column)
        ids = [str(v) for v in df[id_column]]
    group_column = group_column or next(
        (lower[c] for c in GROUP_COLUMNS if c in lower and lower[c] not in taken), None)
    if group_column is not None:
        taken.add(group_column)
    split_column = split_column or next(
        (lower[c] for c in SPLIT_COLUMNS if c in lower and lower[c] not in taken), None)
    if split_column is not None:
        taken.add(split_column)
    # ---- value columns
    ignore = set(_names_option(ignore_columns or ()))
    missing_ignored = sorted(ignore - set(cols))
    if missing_ignored:
        raise DataError(f"{where}: ignore_columns {missing_ignored} are not columns of the table")
    band_list = _bands_option(bands)
    candidates = [c for c in cols if c not in taken and c not in ignore]
    named = {c: (_BAND_DATE.match(c) or _DATE_BAND.match(c)) for c in candidates}
    named = {c: m for c, m in named.items() if m}
    index_cols = [c for c in candidates if c not in named and _INDEX.match(c)]
    if named and index_cols:
        raise DataError(f"{where}: both named value columns ({list(named)[:3]} ...) and generic "
                        f"ones ({index_cols[:3]} ...); give -o ignore_columns=COL,COL,... for those "
                        "that are not values")
    inferred_dates = None
    if named:
        if band_list is not None:
            named = {c: m for c, m in named.items() if m["band"] in band_list}
        found_bands = list(dict.fromkeys(m["band"] for m in named.values()))
        unknown = [b for b in found_bands if not KNOWN_BANDS.match(b)]
        if unknown and band_list is None:
            examples = [c for c, m in named.items() if m["band"] in unknown][:3]
            raise DataError(
                f"{where}: columns such as {examples} would be read as band(s) {unknown}, which "
                f"is not a known band or index name (bands found: {found_bands}); give "
                f"-o bands=NAME,NAME,... to say which are bands, or -o ignore_columns=COL,COL,... "
                "for the others")
        band_names = band_list or found_bands
        grid: dict[tuple[str, np.datetime64], str] = {}
        for c, m in named.items():
            key = (m["band"], _parse_date(m["date"], f"{where} column {c}"))
            if key in grid:
                raise DataError(f"{where}: columns {grid[key]!r} and {c!r} are the same band "
                                "and date")
            grid[key] = c
        date_list = sorted({d for _, d in grid})
        missing = [f"{b}@{d}" for b in band_names for d in date_list if (b, d) not in grid]
        if missing:
            per_band = {b: sum((b, d) in grid for d in date_list) for b in band_names}
            raise DataError(
                f"{where}: the value columns do not form a complete band x date grid "
                f"({len(band_names)} bands x {len(date_list)} dates; dates per band {per_band}; "
                f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}); give -o "
                "bands=NAME,NAME,... or -o ignore_columns=COL,COL,... for columns that are not "
                "values")
        value_cols = [grid[(b, d)] for d in date_list for b in band_names]
        n_bands, n_dates = len(band_names), len(date_list)
        bands, layout = band_names, "named"
        inferred_dates = np.array(date_list, dtype="datetime64[D]")
    elif index_cols:
        value_cols = index_cols
        nv = len(value_cols)
        if band_list is not None:
            n_bands = len(band_list)
        if dates is not None:
            n_dates = len(dates)
        if n_bands is None and n_dates is None:
            fits = _factorisations(nv)
            if len(fits) > 1:
                shown = ", ".join(f"{b} bands x {t} dates" for b, t in fits[:10])
                raise BandCountError(
                    f"{where}: {nv} value columns ({value_cols[0]} .. {value_cols[-1]}) fit "
                    f"{len(fits)} band x date factorisations ({shown}{' ...' if len(fits) > 10 else ''}); "
                    "give n_bands=, bands= (e.g. bands=s2 for the 10 Sentinel-2 bands B2..B12) "
                    "or n_dates=")
            n_bands = 1
        if n_bands is None:
            n_bands = nv // n_dates if nv % n_dates == 0 else -1  # type: ignore[operator]
        if n_dates is None:
            n_dates = nv // n_bands if nv % n_bands == 0 else -1
        if n_bands * n_dates != nv:
            raise BandCountError(f"{where}: expected {n_bands} bands x {n_dates} dates = "
                                 f"{n_bands * n_dates} value columns, found {nv}")
        bands = band_list
        if layout not in ("date_major", "band_major"):
            raise DataError(f"layout must be 'date_major' or 'band_major', got {layout!r}")
    else:
        raise DataError(f"{where}: no value column recognised among {candidates[:12]}; value "
                        "columns are named <band>_<YYYYMMDD>, <YYYYMMDD>_<band> or b0..bN "
                        "(a table without a header: class, id, values)")
    ignored = [c for c in cols if c not in taken and c not in value_cols]
    bad_values = [c for c in value_cols if not pd.api.types.is_numeric_dtype(df[c])]
    if bad_values:
        c = bad_values[0]
        num = pd.to_numeric(df[c], errors="coerce")
        row = int(np.flatnonzero(num.isna() & df[c].notna())[0])
        raise DataError(f"{where}: value column {c!r} holds text ({names[row]}: "
                        f"{df[c].iloc[row]!r}); give -o ignore_columns={c} if it is not a value")
    values = df[value_cols].to_numpy(dtype=np.float32)
    if layout == "band_major":
        x = rearrange(values, "n (c t) -> n t c", c=n_bands)
    else:  # date-major (and named columns, ordered date-major above)
        x = rearrange(values, "n (t c) -> n t c", c=n_bands)
    used.update({"label": label_column, "code": code_column, "group": group_column,
                 "id": id_column, "split": split_column, "coords": list(coord_columns or []) or None,
                 "values": f"{len(value_cols)} ({value_cols[0]} .. {value_cols[-1]})",
                 "ignored": ignored})
    meta: dict[str, Any] = {"source": str(path), "format": "csv", "layout": layout,
                            "crs": None, "transform": None, "scale": scale,
                            "files": [str(f) for f in files], "columns": used,
                            "header": bool(head)}
    labels = class_values = None
    cls: list[str] | None = None
    if label_column is not None or code_column is not None:
        legend_path = Path(legend) if legend is not None else _find_legend(
            path if path.is_dir() else path.parent)
        from sitsformer.data.legend import read_legend_file

        entries = read_legend_file(legend_path, strict=False) if legend_path is not None \
            else None
        lg = [(e.code, e.name) for e in entries] if entries is not None else None
        raw_name = None if label_column is None else df[label_column].astype(str).to_numpy()
        raw_code = None
        if code_column is not None:
            codes = pd.to_numeric(df[code_column], errors="coerce")
            bad = np.flatnonzero(codes.isna().to_numpy() | (codes % 1 != 0).to_numpy())
            if bad.size:
                raise LabelError(f"{where}: code column {code_column!r} must hold integers: rows "
                                 f"{_rows_text(names, bad, df[code_column].to_numpy())}")
            raw_code = codes.to_numpy().astype(np.int64)
        labels, cls, class_values = _labels(raw_name, raw_code, lg, legend_path, classes,
                                            label_values, names, where)
        if class_values is not None:
            meta["class_codes"] = list(class_values)
            meta["label_values"] = list(class_values)
        if lg is not None:
            meta["legend"] = str(legend_path)
            by_name = {e.name: e.color for e in entries or []}
            if cls and all(by_name.get(c) is not None for c in cls):
                meta["class_colors"] = ["#{:02x}{:02x}{:02x}".format(*by_name[c]) for c in cls]
    if dates is not None:
        dates_arr = np.array(dates, dtype="datetime64[D]")
    elif inferred_dates is not None:
        dates_arr = inferred_dates
    elif start_date is not None and interval_days is not None:
        dates_arr = regular_dates(str(start_date), int(interval_days), n_dates)
        meta["dates_assumed"] = f"regular grid from {start_date} every {interval_days} days " \
                                "(given by the user)"
    else:
        dates_arr = None
        warn_unknown_dates(str(path), n_dates)
    if dates_arr is not None and len(dates_arr) != n_dates:
        raise DataError(f"{path}: {len(dates_arr)} dates given for {n_dates} time steps")
    if split_column is not None:
        raw_split = df[split_column].astype(str).str.strip().str.lower().to_numpy()
        bad = np.flatnonzero([s not in SPLIT_VALUES for s in raw_split])
        if bad.size:
            raise DataError(f"{where}: split column {split_column!r} must hold train/val/test: "
                            f"rows {_rows_text(names, bad, raw_split)}")
        split = np.array([SPLIT_VALUES[s] for s in raw_split])
    else:
        split = np.array([SPLIT_VALUES.get(s, s) for s in file_split])
    groups = df[group_column].to_numpy() if group_column is not None else None
    coords = (df[list(coord_columns)].to_numpy(dtype=np.float64)
              if coord_columns is not None else None)
    if coords is not None:
        meta["coords"] = "/".join(coord_columns)  # type: ignore[arg-type]
    ds = ArrayDataset(x, dates=dates_arr, labels=labels, groups=groups, coords=coords,
                      classes=cls, bands=list(bands) if bands is not None else None, meta=meta,
                      nodata=nodata, sample_names=names, **kwargs)
    ds.split = split[ds.kept]
    ds.sample_ids = np.array(ids)[ds.kept]
    return ds
