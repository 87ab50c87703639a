"""Map layers of the report: downsampled overviews of the rasters as base64 PNGs.

A class map is read at most ``max_side`` pixels on its long side (GDAL picks the COG's own
overviews, nearest neighbour), written twice: a paletted PNG in the map's colour table (what is
shown) and a grey PNG of the class indices (what the viewer reads the class under the cursor
from). Continuous layers (confidence, uncertainty) are averaged and coloured with a matplotlib
colour map.
"""

from __future__ import annotations

import base64
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ClassLayer", "legend", "read_class_layer", "read_value_layer"]


@dataclass
class ClassLayer:
    """A class map's overview and legend."""

    path: Path
    names: list[str]
    colors: list[tuple[int, int, int]]
    png: str  # base64 paletted PNG (nodata transparent)
    index_png: str  # base64 grey PNG of the class index (255 = nodata)
    shape: tuple[int, int]  # overview (rows, cols)
    full_shape: tuple[int, int]
    transform: list[float]  # full-resolution affine a, b, c, d, e, f
    crs: str | None
    legend_source: str  # where names and colours came from


def _png(image: Any) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=6)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def overview_shape(height: int, width: int, max_side: int) -> tuple[int, int]:
    f = max(height, width) / max_side
    if f <= 1:
        return height, width
    return max(1, round(height / f)), max(1, round(width / f))


def legend(ds: Any, fallback: dict[str, Any] | None = None
           ) -> tuple[list[str], list[tuple[int, int, int]], str]:
    """Class names and RGB colours of an open class map: the names from predict's
    ``class_names`` tag (else the band's ``CLASS_i`` tags, else ``fallback['names']``, else the
    indices), the colours from the colour table (else ``fallback['colors']``, else
    :func:`sitsformer.data.legend.default_colors`, the palette every map command uses)."""
    tags = ds.tags()
    band = ds.tags(1)
    source = []
    names: list[str] | None = None
    if "class_names" in tags:
        names = [str(n) for n in json.loads(tags["class_names"])]
        source.append("names: the map's class_names tag")
    elif any(k.startswith("CLASS_") for k in band):
        idx = sorted(int(k[6:]) for k in band if k.startswith("CLASS_") and k[6:].isdigit())
        names = [band.get(f"CLASS_{i}", str(i)) for i in range(max(idx) + 1)]
        source.append("names: the band's CLASS_i tags")
    elif fallback and fallback.get("names"):
        names = list(fallback["names"])
        source.append(f"names: {fallback.get('source', 'the class map')}")
    try:
        cmap = ds.colormap(1)
    except ValueError:
        cmap = None
    if names is None:
        top = max(cmap) + 1 if cmap else 0
        names = [str(i) for i in range(top)]
        source.append("names: the class indices (no class names in the file)")
    k = len(names)
    if cmap:
        colors = [tuple(int(v) for v in cmap.get(i, (128, 128, 128, 255))[:3])
                  for i in range(k)]
        source.append("colours: the map's colour table")
    elif fallback and fallback.get("colors") and len(fallback["colors"]) >= k:
        colors = [tuple(c) for c in fallback["colors"][:k]]
        source.append(f"colours: {fallback.get('source', 'the class map')}")
    else:
        from sitsformer.data.legend import default_colors

        colors = default_colors(names)
        source.append("colours: sitsformer's default palette (no colour table in the file)")
    return names, colors, "; ".join(source)  # type: ignore[return-value]


def read_class_layer(path: str | os.PathLike[str], max_side: int = 2048,
                     fallback: dict[str, Any] | None = None) -> ClassLayer:
    """Overview PNGs and legend of a single-band class map (module doc)."""
    import rasterio
    from PIL import Image
    from rasterio.enums import Resampling

    with rasterio.open(path) as ds:
        if ds.count != 1:
            raise ValueError(f"{path}: a class map has one band, found {ds.count}")
        names, colors, source = legend(ds, fallback)
        h, w = overview_shape(ds.height, ds.width, max_side)
        data = ds.read(1, out_shape=(h, w), resampling=Resampling.nearest)
        nodata = ds.nodata
        transform = list(ds.transform)[:6]
        crs = ds.crs.to_string() if ds.crs else None
        full = (ds.height, ds.width)
    k = len(names)
    if k > 255:
        raise ValueError(f"{path}: {k} classes; the report's map shows at most 255")
    valid = (data >= 0) & (data < k)
    if nodata is not None:
        valid &= data != nodata
    idx = np.where(valid, data, 255).astype(np.uint8)
    shown = Image.frombytes("P", (w, h), idx.tobytes())
    palette = [0] * 768
    for i, c in enumerate(colors[:255]):
        palette[3 * i:3 * i + 3] = list(c)
    shown.putpalette(palette)
    shown.info["transparency"] = 255
    grey = Image.frombytes("L", (w, h), idx.tobytes())
    return ClassLayer(Path(path), names, list(colors), _png(shown), _png(grey), (h, w), full,
                      transform, crs, source)


def read_value_layer(path: str | os.PathLike[str], shape: tuple[int, int], cmap: str,
                     band: int | None = 1, vmin: float = 0.0, vmax: float = 1.0) -> str:
    """A continuous raster's band averaged to ``shape`` and coloured with ``cmap`` (nodata
    transparent), as a base64 PNG; ``band=None``: the highest value over the bands (the
    confidence of a probability raster)."""
    import matplotlib
    import rasterio
    from PIL import Image
    from rasterio.enums import Resampling

    with rasterio.open(path) as ds:
        bands = list(range(1, ds.count + 1)) if band is None else [band]
        data = ds.read(bands, out_shape=(len(bands), *shape), resampling=Resampling.average,
                       masked=True).astype("float64")
        scales = np.asarray([ds.scales[b - 1] if ds.scales else 1.0 for b in bands])
    values = np.ma.filled((data * scales[:, None, None]).max(0), np.nan)
    norm = np.clip((values - vmin) / (vmax - vmin), 0, 1)
    rgba = (matplotlib.colormaps[cmap](np.nan_to_num(norm)) * 255).astype(np.uint8)
    rgba[~np.isfinite(values), 3] = 0
    return _png(Image.fromarray(rgba, mode="RGBA"))
