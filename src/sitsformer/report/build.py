"""One self-contained HTML file for a study: the map viewer and the study's numbers.

Everything the page shows is inside the file (PNG overviews and figures as base64 ``data:``
URLs, the viewer's script and style inline); a Content-Security-Policy in the page forbids
any other load, so it opens the same from ``file://`` with no network. Full-resolution rasters
are linked by their path relative to the report.

Each section comes from one input; a missing input leaves its section out and says so in the
"Not in this report" list, and an input that cannot be read does the same, naming the file and
the reason.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import html
import io
import json
import os
import platform
import re
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import numpy as np

from sitsformer.report.inputs import StudyInputs

__all__ = ["build_report"]

READ_ERRORS = (OSError, ValueError, KeyError, TypeError, IndexError, json.JSONDecodeError)


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _hex(c: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*c)


def _fig_png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str, **attrs: Any) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{esc(v)}"' for k, v in attrs.items())
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{b64}"{extra}>'


def _rel(path: Path, output: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), output.resolve().parent)).as_posix()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


class Report:
    """Collects the sections and the viewer data of one report."""

    def __init__(self, inputs: StudyInputs, output: Path, max_side: int) -> None:
        self.inp = inputs
        self.output = output
        self.max_side = max_side
        self.sections: list[str] = []
        self.missing: list[tuple[str, str]] = [("notes", n) for n in inputs.notes]
        self.data: dict[str, Any] = {"map": None, "layers": [], "points": []}
        self.present: list[str] = []
        self.names: list[str] = []
        self.colors: list[tuple[int, int, int]] = []
        self.assessment_json: dict[str, Any] | None = None
        self.points_map: Path | None = None

    def add(self, key: str, title: str, body: str) -> None:
        self.present.append(key)
        self.sections.append(f'<section id="{key}"><h2>{esc(title)}</h2>\n{body}\n</section>')

    def miss(self, key: str, why: str) -> None:
        self.missing.append((key, why))

    def guarded(self, key: str, fn: Any) -> None:
        """Run a section builder; a file it cannot read leaves the section out, named."""
        try:
            fn()
        except READ_ERRORS as err:
            self.miss(key, f"could not be read: {err}")
        except Exception as err:  # noqa: BLE001 - e.g. a DataError of a reader; never a broken page
            self.miss(key, f"could not be read: {type(err).__name__}: {err}")


# -- the map ------------------------------------------------------------------------------

def _map_section(r: Report) -> None:
    from sitsformer.report.layers import read_class_layer, read_value_layer

    inp = r.inp
    fallback = None
    meta = inp.run / "data_meta.json" if inp.run is not None else None
    if meta is not None and meta.exists():  # a map without class names: the run's classes
        classes = json.loads(meta.read_text()).get("input_spec", {}).get("classes")
        fallback = {"names": classes, "source": f"the run's {meta}"} if classes else None
    main = read_class_layer(inp.map, r.max_side, fallback=fallback)
    r.names, r.colors = main.names, main.colors
    h, w = main.shape
    r.data["map"] = {"w": w, "h": h, "fullW": main.full_shape[1], "fullH": main.full_shape[0],
                     "transform": main.transform, "crs": main.crs, "names": main.names,
                     "colors": [_hex(c) for c in main.colors]}
    layers = [{"id": "class", "label": "class map", "png": main.png, "index_png": main.index_png,
               "visible": True, "path": inp.map}]
    if inp.smoothed is not None:
        try:
            sm = read_class_layer(inp.smoothed, r.max_side,
                                  fallback={"names": main.names, "colors": main.colors,
                                            "source": f"the class map {inp.map.name}"})
            if sm.full_shape != main.full_shape:
                raise ValueError(f"{sm.full_shape[0]}x{sm.full_shape[1]} pixels, the class map "
                                 f"{main.full_shape[0]}x{main.full_shape[1]}")
            layers.append({"id": "smoothed", "label": "smoothed map", "png": sm.png,
                           "index_png": sm.index_png, "visible": False, "path": inp.smoothed})
        except READ_ERRORS as err:
            r.miss("smoothed", f"smoothed map {inp.smoothed}: {err}")
    else:
        r.miss("smoothed", "no smoothed map (sitsformer smooth writes <stem>_class.tif)")
    if inp.confidence is not None:
        try:
            layers.append({"id": "confidence", "label": "confidence", "visible": False,
                           "png": read_value_layer(inp.confidence, (h, w), "viridis"),
                           "cmap": "viridis",
                           "path": inp.confidence})
        except READ_ERRORS as err:
            r.miss("confidence", f"confidence {inp.confidence}: {err}")
    elif inp.probabilities is not None:
        try:
            layers.append({"id": "confidence", "label": "confidence (highest probability)",
                           "visible": False, "path": inp.probabilities, "cmap": "viridis",
                           "png": read_value_layer(inp.probabilities, (h, w), "viridis",
                                                   band=None)})
        except READ_ERRORS as err:
            r.miss("confidence", f"probabilities {inp.probabilities}: {err}")
    else:
        r.miss("confidence", "no confidence raster (predict writes <map>_confidence.tif)")
    unc = inp.uncertainty
    if unc is not None:
        path = unc / "entropy.tif" if unc.is_dir() else unc
        try:
            layers.append({"id": "uncertainty", "label": f"uncertainty ({path.stem})",
                           "visible": False, "png": read_value_layer(path, (h, w), "magma_r"),
                           "cmap": "magma_r",
                           "path": path})
        except READ_ERRORS as err:
            r.miss("uncertainty", f"uncertainty {path}: {err}")
    else:
        r.miss("uncertainty", "no uncertainty rasters (sitsformer uncertainty writes "
                              "entropy.tif into its --output folder)")
    _points(r, main)
    if r.points_map is not None and len(layers) > 1 and layers[1]["id"] == "smoothed" and \
            Path(r.points_map).resolve() == Path(layers[1]["path"]).resolve():
        # the points were assessed on the smoothed map: show that one under them
        layers[0]["visible"], layers[1]["visible"] = False, True
    r.data["layers"] = [{k: v for k, v in L.items() if k not in ("path", "cmap")}
                        for L in layers]
    legend = "\n".join(
        f'<li data-class="{i}" data-color="{_hex(c)}"><span class="swatch" '
        f'style="background:{_hex(c)}"></span>{esc(n)}</li>'
        for i, (n, c) in enumerate(zip(main.names, main.colors)))
    toggles = "\n".join(
        f'<label><input type="checkbox" id="toggle-{L["id"]}"{" checked" if L["visible"] else ""}>'
        f' {esc(L["label"])}</label>{_ramp(L.get("cmap"))} <a href="'
        f'{esc(_rel(L["path"], r.output))}" class="full-res">full resolution</a><br>'
        for L in layers)
    npts = len(r.data["points"])
    if npts:
        agree = sum(1 for p in r.data["points"] if p["agree"])
        labelled = sum(1 for p in r.data["points"] if p["ref"] is not None)
        toggles += (f'<label><input type="checkbox" id="toggle-points" checked> sample points '
                    f'({npts}: <span class="swatch" style="background:#fff"></span>{agree} '
                    f'reference = map, <span class="swatch" style="background:#000"></span>'
                    f'{labelled - agree} reference &ne; map'
                    + (f', <span class="swatch" style="background:#ff0"></span>{npts - labelled}'
                       ' unlabelled' if labelled < npts else "")
                    + f"; map class from <code>{esc(Path(r.points_map).name)}</code>)"
                    "</label><br>")
    scale = main.full_shape[1] / w
    note = (f"shown at {w} x {h} pixels (1 : {scale:.2f} of the {main.full_shape[1]} x "
            f"{main.full_shape[0]} map; nearest neighbour for classes, average for values)"
            if scale > 1 else f"{w} x {h} pixels, full resolution")
    body = f"""<div id="map-wrap">
<div id="viewport"><div id="stage"></div></div>
<div id="controls">
<fieldset id="legend-box"><legend>Legend</legend><ul id="legend">
{legend}
</ul><small>{esc(main.legend_source)}</small></fieldset>
<fieldset id="layers"><legend>Layers</legend>
{toggles}
<label>opacity <input type="range" id="opacity" min="0" max="100" value="100"></label>
</fieldset>
<div id="zoom-buttons"><button id="zoom-in" title="zoom in">+</button>
<button id="zoom-out" title="zoom out">&minus;</button>
<button id="zoom-fit" title="whole map">fit</button> wheel: zoom, drag: pan, click: pin</div>
<p><b>cursor</b></p><div id="cursor-info"></div>
<p><b>click</b></p><div id="click-info"></div>
</div></div>
<p><small>{esc(note)}; CRS {esc(main.crs or "none")}</small></p>"""
    r.add("map", "Map", body)


def _ramp(cmap: str | None) -> str:
    """A colour bar 0 .. 1 of a value layer's colour map (a CSS gradient)."""
    if cmap is None:
        return ""
    import matplotlib

    stops = ", ".join(_hex(tuple(int(255 * v) for v in matplotlib.colormaps[cmap](t)[:3]))
                      for t in np.linspace(0, 1, 5))
    return (f' <small>0</small><span class="ramp" style="background:linear-gradient(to right, '
            f'{stops})"></span><small>1</small>')


def _pixel(transform: Any, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fractional (col, row) of map coordinates ``xy`` (N, 2)."""
    inv = ~transform
    return (inv.a * xy[:, 0] + inv.b * xy[:, 1] + inv.c,
            inv.d * xy[:, 0] + inv.e * xy[:, 1] + inv.f)


def _points(r: Report, main: Any) -> None:
    """Sample points on the overview grid, with reference and map class (agreement)."""
    inp = r.inp
    if inp.points is None:
        r.miss("points", "no sample points (sitsformer sample-design, then assess)")
        return
    import pandas as pd
    import rasterio
    from rasterio.warp import transform as warp

    from sitsformer.maps.points import read_points

    try:
        table, xy, crs = read_points(inp.points)
        ref_col = "reference"
        if r.assessment_json is not None:
            ref_col = r.assessment_json.get("inputs", {}).get("reference", "reference")
        names = r.assessment_json["classes"] if r.assessment_json else main.names
        assessed = inp.map
        if r.assessment_json is not None:
            from sitsformer.report.inputs import _resolve

            a_map = r.assessment_json.get("inputs", {}).get("map")
            found = _resolve(a_map, *[b for b in (inp.study, inp.assessment) if b]) \
                if a_map else None
            assessed = found or (inp.smoothed or inp.map)
        with rasterio.open(assessed) as ds:
            if crs and ds.crs and rasterio.crs.CRS.from_user_input(crs) != ds.crs:
                xs, ys = warp(rasterio.crs.CRS.from_user_input(crs), ds.crs, xy[:, 0], xy[:, 1])
                xy = np.column_stack([xs, ys])
            cols, rows = _pixel(ds.transform, xy)
            inside = (rows >= 0) & (rows < ds.height) & (cols >= 0) & (cols < ds.width)
            mapped = np.full(len(xy), -1, np.int64)
            if inside.any():
                mapped[inside] = [int(v[0]) for v in ds.sample(xy[inside])]
            if ds.nodata is not None:
                mapped[mapped == ds.nodata] = -1
    except READ_ERRORS as err:
        r.miss("points", f"points {inp.points}: {err}")
        return
    ids = table["point_id"].tolist() if "point_id" in table.columns else \
        list(range(1, len(table) + 1))
    refs: list[int | None] = []
    if ref_col in table.columns:
        for v in table[ref_col].tolist():
            if v is None or pd.isna(v):
                refs.append(None)
            elif isinstance(v, str) and not v.strip().lstrip("-").isdigit():
                refs.append(names.index(v) if v in names else -1)
            else:
                refs.append(int(v))
    else:
        refs = [None] * len(table)
    cols_m, rows_m = _pixel(rasterio.Affine(*main.transform), xy)
    fy, fx = main.shape[0] / main.full_shape[0], main.shape[1] / main.full_shape[1]
    r.data["points"] = [
        {"id": int(i) if str(i).isdigit() else str(i), "c": round(float(c) * fx, 3),
         "r": round(float(rw) * fy, 3), "map": int(m), "ref": ref,
         "agree": ref is not None and int(ref) == int(m)}
        for i, c, rw, m, ref in zip(ids, cols_m, rows_m, mapped, refs)]
    r.points_map = assessed


# -- the numbers --------------------------------------------------------------------------

def _pm(e: dict[str, Any], key: str = "estimate", ci: str = "ci", digits: int = 3) -> str:
    return f"{e[key]:.{digits}f} &plusmn; {e[ci]:.{digits}f}"


def _assessment_section(r: Report) -> None:
    a = r.assessment_json
    if a is None:
        if any(k == "assessment" for k, _ in r.missing):  # named already: unreadable
            return
        r.miss("assessment", "no assessment (sitsformer assess writes assessment.json): no "
                             "class areas, error matrix or accuracies")
        return
    unit = a.get("area_unit", "pixels")
    classes = a["classes"]
    rows = []
    for e in a["area"]:
        est, ci = (e["area"], e["area_ci"]) if "area" in e else (e["pixels"], e["pixels_ci"])
        mapped = e.get("mapped_area", e["mapped_pixels"])
        rows.append(f'<tr data-class="{esc(e["class"])}" data-area="{est!r}" '
                    f'data-ci="{ci!r}"><td>{esc(e["class"])}</td><td>{mapped:,.2f}</td>'
                    f'<td>{est:,.2f} &plusmn; {ci:,.2f}</td><td>{est - ci:,.2f} .. '
                    f'{est + ci:,.2f}</td><td>{e["proportion"]:.4f}</td></tr>')
    areas = (f'<table id="area-table"><tr><th>class</th><th>mapped ({esc(unit)})</th>'
             f'<th>estimated ({esc(unit)}, 95 % CI)</th><th>interval</th><th>proportion</th>'
             f'</tr>\n' + "\n".join(rows) + "</table>")
    m = np.asarray(a["error_matrix_proportions"], float)
    head = "".join(f"<th>{esc(c)}</th>" for c in classes)
    body = "\n".join(
        f'<tr><th>{esc(c)}</th>'
        + "".join(f'<td data-value="{float(v)!r}">{v:.4f}</td>' for v in row)
        + f"<td>{row.sum():.4f}</td></tr>" for c, row in zip(classes, m))
    body += ("<tr><th>total</th>" + "".join(f"<td>{v:.4f}</td>" for v in m.sum(0))
             + f"<td>{m.sum():.4f}</td></tr>")
    matrix = (f'<table id="error-matrix"><tr><th>map \\ reference</th>{head}<th>total</th></tr>'
              f"\n{body}</table>")
    oa = a["overall_accuracy"]
    acc = [f'<tr data-class="" data-kind="overall"><td>overall accuracy</td>'
           f'<td colspan="2">{_pm(oa)}</td></tr>']
    for u, p in zip(a["users_accuracy"], a["producers_accuracy"]):
        acc.append(f'<tr data-class="{esc(u["class"])}" data-ua="{u["estimate"]!r}" '
                   f'data-pa="{p["estimate"]!r}"><td>{esc(u["class"])}</td><td>{_pm(u)}</td>'
                   f"<td>{_pm(p)}</td></tr>")
    accuracy = ('<table id="accuracy-table"><tr><th></th><th>user\'s accuracy</th>'
                "<th>producer's accuracy</th></tr>\n" + "\n".join(acc) + "</table>")
    pts = a.get("points", {})
    counts = np.asarray(a.get("sample_counts", []), int)
    text = (f"<p>Stratified estimator of Olofsson et al. (2014); strata = map classes; "
            f"{a.get('n', counts.sum())} sample points used of {pts.get('total', '?')}; "
            f"95 % confidence intervals (+- {a.get('z', 1.96)} SE). Map assessed: "
            f"<code>{esc(a.get('inputs', {}).get('map', '?'))}</code>; points: "
            f"<code>{esc(a.get('inputs', {}).get('points', '?'))}</code>.</p>")
    r.add("assessment", "Accuracy and class areas",
          text + "<h3>Class areas</h3>" + areas + "<h3>Accuracy</h3>" + accuracy
          + "<h3>Error matrix in area proportions (rows: map, columns: reference)</h3>"
          + matrix)


def _design_section(r: Report) -> None:
    if r.inp.design is None:
        r.miss("design", "no sample design (sitsformer sample-design writes <stem>_design.json)")
        return
    d = json.loads(r.inp.design.read_text())
    rows = "\n".join(f"<tr><td>{esc(c)}</td><td>{p:,}</td><td>{w:.4f}</td><td>{u:.2f}</td>"
                     f"<td>{n}</td></tr>" for c, p, w, u, n in zip(
                         d["classes"], d["pixels"], d["weights"], d["user_accuracy"],
                         d["allocation"]))
    r.add("design", "Sample design",
          f"<p>{d['n_total']} points (Olofsson et al. eq. 13 gives n = {d['n_formula']:.1f}); "
          f"target SE of overall accuracy {d['target_se']}, expected {d['expected_se']:.4f}; "
          f"at least {d['min_per_class']} per class; seed {d.get('seed')}.</p>"
          '<table id="design-table"><tr><th>class</th><th>pixels</th><th>weight</th>'
          f"<th>expected UA</th><th>points</th></tr>\n{rows}</table>")


def _training_section(r: Report) -> None:
    run = r.inp.run
    if run is None:
        r.miss("training", "no training run (a folder with config.yaml and metrics.csv, "
                           "as sitsformer train writes)")
        return
    from matplotlib.figure import Figure

    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{run / 'metrics.csv'} has no epoch")

    def col(name: str) -> list[float]:
        return [float(x[name]) if x.get(name) not in (None, "") else np.nan for x in rows]

    epochs = col("epoch")
    fig = Figure(figsize=(9, 3.2))
    ax1, ax2 = fig.subplots(1, 2)
    for key in ("train_loss", "val_loss"):
        if key in rows[0]:
            ax1.plot(epochs, col(key), marker=".", label=key)
    for key in ("train_acc", "val_oa", "val_macro_f1", "val_kappa"):
        if key in rows[0]:
            ax2.plot(epochs, col(key), marker=".", label=key)
    for ax, t in ((ax1, "loss"), (ax2, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_title(t)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    last = rows[-1]
    shown = [k for k in ("epoch", "train_loss", "val_loss", "val_oa", "val_kappa",
                         "val_macro_f1") if k in last]
    table = ('<table id="last-epoch"><tr>' + "".join(f"<th>{k}</th>" for k in shown)
             + "</tr><tr>" + "".join(f"<td>{float(last[k]):.4g}</td>" for k in shown)
             + "</tr></table>")
    test = ""
    tm = run / "test_metrics.json"
    if tm.exists():
        t = json.loads(tm.read_text())
        keys = [k for k, v in t.items() if k.startswith("test_") and isinstance(v, (int, float))]
        test = ("<h3>Test split</h3><table id=\"test-metrics\"><tr>"
                + "".join(f"<th>{esc(k)}</th>" for k in keys) + "</tr><tr>"
                + "".join(f"<td>{t[k]:.4g}</td>" for k in keys) + "</tr></table>")
    text = (run / "config.yaml").read_text()
    r.add("training", "Training",
          f"<p>Run <code>{esc(run)}</code>, {len(rows)} epochs.</p>"
          f'<figure id="curves" data-epochs="{len(rows)}">'
          + _img(_fig_png(fig), "training curves") + "</figure>" + table + test
          + f'<h3>Configuration (config.yaml)</h3><pre id="config">{esc(text)}</pre>')


def _benchmark_section(r: Report) -> None:
    if r.inp.benchmark is None:
        r.miss("benchmark", "no benchmark (sitsformer benchmark writes benchmark.json)")
        return
    b = json.loads((r.inp.benchmark / "benchmark.json").read_text())
    rows = []
    for e in b.get("summary", []):
        if "oa" not in e:
            rows.append(f"<tr><td>{esc(e['set'])}</td><td>{esc(e['method'])}</td>"
                        f"<td colspan=\"5\">{esc(e.get('status', ''))}</td></tr>")
            continue
        vs = "; ".join(f"{esc(base)}: {esc(v.get('verdict', ''))}"
                       for base, v in e.get("vs", {}).items())
        rows.append(f"<tr><td>{esc(e['set'])}</td><td>{esc(e['method'])}</td>"
                    f"<td>{e['runs']}</td>" + "".join(
                        f"<td>{e[k]:.3f} &plusmn; {e.get(k + '_std', 0):.3f}</td>"
                        for k in ("oa", "kappa", "macro_f1")) + f"<td>{vs}</td></tr>")
    r.add("benchmark", "Benchmark (identical splits for every method)",
          '<table id="benchmark-table"><tr><th>set</th><th>method</th><th>runs</th><th>OA</th>'
          "<th>kappa</th><th>macro-F1</th><th>against the baselines</th></tr>\n"
          + "\n".join(rows) + "</table>")


def pattern_source(inp: StudyInputs) -> tuple[str | None, dict[str, Any], str]:
    """The labelled source of the temporal patterns: ``--samples`` or the run's ``data.source``
    (relative paths resolved against the working folder, the study folder and the run's
    parents); ``(source, reader options, why not)``."""
    if inp.samples:
        return inp.samples, {}, ""
    if inp.run is None:
        return None, {}, "no --samples and no training run whose data source to read"
    import yaml

    cfg = yaml.safe_load((inp.run / "config.yaml").read_text()) or {}
    data = cfg.get("data") or {}
    src = data.get("source")
    if not src:
        return None, {}, f"{inp.run / 'config.yaml'} has no data.source"
    bases = [b for b in (Path.cwd(), inp.study, *inp.run.resolve().parents[:3]) if b is not None]
    base = next((b for b in bases if (b / src).exists()), None)
    if base is None:
        return None, {}, (f"the run's data.source {src!r} was not found (searched "
                          f"{', '.join(map(str, bases))}); pass --samples SOURCE")
    options = dict(data.get("options") or {})
    for k, v in options.items():
        if isinstance(v, str) and not Path(v).is_absolute() and (base / v).exists():
            options[k] = str(base / v)
    return str(base / src), options, ""


def _patterns_section(r: Report) -> None:
    from sitsformer.data import open_source
    from sitsformer.report.patterns import plot_patterns, temporal_patterns

    src, options, why = pattern_source(r.inp)
    if src is None:
        r.miss("patterns", f"no temporal patterns: {why}")
        return
    ds = open_source(src, **options)
    pat = temporal_patterns(ds)
    colors = None
    if r.names and list(pat["classes"]) == list(r.names):
        colors = r.colors
    buf = io.BytesIO()
    plot_patterns(pat, buf, colors=colors)
    counts = ", ".join(f"{esc(k)}: {v['n']}" for k, v in pat["classes"].items())
    r.add("patterns", "Temporal patterns per class",
          f"<p>From <code>{esc(src)}</code> (samples per class: {counts}); median and "
          "inter-quartile range of the clear observations.</p>"
          f'<figure id="patterns-figure" data-classes="{len(pat["classes"])}" '
          f'data-bands="{esc(",".join(pat["bands"]))}">'
          + _img(base64.b64encode(buf.getvalue()).decode("ascii"), "temporal patterns")
          + "</figure>")


def _file_row(key: str, path: Path, output: Path, digest: bool = False) -> str:
    p = Path(path)
    if p.is_dir():
        size, mtime = "folder", dt.datetime.fromtimestamp(p.stat().st_mtime)
    else:
        st = p.stat()
        size, mtime = f"{st.st_size:,} bytes", dt.datetime.fromtimestamp(st.st_mtime)
    sha = ""
    if digest and p.is_file():
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        sha = h.hexdigest()[:16]
    return (f'<tr data-input="{esc(key)}"><td>{esc(key)}</td><td><a href="'
            f'{esc(_rel(p, output))}">{esc(p)}</a></td><td>{size}</td>'
            f"<td>{mtime:%Y-%m-%d %H:%M:%S}</td><td>{sha}</td></tr>")


def _provenance_section(r: Report, started: dt.datetime) -> None:
    inp = r.inp
    rows = [_file_row(k, p, r.output) for k, p in inp.files().items()]
    if inp.run is not None:
        for name in ("best.pt", "data_meta.json"):
            if (inp.run / name).exists():
                rows.append(_file_row("checkpoint" if name == "best.pt" else name,
                                      inp.run / name, r.output, digest=name == "best.pt"))
    versions = {"sitsformer": _version("sitsformer"), "python": platform.python_version(),
                **{d: _version(d) for d in ("torch", "numpy", "rasterio", "matplotlib")},
                "platform": platform.platform()}
    vrows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in versions.items())
    meta = ""
    if inp.run is not None and (inp.run / "data_meta.json").exists():
        dm = json.loads((inp.run / "data_meta.json").read_text())
        meta = (f"<p>Training data: <code>{esc(dm.get('source'))}</code>, split "
                f"{esc(dm.get('split'))} {esc(json.dumps(dm.get('split_sizes', {})))}.</p>")
    r.add("provenance", "Provenance",
          f"<p>Report written {started:%Y-%m-%d %H:%M:%S} (local time) from "
          f"<code>{esc(inp.study or '.')}</code>.</p>{meta}"
          '<table id="inputs-table"><tr><th>input</th><th>file</th><th>size</th>'
          "<th>modified</th><th>sha256 (16)</th></tr>\n" + "\n".join(rows) + "</table>"
          '<table id="versions"><tr><th>software</th><th>version</th></tr>' + vrows
          + "</table>")


# -- assembling ---------------------------------------------------------------------------

def build_report(inputs: StudyInputs, output: str | os.PathLike[str], *, max_side: int = 2048,
                 title: str | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Write the report of ``inputs`` (:func:`~sitsformer.report.inputs.find_inputs`) to
    ``output``, one HTML file; returns ``{"output", "bytes", "sections", "missing"}``.

    Raises:
        FileExistsError: ``output`` exists and not ``overwrite``.
        ValueError: the class map cannot be read (the report needs it).
    """
    out = Path(output)
    if out.exists() and not overwrite:
        raise FileExistsError(f"output exists: {out} (pass --overwrite to replace it)")
    started = dt.datetime.now()
    r = Report(inputs, out, max_side)
    if inputs.assessment is not None:
        try:
            r.assessment_json = json.loads((inputs.assessment / "assessment.json").read_text())
        except READ_ERRORS as err:
            r.miss("assessment", f"{inputs.assessment / 'assessment.json'}: {err}")
            inputs.assessment = None
    try:
        _map_section(r)
    except READ_ERRORS as err:
        raise ValueError(f"class map {inputs.map}: {err}") from err
    r.guarded("assessment", lambda: _assessment_section(r))
    r.guarded("design", lambda: _design_section(r))
    r.guarded("training", lambda: _training_section(r))
    r.guarded("benchmark", lambda: _benchmark_section(r))
    r.guarded("patterns", lambda: _patterns_section(r))
    r.guarded("provenance", lambda: _provenance_section(r, started))
    missing = ""
    if r.missing:
        missing = ('<section id="missing"><h2>Not in this report</h2><ul>'
                   + "".join(f'<li class="missing" data-section="{esc(k)}">{esc(v)}</li>'
                             for k, v in r.missing) + "</ul></section>")
    body = missing + "\n".join(r.sections)
    title = title or f"sitsformer study report: {inputs.map.name}"
    subtitle = f"{inputs.study or inputs.map.parent} &middot; {started:%Y-%m-%d %H:%M}"
    template = resources.files("sitsformer.report").joinpath("template.html").read_text()
    data = json.dumps(r.data, separators=(",", ":")).replace("</", "<\\/")
    fill = {"__TITLE__": esc(title), "__SUBTITLE__": subtitle, "__BODY__": body,
            "__DATA__": data}
    page = re.sub("|".join(fill), lambda m: fill[m.group(0)], template)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return {"output": str(out), "bytes": out.stat().st_size, "sections": r.present,
            "missing": [{"section": k, "why": v} for k, v in r.missing],
            "points": len(r.data["points"]), "layers": [L["id"] for L in r.data["layers"]]}
