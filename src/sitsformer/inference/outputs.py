"""The files map inference writes: Cloud-Optimized GeoTIFFs with a legend, and VRT mosaics.

rasterio writes colour tables (``write_colormap``), band descriptions, tags and scale/offset,
and copies through GDAL's ``COG`` driver (internal tiling + overviews); it has no API for
GDAL category names or raster attribute tables. So the class map carries its colour table,
the band description ``class`` and the legend as tags (``class_names``, ``class_codes``,
``class_colors``, JSON; all from :mod:`sitsformer.data.legend`), and two small files beside it
carry the legend: ``<map>.tif.aux.xml`` (GDAL's PAM sidecar with the
category names, which GDAL and QGIS read) and ``<map>.qml`` (a QGIS paletted style, which QGIS
loads automatically when the map is opened).

:func:`build_vrt` combines the maps of several tiles on one grid into a GDAL VRT mosaic (what
``gdalbuildvrt`` writes, for tiles that share a CRS and pixel size), keeping nodata, the colour
table and the class names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import rasterio.errors
import rasterio.shutil
from rasterio.windows import Window

from sitsformer.data.cog import to_cog
from sitsformer.data.legend import (
    Legend,
    write_class_legend,
    write_probability_legend,
    write_sidecars,
)

__all__ = ["CLASS_NODATA", "CONFIDENCE_NODATA", "PROBABILITY_NODATA_UINT8", "build_vrt",
           "write_outputs"]

CLASS_NODATA = 255
"""Nodata value of a ``uint8`` class map (``65535`` when there are 255 classes or more)."""
CONFIDENCE_NODATA = -1.0
"""Nodata value of the confidence and probability rasters (probabilities lie in [0, 1])."""
PROBABILITY_NODATA_UINT8 = 255
"""Nodata of compact (``uint8``, ``round(254 p)``) probabilities."""


def _profile(src: Any, dtype: str, count: int, nodata: float) -> dict[str, Any]:
    h, w = int(src.height), int(src.width)
    profile: dict[str, Any] = {"driver": "GTiff", "height": h, "width": w, "count": count,
                               "dtype": dtype, "nodata": nodata, "compress": "deflate"}
    if h >= 256 and w >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    if getattr(src, "crs", None) is not None:
        profile["crs"] = rasterio.crs.CRS.from_user_input(src.crs)
    if getattr(src, "transform", None) is not None:
        profile["transform"] = src.transform
    return profile


def write_outputs(ledger: Any, windows: list[tuple[int, int, int, int]], src: Any,
                  targets: list[Path], cls_dtype: str, cls_nodata: int, k: int,
                  legend: Legend, probabilities: bool, probabilities_dtype: str, *,
                  cog: bool = True) -> None:
    """Assemble the finished blocks of ``ledger`` into the final maps (module doc). A source
    without a transform (an in-memory array) gives maps in pixel coordinates, without
    rasterio's ``NotGeoreferencedWarning`` on every file written and copied."""
    import warnings

    with warnings.catch_warnings():
        if getattr(src, "transform", None) is None:
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        _write_outputs(ledger, windows, src, targets, cls_dtype, cls_nodata, k, legend,
                       probabilities, probabilities_dtype, cog=cog)


def _write_outputs(ledger: Any, windows: list[tuple[int, int, int, int]], src: Any,
                   targets: list[Path], cls_dtype: str, cls_nodata: int, k: int,
                   legend: Legend, probabilities: bool, probabilities_dtype: str, *,
                   cog: bool = True) -> None:
    legend = legend.resized(k)
    prob_u8 = probabilities_dtype == "uint8"
    specs = [("cls", cls_dtype, 1, cls_nodata, "nearest"),
             ("conf", "float32", 1, CONFIDENCE_NODATA, "average")]
    if probabilities:
        specs.append(("prob", "uint8" if prob_u8 else "float32", k,
                      PROBABILITY_NODATA_UINT8 if prob_u8 else CONFIDENCE_NODATA, "average"))
    for (key, dtype, count, nodata, resampling), final in zip(specs, targets):
        tmp = ledger.folder / f"assembled_{key}.tif"
        with rasterio.open(tmp, "w", **_profile(src, dtype, count, nodata)) as dst:
            for i, (r0, c0, h, w) in enumerate(windows):
                block = ledger.read(i)[key]
                dst.write(block.astype(dtype).reshape(count, h, w), window=Window(c0, r0, w, h))
            if key == "cls":
                write_class_legend(dst, legend)
            elif key == "conf":
                dst.set_band_description(1, "confidence (highest class probability)")
            else:
                write_probability_legend(dst, legend)
                if prob_u8:
                    dst.scales = [1.0 / 254.0] * k
                    dst.offsets = [0.0] * k
        to_cog(tmp, final, resampling, cog=cog)
        if key == "cls":
            write_sidecars(final, legend)

_GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
               "int32": "Int32", "float32": "Float32", "float64": "Float64"}


def build_vrt(paths: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str]) -> Path:
    """A VRT mosaic of rasters on one grid (same CRS, pixel size, bands and data type).

    Tiles may overlap; where they do, the later tile wins except at its nodata pixels. Paths
    are written relative to the VRT, so the mosaic and its tiles can move together. The first
    tile's colour table, band descriptions, class names (``.aux.xml`` category names) and
    legend tags (``class_names``, ``class_codes``, ``class_colors``) are kept.

    Raises:
        ValueError: no paths, or a tile differs in CRS, pixel size, rotation, band count or
            data type (names the tile and both values).
    """
    out = Path(output)
    if not paths:
        raise ValueError("build_vrt needs at least one raster")
    infos = []
    for p in paths:
        with rasterio.open(p) as ds:
            infos.append({"path": Path(p), "crs": ds.crs, "t": ds.transform, "h": ds.height,
                          "w": ds.width, "count": ds.count, "dtype": ds.dtypes[0],
                          "nodata": ds.nodata, "desc": ds.descriptions,
                          "cmap": ds.colormap(1) if ds.count == 1 and ds.dtypes[0] in (
                              "uint8", "uint16") and _has_colormap(ds) else None,
                          "scales": ds.scales, "offsets": ds.offsets,
                          "legend_tags": {key: v for key, v in ds.tags().items() if key in (
                              "class_names", "class_codes", "class_colors")}})
    ref = infos[0]
    for info in infos[1:]:
        for key, label in (("crs", "CRS"), ("count", "band count"), ("dtype", "data type")):
            if info[key] != ref[key]:
                raise ValueError(f"{info['path']}: {label} {info[key]} differs from "
                                 f"{ref['path']}'s {ref[key]}; a VRT mosaic needs one grid")
        if not np.allclose([info["t"].a, info["t"].b, info["t"].d, info["t"].e],
                           [ref["t"].a, ref["t"].b, ref["t"].d, ref["t"].e]):
            raise ValueError(f"{info['path']}: pixel size/rotation {tuple(info['t'])[:6]} "
                             f"differs from {ref['path']}'s {tuple(ref['t'])[:6]}")
    a, e = ref["t"].a, ref["t"].e
    if ref["t"].b or ref["t"].d:
        raise ValueError(f"{ref['path']}: rotated grids are not supported in a VRT mosaic")
    lefts = [i["t"].c for i in infos]
    rights = [i["t"].c + a * i["w"] for i in infos]
    tops = [i["t"].f for i in infos]
    bottoms = [i["t"].f + e * i["h"] for i in infos]
    x0, y0 = min(lefts), (max(tops) if e < 0 else min(tops))
    width = int(round((max(rights) - x0) / a))
    height = int(round(((min(bottoms) if e < 0 else max(bottoms)) - y0) / e))
    gtype = _GDAL_TYPES[ref["dtype"]]
    names = None
    aux = Path(f"{ref['path']}.aux.xml")
    if aux.exists() and "<CategoryNames>" in aux.read_text():
        text = aux.read_text()
        names = text[text.index("<CategoryNames>"):text.index("</CategoryNames>") + 16]
    bands = []
    for b in range(1, ref["count"] + 1):
        parts = [f'  <VRTRasterBand dataType="{gtype}" band="{b}">']
        if ref["nodata"] is not None:
            parts.append(f"    <NoDataValue>{ref['nodata']!r}</NoDataValue>")
        if ref["desc"][b - 1]:
            parts.append(f"    <Description>{escape(ref['desc'][b - 1])}</Description>")
        if ref["scales"][b - 1] != 1.0 or ref["offsets"][b - 1] != 0.0:
            parts.append(f"    <Offset>{ref['offsets'][b - 1]!r}</Offset>"
                         f"<Scale>{ref['scales'][b - 1]!r}</Scale>")
        if ref["cmap"] is not None and b == 1:
            parts.append("    <ColorInterp>Palette</ColorInterp>\n    <ColorTable>")
            top = max(ref["cmap"])
            parts += [f'      <Entry c1="{c[0]}" c2="{c[1]}" c3="{c[2]}" c4="{c[3]}"/>'
                      for c in (ref["cmap"].get(i, (0, 0, 0, 0)) for i in range(top + 1))]
            parts.append("    </ColorTable>")
            if names:
                parts.append("    " + names)
        for info in infos:
            rel = os.path.relpath(info["path"].resolve(), out.resolve().parent)
            xo = int(round((info["t"].c - x0) / a))
            yo = int(round((info["t"].f - y0) / e))
            nod = (f"<NODATA>{info['nodata']!r}</NODATA>" if info["nodata"] is not None else "")
            parts.append(
                f'    <ComplexSource><SourceFilename relativeToVRT="1">{escape(rel)}'
                f"</SourceFilename><SourceBand>{b}</SourceBand>"
                f'<SrcRect xOff="0" yOff="0" xSize="{info["w"]}" ySize="{info["h"]}"/>'
                f'<DstRect xOff="{xo}" yOff="{yo}" xSize="{info["w"]}" ySize="{info["h"]}"/>'
                f"{nod}</ComplexSource>")
        parts.append("  </VRTRasterBand>")
        bands.append("\n".join(parts))
    srs = f"  <SRS>{escape(ref['crs'].to_wkt())}</SRS>\n" if ref["crs"] else ""
    gt = ", ".join(repr(float(v)) for v in (x0, a, 0.0, y0, 0.0, e))
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = ""
    if ref["legend_tags"]:  # the legend tags (sitsformer.data.legend) of the first tile
        meta = "  <Metadata>\n" + "".join(
            f'    <MDI key="{key}">{escape(v)}</MDI>\n' for key, v in ref["legend_tags"].items()
        ) + "  </Metadata>\n"
    out.write_text(f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">\n{srs}'
                   f"  <GeoTransform>{gt}</GeoTransform>\n{meta}" + "\n".join(bands)
                   + "\n</VRTDataset>\n")
    return out


def _has_colormap(ds: Any) -> bool:
    try:
        ds.colormap(1)
    except ValueError:
        return False
    return True
