"""Accuracy and area estimates from a stratified sample (Olofsson et al., 2014).

With map classes as strata (``W_i`` = mapped area share of class ``i``, ``n_ij`` = sample
points mapped ``i`` whose reference label is ``j``, ``n_i.`` = points in stratum ``i``), the
estimators of Olofsson et al. (2014, Remote Sensing of Environment 148, 42-57, eqs. 2-12) are:

- error matrix in area proportions: ``p_ij = W_i n_ij / n_i.``;
- overall accuracy ``O = sum_j p_jj``, ``V(O) = sum_i W_i^2 U_i (1 - U_i) / (n_i. - 1)``;
- user's accuracy ``U_i = p_ii / p_i.``, ``V(U_i) = U_i (1 - U_i) / (n_i. - 1)``;
- producer's accuracy ``P_j = p_jj / p_.j`` with the variance of eq. 7 (through the estimated
  pixel totals ``N_.j = sum_i N_i n_ij / n_i.``);
- area proportion of reference class ``j``: ``p_.j = sum_i W_i n_ij / n_i.``, standard error
  ``sqrt(sum_i W_i^2 (n_ij/n_i.)(1 - n_ij/n_i.) / (n_i. - 1))``; the area is ``p_.j`` times
  the mapped area.

Confidence intervals are ``estimate +- z SE`` with ``z = 1.96`` for 95 %, as in the paper.
A stratum with a single point has no variance estimate (its SE is reported as missing).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sitsformer.maps.raster import data_error

__all__ = ["assess_map", "stratified_estimates", "write_report"]

Z95 = 1.96


def stratified_estimates(counts: np.ndarray, map_pixels: Sequence[float], *,
                         z: float = Z95, classes: Sequence[str] | None = None,
                         pixel_area: float | None = None, area_unit: str = "pixels"
                         ) -> dict[str, Any]:
    """Estimates from a sample error matrix (module doc).

    Args:
        counts: ``(K, K)`` sample counts, rows = map class (stratum), columns = reference.
        map_pixels: mapped pixels (or areas) per class, ``(K,)``.
        z: multiplier of the standard error for the confidence intervals.
        classes: class names (default ``"0".."K-1"``).
        pixel_area: area of one pixel in ``area_unit`` (the areas are given in pixels too).

    Returns:
        A dict of plain numbers and lists (JSON-ready; missing values are NaN).

    Raises:
        ValueError: shapes do not match, or a mapped class has no sample point.
    """
    n = np.asarray(counts, np.float64)
    N = np.asarray(map_pixels, np.float64)
    k = n.shape[0]
    if n.shape != (k, k) or N.shape != (k,):
        raise ValueError(f"counts must be (K, K) and map_pixels (K,), got {n.shape} and "
                         f"{N.shape}")
    names = list(classes) if classes is not None else [str(i) for i in range(k)]
    n_i = n.sum(1)
    missing = [names[i] for i in range(k) if N[i] > 0 and n_i[i] == 0]
    if missing:
        raise ValueError(f"mapped class(es) {missing} have no sample point: every stratum "
                         "needs points for the stratified estimator")
    W = N / N.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(n_i[:, None] > 0, n / n_i[:, None], 0.0)  # n_ij / n_i.
        p = W[:, None] * frac
        dof = np.where(n_i > 1, n_i - 1, np.nan)
        U = np.where(n_i > 0, np.diag(frac), np.nan)
        var_U = U * (1 - U) / dof
        oa = float(np.trace(p))
        var_oa = float(np.nansum(np.where(W > 0, W ** 2 * U * (1 - U) / dof, 0.0)))
        if np.any((W > 0) & np.isnan(dof)):
            var_oa = math.nan
        p_col = p.sum(0)
        P = np.diag(p) / p_col
        N_col = (N[:, None] * frac).sum(0)  # estimated pixels per reference class
        var_P = np.empty(k)
        for j in range(k):
            own = N[j] ** 2 * (1 - P[j]) ** 2 * U[j] * (1 - U[j]) / dof[j] if N[j] > 0 else 0.0
            others = sum(N[i] ** 2 * frac[i, j] * (1 - frac[i, j]) / dof[i]
                         for i in range(k) if i != j and N[i] > 0)
            var_P[j] = (own + P[j] ** 2 * others) / N_col[j] ** 2
        var_area = np.array([np.sum(np.where(W > 0, W ** 2 * frac[:, j] * (1 - frac[:, j])
                                             / dof, 0.0)) for j in range(k)])
        if np.any((W > 0) & np.isnan(dof)):
            var_area[:] = np.nan
    se_oa, se_U, se_P, se_a = (math.sqrt(var_oa), np.sqrt(var_U), np.sqrt(var_P),
                               np.sqrt(var_area))
    total = float(N.sum())
    res: dict[str, Any] = {
        "classes": names, "z": z, "n": int(n.sum()), "sample_counts": n.astype(int).tolist(),
        "map_pixels": N.tolist(), "weights": W.tolist(), "error_matrix_proportions": p.tolist(),
        "overall_accuracy": {"estimate": oa, "se": se_oa, "ci": z * se_oa},
        "users_accuracy": [{"class": names[i], "estimate": float(U[i]), "se": float(se_U[i]),
                            "ci": float(z * se_U[i]), "n": int(n_i[i])} for i in range(k)],
        "producers_accuracy": [{"class": names[j], "estimate": float(P[j]),
                                "se": float(se_P[j]), "ci": float(z * se_P[j])}
                               for j in range(k)],
        "area": [{"class": names[j], "proportion": float(p_col[j]),
                  "proportion_se": float(se_a[j]), "mapped_proportion": float(W[j]),
                  "pixels": float(p_col[j] * total), "pixels_ci": float(z * se_a[j] * total),
                  "mapped_pixels": float(N[j])} for j in range(k)],
        "area_unit": "pixels",
    }
    if pixel_area is not None:
        res["area_unit"] = area_unit
        res["pixel_area"] = pixel_area
        for a in res["area"]:
            a["area"] = a["pixels"] * pixel_area
            a["area_ci"] = a["pixels_ci"] * pixel_area
            a["mapped_area"] = a["mapped_pixels"] * pixel_area
    return res


def _area_unit(crs: Any, transform: Any) -> tuple[float, str]:
    """Area of one pixel and its unit: hectares for metric CRSs, else CRS units squared."""
    a = abs(transform.a * transform.e - transform.b * transform.d)
    units = (crs.linear_units or "").lower() if crs is not None else ""
    if units in ("metre", "meter", "m", "metres", "meters"):
        return a / 1e4, "ha"
    return a, f"{units or 'map unit'}^2"


def _labels(values: Any, names: Sequence[str], column: str, path: Path,
            ids: np.ndarray) -> np.ndarray:
    """Reference labels -> class indices (``-1`` = missing); names or integers accepted."""
    import pandas as pd

    s = pd.Series(values)
    out = np.full(len(s), -1, np.int64)
    for i, v in enumerate(s):
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            continue
        if isinstance(v, str):
            if v in names:
                out[i] = names.index(v)
                continue
            try:
                v = int(v)
            except ValueError:
                raise data_error(f"{path}: point {ids[i]}: reference label {v!r} in column "
                                f"{column!r} is neither a class index nor one of the classes "
                                f"{list(names)}") from None
        if float(v) != int(v) or int(v) < 0:
            raise data_error(f"{path}: point {ids[i]}: reference label {v!r} in column "
                            f"{column!r} is not a class index (0, 1, ...)")
        out[i] = int(v)
    return out


def assess_map(class_map: str | os.PathLike[str], points: str | os.PathLike[str],
               output: str | os.PathLike[str], *, reference: str = "reference",
               class_names: Sequence[str] | None = None, z: float = Z95, block: int = 512,
               runner: Any = None, overwrite: bool = False, progress: bool = True,
               legend: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Assess a class map with labelled points from a stratified design drawn on that map.

    Reads the map class under every point, counts mapped pixels per class block by block and
    writes ``assessment.json``, ``assessment.md`` and ``assessment.png`` into ``output``.
    Points without a reference label, outside the map or on nodata are left out and counted.

    Args:
        class_map: the class map the sample was drawn from (its classes are the strata).
        points: point file with a reference label column (class index or class name).
        reference: name of that column.
        class_names: names of the classes (default: the map's legend as ``predict`` and
            ``smooth`` write it, else the design's ``stratum_name`` column, else
            ``"0".."K-1"``).
        legend: a legend file setting names and colours (:mod:`sitsformer.data.legend`); the
            report carries the legend (``legend`` in the JSON, a legend table in the Markdown,
            the class colours in the plot).

    Raises:
        DataError: a missing column, a bad label, a reference class beyond the map's classes
            (and ``class_names``), a map without a mapped pixel, or a point whose ``stratum``
            column differs from the map class under it (the design was drawn on another map).
    """
    import rasterio
    from rasterio.warp import transform as warp

    from sitsformer.maps.points import read_points
    from sitsformer.maps.raster import check_outputs, warn_no_crs
    from sitsformer.maps.sampling import class_pixel_counts

    out = Path(output)
    files = {"json": out / "assessment.json", "markdown": out / "assessment.md",
             "plot": out / "assessment.png"}
    check_outputs(list(files.values()), overwrite)
    totals, _, src = class_pixel_counts(class_map, block=block, runner=runner,
                                        progress=progress)
    warn_no_crs(src, "class areas are reported in its map units, not in hectares, and the "
                     "points are placed without reprojection")
    if not totals.any():
        nod = "no nodata value" if src.nodata is None else f"{src.nodata:g}"
        raise data_error(f"{class_map}: every pixel is nodata ({nod}): the map has no "
                         "class to assess; expected a class map with mapped pixels")
    table, xy, pts_crs = read_points(points)
    pts_path = Path(points)
    if reference not in table.columns:
        raise data_error(f"{pts_path}: no reference label column {reference!r}; columns: "
                        f"{list(table.columns)} (choose one with --reference)")
    ids = (table["point_id"].to_numpy() if "point_id" in table.columns
           else np.arange(1, len(table) + 1))
    if pts_crs and src.crs and rasterio.crs.CRS.from_user_input(pts_crs) != src.crs:
        xs, ys = warp(rasterio.crs.CRS.from_user_input(pts_crs), src.crs, xy[:, 0], xy[:, 1])
        xy = np.column_stack([xs, ys])
    with rasterio.open(class_map) as ds:
        h, w = ds.height, ds.width
        rows, cols = rasterio.transform.rowcol(ds.transform, xy[:, 0], xy[:, 1], op=np.floor)
        rows, cols = np.asarray(rows), np.asarray(cols)
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        mapped = np.full(len(xy), -1, np.int64)
        if inside.any():
            vals = np.array([v[0] for v in ds.sample(xy[inside])])
            mapped[inside] = vals
        nodata = ds.nodata
    on_nodata = inside & (mapped == nodata) if nodata is not None else np.zeros_like(inside)
    from sitsformer.data.legend import build, from_raster, resolve

    map_legend = from_raster(class_map)
    lg = None
    if class_names or legend is not None or map_legend is not None:
        k0 = max(len(totals), len(class_names or []), len(map_legend or []))
        lg = resolve(k0, legend_file=legend, class_names=class_names, raster=class_map)
        names: list[str] | None = list(lg.names)
    else:
        names = None
    if names is None and "stratum_name" in table.columns and "stratum" in table.columns:
        pairs = dict(zip(table["stratum"].astype(int), table["stratum_name"].astype(str)))
        if pairs:
            names = [pairs.get(i, str(i)) for i in range(max(max(pairs) + 1, len(totals)))]
    ref = _labels(table[reference].tolist(), names or [], reference, pts_path, ids)
    n_classes = max(len(totals), len(names or []))
    foreign = np.flatnonzero(ref >= n_classes)
    if len(foreign):
        raw = table[reference].tolist()
        shown = ", ".join(f"point {ids[i]}: {raw[i]}" for i in foreign[:10])
        raise data_error(
            f"{pts_path}: {len(foreign)} point(s) have a reference label that is not a class "
            f"of the map {class_map} ({n_classes} classes, 0..{n_classes - 1}): {shown}"
            f"{' ...' if len(foreign) > 10 else ''}; expected a class index below {n_classes} "
            "or a class name (pass --classes with every class name when the legend has "
            "classes the map does not show)")
    k = max(len(totals), int(ref.max()) + 1 if len(ref) else 0,
            int(mapped[inside & ~on_nodata].max()) + 1 if (inside & ~on_nodata).any() else 0)
    names = (names or [])[:k] + [str(i) for i in range(len(names or []), k)]
    final = lg.resized(k) if lg is not None else build(k, names)
    if "stratum" in table.columns:
        st = table["stratum"].to_numpy()
        bad = np.flatnonzero(inside & ~on_nodata & (st != mapped))
        if len(bad):
            i = bad[0]
            raise data_error(f"{pts_path}: point {ids[i]} has stratum {st[i]} but the map "
                            f"{class_map} says {mapped[i]} there ({len(bad)} such points); "
                            "the stratified estimator needs the strata of the design to be "
                            "the classes of the assessed map: draw the design from this map")
    use = inside & ~on_nodata & (ref >= 0)
    counts = np.zeros((k, k), np.int64)
    np.add.at(counts, (mapped[use], ref[use]), 1)
    pix = np.zeros(k)
    pix[:len(totals)] = totals
    pixel_area, unit = _area_unit(src.crs, src.transform)
    res = stratified_estimates(counts, pix, z=z, classes=names, pixel_area=pixel_area,
                               area_unit=unit)
    res["legend"] = final.to_dict()
    res["inputs"] = {"map": str(class_map), "points": str(pts_path), "reference": reference}
    res["points"] = {"total": len(table), "used": int(use.sum()),
                     "no_reference_label": int((inside & ~on_nodata & (ref < 0)).sum()),
                     "outside_map": int((~inside).sum()), "on_nodata": int(on_nodata.sum())}
    write_report(res, out, files)
    res["files"] = {k_: str(v) for k_, v in files.items()}
    return res


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return None if math.isnan(x) else x
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def _fmt(v: float, digits: int = 4) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def markdown(res: dict[str, Any]) -> str:
    """The report as Markdown."""
    names = res["classes"]
    z = res["z"]
    oa = res["overall_accuracy"]
    unit = res["area_unit"]
    lines = ["# Accuracy and area estimates", "",
             f"Stratified estimator of Olofsson et al. (2014); strata = map classes; "
             f"{res['n']} sample points; confidence intervals are +- {z} SE.", ""]
    if "points" in res:
        pt = res["points"]
        lines += [f"Points: {pt['total']} in the file, {pt['used']} used; left out: "
                  f"{pt['no_reference_label']} without a reference label, "
                  f"{pt['outside_map']} outside the map, {pt['on_nodata']} on nodata.", ""]
    lines += [f"| overall accuracy | {_fmt(oa['estimate'])} +- {_fmt(oa['ci'])} |",
              "|---|---|", "", "## Error matrix in area proportions (rows: map, columns: "
              "reference)", "",
              "| map \\ reference | " + " | ".join(names) + " | total |",
              "|---" * (len(names) + 2) + "|"]
    p = np.asarray(res["error_matrix_proportions"])
    for i, name in enumerate(names):
        lines.append(f"| {name} | " + " | ".join(_fmt(v) for v in p[i]) +
                     f" | {_fmt(p[i].sum())} |")
    lines.append("| total | " + " | ".join(_fmt(v) for v in p.sum(0)) +
                 f" | {_fmt(p.sum())} |")
    lines += ["", "## Sample counts (rows: map, columns: reference)", "",
              "| map \\ reference | " + " | ".join(names) + " | n |",
              "|---" * (len(names) + 2) + "|"]
    for i, name in enumerate(names):
        row = res["sample_counts"][i]
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + f" | {sum(row)} |")
    lines += ["", "## Accuracy by class", "",
              "| class | user's accuracy | producer's accuracy | points |", "|---|---|---|---|"]
    for u, pa in zip(res["users_accuracy"], res["producers_accuracy"]):
        lines.append(f"| {u['class']} | {_fmt(u['estimate'])} +- {_fmt(u['ci'])} | "
                     f"{_fmt(pa['estimate'])} +- {_fmt(pa['ci'])} | {u['n']} |")
    key, key_ci, mkey = (("area", "area_ci", "mapped_area") if "pixel_area" in res
                         else ("pixels", "pixels_ci", "mapped_pixels"))
    if res.get("legend"):
        lg = res["legend"]
        lines += ["", "## Legend", "", "| value | class | code | colour |", "|---|---|---|---|"]
        for i, name in enumerate(lg["names"]):
            code = lg["codes"][i] if lg.get("codes") else ""
            lines.append(f"| {i} | {name} | {code} | {lg['colors'][i]} |")
    lines += ["", f"## Area estimates ({unit})", "",
              "| class | mapped | estimated | 95 % interval | share of area |",
              "|---|---|---|---|---|"]
    for a in res["area"]:
        lines.append(f"| {a['class']} | {a[mkey]:,.1f} | {a[key]:,.1f} +- {a[key_ci]:,.1f} | "
                     f"{a[key] - a[key_ci]:,.1f} .. {a[key] + a[key_ci]:,.1f} | "
                     f"{_fmt(a['proportion'])} +- {_fmt(z * a['proportion_se'])} |")
    return "\n".join(lines) + "\n"


def plot(res: dict[str, Any], path: Path) -> None:
    """Error matrix in area proportions beside mapped vs estimated areas with intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = res["classes"]
    p = np.asarray(res["error_matrix_proportions"])
    key, key_ci, mkey = (("area", "area_ci", "mapped_area") if "pixel_area" in res
                         else ("pixels", "pixels_ci", "mapped_pixels"))
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    im = ax0.imshow(p, cmap="Blues")
    for i in range(len(names)):
        for j in range(len(names)):
            ax0.text(j, i, f"{p[i, j]:.3f}", ha="center", va="center", fontsize=8,
                     color="white" if p[i, j] > p.max() / 2 else "black")
    ax0.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax0.set_yticks(range(len(names)), names)
    ax0.set_xlabel("reference")
    ax0.set_ylabel("map")
    ax0.set_title(f"area proportions; OA {res['overall_accuracy']['estimate']:.3f}")
    fig.colorbar(im, ax=ax0, shrink=0.8)
    x = np.arange(len(names))
    colors = (res.get("legend") or {}).get("colors") or None
    ax1.bar(x - 0.2, [a[mkey] for a in res["area"]], 0.4, label="mapped", color=colors,
            alpha=0.45, edgecolor="black")
    ax1.bar(x + 0.2, [a[key] for a in res["area"]], 0.4, color=colors, edgecolor="black",
            yerr=[a[key_ci] if a[key_ci] == a[key_ci] else 0 for a in res["area"]],
            capsize=4, label=f"estimated (+- {res['z']} SE)")
    ax1.set_xticks(x, names, rotation=45, ha="right")
    ax1.set_ylabel(f"area ({res['area_unit']})")
    ax1.legend()
    ax1.set_title("class areas")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(res: dict[str, Any], output: str | os.PathLike[str],
                 files: dict[str, Path] | None = None) -> dict[str, Path]:
    """Write ``assessment.json``, ``assessment.md`` and ``assessment.png`` into ``output``
    (each under a temporary name, then renamed)."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    files = files or {"json": out / "assessment.json", "markdown": out / "assessment.md",
                      "plot": out / "assessment.png"}
    writers = {"json": lambda p: p.write_text(json.dumps(_clean(res), indent=2)),
               "markdown": lambda p: p.write_text(markdown(res)),
               "plot": lambda p: plot(res, p)}
    for kind, path in files.items():
        tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
        try:
            writers[kind](tmp)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
    return files
