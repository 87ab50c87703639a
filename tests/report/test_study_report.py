"""``sitsformer report`` (issue 29): one HTML file a person can open offline, checked in a
headless Chromium against the study's own files: the legend is the map's colour table, the
points are the labelled sample with the assessed map's class under each, the area table is
assess's numbers; no script error, no request leaves the page, the map is drawn.
``sitsformer data plot``: the per-class temporal patterns, value for value."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from report_helpers import Dom, console_errors, open_page, screenshot

from sitsformer.cli import main

SECTIONS = ["map", "assessment", "design", "training", "patterns", "provenance"]


def _hex(c) -> str:
    return "#{:02x}{:02x}{:02x}".format(*c[:3])


def _report_cli(*args: str) -> subprocess.CompletedProcess:
    """The installed console command, as a person runs it."""
    exe = Path(sys.executable).with_name("sitsformer")
    return subprocess.run([str(exe), "report", *args], capture_output=True, text=True,
                          timeout=300)


def test_study_report_in_a_browser(study, browser, tmp_path):
    out = tmp_path / "site" / "report.html"
    done = _report_cli("--study", str(study), "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"report: {out} (")
    assert "sections: " + ", ".join(SECTIONS) + "; 404 points" in done.stdout
    assert done.stderr.strip() == ("note: benchmark: no benchmark (sitsformer benchmark "
                                   "writes benchmark.json)")
    text, state, log = open_page(out, tmp_path / "profile")
    dom = Dom(text)

    # the page ran without an error and loaded nothing but itself
    assert state["errors"] == [] and state["blocked"] == [] and state["external"] == []
    assert console_errors(log) == []
    assert state["ready"] and state["images"] == state["images_loaded"] == 6  # 4 layers, 2 figures
    assert state["layers"] == ["class", "smoothed", "confidence", "uncertainty"]
    assert [s["id"] for s in dom.find("section")] == ["missing", *SECTIONS]
    assert [li["data-section"] for li in dom.find("li", inside="missing")] == ["benchmark"]

    # the legend: every class with the colour of the map's own colour table
    with rasterio.open(study / "map.tif") as ds:
        table = ds.colormap(1)
        names = json.loads(ds.tags()["class_names"])
    legend = dom.find("li", inside="legend")
    assert [li["text"] for li in legend] == names == ["cropland", "forest", "grassland"]
    assert [li["data-color"] for li in legend] == [_hex(table[i]) for i in range(3)]
    assert [int(li["data-class"]) for li in legend] == [0, 1, 2]

    # the points: the labelled sample, each with the assessed map's class under it
    from sitsformer.maps import read_points

    pts, xy, _ = read_points(study / "sample_labelled.gpkg")
    with rasterio.open(study / "smooth_class.tif") as ds:
        mapped = np.array([v[0] for v in ds.sample(xy)])
    ref = pts["reference"].to_numpy(int)
    circles = dom.find("circle", inside="points")
    assert len(circles) == len(pts) == state["points"] == 404
    assert [int(c["data-map"]) for c in circles] == mapped.tolist()
    assert [int(c["data-ref"]) for c in circles] == ref.tolist()
    agree = [c["class"] == "pt agree" for c in circles]
    assert agree == (ref == mapped).tolist()
    assess = json.loads((study / "assessment" / "assessment.json").read_text())
    assert sum(agree) == int(np.trace(np.asarray(assess["sample_counts"])))
    # what the viewer reads under each point (the class under the cursor) is the map's class
    assert state["at_points"]["smoothed"] == mapped.tolist()
    with rasterio.open(study / "map.tif") as ds:
        assert state["at_points"]["class"] == [v[0] for v in ds.sample(xy)]
    # and the coordinates it reads out there are the points' own
    np.testing.assert_allclose(state["point_xy"], xy, rtol=0, atol=0.01)

    # the numbers are assess's, to the last digit
    rows = dom.find("tr", inside="area-table")[1:]
    assert [r["data-class"] for r in rows] == names
    assert [float(r["data-area"]) for r in rows] == [a["area"] for a in assess["area"]]
    assert [float(r["data-ci"]) for r in rows] == [a["area_ci"] for a in assess["area"]]
    acc = dom.find("tr", inside="accuracy-table")[2:]
    assert [float(r["data-ua"]) for r in acc] == [u["estimate"] for u in assess["users_accuracy"]]
    assert [float(r["data-pa"]) for r in acc] == [p["estimate"]
                                                  for p in assess["producers_accuracy"]]
    cells = [float(td["data-value"]) for td in dom.find("td", inside="error-matrix")
             if "data-value" in td]
    assert cells == np.asarray(assess["error_matrix_proportions"]).ravel().tolist()
    oa = assess["overall_accuracy"]
    assert f"{oa['estimate']:.3f} ± {oa['ci']:.3f}" in dom.by_id("accuracy-table")["text"]

    # training curves (one point per epoch of metrics.csv), config, patterns, provenance
    epochs = len((study / "runs" / "study" / "metrics.csv").read_text().splitlines()) - 1
    assert int(dom.by_id("curves")["data-epochs"]) == epochs == 8
    assert dom.by_id("config")["text"] == (study / "runs" / "study" / "config.yaml").read_text()
    fig = dom.by_id("patterns-figure")
    assert (fig["data-classes"], fig["data-bands"]) == ("3", "B04,B08,NDVI")
    inputs = {r["data-input"] for r in dom.find("tr", inside="inputs-table") if "data-input" in r}
    assert inputs == {"map", "confidence", "probabilities", "smoothed", "uncertainty", "design",
                      "assessment", "points", "run", "checkpoint", "data_meta.json"}
    # full-resolution files are linked by their path relative to the report
    links = [a["href"] for a in dom.find("a") if a.get("class") == "full-res"]
    assert len(links) == 4 and all(not h.startswith(("/", "file:")) for h in links)
    assert [(out.parent / h).resolve() for h in links] == [
        (study / n).resolve() for n in ("map.tif", "smooth_class.tif", "map_confidence.tif",
                                        "uncertainty/entropy.tif")]

    # the map is drawn: every class colour fills part of the viewer in a screenshot
    from PIL import Image

    shot = Image.open(screenshot(out, tmp_path / "profile", tmp_path / "shot.png"))
    x, y, w, h = (int(round(v)) for v in state["viewport"])
    region = np.asarray(shot.convert("RGB"))[y:y + h, x:x + w].reshape(-1, 3)
    colours, counts = np.unique(region, axis=0, return_counts=True)
    found = {_hex(c): int(n) for c, n in zip(colours, counts)}
    for i in range(3):
        assert found.get(_hex(table[i]), 0) > 2000, (names[i], sorted(found.items(),
                                                                      key=lambda kv: -kv[1])[:8])
    assert len(found) > 10  # classes, point markers and their outlines, background


def test_missing_inputs_leave_their_sections_out(study, browser, tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    for name in ("map.tif", "map.tif.aux.xml", "map_confidence.tif"):
        shutil.copy(study / name, alone / name)
    (alone / "assessment").mkdir()
    (alone / "assessment" / "assessment.json").write_text('{"classes": ["a"')  # cut short
    out = tmp_path / "r.html"
    assert main(["report", "--study", str(alone), "--output", str(out)]) == 0
    text, state, log = open_page(out, tmp_path / "profile")
    dom = Dom(text)
    assert state["errors"] == [] and state["blocked"] == [] and state["external"] == []
    assert console_errors(log) == []
    assert [s["id"] for s in dom.find("section")] == ["missing", "map", "provenance"]
    missing = {li["data-section"]: li["text"] for li in dom.find("li", inside="missing")}
    assert set(missing) == {"assessment", "smoothed", "uncertainty", "points", "design",
                            "training", "benchmark", "patterns"}
    assert missing["assessment"].startswith(
        f"{alone / 'assessment' / 'assessment.json'}: Expecting ")
    assert dom.by_id("area-table") is None and dom.find("circle") == []
    assert state["layers"] == ["class", "confidence"] and state["points"] == 0
    assert [li["text"] for li in dom.find("li", inside="legend")] == [
        "cropland", "forest", "grassland"]


def test_no_class_map_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", "--study", str(empty), "--output", str(tmp_path / "r.html")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        "error: no class map to report: pass --map MAP.tif or a --study folder with "
        f"predict's outputs (searched {empty}: a GeoTIFF with predict's class_names tag "
        "(sitsformer predict --output MAP.tif), 2 levels deep)")
    assert not (tmp_path / "r.html").exists()
    assert main(["report", "--map", str(tmp_path / "nope.tif"), "--output",
                 str(tmp_path / "r.html")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: --map: {tmp_path / 'nope.tif'} does not exist"


def test_smoothed_map_without_colour_table_takes_the_class_maps_legend(study, tmp_path):
    from sitsformer.report import build_report, find_inputs
    from sitsformer.report.layers import read_class_layer

    # smooth writes the legend (colour table, names); a class raster from elsewhere may not:
    # a copy of the smoothed map without colour table or tags takes the class map's legend
    bare = tmp_path / "bare_class.tif"
    with rasterio.open(study / "smooth_class.tif") as ds:
        assert ds.colormap(1)  # smooth keeps the legend
        profile = {k: ds.profile[k] for k in ("driver", "height", "width", "count", "dtype",
                                              "crs", "transform", "nodata")}
        data = ds.read()
    with rasterio.open(bare, "w", **profile) as out:
        out.write(data)
    with rasterio.open(bare) as ds:
        with pytest.raises(ValueError):
            ds.colormap(1)
    main_layer = read_class_layer(study / "map.tif")
    smooth = read_class_layer(bare, fallback={
        "names": main_layer.names, "colors": main_layer.colors, "source": "map.tif"})
    assert (smooth.names, smooth.colors) == (main_layer.names, main_layer.colors)
    assert smooth.legend_source == "names: map.tif; colours: map.tif"
    res = build_report(find_inputs(study), tmp_path / "r.html")
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        build_report(find_inputs(study), tmp_path / "r.html")
    assert res["layers"] == ["class", "smoothed", "confidence", "uncertainty"]


def test_data_plot_draws_the_medians_of_the_labelled_pixels(study, tmp_path, capsys):
    from sitsformer.data import open_source
    from sitsformer.report.patterns import temporal_patterns

    png = tmp_path / "patterns.png"
    args = ["data", "plot", str(study / "series"), "-o", f"labels={study / 'labels.tif'}",
            "-o", "class_names={1: cropland, 2: forest, 3: grassland}", "--output", str(png)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.strip() == (f"wrote {png}: 3 panels (B04, B08, NDVI) over 12 days (day of "
                           "year); samples per class: cropland: 204, forest: 194, grassland: 86")
    from PIL import Image

    assert Image.open(png).size[0] > 600
    # the numbers drawn: the median and quartiles of the clear labelled pixels of each date
    pat = temporal_patterns(open_source(study / "series", labels=str(study / "labels.tif"),
                                        class_names={1: "cropland", 2: "forest",
                                                     3: "grassland"}))
    files = sorted((study / "series").glob("*.tif"))
    with rasterio.open(study / "labels.tif") as ds:
        labels = ds.read(1)
    doy = []
    for t, f in enumerate(files):
        with rasterio.open(f) as ds:
            b = ds.read().astype(float)
        date = np.datetime64(f.stem)
        doy.append(int((date - date.astype("datetime64[Y]")).astype(int)) + 1)
        for c, name in enumerate(["cropland", "forest", "grassland"]):
            sel = (labels == c + 1) & (b != 0).all(0)
            nir, red = b[1][sel], b[0][sel]
            for band, vals in (("B04", red), ("B08", nir), ("NDVI", (nir - red) / (nir + red))):
                e = pat["classes"][name][band]
                q = np.percentile(vals, [50, 25, 75])
                np.testing.assert_allclose([e["median"][t], e["q25"][t], e["q75"][t]], q,
                                           rtol=1e-6, err_msg=f"{name} {band} {f.name}")
    assert pat["x"] == doy and pat["axis"] == "day of year"
    # a source without labels is refused, naming it
    assert main(["data", "plot", str(study / "series"), "--output",
                 str(tmp_path / "x.png")]) == 1
    assert "the source has no sample labels" in capsys.readouterr().err


def test_benchmark_table_is_the_benchmarks_summary(study, shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("SITSFORMER_SHARED_DATA", str(shared_data))
    bench = tmp_path / "bench"
    assert main(["benchmark", "--sets", "rondonia", "--folds", "2", "--repeats", "1",
                 "--baselines", "random_forest", "--trees", "20", "--quiet",
                 "--output", str(bench), "train.epochs=1", "train.min_steps=null",
                 "schedule.warmup_epochs=0", "train.threads=1", "model.embed_dim=16",
                 "model.num_layers=1", "logging.plots=false"]) == 0
    out = tmp_path / "r.html"
    assert main(["report", "--map", str(study / "map.tif"), "--benchmark", str(bench),
                 "--output", str(out)]) == 0
    dom = Dom(out.read_text())
    summary = json.loads((bench / "benchmark.json").read_text())["summary"]
    rows = [[td["text"] for td in dom.find("td", inside="benchmark-table")[i:i + 7]]
            for i in range(0, 7 * len(summary), 7)]
    assert [r[:3] for r in rows] == [[e["set"], e["method"], str(e["runs"])] for e in summary]
    assert [r[3] for r in rows] == [f"{e['oa']:.3f} ± {e['oa_std']:.3f}" for e in summary]
    assert [r[6] for r in rows] == ["; ".join(f"{b}: {v['verdict']}" for b, v in e["vs"].items())
                                    for e in summary]
    assert rows[0][6].startswith("random_forest: ")  # the recipe against the forest


def test_a_bare_map_takes_the_runs_classes_and_probabilities_give_the_confidence(study,
                                                                                  tmp_path):
    from sitsformer.data.legend import default_colors

    with rasterio.open(study / "map.tif") as ds:
        data, prof = ds.read(), ds.profile
    bare = tmp_path / "bare.tif"
    prof.update(driver="GTiff")
    with rasterio.open(bare, "w", **prof) as ds:  # no colour table, no class names
        ds.write(data)
    out = tmp_path / "r.html"
    assert main(["report", "--map", str(bare), "--run", str(study / "runs" / "study"),
                 "--probabilities", str(study / "map_probabilities.tif"), "--output",
                 str(out)]) == 0
    dom = Dom(out.read_text())
    legend = dom.find("li", inside="legend")
    assert [li["text"] for li in legend] == ["cropland", "forest", "grassland"]
    assert [li["data-color"] for li in legend] == [_hex(c) for c in default_colors(
        ["cropland", "forest", "grassland"])]
    data_json = json.loads(unescape_script(out.read_text()))
    assert [L["id"] for L in data_json["layers"]] == ["class", "confidence"]
    assert dom.by_id("training") is not None and dom.by_id("patterns") is not None
    source = next(e for e in dom.find("small", inside="legend-box"))["text"]
    assert source == (f"names: the run's {study / 'runs' / 'study' / 'data_meta.json'}; "
                      "colours: sitsformer's default palette (no colour table in the file)")


def unescape_script(page: str) -> str:
    import re

    return re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page,
                     re.S).group(1).replace("<\\/", "</")


def test_the_browser_check_sees_errors_and_requests(study, browser, tmp_path):
    # the harness is not blind: a script error and a request to the network are both caught
    out = tmp_path / "r.html"
    assert main(["report", "--map", str(study / "map.tif"), "--output", str(out)]) == 0
    page = out.read_text().replace(
        "</main>", '<img src="http://192.0.2.1/tile.png"><script>notDefined();</script></main>')
    bad = tmp_path / "bad.html"
    bad.write_text(page)
    _, state, log = open_page(bad, tmp_path / "profile")
    assert state["blocked"] == ["http://192.0.2.1/tile.png"]
    assert state["errors"] == [
        f"Uncaught ReferenceError: notDefined is not defined at {bad.as_uri()}:"
        f"{page[:page.index('notDefined')].count(chr(10)) + 1}",
        "failed to load img http://192.0.2.1/tile.png"]
    assert any("notDefined" in line for line in console_errors(log))


def test_patterns_of_a_real_season_across_new_year(shared_data, tmp_path, capsys):
    # Landsat-8 Rondonia: 160 samples, 25 dates from 2018-07-12 to 2019-07-28 (real data)
    from sitsformer.data import open_source
    from sitsformer.report.patterns import temporal_patterns

    path = shared_data / "landsat8_rondonia" / "landsat8_rondonia.npz"
    npz = np.load(path, allow_pickle=False)
    pat = temporal_patterns(open_source(path))
    dates = npz["dates"].astype("datetime64[D]")
    days = (dates - dates.min(1, keepdims=True).astype("datetime64[Y]")).astype(int) + 1
    assert pat["axis"] == "days from 1 January of the first year"
    assert pat["x"] == np.unique(days).tolist() and pat["x"][0] == 193 and pat["x"][-1] > 366
    for c, name in enumerate(npz["classes"]):
        for b, band in enumerate(npz["bands"]):
            e = pat["classes"][name][band]
            for i, day in enumerate(pat["x"]):
                vals = npz["x"][:, :, b][(npz["y"][:, None] == c) & (days == day)]
                np.testing.assert_allclose([e["median"][i], e["q25"][i], e["q75"][i]],
                                           np.percentile(vals, [50, 25, 75]), rtol=1e-6)
    assert main(["data", "plot", str(path), "--output", str(tmp_path / "r.png")]) == 0
    assert capsys.readouterr().out.strip() == (
        f"wrote {tmp_path / 'r.png'}: 2 panels (NDVI, EVI) over {len(pat['x'])} days (days "
        "from 1 January of the first year); samples per class: Deforestation: 40, Forest: 40, "
        "NatNonForest: 40, Pasture: 40")
