"""Points as GeoPackages (pyogrio + shapely): pixel centres out, labelled points in."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyogrio.raw
import rasterio
import shapely
from affine import Affine

from sitsformer.maps.raster import data_error

__all__ = ["pixel_centres", "read_points", "write_points", "xy_to_pixel"]


def pixel_centres(rows: np.ndarray, cols: np.ndarray, transform: Affine
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates of the centres of pixels ``(rows, cols)``."""
    xs, ys = rasterio.transform.xy(transform, np.asarray(rows), np.asarray(cols), offset="center")
    return np.asarray(xs, np.float64), np.asarray(ys, np.float64)


def xy_to_pixel(xs: np.ndarray, ys: np.ndarray, transform: Affine
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, cols)`` of the pixels that contain map coordinates ``(xs, ys)``."""
    rows, cols = rasterio.transform.rowcol(transform, np.asarray(xs), np.asarray(ys),
                                           op=np.floor)
    return np.asarray(rows, np.int64), np.asarray(cols, np.int64)


def write_points(path: str | os.PathLike[str], table: pd.DataFrame, transform: Affine,
                 crs: Any, *, overwrite: bool = False, layer: str = "points") -> Path:
    """Write one point per row of ``table`` (its ``row`` and ``col`` columns give the pixel;
    the point is the pixel centre, ``x`` and ``y`` columns are added) as a GeoPackage in
    ``crs``, under a temporary name renamed when complete."""
    out = Path(path)
    if out.exists() and not overwrite:
        raise FileExistsError(f"output exists: {out} (pass --overwrite / overwrite=True)")
    xs, ys = pixel_centres(table["row"].to_numpy(), table["col"].to_numpy(), transform)
    table = table.assign(x=xs, y=ys)
    geoms = shapely.to_wkb(shapely.points(xs, ys))
    fields, data, masks = [], [], []
    for name in table.columns:
        col = table[name]
        if isinstance(col.dtype, pd.api.extensions.ExtensionDtype):
            mask = col.isna().to_numpy()
            fill = 0 if col.dtype.kind in "iu" else ""
            data.append(col.fillna(fill).to_numpy(dtype="int64" if col.dtype.kind in "iu"
                                                  else object))
            masks.append(mask)
        else:
            data.append(col.to_numpy())
            masks.append(None)
        fields.append(str(name))
    tmp = out.with_name(f".{out.stem}.partial{out.suffix or '.gpkg'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
        tmp.unlink()
    wkt = rasterio.crs.CRS.from_user_input(crs).to_wkt() if crs is not None else None
    try:
        with warnings.catch_warnings():
            # without a CRS pyogrio warns too; the map commands already said so, naming the
            # raster (maps.raster.warn_no_crs), so its generic line is left out
            warnings.filterwarnings("ignore", message="'crs' was not provided",
                                    category=UserWarning)
            pyogrio.raw.write(str(tmp), geoms, data, fields, field_mask=masks, layer=layer,
                              driver="GPKG", geometry_type="Point", crs=wkt)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def read_points(path: str | os.PathLike[str], layer: str | None = None
                ) -> tuple[pd.DataFrame, np.ndarray, str | None]:
    """Read a point file (GeoPackage, Shapefile, GeoJSON, ...): ``(attributes, xy (N, 2),
    CRS as WKT)``."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"points file not found: {p}")
    try:
        info, _, geoms, fields = pyogrio.raw.read(str(p), layer=layer)
    except Exception as err:
        raise data_error(f"{p}: cannot read points: {err}") from err
    g = shapely.from_wkb(geoms)
    kinds = set(shapely.get_type_id(g).tolist())
    if kinds - {0}:  # 0 = Point
        raise data_error(f"{p}: expected point geometries, found geometry types "
                        f"{sorted(shapely.get_type_id(g[shapely.get_type_id(g) != 0]).tolist())[:3]}"
                        f" (shapely type ids) at {int((shapely.get_type_id(g) != 0).sum())} "
                        "features")
    table = pd.DataFrame({name: col for name, col in zip(info["fields"], fields)})
    xy = np.column_stack([shapely.get_x(g), shapely.get_y(g)])
    return table, xy, info.get("crs")
