"""GENERATED demo data: Sentinel-2-like time series with class-specific seasonal curves.

This is synthetic data, made with a fixed seed so that the demo, the docs and the tests run
anywhere without downloads. It is not a substitute for real data: use it to check a pipeline,
never to report accuracy on land cover.

Each class has a vegetation-fraction curve over the year (a double logistic: green-up, then
senescence) that mixes soil, vegetation, water or built-up spectra over the 10 Sentinel-2 bands
(B2, B3, B4, B5, B6, B7, B8, B8A, B11, B12). Every sample is a field (``group``) with its own
jittered phenology; dates are an irregular subset of the 5-day revisit; clouds brighten a
random share of pixels at some dates and are marked in ``pixel_mask`` and ``mask``. Values are
reflectance x 10000, as Sentinel-2 L2A products store them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

S2_BANDS = ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]
DEMO_CLASSES = ["winter cereal", "maize", "rapeseed", "grassland", "forest", "water", "urban",
                "bare soil"]

# Endmember reflectances (0..1) for the 10 bands.
_SOIL = np.array([0.08, 0.11, 0.14, 0.17, 0.19, 0.21, 0.23, 0.25, 0.30, 0.26])
_VEG = np.array([0.03, 0.06, 0.03, 0.10, 0.28, 0.36, 0.42, 0.44, 0.22, 0.11])
_WATER = np.array([0.06, 0.05, 0.03, 0.02, 0.015, 0.01, 0.01, 0.01, 0.005, 0.003])
_URBAN = np.array([0.10, 0.12, 0.13, 0.15, 0.17, 0.18, 0.19, 0.20, 0.24, 0.22])
_CLOUD = np.array([0.45, 0.46, 0.48, 0.49, 0.50, 0.50, 0.51, 0.51, 0.40, 0.30])
_FLOWER = np.array([0.0, 0.06, 0.08, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # yellow rapeseed bloom

# Per class: (base fraction, amplitude, green-up doy, senescence doy, background endmember).
_PHENOLOGY: dict[str, tuple[float, float, float, float, np.ndarray]] = {
    "winter cereal": (0.10, 0.80, 70, 175, _SOIL),
    "maize": (0.05, 0.85, 160, 255, _SOIL),
    "rapeseed": (0.15, 0.75, 50, 150, _SOIL),
    "grassland": (0.40, 0.35, 90, 290, _SOIL),
    "forest": (0.65, 0.25, 115, 285, _SOIL),
    "water": (0.00, 0.00, 0, 0, _WATER),
    "urban": (0.08, 0.05, 110, 280, _URBAN),
    "bare soil": (0.03, 0.05, 120, 200, _SOIL),
}


@dataclass
class DemoData:
    """Generated samples following the sample contract, with their metadata."""

    samples: list[dict[str, Any]]
    classes: list[str]
    bands: list[str] = field(default_factory=lambda: list(S2_BANDS))
    generated: bool = True  # always True: this is synthetic data

    def __len__(self) -> int:
        return len(self.samples)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def make_demo_data(
    n_samples: int = 800,
    img_size: int = 1,
    num_classes: int = 8,
    samples_per_field: int = 4,
    min_dates: int = 20,
    max_dates: int = 40,
    cloud_prob: float = 0.25,
    year: int = 2021,
    seed: int = 0,
) -> DemoData:
    """Generate a labelled demo set (GENERATED, not real data).

    Args:
        n_samples: number of samples.
        img_size: side of each sample's patch (1 = pixel time series).
        num_classes: how many of the 8 demo classes to use (2..8).
        samples_per_field: samples drawn from one field share its phenology; ``group`` holds
            the field id, for grouped splits.
        min_dates, max_dates: each sample keeps a random number of dates in this range from the
            5-day revisit of ``year`` (so T differs between samples).
        cloud_prob: probability that a date is cloudy (a random share of its pixels covered).
        seed: everything is determined by it.

    Returns:
        :class:`DemoData` whose samples have ``sequence (T, 10, H, W)`` (reflectance x 10000),
        ``mask``, ``doy``, ``dates``, ``pixel_mask``, ``label``, ``group``.
    """
    if not 2 <= num_classes <= len(DEMO_CLASSES):
        raise ValueError(f"num_classes must be in 2..{len(DEMO_CLASSES)}, got {num_classes}")
    if not 1 <= min_dates <= max_dates <= 73:
        raise ValueError(f"need 1 <= min_dates <= max_dates <= 73, got {min_dates}, {max_dates}")
    rng = np.random.default_rng(seed)
    classes = DEMO_CLASSES[:num_classes]
    start = np.datetime64(f"{year}-01-01")
    samples: list[dict[str, Any]] = []
    n_fields = -(-n_samples // samples_per_field)
    field_class = np.arange(n_fields) % num_classes
    rng.shuffle(field_class)
    field_jitter = rng.normal(0.0, 1.0, size=(n_fields, 4))
    for i in range(n_samples):
        fid = i // samples_per_field
        label = int(field_class[fid])
        base, amp, green, senesce, background = _PHENOLOGY[classes[label]]
        jit = field_jitter[fid]
        base = float(np.clip(base + 0.03 * jit[0], 0, 1))
        amp = float(np.clip(amp * (1 + 0.1 * jit[1]), 0, 1 - base))
        green, senesce = green + 10 * jit[2], senesce + 10 * jit[3]

        offset = int(rng.integers(0, 5))
        grid = np.arange(offset, 365, 5)
        t = int(rng.integers(min_dates, max_dates + 1))
        days = np.sort(rng.choice(grid, size=min(t, grid.size), replace=False))
        dates = start + days.astype("timedelta64[D]")
        doy = (days + 1).astype(np.int64)

        frac = base + amp * (_sigmoid((doy - green) / 8.0) - _sigmoid((doy - senesce) / 10.0))
        refl = background[None, :] * (1 - frac[:, None]) + _VEG[None, :] * frac[:, None]
        if classes[label] == "rapeseed":
            refl = refl + _FLOWER[None, :] * np.exp(-0.5 * ((doy[:, None] - 115) / 10.0) ** 2)
        h = w = img_size
        x = refl[:, :, None, None] * (1 + 0.03 * rng.standard_normal((doy.size, 1, h, w)))
        x = x + 0.005 * rng.standard_normal((doy.size, 10, h, w))

        cover = np.where(rng.random(doy.size) < cloud_prob, rng.uniform(0.3, 1.0, doy.size), 0.0)
        cloudy = rng.random((doy.size, h, w)) < cover[:, None, None]
        opacity = rng.uniform(0.6, 1.0, (doy.size, 1, h, w))
        x = np.where(cloudy[:, None], (1 - opacity) * x + opacity * _CLOUD[None, :, None, None], x)
        pixel_mask = ~cloudy
        mask = pixel_mask.mean(axis=(1, 2)) >= 0.5

        samples.append({
            "sequence": np.clip(x * 10000.0, 0, 10000).astype(np.float32),
            "mask": mask,
            "doy": doy,
            "dates": dates,
            "pixel_mask": pixel_mask,
            "label": label,
            "group": fid,
        })
    return DemoData(samples=samples, classes=list(classes))


def write_demo_raster(folder: str | Any, *, height: int = 64, width: int = 64,
                      num_dates: int = 6, bands: list[str] | None = None, seed: int = 0,
                      cloud_layer: bool = True, labels: bool = True, origin: tuple[float, float]
                      = (500000.0, 5100000.0), crs: str = "EPSG:32633",
                      block: int = 16) -> dict[str, Any]:
    """GENERATED demo raster time series on disk: one Cloud-Optimized GeoTIFF per date.

    Writes ``<folder>/data/S2_<YYYYMMDD>.tif`` (int16 reflectance x 10000, one band per entry
    of ``bands``, band descriptions set, nodata -9999), with ``cloud_layer`` a sen2r-style
    ``<folder>/SCL/S2_<YYYYMMDD>_SCL.tif`` (Sentinel-2 scene classes: 4 = vegetation, 9 =
    cloud) and with ``labels`` ``<folder>/labels.gpkg`` (one square field polygon per
    ``block`` x ``block`` cell, column ``class``, names from :data:`DEMO_CLASSES`). Classes
    follow a smooth random field, so a patch model has something to learn. 10 m pixels.

    Returns:
        ``{"data": data folder, "folder": folder, "labels": path or None, "classes": names,
        "class_map": (H, W) class index array, "dates": datetime64[D] (T,)}``.
    """
    from pathlib import Path

    import rasterio
    import rasterio.shutil
    from rasterio.transform import from_origin

    bands = list(bands or S2_BANDS[:4])
    root = Path(folder)
    (root / "data").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    k = 4
    cells = rng.integers(0, k, size=(-(-height // block), -(-width // block)))
    class_map = np.kron(cells, np.ones((block, block), np.int64))[:height, :width]
    start = np.datetime64("2021-03-01")
    dates = np.sort(start + rng.choice(np.arange(0, 240, 5), num_dates, replace=False))
    doy = (dates - dates.astype("datetime64[Y]")).astype(np.int64) + 1
    idx = np.linspace(0, len(_SOIL) - 1, len(bands)).round().astype(int)
    soil, veg = _SOIL[idx], _VEG[idx]
    peaks = np.array([120.0, 200.0, 150.0, 260.0])
    transform = from_origin(origin[0], origin[1], 10.0, 10.0)
    profile = {"driver": "COG", "height": height, "width": width, "count": len(bands),
               "dtype": "int16", "nodata": -9999, "crs": crs, "transform": transform,
               "compress": "deflate", "blocksize": 64}
    for t, (d, day) in enumerate(zip(dates, doy)):
        frac = _sigmoid((day - (peaks[class_map] - 40)) / 12) * _sigmoid(
            (peaks[class_map] + 40 - day) / 12)  # (H, W)
        refl = soil[:, None, None] * (1 - frac) + veg[:, None, None] * frac
        refl = refl + rng.normal(0, 0.01, refl.shape)
        values = np.clip(refl * 10000, 0, 10000).astype(np.int16)
        name = f"S2_{str(d).replace('-', '')}"
        mem = root / "data" / f".{name}.tif"
        with rasterio.open(mem, "w", **{**profile, "driver": "GTiff"}) as dst:
            dst.write(values)
            dst.descriptions = tuple(bands)
        rasterio.shutil.copy(mem, root / "data" / f"{name}.tif", driver="COG",
                             compress="DEFLATE", blocksize=64)
        mem.unlink()
        if cloud_layer:
            (root / "SCL").mkdir(exist_ok=True)
            scl = np.full((height, width), 4, np.uint8)
            cy, cx = rng.integers(0, height), rng.integers(0, width)
            rr, cc = np.ogrid[:height, :width]
            scl[(rr - cy) ** 2 + (cc - cx) ** 2 < (min(height, width) // 6) ** 2] = 9
            with rasterio.open(root / "SCL" / f"{name}_SCL.tif", "w", driver="GTiff",
                               height=height, width=width, count=1, dtype="uint8", crs=crs,
                               transform=transform) as dst:
                dst.write(scl, 1)
    names = list(DEMO_CLASSES[:k])
    label_path = None
    if labels:
        import pyogrio.raw
        import shapely

        geoms, classes = [], []
        for i in range(cells.shape[0]):
            for j in range(cells.shape[1]):
                x0 = origin[0] + (j * block + 2) * 10.0
                y1 = origin[1] - (i * block + 2) * 10.0
                side = (min(block, width - j * block, height - i * block) - 4) * 10.0
                if side <= 0:
                    continue
                geoms.append(shapely.box(x0, y1 - side, x0 + side, y1))
                classes.append(names[cells[i, j]])
        label_path = root / "labels.gpkg"
        pyogrio.raw.write(label_path, np.asarray(shapely.to_wkb(geoms), dtype=object),
                          field_data=[np.asarray(classes, dtype=object)], fields=["class"],
                          geometry_type="Polygon", crs=crs, driver="GPKG")
    return {"folder": root, "data": root / "data", "labels": label_path, "classes": names,
            "class_map": class_map, "dates": dates, "bands": bands}


def write_demo_stac(folder: str | Any, **options: Any) -> dict[str, Any]:
    """GENERATED demo data as a local STAC item collection (no network needed).

    Writes :func:`write_demo_raster` data (``options`` pass through), splits every date into
    one single-band COG per band (``items/<date>/<band>.tif``) plus the ``scl`` asset, and
    writes ``<folder>/items.json``: a STAC ``FeatureCollection`` whose items carry the
    projection extension (``proj:code``, ``proj:shape``, ``proj:transform``) and relative
    asset paths. Returns the :func:`write_demo_raster` dict plus ``"stac"`` (the JSON path).
    """
    import json
    from pathlib import Path

    import rasterio
    import rasterio.shutil

    root = Path(folder)
    info = write_demo_raster(root / "geotiff", **options)
    items = []
    for f, d in zip(sorted(info["data"].glob("*.tif")), info["dates"]):
        day = str(d)
        out = root / "items" / day
        out.mkdir(parents=True, exist_ok=True)
        assets = {}
        with rasterio.open(f) as src:
            prof = {**src.profile, "count": 1, "driver": "GTiff"}
            for b, name in enumerate(info["bands"], start=1):
                tmp = out / f".{name}.tif"
                with rasterio.open(tmp, "w", **prof) as dst:
                    dst.write(src.read(b), 1)
                rasterio.shutil.copy(tmp, out / f"{name}.tif", driver="COG", compress="DEFLATE",
                                     blocksize=64)
                tmp.unlink()
                assets[name] = {"href": f"items/{day}/{name}.tif", "roles": ["data"],
                                "type": "image/tiff; application=geotiff; "
                                        "profile=cloud-optimized",
                                "raster:bands": [{"nodata": src.nodata, "data_type": "int16"}]}
            crs, transform, shape = src.crs, src.transform, (src.height, src.width)
            bounds = src.bounds
        scl = info["folder"] / "SCL" / f"{f.stem}_SCL.tif"
        if scl.exists():
            rasterio.shutil.copy(scl, out / "scl.tif", driver="COG", blocksize=64)
            assets["scl"] = {"href": f"items/{day}/scl.tif", "roles": ["cloud"],
                             "type": "image/tiff; application=geotiff",
                             "raster:bands": [{"data_type": "uint8"}]}
        from pyproj import Transformer

        tr = Transformer.from_crs(crs.to_wkt(), "EPSG:4326", always_xy=True)
        lon0, lat0 = tr.transform(bounds.left, bounds.bottom)
        lon1, lat1 = tr.transform(bounds.right, bounds.top)
        items.append({
            "type": "Feature", "stac_version": "1.0.0", "id": f"demo-{day}",
            "stac_extensions": [
                "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
                "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
            "geometry": {"type": "Polygon", "coordinates": [[[lon0, lat0], [lon1, lat0],
                                                              [lon1, lat1], [lon0, lat1],
                                                              [lon0, lat0]]]},
            "bbox": [lon0, lat0, lon1, lat1],
            "properties": {"datetime": f"{day}T10:30:00Z", "proj:code": f"EPSG:{crs.to_epsg()}",
                           "proj:shape": list(shape), "proj:transform": list(transform)[:6]},
            "links": [], "assets": assets})
    path = root / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}, indent=1))
    return {**info, "stac": path}
