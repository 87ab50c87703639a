"""Stratified random sampling designs for accuracy assessment and area estimation.

The strata are the map classes. Following Olofsson et al. (2014, Remote Sensing of Environment
148, 42-57, eq. 13; Cochran 1977), the total sample size for a target standard error
``S(O)`` of overall accuracy is

    n = (sum_i W_i S_i)^2 / (S(O)^2 + (1/N) sum_i W_i S_i^2),   S_i = sqrt(U_i (1 - U_i)),

with ``W_i`` the mapped area share of class ``i``, ``U_i`` its expected user's accuracy and
``N`` the number of pixels. The sample is then allocated as the paper recommends: every class
gets at least ``min_per_class`` points (all its pixels if it has fewer), the rest is shared in
proportion to area (largest remainders). Such an allocation can give a larger standard error
than the one ``n`` was computed for, so ``n`` is increased until the standard error expected for
the actual allocation, ``sqrt(sum_i W_i^2 U_i (1 - U_i) / (n_i - 1))``, meets the target.

Points are drawn without replacement and uniformly within each stratum: each stratum's ``n_i``
ranks are drawn among its ``N_i`` pixels (numbered in raster order), then one pass over
full-width row strips of about ``block^2`` pixels picks those pixels, so memory is bounded by
the sample and one strip, and the design depends only on the map, the seed and the parameters
(not on the block size or the cluster).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sitsformer.parallel.cluster import BlockRunner
from sitsformer.maps.raster import (
    check_class_map,
    check_outputs,
    iter_chunks,
    open_dask,
    warn_no_crs,
)

__all__ = ["SampleDesign", "allocate", "class_pixel_counts", "expected_oa_se",
           "sample_design", "sample_size", "smallest_sample"]


def sample_size(weights: Sequence[float], user_accuracy: Sequence[float], target_se: float,
                population: float = math.inf) -> float:
    """Olofsson et al. (2014) eq. 13 (module doc); not rounded."""
    w = np.asarray(weights, np.float64)
    s = np.sqrt(np.asarray(user_accuracy, np.float64) * (1 - np.asarray(user_accuracy)))
    return float((w @ s) ** 2 / (target_se ** 2 + (w @ s ** 2) / population))


def expected_oa_se(weights: Sequence[float], user_accuracy: Sequence[float],
                   allocation: Sequence[int]) -> float:
    """Standard error of overall accuracy expected for a stratified allocation
    (Olofsson et al. 2014 eq. 5 with ``U_i`` for the stratum accuracies)."""
    w = np.asarray(weights, np.float64)
    u = np.asarray(user_accuracy, np.float64)
    n = np.asarray(allocation, np.float64)
    keep = w > 0
    if np.any(n[keep] < 2):
        return math.inf
    return float(np.sqrt(np.sum(w[keep] ** 2 * u[keep] * (1 - u[keep]) / (n[keep] - 1))))


def _share(total: int, weights: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Split ``total`` in proportion to ``weights`` (largest remainders), never above ``caps``."""
    out = np.zeros(len(weights), np.int64)
    free = (weights > 0) & (caps > 0)
    while total > 0 and free.any():
        raw = total * weights * free / (weights * free).sum()
        add = np.minimum(np.floor(raw).astype(np.int64), caps - out)
        left = total - int(add.sum())
        rem = np.where(free & (out + add < caps), raw - np.floor(raw), -1.0)
        for i in np.argsort(-rem, kind="stable")[:left]:
            if rem[i] >= 0:
                add[i] += 1
        out += add
        total -= int(add.sum())
        free &= out < caps
        if int(add.sum()) == 0:
            break
    return out


def allocate(n: int, pixels: Sequence[int], min_per_class: int) -> np.ndarray:
    """Proportional allocation of ``n`` points in which no class gets fewer than
    ``min_per_class`` (all its pixels if it has fewer): classes below the minimum are set to
    it, the others share the rest in proportion to area (largest remainders)."""
    N = np.asarray(pixels, np.int64)
    floor = np.minimum(N, min_per_class)
    fixed = N == 0
    while True:
        rest = max(0, n - int(floor[fixed].sum()))
        free_w = np.where(fixed, 0.0, N.astype(np.float64))
        share = _share(rest, free_w, np.where(fixed, 0, N)) if free_w.sum() else 0 * N
        low = ~fixed & (share < floor)
        if not low.any():
            return np.where(fixed, floor, share).astype(np.int64)
        fixed |= low


def smallest_sample(n0: int, pixels: Sequence[int], user_accuracy: Sequence[float],
                    target_se: float, min_per_class: int) -> int:
    """The smallest total ``n >= n0`` whose :func:`allocate` meets ``target_se``
    (all pixels if none does)."""
    N = np.asarray(pixels, np.int64)
    w = N / N.sum()

    def ok(m: int) -> bool:
        return expected_oa_se(w, user_accuracy, allocate(m, N, min_per_class)) <= target_se

    if ok(n0):
        return n0
    lo, hi = n0, n0
    while not ok(hi):
        if hi >= N.sum():
            return int(N.sum())
        lo, hi = hi, min(int(N.sum()), 2 * hi)
    while hi - lo > 1:  # ok(hi), not ok(lo)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


@dataclass
class SampleDesign:
    """A stratified random sampling design (what :func:`sample_design` wrote)."""

    points: str
    design: str
    classes: list[str]
    pixels: list[int]  # N_i: mapped pixels per stratum
    weights: list[float]  # W_i
    user_accuracy: list[float]  # U_i expected
    allocation: list[int]  # n_i
    n_formula: float  # eq. 13 before allocation
    n_total: int
    target_se: float
    expected_se: float  # for the actual allocation
    min_per_class: int
    seed: int
    pixel_area: float  # in CRS units squared
    crs: str | None
    legend: dict[str, Any] | None = None  # names, codes, colours (sitsformer.data.legend)
    png: str | None = None  # the quick-look of the map with the points, when asked for

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def class_pixel_counts(class_map: str | os.PathLike[str], *, block: int = 512,
                       runner: BlockRunner | None = None, progress: bool = False
                       ) -> tuple[np.ndarray, list[tuple[int, int, np.ndarray]], Any]:
    """Pixels per class of a class map: ``(totals (K,), [(row_off, col_off, counts)] per
    row strip, source)``; ``K`` = highest class + 1, nodata left out."""
    import dask

    runner = runner or BlockRunner()
    arr, src = open_dask(class_map, block, strips=True)
    check_class_map(src)
    nod = src.nodata
    places = list(iter_chunks(arr))
    tasks = [dask.delayed(_count)(arr.blocks[idx], nod) for idx, _, _ in places]
    per_block: list[Any] = [None] * len(places)
    for i, cnt in runner.iter_blocks(tasks, progress=progress, desc="count"):
        per_block[i] = cnt
    k = max((len(c) for c in per_block), default=0)
    blocks = [(places[i][1], places[i][2], np.pad(c, (0, k - len(c))))
              for i, c in enumerate(per_block)]
    totals = np.sum([b[2] for b in blocks], axis=0) if blocks else np.zeros(0, np.int64)
    return totals.astype(np.int64), blocks, src


def _count(block: np.ndarray, nodata: float | None) -> np.ndarray:
    v = block[0].ravel()
    if nodata is not None:
        v = v[v != nodata]
    return np.bincount(v.astype(np.int64)) if v.size else np.zeros(0, np.int64)


def _pick(block: np.ndarray, nodata: float | None, r0: int, c0: int,
          wanted: dict[int, np.ndarray]) -> np.ndarray:
    """Rows ``(row, col, class)`` of the pixels of this block whose within-class rank (raster
    order inside the block, offset by earlier blocks) is wanted."""
    v = block[0]
    out = []
    for cls, ranks in wanted.items():
        rows, cols = np.nonzero(v == cls)  # row-major order
        if nodata is not None and cls == nodata:
            continue
        sel = ranks[ranks < len(rows)]
        out.append(np.column_stack([rows[sel] + r0, cols[sel] + c0,
                                    np.full(len(sel), cls)]))
    return np.concatenate(out) if out else np.zeros((0, 3), np.int64)


def sample_design(class_map: str | os.PathLike[str], output: str | os.PathLike[str], *,
                  target_se: float = 0.01, user_accuracy: float | Sequence[float] = 0.8,
                  min_per_class: int = 50, n_total: int | None = None, seed: int = 0,
                  class_names: Sequence[str] | None = None, block: int = 512,
                  runner: BlockRunner | None = None, progress: bool = True,
                  overwrite: bool = False, legend: str | os.PathLike[str] | None = None,
                  png: str | os.PathLike[str] | None = None) -> SampleDesign:
    """Draw a stratified random sample from a class map and write it.

    Writes ``output`` (GeoPackage, layer ``points``: ``point_id``, ``stratum`` (class index),
    ``stratum_name``, ``stratum_code`` (the training data's code, when it had codes),
    ``stratum_color``, ``row``, ``col``, ``x``, ``y`` and an empty ``reference`` column for the
    interpreter's label; points at pixel centres in the map's CRS) and ``<stem>_design.json``
    (the design: strata sizes, weights, expected accuracies, allocation, standard errors).

    Args:
        class_map: ``uint8`` class map (nodata 255), e.g. from ``sitsformer predict`` or
            ``sitsformer smooth``.
        target_se: standard error of overall accuracy the sample should reach.
        user_accuracy: expected user's accuracy, one value or one per class.
        min_per_class: smallest sample of any class (Olofsson et al. suggest 50-100).
        n_total: a fixed total instead of the one computed for ``target_se``.
        seed: random seed; the same seed gives the same points.
        class_names: names of the classes (default: the map's legend, as ``predict`` and
            ``smooth`` write it).
        legend: a legend file setting names and colours (:mod:`sitsformer.data.legend`).
        png: also write a quick-look PNG here: the class map in its legend's colours with the
            points drawn over it (:func:`sitsformer.data.legend.write_quicklook`).

    Raises:
        ValueError: bad parameters (named); FileExistsError: outputs exist.
    """
    out = Path(output)
    design_path = out.with_name(f"{out.stem}_design.json")
    check_outputs([out, design_path] + ([Path(png)] if png else []), overwrite)
    if not 0 < target_se < 1:
        raise ValueError(f"target_se must be in (0, 1), got {target_se}")
    if min_per_class < 2:
        raise ValueError(f"min_per_class must be >= 2 (a stratum variance needs two points), "
                         f"got {min_per_class}")
    runner = runner or BlockRunner()
    totals, blocks, src = class_pixel_counts(class_map, block=block, runner=runner,
                                             progress=False)
    warn_no_crs(src, "the sample points are written without one (in the units of its "
                     "transform), and areas are in map units")
    k = len(totals)
    if k == 0 or totals.sum() == 0:
        raise ValueError(f"{class_map}: the class map has no classified pixel")
    ua = (np.full(k, float(user_accuracy)) if np.isscalar(user_accuracy)
          else np.asarray(user_accuracy, np.float64))
    if ua.shape != (k,):
        raise ValueError(f"user_accuracy needs one value or one per class ({k} classes in "
                         f"{class_map}), got {len(ua)}")
    if np.any((ua <= 0) | (ua >= 1)):
        raise ValueError(f"expected user's accuracies must be in (0, 1), got {ua.tolist()}")
    from sitsformer.data.legend import resolve

    lg = resolve(k, legend_file=legend, class_names=class_names, raster=class_map)
    names = list(lg.names)
    N = int(totals.sum())
    w = totals / N
    n_formula = sample_size(w, ua, target_se, N)
    if n_total is not None:
        n = int(n_total)
        alloc = allocate(n, totals, min_per_class)
    else:
        n0 = max(int(math.ceil(n_formula)), int(np.minimum(totals, min_per_class).sum()))
        n = smallest_sample(n0, totals, ua, target_se, min_per_class)
        alloc = allocate(n, totals, min_per_class)
    rng = np.random.default_rng(seed)
    ranks = [np.sort(rng.choice(int(totals[c]), size=int(alloc[c]), replace=False))
             if alloc[c] else np.zeros(0, np.int64) for c in range(k)]
    import dask

    arr, _ = open_dask(class_map, block, strips=True)
    offsets = np.zeros(k, np.int64)
    tasks = []
    places = list(iter_chunks(arr))
    for (idx, r0, c0), (_, _, cnt) in zip(places, blocks):
        wanted = {}
        for c in range(k):
            if cnt[c]:
                r = ranks[c]
                sel = r[(r >= offsets[c]) & (r < offsets[c] + cnt[c])] - offsets[c]
                if len(sel):
                    wanted[c] = sel
        offsets += cnt
        tasks.append(dask.delayed(_pick)(arr.blocks[idx], src.nodata, r0, c0, wanted))
    picked: list[Any] = [None] * len(tasks)
    for i, res in runner.iter_blocks(tasks, progress=progress, desc="sample"):
        picked[i] = res
    pts = np.concatenate(picked) if picked else np.zeros((0, 3), np.int64)
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0], pts[:, 2]))]  # by stratum, then position
    import pandas as pd

    from sitsformer.maps.points import write_points

    table = pd.DataFrame({"point_id": np.arange(1, len(pts) + 1), "stratum": pts[:, 2],
                          "stratum_name": [names[c] for c in pts[:, 2]],
                          **({"stratum_code": [lg.codes[c] for c in pts[:, 2]]}
                             if lg.codes is not None else {}),
                          "stratum_color": [lg.hex(c) for c in pts[:, 2]],
                          "row": pts[:, 0], "col": pts[:, 1],
                          "reference": pd.array([None] * len(pts), dtype="Int64")})
    write_points(out, table, src.transform, src.crs, overwrite=overwrite, layer="points")
    pixel_area = abs(src.transform.a * src.transform.e - src.transform.b * src.transform.d)
    design = SampleDesign(
        points=str(out), design=str(design_path), classes=names[:k],
        pixels=totals.tolist(), weights=w.tolist(), user_accuracy=ua.tolist(),
        allocation=alloc.tolist(), n_formula=n_formula, n_total=int(alloc.sum()),
        target_se=target_se, expected_se=expected_oa_se(w, ua, alloc),
        min_per_class=min_per_class, seed=seed, pixel_area=pixel_area,
        crs=src.crs.to_string() if src.crs else None, legend=lg.to_dict(),
        png=str(png) if png else None)
    if png:
        from sitsformer.data.legend import write_quicklook

        write_quicklook(png, class_map, legend=lg, points=pts[:, :2],
                        title=f"{Path(class_map).name}: {len(pts)} points")
    tmp = design_path.with_name(f".{design_path.name}.partial")
    tmp.write_text(json.dumps(design.to_dict(), indent=2))
    os.replace(tmp, design_path)
    return design
