"""Array sources: eo-learn EOPatch folders, PASTIS-style folders and shared-schema ``.npz`` files.

* EOPatch (time-first ``(T, H, W, C)`` ``.npy`` features + ``timestamps.json``): samples are
  the labelled pixels of a ``mask_timeless`` label feature (or patches around them).
* PASTIS (``DATA_S2/S2_<id>.npy`` ``(T, C, H, W)``, ``metadata.geojson`` with ``dates-S2`` per
  patch, ``ANNOTATIONS/TARGET_<id>.npy``): one sample per patch with a per-pixel label map,
  loaded lazily (memory-mapped) so the folder may be larger than memory.
* ``.npz`` in the schema of ``shared/data`` (``x``, ``y``, ``bands``, ``classes``, ``dates`` or
  ``t_index``, optional ``mask``, ``group``, ``split``, ``y_pixel``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from einops import rearrange

from sitsformer.data.dataset import (ArrayDataset, RasterPixelDataset, SITSDataset,
                                     _time_fields, add_exclusion, clean_values, regular_dates,
                                     warn_unknown_dates)
from sitsformer.data.errors import DataError, DateParseError, LabelError
from sitsformer.data.sample import IGNORE_INDEX

EOLEARN_LULC = ["no data", "cultivated land", "forest", "grassland", "shrubland", "water",
                "wetland", "tundra", "artificial surface", "bareland", "snow and ice"]
PASTIS_CLASSES = ["Background", "Meadow", "Soft winter wheat", "Corn", "Winter barley",
                  "Winter rapeseed", "Spring barley", "Sunflower", "Grapevine", "Beet",
                  "Winter triticale", "Winter durum wheat", "Fruits, vegetables, flowers",
                  "Potatoes", "Leguminous fodder", "Soybeans", "Orchard", "Mixed cereal",
                  "Sorghum", "Void label"]


def _parse_dates(values: Sequence[Any], where: str) -> np.ndarray:
    out = []
    for i, v in enumerate(values):
        text = str(v)
        if text.isdigit() and len(text) == 8:
            text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
        try:
            out.append(np.datetime64(text[:10], "D"))
        except ValueError as err:
            raise DateParseError(f"{where}: entry {i} {v!r} is not a date ({err})") from err
    return np.array(out, dtype="datetime64[D]")


# ---------------------------------------------------------------------------------- EOPatch
def _load_feature(folder: Path, kind: str, name: str) -> np.ndarray:
    for suffix in (".npy", ".npy.gz"):
        path = folder / kind / f"{name}{suffix}"
        if path.exists():
            if suffix == ".npy.gz":
                import gzip

                with gzip.open(path) as fh:
                    return np.load(fh)
            return np.load(path)
    raise DataError(f"{folder}: feature {kind}/{name} not found (looked for {name}.npy)")


def read_eopatch(folder: str | Path, *, data: str | Sequence[str] = "NDVI",
                 valid_mask: str | None = "IS_VALID", cloud_mask: str | None = None,
                 label: str | None = "LULC", class_names: Sequence[str] | None = None,
                 label_nodata: Sequence[int] = (0,), patch_size: int = 1,
                 on_no_clear: str = "exclude") -> RasterPixelDataset:
    """Read an eo-learn EOPatch folder.

    Args:
        data: ``data/`` feature(s) ``(T, H, W, C)``, concatenated along bands.
        valid_mask: ``mask/`` feature, True/1 = valid (e.g. ``IS_VALID``); or None.
        cloud_mask: ``mask/`` feature, 1 = cloud (e.g. ``CLM``), combined with ``valid_mask``.
        label: ``mask_timeless/`` per-pixel class codes; None = every pixel, unlabelled.
        class_names: names by code (default: the eo-learn LULC nomenclature, overridden by
            the ``<label>_ID``/``<label>_NAME`` columns of ``vector_timeless/<label>.gpkg``
            when present). Only codes present become classes.
        label_nodata: codes excluded as "no label" (counted).
    """
    folder = Path(folder)
    ts_file = folder / "timestamps.json"
    if not ts_file.exists():
        raise DataError(f"{folder}: no timestamps.json (not an EOPatch folder?)")
    try:
        stamps = json.loads(ts_file.read_text())
    except json.JSONDecodeError as err:
        raise DateParseError(f"{ts_file}: not valid JSON ({err})") from err
    dates = _parse_dates(stamps, str(ts_file))
    names = [data] if isinstance(data, str) else list(data)
    arrays = [_load_feature(folder, "data", n) for n in names]
    for n, a in zip(names, arrays):
        if a.ndim != 4 or a.shape[0] != len(dates):
            raise DataError(f"{folder}/data/{n}.npy: expected (T={len(dates)}, H, W, C), found "
                            f"{a.shape}")
    cube = rearrange(np.concatenate(arrays, axis=-1).astype(np.float32), "t h w c -> t c h w")
    bands = names if all(a.shape[-1] == 1 for a in arrays) else [
        f"{n}_{i}" for n, a in zip(names, arrays) for i in range(a.shape[-1])]
    meta: dict[str, Any] = {"source": str(folder), "format": "eopatch", "exclusions": {}}
    cube, valid = clean_values(cube, None, str(folder), meta)
    if valid_mask:
        valid &= _load_feature(folder, "mask", valid_mask)[..., 0].astype(bool)
    if cloud_mask:
        valid &= ~_load_feature(folder, "mask", cloud_mask)[..., 0].astype(bool)
    add_exclusion(meta, "invalid_or_cloudy_observations", int((~valid).sum()))
    bbox = folder / "bbox.geojson"
    if bbox.exists():
        geo = json.loads(bbox.read_text())
        xs = [p[0] for p in geo["coordinates"][0]]
        ys = [p[1] for p in geo["coordinates"][0]]
        h, w = cube.shape[2:]
        dx, dy = (max(xs) - min(xs)) / w, (max(ys) - min(ys)) / h
        meta["transform"] = [dx, 0.0, min(xs), 0.0, -dy, max(ys)]
        crs = geo.get("crs", {}).get("properties", {}).get("name", "")
        if "EPSG" in crs:
            meta["crs"] = "EPSG:" + crs.rsplit(":", 1)[-1]
    meta.setdefault("crs", None)
    meta.setdefault("transform", None)
    meta["scale"] = None
    h, w = cube.shape[2:]
    classes = None
    lab = None
    if label is None:
        rows, cols = np.divmod(np.arange(h * w), w)
    else:
        raw = _load_feature(folder, "mask_timeless", label)[..., 0].astype(np.int64)
        names_by_code = list(class_names) if class_names is not None else _lulc_names(folder, label)
        skip = np.isin(raw, list(label_nodata))
        add_exclusion(meta, "pixels_without_label", int(skip.sum()))
        codes = np.unique(raw[~skip])
        if codes.size and codes.max() >= len(names_by_code):
            r, c = np.argwhere(raw == codes.max())[0]
            raise LabelError(f"{folder}/mask_timeless/{label}.npy: code {codes.max()} at pixel "
                             f"(row {r}, col {c}) has no class name ({len(names_by_code)} given)")
        rows, cols = np.nonzero(~skip)
        lab = np.searchsorted(codes, raw[rows, cols])
        classes = [names_by_code[c] for c in codes]
        meta["class_codes"] = codes.tolist()
    return RasterPixelDataset(cube, valid, dates, rows, cols, patch_size=patch_size, labels=lab,
                              classes=classes, bands=bands, meta=meta, on_no_clear=on_no_clear)


def _lulc_names(folder: Path, label: str) -> list[str]:
    names = list(EOLEARN_LULC)
    gpkg = folder / "vector_timeless" / f"{label}.gpkg"
    if gpkg.exists():
        for code, name in _gpkg_columns(gpkg, f"{label}_ID", f"{label}_NAME"):
            if code is not None and 0 <= int(code) < len(names) and name:
                names[int(code)] = str(name)
    return names


def _gpkg_columns(path: Path, *columns: str) -> list[tuple[Any, ...]]:
    """The rows of ``columns`` of the first feature table of GeoPackage ``path`` that has them
    all ([] when none has). A GeoPackage is an SQLite database (OGC 12-128r18), so the
    attributes need no GIS library (pyogrio is absent on a bare GPU machine)."""
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM gpkg_contents WHERE data_type = 'features'")]
        for table in tables:
            have = {r[1] for r in con.execute(f'PRAGMA table_info("{table}")')}
            if set(columns) <= have:
                cols = ", ".join(f'"{c}"' for c in columns)
                return list(con.execute(f'SELECT {cols} FROM "{table}"'))
    return []


# ---------------------------------------------------------------------------------- PASTIS
class PastisDataset(SITSDataset):
    """PASTIS-style folder: one ``.npy`` ``(T, C, H, W)`` per patch, dates in the GeoJSON.

    Args:
        folder: holds ``metadata.geojson``, ``DATA_S2/S2_<id>.npy`` and
            ``ANNOTATIONS/TARGET_<id>.npy`` (``(3, H, W)`` or ``(H, W)``; channel 0 = class).
        folds: keep only patches of these ``Fold`` values.
        void_label: class code mapped to ``IGNORE_INDEX`` (19 in PASTIS).
        sensor: the data sub-folder suffix and date key (``S2`` -> ``DATA_S2``, ``dates-S2``).
        bands: band names (default the 10 Sentinel-2 bands when C = 10).
    """

    def __init__(self, folder: str | Path, *, folds: Sequence[int] | None = None,
                 void_label: int | None = 19, sensor: str = "S2",
                 classes: Sequence[str] | None = None, bands: Sequence[str] | None = None,
                 transform: Any = None, mmap: bool = True) -> None:
        from sitsformer.data.synthetic import S2_BANDS

        self.folder = Path(folder)
        meta_file = self.folder / "metadata.geojson"
        if not meta_file.exists():
            raise DataError(f"{self.folder}: no metadata.geojson (not a PASTIS folder?)")
        feats = json.loads(meta_file.read_text())["features"]
        self.patch_ids, self.patch_dates, folds_found = [], [], []
        for k, f in enumerate(feats):
            p = f["properties"]
            if folds is not None and p.get("Fold") not in folds:
                continue
            pid = p.get("ID_PATCH", p.get("id"))
            raw_dates = p.get(f"dates-{sensor}")
            if raw_dates is None:
                raise DateParseError(f"{meta_file}: feature {k} (patch {pid}) has no "
                                     f"'dates-{sensor}'")
            if isinstance(raw_dates, dict):
                raw_dates = [raw_dates[key] for key in sorted(raw_dates, key=int)]
            self.patch_ids.append(pid)
            self.patch_dates.append(_parse_dates(raw_dates, f"{meta_file} patch {pid}"))
            folds_found.append(p.get("Fold", -1))
        if not self.patch_ids:
            raise DataError(f"{meta_file}: no patch (folds={folds})")
        self.sensor, self.void_label, self.mmap = sensor, void_label, mmap
        first = self._load(0)
        c = first.shape[1]
        self.bands = list(bands) if bands is not None else (
            list(S2_BANDS) if c == 10 else [f"band{i}" for i in range(c)])
        self.classes = list(classes) if classes is not None else list(PASTIS_CLASSES)
        self.labels = None
        self.groups = np.array(folds_found)
        self.coords = None
        self.transform = transform
        all_dates = np.concatenate(self.patch_dates)
        self.meta = {"source": str(self.folder), "format": "pastis", "crs": None,
                     "transform": None, "scale": None, "exclusions": {}, "time_axis": "dates",
                     "date_range": [str(all_dates.min()), str(all_dates.max())],
                     "groups": "Fold"}
        crs = json.loads(meta_file.read_text()).get("crs", {}).get("properties", {}).get("name")
        if crs:
            self.meta["crs"] = "EPSG:" + crs.rsplit(":", 1)[-1] if "EPSG" in crs else crs

    @property
    def label_maps(self) -> np.ndarray:  # type: ignore[override]
        return np.stack([self._target(i) for i in range(len(self))])

    def _load(self, i: int) -> np.ndarray:
        path = self.folder / f"DATA_{self.sensor}" / f"{self.sensor}_{self.patch_ids[i]}.npy"
        if not path.exists():
            raise DataError(f"{path}: missing data file for patch {self.patch_ids[i]}")
        x = np.load(path, mmap_mode="r" if self.mmap else None)
        if x.ndim != 4 or x.shape[0] != len(self.patch_dates[i]):
            raise DataError(f"{path}: expected (T={len(self.patch_dates[i])}, C, H, W), found "
                            f"{x.shape}")
        return x

    def _target(self, i: int) -> np.ndarray:
        path = self.folder / "ANNOTATIONS" / f"TARGET_{self.patch_ids[i]}.npy"
        if not path.exists():
            raise DataError(f"{path}: missing target for patch {self.patch_ids[i]}")
        y = np.load(path)
        y = (y[0] if y.ndim == 3 else y).astype(np.int64)
        if self.void_label is not None:
            y = np.where(y == self.void_label, IGNORE_INDEX, y)
        bad = (y != IGNORE_INDEX) & ((y < 0) | (y >= len(self.classes)))
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise LabelError(f"{path}: class {y[r, c]} at (row {r}, col {c}) is outside the class"
                             f" list 0..{len(self.classes) - 1}")
        return y

    def __len__(self) -> int:
        return len(self.patch_ids)

    def raw_sample(self, index: int) -> dict[str, Any]:
        x = np.asarray(self._load(index), dtype=np.float32)
        where = f"{self.folder} patch {self.patch_ids[index]}"
        x, valid = clean_values(x, None, where, self.meta)
        s: dict[str, Any] = {"sequence": x, "mask": valid.any(axis=(1, 2)), "pixel_mask": valid}
        d = self.patch_dates[index]
        s.update(_time_fields(d, len(d), index, self.meta))
        s["label"] = self._target(index)
        s["group"] = np.int64(self.groups[index])
        s["index"] = np.int64(index)
        return s


# ---------------------------------------------------------------------------------- npz
def read_npz(path: str | Path, *, start_date: str | None = None,
             interval_days: int | None = None, label_maps: bool | None = None,
             **kwargs: Any) -> ArrayDataset:
    """Read an ``.npz`` in the shared-data schema (see ``shared/data/README.md``)."""
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as err:  # noqa: BLE001
        raise DataError(f"{path}: cannot be read as .npz ({err})") from err
    if "x" not in z:
        raise DataError(f"{path}: no key 'x' (keys: {sorted(z.files)})")
    x = z["x"]
    if x.ndim not in (3, 5):
        raise DataError(f"{path}: 'x' must be (N, T, C) or (N, T, C, H, W), found {x.shape}")
    n, t = x.shape[:2]
    meta: dict[str, Any] = {"source": str(path), "format": "npz", "scale": None,
                            "crs": f"EPSG:{int(z['crs_epsg'])}" if "crs_epsg" in z else None,
                            "transform": None}
    for key in ("transform", "transform_ndvi"):
        if key in z:
            meta["transform"] = [float(v) for v in z[key]]
            break
    if "dates" in z:
        d = z["dates"]
        dates = _parse_dates(d.ravel(), f"{path} key 'dates'").reshape(d.shape)
    elif start_date is not None and interval_days is not None:
        dates = regular_dates(start_date, interval_days, t)
        meta["dates_assumed"] = f"regular grid from {start_date} every {interval_days} days"
    else:
        dates = None
        warn_unknown_dates(str(path), t)
    classes = [str(c) for c in z["classes"]] if "classes" in z and z["classes"].size else None
    labels = maps = None
    use_maps = label_maps if label_maps is not None else ("y_pixel" in z)
    if use_maps and "y_pixel" in z:
        yp = z["y_pixel"].astype(np.int64)
        no_data_first = bool(classes) and classes[0].lower().replace("_", " ") in (
            "no data", "nodata")
        maps = np.where(yp == 0, IGNORE_INDEX, yp) if no_data_first else yp
    elif "y" in z and classes is not None:
        labels = z["y"].astype(np.int64)
    mask = pm = None
    if "mask" in z:
        m = z["mask"].astype(bool)
        if m.ndim == 2:
            mask = m
        elif m.ndim == 4:
            pm = m
        else:
            raise DataError(f"{path}: 'mask' must be (N, T) or (N, T, H, W), found {m.shape}")
    bands = [str(b) for b in z["bands"]] if "bands" in z else None
    groups = z["group"] if "group" in z else None
    coords = np.stack([z["lon"], z["lat"]], 1) if "lon" in z and "lat" in z else None
    ds = ArrayDataset(x, mask=mask, pixel_mask=pm, dates=dates, labels=labels, label_maps=maps,
                      groups=groups, coords=coords, classes=classes, bands=bands, meta=meta,
                      **kwargs)
    if "split" in z:
        ds.split = z["split"]
    return ds
