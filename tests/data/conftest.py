"""Tiny generated fixtures (fixed seeds) in real on-disk layouts: GeoTIFF stacks, PASTIS."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

CRS = "EPSG:32632"
X0, Y0 = 600000.0, 5000000.0


def make_geotiff_stack(folder: Path, n_dates: int = 5, h: int = 6, w: int = 8, bands: int = 3,
                       seed: int = 0, naming: str = "sen2r") -> dict:
    """Per-date 10 m stacks + an SCL layer at 20 m (offset by one 10 m row) + a label raster."""
    rng = np.random.default_rng(seed)
    data_dir, scl_dir = folder / "data", folder / "scl"
    data_dir.mkdir(parents=True)
    scl_dir.mkdir()
    dates = np.datetime64("2021-03-01") + np.arange(n_dates) * np.timedelta64(7, "D")
    values = rng.integers(100, 5000, size=(n_dates, bands, h, w)).astype(np.int16)
    values[1, :, 0, 0] = -32768  # nodata at date 1, pixel (0, 0)
    scl = rng.choice([4, 5, 8, 9], size=(n_dates, h // 2 + 1, w // 2), p=[.4, .3, .2, .1])
    scl = scl.astype(np.uint8)
    scl[:, 0, 0] = 0  # SCL nodata in the top-left 20 m cell
    for i, d in enumerate(dates):
        stamp = str(d).replace("-", "")
        name = {"sen2r": f"S2A2A_{stamp}_022_roi_BOA_10.tif",
                "force": f"{stamp}_LEVEL2_SEN2A_BOA.tif",
                "safe": f"S2A_MSIL2A_{stamp}T101031_N0500_R022_T32TQQ_{stamp}T140000.tif"}[naming]
        with rasterio.open(data_dir / name, "w", driver="GTiff", height=h, width=w,
                           count=bands, dtype="int16", crs=CRS, nodata=-32768,
                           transform=from_origin(X0, Y0, 10, 10)) as dst:
            dst.write(values[i])
            dst.descriptions = tuple(f"B{k + 2}" for k in range(bands))
        if naming == "force":  # FORCE quality bits beside the BOA file: bit 1 = cloud
            qai = np.where(values[i, 0] % 3 == 0, 2, 0).astype(np.int16)
            with rasterio.open(data_dir / f"{stamp}_LEVEL2_SEN2A_QAI.tif", "w", driver="GTiff",
                               height=h, width=w, count=1, dtype="int16", crs=CRS,
                               transform=from_origin(X0, Y0, 10, 10)) as dst:
                dst.write(qai, 1)
        with rasterio.open(scl_dir / f"S2A2A_{stamp}_022_roi_SCL_20.tif", "w", driver="GTiff",
                           height=scl.shape[1], width=scl.shape[2], count=1, dtype="uint8",
                           crs=CRS, nodata=0, transform=from_origin(X0, Y0 + 10, 20, 20)) as dst:
            dst.write(scl[i], 1)
    labels = rng.choice([0, 3, 7], size=(h, w)).astype(np.uint8)
    with rasterio.open(folder / "labels.tif", "w", driver="GTiff", height=h, width=w, count=1,
                       dtype="uint8", crs=CRS, nodata=255,
                       transform=from_origin(X0, Y0, 10, 10)) as dst:
        dst.write(labels, 1)
    # expected clear mask: data pixel (r, c) centre y = Y0 - 10r - 5 lies in SCL row (r + 1)//2
    rows = (np.arange(h) + 1) // 2
    cols = np.arange(w) // 2
    scl_on_grid = scl[:, rows][:, :, cols]
    clear = np.isin(scl_on_grid, (4, 5, 6)) & (values != -32768).all(axis=1)
    return {"data": data_dir, "scl": scl_dir, "labels": folder / "labels.tif",
            "values": values, "clear": clear, "dates": dates, "label_raster": labels}


def make_pastis(folder: Path, n_patches: int = 3, size: int = 4, seed: int = 0) -> dict:
    """PASTIS layout: DATA_S2/S2_<id>.npy (T,10,H,W), ANNOTATIONS/TARGET_<id>.npy (3,H,W)."""
    rng = np.random.default_rng(seed)
    (folder / "DATA_S2").mkdir(parents=True)
    (folder / "ANNOTATIONS").mkdir()
    feats, arrays, targets, all_dates = [], [], [], []
    for k in range(n_patches):
        pid = 10000 + k
        t = 4 + k
        days = np.sort(rng.choice(np.arange(0, 300, 5), t, replace=False))
        dates = np.datetime64("2018-09-24") + days.astype("timedelta64[D]")
        x = rng.normal(1000, 200, (t, 10, size, size)).astype(np.float32)
        y = rng.integers(0, 20, (3, size, size)).astype(np.uint8)
        np.save(folder / "DATA_S2" / f"S2_{pid}.npy", x)
        np.save(folder / "ANNOTATIONS" / f"TARGET_{pid}.npy", y)
        feats.append({"type": "Feature", "geometry": None, "properties": {
            "ID_PATCH": pid, "Fold": k % 5 + 1, "N_Parcel": 3,
            "dates-S2": {str(i): int(str(d).replace("-", "")) for i, d in enumerate(dates)}}})
        arrays.append(x)
        targets.append(y)
        all_dates.append(dates)
    (folder / "metadata.geojson").write_text(json.dumps({
        "type": "FeatureCollection", "crs": {"type": "name", "properties": {
            "name": "urn:ogc:def:crs:EPSG::2154"}}, "features": feats}))
    return {"x": arrays, "y": targets, "dates": all_dates}


@pytest.fixture
def geotiff_stack():
    """The generator of a tiny per-date GeoTIFF stack (call with a folder)."""
    return make_geotiff_stack


@pytest.fixture
def pastis_folder():
    """The generator of a tiny PASTIS-layout folder (call with a folder)."""
    return make_pastis
