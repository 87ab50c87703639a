"""A study's legend: the names, codes and colours of its classes, the same in every output.

A :class:`Legend` has one entry per class index (the value of a class-map pixel): a name, the
code the training data labelled the class with (when it had codes) and an RGB colour. Every map
command resolves it the same way (:func:`resolve`), from, in order of precedence:

1. ``--legend FILE`` (:func:`read_legend_file`), matched to the classes by name, else by code,
   else in order (see :func:`build`);
2. ``--classes NAME ...`` where a command has it (names only);
3. what the input raster carries (:func:`from_raster`: the tags ``class_names``,
   ``class_codes`` and ``class_colors`` that every sitsformer map writes, else its colour table
   with ``CLASS_<i>`` band tags, or ``p(name)`` band descriptions);
4. the checkpoint's input spec (``classes``, ``class_values``, ``class_colors``: the training
   data's legend, e.g. the colours of a ``class_map.txt`` beside a CSV table).

Colours not given anywhere are deterministic (:func:`default_colors`): a well-known land-cover
colour (ESA WorldCover) for names such as forest, water, urban, grassland, cropland, else the
class's entry in a fixed 20-colour palette (Tableau 20) keyed by class index; so the same study
run twice gets the same colours, and a smoothed map has the colours of the map it came from.

Legend files (``--legend``), one class per line, blank lines and ``#`` comments ignored:

* ``class_map.txt`` / CSV: an optional header line, then ``code,name[,colour]`` (``,`` ``;``
  or tab separated), e.g. ``8,Forest,rgb(50, 150, 0)`` or ``8;Forest;#329600``;
* plain text: ``code name [colour]`` separated by spaces, the name may contain spaces, the
  colour is ``#rrggbb`` or ``rgb(r, g, b)``: ``8 Mixed forest #329600``;
* a QGIS colour-map export (``Export Color Map to File``): ``value,r,g,b,alpha,label`` lines
  after ``# QGIS Generated Color Map Export File`` / ``INTERPOLATION:...``.

Colours are ``#rrggbb``, ``#rgb``, ``rgb(r, g, b)`` or ``r,g,b`` (0-255).

Writing: :func:`write_class_legend` puts the colour table, the band description ``class``,
``CLASS_<i>`` band tags and the ``class_names``/``class_codes``/``class_colors`` dataset tags
(JSON) on an open class-map dataset; :func:`write_sidecars` writes ``<map>.tif.aux.xml`` (GDAL
category names) and ``<map>.qml`` (a QGIS paletted style); :func:`write_quicklook` draws a PNG
of a class map with exactly the colour-table colours and the legend beside it.
"""

from __future__ import annotations

import colorsys
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

__all__ = ["Legend", "add_legend_options", "build", "default_colors", "from_raster",
           "parse_color", "read_legend_file", "resolve", "write_class_legend",
           "write_quicklook", "write_sidecars"]

RGB = tuple[int, int, int]

PALETTE: tuple[RGB, ...] = tuple(tuple(int(h[i:i + 2], 16) for i in (0, 2, 4)) for h in (  # type: ignore[misc]
    "1f77b4", "ff7f0e", "2ca02c", "d62728", "9467bd", "8c564b", "e377c2", "7f7f7f", "bcbd22",
    "17becf", "aec7e8", "ffbb78", "98df8a", "ff9896", "c5b0d5", "c49c94", "f7b6d2", "c7c7c7",
    "dbdb8d", "9edae5"))
"""Tableau 20 (tab10 then its light variants): the colour of class ``i`` is ``PALETTE[i]``."""

LAND_COVER: tuple[tuple[tuple[str, ...], RGB], ...] = (
    (("forest", "tree", "wood"), (0, 100, 0)),
    (("mangrove",), (0, 207, 117)),
    (("shrub", "schrub", "scrub"), (255, 187, 34)),
    (("grass", "pasture", "meadow", "herbaceous"), (255, 255, 76)),
    (("crop", "cultivated", "agricultur", "arable", "farm"), (240, 150, 255)),
    (("urban", "built", "artificial", "settlement", "impervious"), (250, 0, 0)),
    (("bare", "sparse"), (180, 180, 180)),
    (("snow", "ice", "glacier"), (240, 240, 240)),
    (("wetland", "marsh", "swamp"), (0, 150, 160)),
    (("water", "river", "lake", "sea"), (0, 100, 200)),
    (("moss", "lichen"), (250, 230, 160)),
)
"""Name keywords -> ESA WorldCover colours (the first class whose name holds a keyword)."""

NODATA_RGBA = (0, 0, 0, 0)


@dataclass(frozen=True)
class Legend:
    """Names, codes (or None) and RGB colours of classes ``0..K-1``."""

    names: tuple[str, ...]
    colors: tuple[RGB, ...]
    codes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.colors) != len(self.names) or (self.codes is not None
                                                   and len(self.codes) != len(self.names)):
            raise ValueError(f"Legend: {len(self.names)} names, {len(self.colors)} colours, "
                             f"{len(self.codes or [])} codes; expected one of each per class")

    def __len__(self) -> int:
        return len(self.names)

    def hex(self, i: int) -> str:
        return "#{:02x}{:02x}{:02x}".format(*self.colors[i])

    def colormap(self) -> dict[int, tuple[int, int, int, int]]:
        """The GeoTIFF colour table: ``{class index: (r, g, b, 255)}``."""
        return {i: (*c, 255) for i, c in enumerate(self.colors)}

    def tags(self) -> dict[str, str]:
        """Dataset tags (JSON lists) :func:`from_raster` reads back."""
        out = {"class_names": json.dumps(list(self.names)),
               "class_colors": json.dumps([self.hex(i) for i in range(len(self))])}
        if self.codes is not None:
            out["class_codes"] = json.dumps(list(self.codes))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "codes": list(self.codes) if self.codes else None,
                "colors": [self.hex(i) for i in range(len(self))]}

    def resized(self, k: int) -> Legend:
        """The first ``k`` classes, or these plus default entries up to ``k``."""
        if k <= len(self):
            return Legend(self.names[:k], self.colors[:k],
                          self.codes[:k] if self.codes is not None else None)
        names = list(self.names) + [str(i) for i in range(len(self), k)]
        extra = default_colors(names)[len(self):]
        return Legend(tuple(names), self.colors + tuple(extra), None)


def _error(message: str) -> Exception:
    from sitsformer.data.errors import DataError

    return DataError(message)


def default_colors(names: Sequence[str]) -> list[RGB]:
    """Deterministic colours for classes with these names (module doc): a land-cover colour
    for the first class whose name holds its keyword, else the class's palette entry (beyond
    20 classes, hues spaced by the golden angle)."""
    out: list[RGB] = []
    used: set[RGB] = set()
    for i, name in enumerate(names):
        low = str(name).lower()
        color = next((c for words, c in LAND_COVER if c not in used
                      and any(w in low for w in words)), None)
        if color is None:
            if i < len(PALETTE):
                color = PALETTE[i]
            else:
                r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65, 0.9)
                color = (int(round(255 * r)), int(round(255 * g)), int(round(255 * b)))
        used.add(color)
        out.append(color)
    return out


_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")
_RGB = re.compile(r"^(?:rgba?\()?\s*(\d{1,3})\s*[,\s]\s*(\d{1,3})\s*[,\s]\s*(\d{1,3})"
                  r"(?:\s*[,\s]\s*\d{1,3}(?:\.\d+)?)?\s*\)?$", re.IGNORECASE)


def parse_color(text: str) -> RGB | None:
    """``#rrggbb``, ``#rgb``, ``rgb(r, g, b)``, ``r,g,b`` -> ``(r, g, b)``; None if it is
    none of these."""
    t = str(text).strip()
    m = _HEX.match(t)
    if m and t.startswith("#"):
        h = m.group(1)
        h = "".join(c * 2 for c in h) if len(h) == 3 else h
        return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
    m = _RGB.match(t)
    if m:
        vals = tuple(int(v) for v in m.groups())
        if all(0 <= v <= 255 for v in vals):
            return vals  # type: ignore[return-value]
    return None


@dataclass(frozen=True)
class Entry:
    """One line of a legend file."""

    code: int
    name: str
    color: RGB | None


def read_legend_file(path: str | os.PathLike[str], strict: bool = True) -> list[Entry]:
    """The entries of a legend file (formats in the module doc), in file order.

    ``strict=False`` (a legend read for its names and codes, as the CSV reader does): a
    colour that cannot be read leaves that class without colour (it gets its default one),
    and one ``DataWarning`` names the file, the lines and the colours.

    Raises:
        FileNotFoundError: no such file.
        DataError: a line that is none of the formats (naming the file, the line and what was
            expected), a colour that cannot be read, or a code given twice.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"legend file not found: {p}")
    lines = p.read_text(encoding="utf-8-sig").splitlines()
    qgis = any(ln.startswith("# QGIS") or ln.upper().startswith("INTERPOLATION:")
               for ln in lines[:5])
    entries: list[Entry] = []
    first = True
    unread: list[str] = []
    for no, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#") or (qgis and line.upper().startswith("INTERPOLATION")):
            continue
        entry = _parse_line(line, qgis)
        if isinstance(entry, str) and not strict and entry.startswith("colour "):
            unread.append(f"line {no} ({entry.split(':')[0]})")
            entry = _parse_line(_without_color(line), qgis)
        if entry is None:
            if first:  # a header line (value,class,colour)
                first = False
                continue
            raise _error(f"{p} line {no}: cannot read {raw!r}; expected 'code,name[,colour]', "
                         "'code name [colour]' or a QGIS colour-map line "
                         "'value,r,g,b,alpha,label' (colour #rrggbb or rgb(r, g, b))")
        first = False
        if isinstance(entry, str):
            raise _error(f"{p} line {no}: {entry}")
        entries.append(entry)
    if not entries:
        raise _error(f"{p}: no legend entry; expected one 'code,name[,colour]' line per class")
    if unread:
        import warnings

        from sitsformer.data.errors import DataWarning

        warnings.warn(f"{p}: cannot read the colour on {'; '.join(unread)}: expected #rrggbb, "
                      "rgb(r, g, b) or r,g,b with values 0..255; the maps use default colours "
                      "for these classes", DataWarning, stacklevel=3)
    seen: dict[int, str] = {}
    for e in entries:
        if e.code in seen:
            raise _error(f"{p}: code {e.code} is given twice ({seen[e.code]!r} and {e.name!r})")
        seen[e.code] = e.name
    return entries


def _parse_line(line: str, qgis: bool) -> Entry | str | None:
    """An entry, an error message (str) or None (not an entry line: a header)."""
    if qgis:
        parts = [s.strip() for s in line.split(",", 5)]
        if len(parts) < 4 or not _is_int(parts[0]):
            return None
        try:
            rgb = tuple(int(float(v)) for v in parts[1:4])
        except ValueError:
            return f"expected 'value,r,g,b,alpha,label', got {line!r}"
        name = parts[5] if len(parts) > 5 and parts[5] else parts[0]
        return Entry(int(float(parts[0])), name, rgb)  # type: ignore[arg-type]
    head = line.split("rgb")[0]
    found = [(head.index(c), c) for c in (",", ";", "\t") if c in head]
    sep = min(found)[1] if found else None  # the first separator on the line
    if sep is not None:
        parts = [s.strip() for s in line.split(sep, 2)]
        if not _is_int(parts[0]) or len(parts) < 2 or not parts[1]:
            return None
        color = None
        if len(parts) > 2 and parts[2]:
            color = parse_color(parts[2])
            if color is None:
                return (f"colour {parts[2]!r} of class {parts[1]!r}: expected #rrggbb, "
                        "rgb(r, g, b) or r,g,b with values 0..255")
        return Entry(int(parts[0]), parts[1], color)
    tokens = line.split()
    if len(tokens) < 2 or not _is_int(tokens[0]):
        return None
    m = re.search(r"(#[0-9a-fA-F]{3,6}|rgba?\([^)]*\))\s*$", line)
    color = parse_color(m.group(1)) if m else None
    rest = line[len(tokens[0]):m.start() if m else len(line)].strip()
    if m and color is None:
        return f"colour {m.group(1)!r}: expected #rrggbb or rgb(r, g, b) with values 0..255"
    if not rest:
        return None
    return Entry(int(tokens[0]), rest, color)


def _without_color(line: str) -> str:
    """A ``code,name,colour`` / ``code name colour`` line without its colour."""
    head = line.split("rgb")[0]
    found = [(head.index(c), c) for c in (",", ";", "\t") if c in head]
    if found:
        sep = min(found)[1]
        return sep.join(line.split(sep, 2)[:2])
    return re.sub(r"\s+\S+$", "", line)


def _is_int(text: str) -> bool:
    try:
        return float(text) == int(float(text))
    except ValueError:
        return False


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(name).strip().lower())


def build(k: int, names: Sequence[str] | None = None, codes: Sequence[int] | None = None,
          colors: Sequence[RGB] | None = None, entries: Sequence[Entry] | None = None,
          where: str = "legend") -> Legend:
    """The legend of ``k`` classes from what is known (names, codes, colours; any may be
    None) and legend-file ``entries``, which override names and colours.

    Entries are matched to the classes by name (case, spaces, ``_`` and ``-`` ignored), else
    by code (the training data's codes); when no class matches either way and there are as
    many entries as classes, in file order (the file then names the classes); without known
    names, entries whose codes are all class indices ``0..k-1`` are matched by index.

    Raises:
        DataError: classes the entries cannot be matched to (naming the file ``where``, the
            classes without an entry and the entries found).
    """
    known = list(names) if names is not None else None
    generic = known is None or all(str(n) == str(i) for i, n in enumerate(known))
    out_names = [str(n) for n in known] if known else [str(i) for i in range(k)]
    out_names = (out_names + [str(i) for i in range(len(out_names), k)])[:k]
    out_codes = list(codes)[:k] if codes is not None and len(codes) >= k else None
    given: list[RGB | None] = (list(colors)[:k] + [None] * k)[:k] if colors else [None] * k
    if entries:
        match: list[Entry | None] = [None] * k
        if not generic:
            by_name = {_norm(e.name): e for e in entries}
            by_code = {e.code: e for e in entries}
            for i in range(k):
                match[i] = by_name.get(_norm(out_names[i]))
                if match[i] is None and out_codes is not None:
                    match[i] = by_code.get(int(out_codes[i]))
        if not any(match):
            if len(entries) == k:
                match = list(entries)
            elif all(0 <= e.code < k for e in entries):
                for e in entries:
                    match[e.code] = e
        missing = [out_names[i] for i in range(k) if match[i] is None]
        if not any(match) or (missing and not generic):
            found = ", ".join(f"{e.code} {e.name}" for e in entries)
            raise _error(f"{where}: no entry for class(es) {missing} of the map ({k} classes: "
                         f"{out_names}); the legend has {len(entries)} entries ({found}); "
                         "expected an entry per class, matched by name, by training code, or "
                         "in order when the file has exactly one line per class")
        file_codes = [m.code if m is not None else None for m in match]
        for i, m in enumerate(match):
            if m is not None:
                out_names[i] = m.name
                if m.color is not None:
                    given[i] = m.color
        if all(c is not None for c in file_codes):
            out_codes = [int(c) for c in file_codes]  # type: ignore[arg-type]
    fallback = default_colors(out_names)
    cols = tuple(c if c is not None else fallback[i] for i, c in enumerate(given))
    return Legend(tuple(out_names), cols,
                  tuple(int(c) for c in out_codes) if out_codes is not None else None)


def from_raster(path: str | os.PathLike[str]) -> Legend | None:
    """The legend a raster carries (module doc), or None when it carries no class names.

    Reads the ``class_names`` / ``class_codes`` / ``class_colors`` tags sitsformer writes; else
    a class map's ``CLASS_<i>`` band tags with its colour table, or a probability raster's
    ``p(name)`` band descriptions."""
    import rasterio

    with rasterio.open(path) as ds:
        tags = ds.tags()
        names = _json_list(tags.get("class_names"))
        codes = _json_list(tags.get("class_codes"))
        colors = [parse_color(c) for c in _json_list(tags.get("class_colors")) or []]
        cmap = None
        if ds.count == 1 and ds.dtypes[0] in ("uint8", "uint16"):
            try:
                cmap = ds.colormap(1)
            except ValueError:
                cmap = None
            if names is None:
                band = ds.tags(1)
                idx = sorted(int(key[6:]) for key in band if re.fullmatch(r"CLASS_\d+", key))
                if idx:
                    names = [band.get(f"CLASS_{i}", str(i)) for i in range(idx[-1] + 1)]
        elif ds.count > 1 and names is None:
            desc = [d or "" for d in ds.descriptions]
            if all(d.startswith("p(") and d.endswith(")") for d in desc):
                names = [d[2:-1] for d in desc]
    if names is None:
        return None
    k = len(names)
    if not colors and cmap:
        colors = [tuple(cmap[i][:3]) if i in cmap else None for i in range(k)]  # type: ignore[misc]
    return build(k, names, [int(c) for c in codes] if codes and len(codes) == k else None,
                 [c for c in colors] if colors and len(colors) == k else None)  # type: ignore[misc]


def _json_list(text: str | None) -> list[Any] | None:
    if not text:
        return None
    try:
        val = json.loads(text)
    except json.JSONDecodeError:
        return None
    return [v for v in val] if isinstance(val, list) else None


def resolve(k: int, *, legend_file: str | os.PathLike[str] | None = None,
            class_names: Sequence[str] | None = None, raster: str | os.PathLike[str] | None = None,
            spec: Any = None) -> Legend:
    """The legend of a command's output with ``k`` classes (precedence in the module doc).

    Raises:
        DataError: ``class_names`` or the legend file do not fit the ``k`` classes (naming
            them).
    """
    base = from_raster(raster) if raster is not None else None
    if base is None and spec is not None and getattr(spec, "classes", None):
        base = build(len(spec.classes), spec.classes, getattr(spec, "class_values", None)
                     if _all_int(getattr(spec, "class_values", None)) else None,
                     [parse_color(c) for c in spec.class_colors]  # type: ignore[misc]
                     if getattr(spec, "class_colors", None) else None)
    names = list(base.names) if base is not None else None
    codes = list(base.codes) if base is not None and base.codes is not None else None
    colors = list(base.colors) if base is not None else None
    if base is not None and len(base) < k:
        names = codes = colors = None  # the raster's legend does not cover these classes
    if class_names:
        if len(class_names) < k:
            raise _error(f"--classes: {len(class_names)} names for {k} classes "
                         f"({list(class_names)}); expected one name per class, in index order")
        if names is None or [str(n) for n in class_names[:k]] != names[:k]:
            names, colors = [str(n) for n in class_names], None
    entries = read_legend_file(legend_file) if legend_file is not None else None
    return build(k, names, codes, colors, entries, where=str(legend_file or "legend"))


def _all_int(values: Any) -> bool:
    if not values:
        return False
    try:
        return all(float(v) == int(float(v)) for v in values)
    except (TypeError, ValueError):
        return False


# ------------------------------------------------------------------------------ writing
def write_class_legend(ds: Any, legend: Legend, band_tags: bool = True) -> None:
    """Colour table, band description ``class``, ``CLASS_<i>`` band tags and the legend tags
    on an open (writable) class-map dataset. The nodata value (255 of a uint8 map) is a
    transparent entry of the colour table."""
    table = legend.colormap()
    if ds.nodata is not None and len(legend) <= int(ds.nodata) < 256:
        table[int(ds.nodata)] = NODATA_RGBA
    ds.write_colormap(1, table)
    ds.set_band_description(1, "class")
    ds.update_tags(**legend.tags())
    if band_tags:
        ds.update_tags(1, **{f"CLASS_{i}": n for i, n in enumerate(legend.names)})


def write_probability_legend(ds: Any, legend: Legend) -> None:
    """Band descriptions ``p(name)`` and the legend tags on a probability raster."""
    for b, name in enumerate(legend.names, start=1):
        ds.set_band_description(b, f"p({name})")
    ds.update_tags(**legend.tags())


def category_xml(names: Sequence[str]) -> str:
    return "<CategoryNames>" + "".join(f"<Category>{escape(str(n))}</Category>"
                                       for n in names) + "</CategoryNames>"


def write_sidecars(class_map: str | os.PathLike[str], legend: Legend) -> tuple[Path, Path]:
    """``<map>.aux.xml`` (GDAL category names) and ``<map stem>.qml`` (QGIS paletted style:
    value, colour, label per class) beside a class map."""
    path = Path(class_map)
    aux = Path(f"{path}.aux.xml")
    aux.write_text('<PAMDataset>\n  <PAMRasterBand band="1">\n    '
                   f"{category_xml(legend.names)}\n  </PAMRasterBand>\n</PAMDataset>\n")
    entries = "\n".join(
        f'        <paletteEntry value="{i}" color="{legend.hex(i)}" alpha="255" '
        f'label="{escape(str(n), {chr(34): "&quot;"})}"/>'
        for i, n in enumerate(legend.names))
    qml = path.with_suffix(".qml")
    qml.write_text(
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis version="3.28" styleCategories="Symbology">\n  <pipe>\n'
        '    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1">\n'
        f"      <colorPalette>\n{entries}\n      </colorPalette>\n"
        "    </rasterrenderer>\n  </pipe>\n</qgis>\n")
    return aux, qml


# ------------------------------------------------------------------------------ quick-look
QUICKLOOK_SIDE = 512
"""A quick-look's map is drawn about this many pixels on its longer side (whole pixels)."""


def _render_target(h: int, w: int, side: int) -> tuple[int, int]:
    """(step, zoom): every ``step``-th raster pixel, each drawn ``zoom x zoom``."""
    longest = max(h, w)
    if longest >= side:
        return -(-longest // side), 1
    return 1, max(1, side // longest)


def write_quicklook(png: str | os.PathLike[str], raster: str | os.PathLike[str], *,
                    legend: Legend | None = None, title: str | None = None,
                    side: int = QUICKLOOK_SIDE, points: Any = None) -> Path:
    """A PNG of the first band of ``raster`` with its legend beside it.

    A class map (``legend`` given) is drawn with exactly the legend's (= the colour table's)
    colours, nodata transparent, and a swatch and name per class on the right. Any other
    raster (uncertainty, confidence) is drawn on a grey ramp from its minimum (black) to its
    maximum (white) with the range written beside it. The map is the top-left block of the
    image, each raster pixel drawn ``zoom x zoom`` (every ``step``-th pixel for rasters larger
    than ``side``); both are stored as PNG text (``sitsformer:step``, ``sitsformer:zoom``).

    ``points`` (an ``(n, 2)`` array of pixel ``(row, col)``, e.g. a sample design's) are drawn
    over the map as white dots ringed in black, centred on their pixels, and counted in the
    legend and in the PNG text ``sitsformer:points``.
    """
    import numpy as np
    import rasterio
    from PIL import Image, ImageDraw, ImageFont
    from PIL.PngImagePlugin import PngInfo

    with rasterio.open(raster) as ds:
        h, w = ds.height, ds.width
        step, zoom = _render_target(h, w, side)
        out_shape = (-(-h // step), -(-w // step))
        data = ds.read(1, out_shape=out_shape, resampling=rasterio.enums.Resampling.nearest) \
            if step > 1 else ds.read(1)
        nodata = ds.nodata
    valid = np.ones(data.shape, bool) if nodata is None else data != nodata
    if np.issubdtype(data.dtype, np.floating):
        valid &= np.isfinite(data)
    rgba = np.zeros((*data.shape, 4), np.uint8)
    lines: list[tuple[RGB | None, str]] = []
    if legend is not None:
        lut = np.zeros((max(int(data[valid].max()) + 1 if valid.any() else 0, len(legend)), 4),
                       np.uint8)
        for i, c in enumerate(legend.colors):
            lut[i] = (*c, 255)
        rgba[valid] = lut[data[valid].astype(np.int64)]
        present = set(np.unique(data[valid]).tolist())
        lines = [(c, f"{i} {n}" + ("" if i in present else " (absent)"))
                 for i, (n, c) in enumerate(zip(legend.names, legend.colors))]
    else:
        v = data[valid].astype(np.float64)
        lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
        grey = np.clip((data.astype(np.float64) - lo) / ((hi - lo) or 1.0) * 255, 0, 255)
        rgba[..., :3] = grey.astype(np.uint8)[..., None]
        rgba[..., 3] = np.where(valid, 255, 0)
        lines = [((0, 0, 0), f"{lo:.4g} (black)"), ((255, 255, 255), f"{hi:.4g} (white)")]
    img = Image.fromarray(rgba, "RGBA")
    if zoom > 1:
        img = img.resize((img.width * zoom, img.height * zoom), Image.NEAREST)
    pts = np.zeros((0, 2), np.int64) if points is None else np.asarray(points, np.int64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points: expected an (n, 2) array of (row, col), got shape "
                         f"{pts.shape}")
    if len(pts):
        dots = ImageDraw.Draw(img)
        radius = max(2, zoom // 2)
        for r, c in pts:
            y, x = (r // step) * zoom + zoom // 2, (c // step) * zoom + zoom // 2
            dots.ellipse([x - radius, y - radius, x + radius, y + radius],
                         fill=(255, 255, 255, 255), outline=(0, 0, 0, 255))
        lines.append((None, f"o {len(pts)} sample points"))
    font = ImageFont.load_default()
    row = 16
    text_w = max([len(t) for _, t in lines] + [len(title or "")]) * 7 + 40
    width = img.width + 10 + text_w
    height = max(img.height, row * (len(lines) + 2) + 10)
    canvas = Image.new("RGBA", (width, height), (255, 255, 255, 255))
    canvas.paste(img, (0, 0))
    # nodata stays transparent: paste copies the alpha channel of the map block
    draw = ImageDraw.Draw(canvas)
    x0, y = img.width + 10, 5
    if title:
        draw.text((x0, y), title, fill=(0, 0, 0, 255), font=font)
        y += row + 4
    for color, text in lines:
        if color is not None:
            draw.rectangle([x0, y, x0 + 12, y + 12], fill=(*color, 255), outline=(0, 0, 0, 255))
        draw.text((x0 + 18, y), text, fill=(0, 0, 0, 255), font=font)
        y += row
    info = PngInfo()
    info.add_text("sitsformer:step", str(step))
    info.add_text("sitsformer:zoom", str(zoom))
    info.add_text("sitsformer:source", str(raster))
    if len(pts):
        info.add_text("sitsformer:points", str(len(pts)))
    out = Path(png)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    canvas.save(tmp, format="PNG", pnginfo=info)
    os.replace(tmp, out)
    return out


# ------------------------------------------------------------------------------ CLI
def add_legend_options(parser: Any, png: bool = True,
                       png_default: str = "the class map's name with .png") -> None:
    """``--legend FILE`` (and ``--png [FILE]``) for a map command."""
    parser.add_argument("--legend", metavar="FILE",
                        help="legend file setting class names and colours: 'code,name[,colour]' "
                        "lines (class_map.txt, CSV), 'code name [#rrggbb]' text or a QGIS "
                        "colour-map export (default: the legend the input or the checkpoint "
                        "carries)")
    if png:
        parser.add_argument("--png", nargs="?", const=True, default=None, metavar="FILE",
                            help="also write a quick-look PNG of the map with its legend "
                            f"(default: {png_default})")


def png_path(option: Any, raster: str | os.PathLike[str]) -> Path | None:
    """Where ``--png [FILE]`` writes: FILE, or ``raster`` with ``.png``; None without it."""
    if option is None or option is False:
        return None
    return Path(raster).with_suffix(".png") if option is True else Path(option)
