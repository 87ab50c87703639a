"""Issue 26 section 2: a study keeps its legend. Class names, codes and colours travel from a
probability raster (as ``predict`` writes it) or a ``--legend`` file through ``smooth``,
``uncertainty``, ``sample-design`` and ``assess``, every raster output is a COG, and ``--png``
draws the map with the colour table's colours. GENERATED probability rasters (maps_helpers)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from maps_helpers import probabilities, regions, write_raster
from PIL import Image

from sitsformer.cli import main
from sitsformer.data import DataError
from sitsformer.data.legend import (
    PALETTE,
    Legend,
    build,
    default_colors,
    from_raster,
    read_legend_file,
)
from sitsformer.maps import read_points

NAMES = ["Cereals", "Forest", "Water"]
CODES = [3, 8, 12]
# forest and water get their ESA WorldCover colours, the cereal class palette entry 0
COLORS = [(0x1f, 0x77, 0xb4), (0, 100, 0), (0, 100, 200)]


def _probabilities_with_legend(path: Path, legend: Legend | None) -> Path:
    """A float32 probability raster as ``predict --probabilities`` writes it: p(name) band
    descriptions and the legend tags (or none of these)."""
    write_raster(path, probabilities(regions(), noise=0.1, seed=2), -1.0)
    if legend is not None:
        with rasterio.open(path, "r+") as ds:
            for b, n in enumerate(legend.names, start=1):
                ds.set_band_description(b, f"p({n})")
            ds.update_tags(**legend.tags())
    return path


def _colormap(path: Path, k: int) -> list[tuple[int, int, int]]:
    with rasterio.open(path) as ds:
        cmap = ds.colormap(1)
    return [tuple(cmap[i][:3]) for i in range(k)]


def test_default_colours_are_fixed_and_named_ones_are_land_cover():
    assert default_colors(NAMES) == COLORS
    assert default_colors(["a", "b", "c"]) == list(PALETTE[:3])
    # a second forest-like class does not take the colour of the first
    assert default_colors(["forest", "woodland"]) == [(0, 100, 0), PALETTE[1]]
    many = default_colors([str(i) for i in range(40)])
    assert many == default_colors([str(i) for i in range(40)]) and len(set(many)) == 40


def test_legend_file_formats(tmp_path):
    csv = tmp_path / "class_map.txt"
    csv.write_text("value,class,colour\n3,Cereals,rgb(255, 210, 125)\n8,Forest,#329600\n"
                   "12,Water\n")
    text = tmp_path / "legend.txt"
    text.write_text("# code name colour\n3 Winter cereals #ffd27d\n8 Mixed forest "
                    "rgb(50, 150, 0)\n12 Open water\n")
    qgis = tmp_path / "qgis.txt"
    qgis.write_text("# QGIS Generated Color Map Export File\nINTERPOLATION:EXACT\n"
                    "3,255,210,125,255,Cereals\n8,50,150,0,255,Forest\n12,0,40,240,255,Water\n")
    semi = tmp_path / "legend.csv"
    semi.write_text("code;name;colour\n3;Cereals;255,210,125\n8;Forest;#329600\n12;Water;\n")
    assert [(e.code, e.name, e.color) for e in read_legend_file(csv)] == [
        (3, "Cereals", (255, 210, 125)), (8, "Forest", (50, 150, 0)), (12, "Water", None)]
    assert [(e.code, e.name, e.color) for e in read_legend_file(text)] == [
        (3, "Winter cereals", (255, 210, 125)), (8, "Mixed forest", (50, 150, 0)),
        (12, "Open water", None)]
    assert [(e.code, e.name, e.color) for e in read_legend_file(qgis)] == [
        (3, "Cereals", (255, 210, 125)), (8, "Forest", (50, 150, 0)), (12, "Water", (0, 40, 240))]
    assert [(e.code, e.name, e.color) for e in read_legend_file(semi)] == [
        (3, "Cereals", (255, 210, 125)), (8, "Forest", (50, 150, 0)), (12, "Water", None)]
    # matched to known classes by name; a class without colour keeps its default
    lg = build(3, NAMES, CODES, None, read_legend_file(csv))
    assert lg.colors == ((255, 210, 125), (50, 150, 0), COLORS[2]) and lg.codes == (3, 8, 12)
    # matched by training code when the names differ
    lg = build(3, ["c", "f", "w"], CODES, None, read_legend_file(text))
    assert lg.names == ("Winter cereals", "Mixed forest", "Open water")
    # unknown names, as many entries as classes: in file order
    lg = build(3, None, None, None, read_legend_file(qgis))
    assert lg.names == tuple(NAMES) and lg.codes == tuple(CODES)


def test_legend_file_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("value,class,colour\n1,Forest,rgb(300, 0, 0)\n")
    with pytest.raises(DataError, match=r"bad.txt line 2: colour 'rgb\(300, 0, 0\)' of class "
                       r"'Forest': expected #rrggbb, rgb\(r, g, b\) or r,g,b"):
        read_legend_file(bad)
    bad.write_text("1 Forest\nForest is green\n")
    with pytest.raises(DataError, match=r"bad.txt line 2: cannot read 'Forest is green'; "
                       r"expected 'code,name\[,colour\]'"):
        read_legend_file(bad)
    bad.write_text("1,Forest\n1,Water\n")
    with pytest.raises(DataError, match=r"code 1 is given twice \('Forest' and 'Water'\)"):
        read_legend_file(bad)
    short = tmp_path / "short.txt"
    short.write_text("1,Forest\n2,Water\n")
    with pytest.raises(DataError, match=r"short.txt: no entry for class\(es\) \['Cereals'\] of "
                       r"the map \(3 classes: \['Cereals', 'Forest', 'Water'\]\); the legend has "
                       r"2 entries \(1 Forest, 2 Water\)"):
        build(3, NAMES, None, None, read_legend_file(short), where=str(short))


def test_smooth_keeps_the_legend_and_writes_cogs(tmp_path, capsys):
    lg = build(3, NAMES, CODES)
    prob = _probabilities_with_legend(tmp_path / "map_probabilities.tif", lg)
    out = tmp_path / "smooth.tif"
    assert main(["smooth", "--input", str(prob), "--output", str(out), "--block", "64"]) == 0
    assert 'pixels per class: {"Cereals": ' in capsys.readouterr().out
    cls = tmp_path / "smooth_class.tif"
    for path in (out, cls):  # valid COGs as predict writes them (data.cog.to_cog)
        with rasterio.open(path) as ds:
            assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert ds.block_shapes == [(32, 32)] * ds.count  # 90 x 110: 32 px tiles
            assert ds.overviews(1) == [2, 4]
    assert _colormap(cls, 3) == COLORS
    with rasterio.open(cls) as ds:
        assert ds.colormap(1)[255] == (0, 0, 0, 0)  # nodata: transparent
        assert json.loads(ds.tags()["class_names"]) == NAMES
        assert json.loads(ds.tags()["class_codes"]) == CODES
        assert json.loads(ds.tags()["class_colors"]) == ["#1f77b4", "#006400", "#0064c8"]
        assert ds.tags(1)["CLASS_1"] == "Forest" and ds.descriptions == ("class",)
    with rasterio.open(out) as ds:
        assert ds.descriptions == ("p(Cereals)", "p(Forest)", "p(Water)")
    qml = cls.with_suffix(".qml").read_text()
    assert '<paletteEntry value="1" color="#006400" alpha="255" label="Forest"/>' in qml
    assert "<Category>Water</Category>" in Path(f"{cls}.aux.xml").read_text()
    # the same study run twice: the same colours, also for a smoothed raster without a legend
    bare = _probabilities_with_legend(tmp_path / "bare.tif", None)
    for name in ("a.tif", "b.tif"):
        assert main(["smooth", "--input", str(bare), "--output", str(tmp_path / name),
                     "--quiet"]) == 0
    assert _colormap(tmp_path / "a_class.tif", 3) == _colormap(tmp_path / "b_class.tif", 3) \
        == list(PALETTE[:3])
    assert from_raster(tmp_path / "a_class.tif").names == ("0", "1", "2")


def test_legend_file_and_quicklook_png(tmp_path, capsys):
    bare = _probabilities_with_legend(tmp_path / "bare.tif", None)
    legend = tmp_path / "qgis.txt"
    legend.write_text("# QGIS Generated Color Map Export File\nINTERPOLATION:EXACT\n"
                      "3,255,210,125,255,Cereals\n8,50,150,0,255,Forest\n"
                      "12,0,40,240,255,Water\n")
    out = tmp_path / "s.tif"
    assert main(["smooth", "--input", str(bare), "--output", str(out), "--legend", str(legend),
                 "--png", "--quiet"]) == 0, capsys.readouterr().err
    cls = tmp_path / "s_class.tif"
    expected = [(255, 210, 125), (50, 150, 0), (0, 40, 240)]
    assert _colormap(cls, 3) == expected
    assert from_raster(cls).codes == (3, 8, 12)
    png = tmp_path / "s_class.png"
    img = Image.open(png)
    zoom = int(img.text["sitsformer:zoom"])
    assert int(img.text["sitsformer:step"]) == 1 and zoom == 512 // 110
    with rasterio.open(cls) as ds:
        classes = ds.read(1)
    pixels = np.asarray(img.convert("RGBA"))[:classes.shape[0] * zoom:zoom,
                                              :classes.shape[1] * zoom:zoom]
    lut = np.array([(*c, 255) for c in expected], np.uint8)
    np.testing.assert_array_equal(pixels, lut[classes])
    # the legend swatches beside the map have the same colours
    legend_part = np.asarray(img.convert("RGB"))[:, classes.shape[1] * zoom:].reshape(-1, 3)
    found = {tuple(int(v) for v in px) for px in legend_part}
    assert set(expected) <= found
    # uncertainty: a PNG of the ranked measure, candidates named by the legend
    assert main(["uncertainty", "--input", str(out), "--output", str(tmp_path / "u"),
                 "--points", "5", "--legend", str(legend), "--png", "--quiet"]) == 0
    with rasterio.open(tmp_path / "u" / "entropy.tif") as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        ent = ds.read(1)
    gray = np.asarray(Image.open(tmp_path / "u" / "entropy.png").convert("L"))
    z = int(Image.open(tmp_path / "u" / "entropy.png").text["sitsformer:zoom"])
    shown = gray[:ent.shape[0] * z:z, :ent.shape[1] * z:z]
    assert shown[np.unravel_index(ent.argmax(), ent.shape)] == 255
    assert shown[np.unravel_index(ent.argmin(), ent.shape)] == 0
    assert main(["uncertainty", "--input", str(out), "--output", str(tmp_path / "u2"),
                 "--measures", "margin", "--png", "--quiet"]) == 1
    assert ("--png: the quick-look shows the --rank-by measure 'entropy', which is not among "
            "the --measures written ['margin']; add it to --measures or pass --rank-by margin"
            ) in capsys.readouterr().err
    table, _, _ = read_points(tmp_path / "u" / "candidates.gpkg")
    names = ["Cereals", "Forest", "Water"]
    assert table["predicted_name"].tolist() == [names[i] for i in table["predicted"]]
    hexes = ["#ffd27d", "#329600", "#0028f0"]
    assert table["predicted_color"].tolist() == [hexes[i] for i in table["predicted"]]


def test_sample_design_and_assess_use_the_map_legend(tmp_path, capsys):
    lg = build(3, NAMES, CODES)
    prob = _probabilities_with_legend(tmp_path / "p.tif", lg)
    assert main(["smooth", "--input", str(prob), "--output", str(tmp_path / "s.tif"),
                 "--quiet"]) == 0
    cls = tmp_path / "s_class.tif"
    pts = tmp_path / "design.gpkg"
    assert main(["sample-design", "--input", str(cls), "--output", str(pts), "-n", "60",
                 "--min-per-class", "10", "--png", "--quiet"]) == 0, capsys.readouterr().err
    design = json.loads((tmp_path / "design_design.json").read_text())
    assert design["classes"] == NAMES
    # --png: the map in the legend's colours with every point a white dot on its pixel
    assert design["png"] == str(tmp_path / "design_points.png")
    img = Image.open(tmp_path / "design_points.png")
    zoom = int(img.text["sitsformer:zoom"])
    table, _, _ = read_points(pts)
    assert int(img.text["sitsformer:points"]) == len(table) == design["n_total"]
    rgb = np.asarray(img.convert("RGB"))
    centres = rgb[table["row"] * zoom + zoom // 2, table["col"] * zoom + zoom // 2]
    np.testing.assert_array_equal(centres, np.full((len(table), 3), 255))
    with rasterio.open(cls) as ds:
        classes = ds.read(1)
    far = np.ones(classes.shape, bool)  # pixels no dot reaches (radius max(2, zoom // 2))
    reach = max(2, zoom // 2) // zoom + 1
    for r, c in zip(table["row"], table["col"]):
        far[max(r - reach, 0):r + reach + 1, max(c - reach, 0):c + reach + 1] = False
    lut = np.array([lg.colors[i] for i in range(3)], np.uint8)
    shown = rgb[:classes.shape[0] * zoom:zoom, :classes.shape[1] * zoom:zoom]
    np.testing.assert_array_equal(shown[far], lut[classes[far]])
    # a second run refuses to overwrite the PNG too
    assert main(["sample-design", "--input", str(cls), "--output", str(tmp_path / "d2.gpkg"),
                 "-n", "60", "--min-per-class", "10", "--png", str(tmp_path / "design_points.png"),
                 "--quiet"]) == 1
    assert "design_points.png" in capsys.readouterr().err
    assert design["legend"] == {"names": NAMES, "codes": CODES,
                                "colors": ["#1f77b4", "#006400", "#0064c8"]}
    table, _, _ = read_points(pts)
    assert table["stratum_name"].tolist() == [NAMES[s] for s in table["stratum"]]
    assert table["stratum_code"].tolist() == [CODES[s] for s in table["stratum"]]
    assert table["stratum_color"].tolist() == [lg.hex(s) for s in table["stratum"]]
    # the interpreter labels by name; assess reads the names from the map (no --classes)
    import pandas as pd

    from sitsformer.maps.points import write_points

    with rasterio.open(cls) as ds:
        transform, crs = ds.transform, ds.crs
    labelled = table.drop(columns=["x", "y"]).assign(reference=table["stratum_name"])
    write_points(tmp_path / "labelled.gpkg", pd.DataFrame(labelled), transform, crs)
    out = tmp_path / "report"
    assert main(["assess", "--map", str(cls), "--points", str(tmp_path / "labelled.gpkg"),
                 "--output", str(out), "--quiet"]) == 0, capsys.readouterr().err
    res = json.loads((out / "assessment.json").read_text())
    assert res["classes"] == NAMES and res["overall_accuracy"]["estimate"] == 1.0
    assert res["legend"]["colors"] == ["#1f77b4", "#006400", "#0064c8"]
    md = (out / "assessment.md").read_text()
    assert "| 1 | Forest | 8 | #006400 |" in md and "| Water | 1.0000 +- 0.0000 |" in md
    # a map without a legend: the names stored in the points are used
    with rasterio.open(cls) as ds:
        data, prof = ds.read(1), ds.profile
    plain = tmp_path / "plain.tif"
    prof.update(driver="GTiff")
    with rasterio.open(plain, "w", **prof) as ds:
        ds.write(data, 1)
    assert from_raster(plain) is None
    assert main(["assess", "--map", str(plain), "--points", str(tmp_path / "labelled.gpkg"),
                 "--output", str(tmp_path / "r2"), "--quiet"]) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "r2" / "assessment.json").read_text())["classes"] == NAMES
    # --legend sets names and colours of the report
    legend = tmp_path / "legend.txt"
    legend.write_text("3 Cereals #ffd27d\n8 Forest #329600\n12 Water #0028f0\n")
    assert main(["assess", "--map", str(plain), "--points", str(tmp_path / "labelled.gpkg"),
                 "--output", str(tmp_path / "r3"), "--legend", str(legend), "--quiet"]) == 0
    res = json.loads((tmp_path / "r3" / "assessment.json").read_text())
    assert res["legend"] == {"names": NAMES, "codes": CODES,
                             "colors": ["#ffd27d", "#329600", "#0028f0"]}
