"""Per-pixel uncertainty of a probability raster, and the most uncertain pixels as points.

Three measures, each 0 for a certain pixel (one class has probability 1) and 1 at most:

- ``entropy``: ``-sum_k p_k ln p_k / ln K`` (1 = all classes equally likely);
- ``margin``: ``1 - (p_(1) - p_(2))``, one minus the gap between the two most likely classes
  (1 = a tie);
- ``least_confidence``: ``1 - p_(1)``, one minus the highest probability.

These are the measures of ``sits_uncertainty`` (``entropy``, ``margin``, ``least``), the
entropy normalised by ``ln K`` as there. Probabilities are divided by their sum first. Nodata
pixels (any band equal to the nodata value) are nodata (-1) in every output.

``uncertainty_raster(..., points=N)`` also writes the ``N`` pixels with the highest value of one
measure as a GeoPackage of pixel centres (the candidates to label next, as in active learning):
each block keeps only its own ``N`` best, so memory is bounded by ``N`` per block.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sitsformer.parallel.cluster import BlockRunner
from sitsformer.maps.raster import (
    PROBABILITY_NODATA,
    BlockWriter,
    RasterArray,
    check_outputs,
    iter_chunks,
    open_probabilities,
    output_profile,
    warn_no_crs,
)

__all__ = ["MEASURES", "UncertaintyResult", "uncertainty", "uncertainty_raster"]

MEASURES = ("entropy", "margin", "least_confidence")


def uncertainty(prob: np.ndarray, nodata: float | None = PROBABILITY_NODATA
                ) -> dict[str, np.ndarray]:
    """``(K, ...)`` probabilities -> ``{measure: (...) float32}`` (module doc)."""
    p = np.asarray(prob, np.float64)
    k = p.shape[0]
    bad = ~np.isfinite(p).all(0)
    if nodata is not None:
        bad |= (p == nodata).any(0)
    p = np.where(bad, 1.0 / k, np.clip(p, 0.0, None))
    total = p.sum(0)
    p = p / np.where(total > 0, total, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    top2 = -np.sort(-p, axis=0)[:2] if k > 1 else np.stack([p[0], np.zeros_like(p[0])])
    out = {"entropy": -plogp.sum(0) / np.log(k) if k > 1 else np.zeros_like(p[0]),
           "margin": 1.0 - (top2[0] - top2[1]),
           "least_confidence": 1.0 - top2[0]}
    for v in out.values():
        np.clip(v, 0.0, 1.0, out=v)
        v[bad] = PROBABILITY_NODATA
    return {m: v.astype(np.float32) for m, v in out.items()}


@dataclass
class UncertaintyResult:
    """What :func:`uncertainty_raster` wrote."""

    rasters: dict[str, str]
    points: str | None
    num_points: int
    height: int
    width: int
    num_nodata: int
    mean: dict[str, float] = field(default_factory=dict)  # over valid pixels
    seconds: float = 0.0
    runner: str = "in-process"
    png: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _block(prob: np.ndarray, nodata: float, r0: int, c0: int, n_points: int, rank_by: str
           ) -> tuple[dict[str, np.ndarray], dict[str, float], int, np.ndarray]:
    u = uncertainty(prob, nodata)
    valid = u["entropy"] != PROBABILITY_NODATA
    sums = {m: float(v[valid].astype(np.float64).sum()) for m, v in u.items()}
    cand = np.zeros((0, 5 + len(MEASURES)))
    if n_points > 0 and valid.any():
        rows, cols = np.nonzero(valid)
        score = u[rank_by][rows, cols]
        # best first; ties broken by position so the choice does not depend on the blocks
        order = np.lexsort((cols + c0, rows + r0, -score))[:n_points]
        rows, cols, score = rows[order], cols[order], score[order]
        p = prob[:, rows, cols]
        cand = np.column_stack([rows + r0, cols + c0, p.argmax(0), p.max(0), score,
                                *[u[m][rows, cols] for m in MEASURES]])
    return u, sums, int((~valid).sum()), cand


def uncertainty_raster(probabilities: str | os.PathLike[str], output: str | os.PathLike[str],
                       *, measures: tuple[str, ...] = MEASURES, points: int = 0,
                       rank_by: str = "entropy", block: int = 512,
                       runner: BlockRunner | None = None, progress: bool = True,
                       overwrite: bool = False, legend: str | os.PathLike[str] | None = None,
                       png: str | os.PathLike[str] | None = None, cog: bool = True
                       ) -> UncertaintyResult:
    """Write one GeoTIFF per measure into the folder ``output`` (``entropy.tif``,
    ``margin.tif``, ``least_confidence.tif``; float32, nodata -1, the input's grid) and, with
    ``points > 0``, ``candidates.gpkg``: the ``points`` most uncertain pixels by ``rank_by``
    (columns ``rank``, ``row``, ``col``, ``predicted``, ``confidence``, the measures,
    ``label`` left empty for the interpreter; geometry = pixel centre in the raster's CRS;
    ``predicted_name`` and ``predicted_color`` from the input's legend or the ``legend`` file,
    :mod:`sitsformer.data.legend`). The rasters are Cloud-Optimized GeoTIFFs (``cog=False``:
    plain tiled ones); ``png``: a quick-look of the ``rank_by`` raster.

    Raises:
        ValueError: unknown measure; FileExistsError: outputs exist without ``overwrite``.
    """
    unknown = [m for m in (*measures, rank_by) if m not in MEASURES]
    if unknown:
        raise ValueError(f"unknown uncertainty measure(s) {unknown}; known: {list(MEASURES)}")
    if points < 0:
        raise ValueError(f"points must be >= 0, got {points}")
    out = Path(output)
    rasters = {m: out / f"{m}.tif" for m in measures}
    pts_path = out / "candidates.gpkg" if points else None
    if png and rank_by not in measures:
        raise ValueError(f"--png: the quick-look shows the --rank-by measure {rank_by!r}, "
                         f"which is not among the --measures written {list(measures)}; add it "
                         f"to --measures or pass --rank-by {measures[0]}")
    check_outputs([*rasters.values(), *([pts_path] if pts_path else []),
                   *([png] if png else [])], overwrite)
    runner = runner or BlockRunner()
    arr, src, nodata = open_probabilities(probabilities, block)
    warn_no_crs(src, "the uncertainty rasters and candidate points will have none either")
    import dask

    places = list(iter_chunks(arr))
    tasks = [dask.delayed(_block)(arr.blocks[idx], nodata, r0, c0, points, rank_by)
             for idx, r0, c0 in places]
    targets = {m: (p, output_profile(src, 1, "float32", PROBABILITY_NODATA, block))
               for m, p in rasters.items()}
    sums = dict.fromkeys(MEASURES, 0.0)
    n_nodata = 0
    cands = []
    start = time.perf_counter()
    from sitsformer.data.legend import resolve, write_quicklook

    lg = resolve(src.shape[0], legend_file=legend, raster=probabilities)
    with BlockWriter(targets, {m: [m] for m in measures},
                     cog={m: "average" for m in measures} if cog else None) as writer:
        for i, (u, s, nod, cand) in runner.iter_blocks(tasks, progress=progress,
                                                       desc="uncertainty"):
            _, r0, c0 = places[i]
            for m in measures:
                writer.write(m, u[m], r0, c0)
            for m in MEASURES:
                sums[m] += s[m]
            n_nodata += nod
            cands.append(cand)
    h, w = src.shape[1:]
    n_valid = h * w - n_nodata
    n_pts = 0
    if pts_path is not None:
        allc = np.concatenate(cands) if cands else np.zeros((0, 5 + len(MEASURES)))
        order = np.lexsort((allc[:, 1], allc[:, 0], -allc[:, 4]))[:points]
        n_pts = _write_points(pts_path, allc[order], src, rank_by, overwrite, lg)
    if png:
        write_quicklook(png, rasters[rank_by], title=f"{rank_by} (0 certain .. 1 uncertain)")
    return UncertaintyResult({m: str(p) for m, p in rasters.items()},
                             str(pts_path) if pts_path else None, n_pts, h, w, n_nodata,
                             {m: sums[m] / n_valid if n_valid else float("nan")
                              for m in MEASURES},
                             time.perf_counter() - start, runner.description,
                             str(png) if png else None)


def _write_points(path: Path, cand: np.ndarray, src: RasterArray, rank_by: str,
                  overwrite: bool, legend: Any) -> int:
    import pandas as pd

    from sitsformer.maps.points import write_points

    rows, cols = cand[:, 0].astype(np.int64), cand[:, 1].astype(np.int64)
    table = pd.DataFrame({"rank": np.arange(1, len(cand) + 1), "row": rows, "col": cols,
                          "predicted": cand[:, 2].astype(np.int64),
                          "predicted_name": [legend.names[int(c)] for c in cand[:, 2]],
                          "predicted_color": [legend.hex(int(c)) for c in cand[:, 2]],
                          "confidence": cand[:, 3], "score": cand[:, 4],
                          **{m: cand[:, 5 + j] for j, m in enumerate(MEASURES)},
                          "label": pd.array([None] * len(cand), dtype="Int64")})
    table.attrs["ranked_by"] = rank_by
    write_points(path, table, src.transform, src.crs, overwrite=overwrite, layer="candidates")
    return len(table)
