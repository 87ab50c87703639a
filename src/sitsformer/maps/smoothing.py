"""Bayesian spatial smoothing of class probabilities, as the R ``sits`` package does it.

For each class ``k`` and pixel, the probability is moved to the logit scale,
``x = log(p_k / (sum_j p_j - p_k))``. The pixel's ``window x window`` neighbourhood gives a
normal prior for it: of the neighbours' logits (the pixel included, nodata left out) the
highest ``neigh_fraction`` are kept, and their mean ``m`` and sample variance ``s^2`` are the
prior's mean and variance. The class's ``smoothness`` ``sigma_k^2`` is the variance of the
pixel's own (noisy) logit. The posterior mean is the precision-weighted average

    x' = w x + (1 - w) m,    w = s^2 / (s^2 + sigma_k^2),

so a pixel that disagrees with a homogeneous neighbourhood (small ``s^2``) is pulled to it,
while at a real boundary (large ``s^2``) it keeps its own value. Larger ``smoothness`` means
stronger smoothing. The smoothed logits go back through the logistic function; unlike ``sits``,
which keeps the per-class values as they come, they are then divided by their sum, so each
pixel's probabilities add up to one (the most likely class is the same either way).

Beyond the raster edge, neighbourhoods are mirrored (the edge pixel repeated, as ``sits``
does). Nodata pixels (any band equal to the nodata value) stay nodata and do not enter their
neighbours' priors. Probabilities are clipped to ``[1e-6, 1 - 1e-6]`` before the logit.
Defaults are those of ``sits_smooth``: window 9, neigh_fraction 0.5, smoothness 20.

The raster is processed in blocks with ``dask.array.map_overlap`` (a halo of ``window // 2``
pixels), so the result does not depend on the block size or on where blocks run.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from sitsformer.parallel.cluster import BlockRunner
from sitsformer.maps.raster import (
    CLASS_NODATA,
    PROBABILITY_NODATA,
    BlockWriter,
    check_outputs,
    iter_chunks,
    open_probabilities,
    output_profile,
    warn_no_crs,
)

__all__ = ["SmoothResult", "bayes_smooth", "smooth_raster"]

EPS = 1e-6
ROWS_PER_STEP = 32  # rows of a block handled at once: bounds the (rows, cols, window^2) copy


def _logits(p: np.ndarray) -> np.ndarray:
    """``(K, h, w)`` probabilities -> logits ``log(p_k / (sum - p_k))``; NaN stays NaN."""
    p = np.clip(p.astype(np.float64), EPS, 1.0 - EPS)
    return np.log(p / (p.sum(0, keepdims=True) - p))


def _posterior(lg: np.ndarray, window: int, sigma2: float, fraction: float) -> np.ndarray:
    """One class: ``(h + 2l, w + 2l)`` padded logits -> ``(h, w)`` posterior logits."""
    leg = window // 2
    h, w = lg.shape[0] - 2 * leg, lg.shape[1] - 2 * leg
    out = np.empty((h, w), np.float64)
    for r0 in range(0, h, ROWS_PER_STEP):
        r1 = min(r0 + ROWS_PER_STEP, h)
        neigh = sliding_window_view(lg[r0:r1 + 2 * leg], (window, window))
        neigh = neigh.reshape(r1 - r0, w, window * window)  # (rows, w, n), a copy
        if fraction < 1.0:
            neigh = -np.sort(-neigh, axis=-1)  # descending; NaN (nodata) last
        valid = ~np.isnan(neigh)
        n_valid = valid.sum(-1)
        n_used = np.ceil(fraction * n_valid).astype(np.int64)
        used = np.arange(neigh.shape[-1]) < n_used[..., None]
        if fraction >= 1.0:
            used = valid
        vals = np.where(used, neigh, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = vals.sum(-1) / n_used
            dev = np.where(used, neigh - mean[..., None], 0.0)
            var = np.where(n_used > 1, (dev * dev).sum(-1) / (n_used - 1), 0.0)
            weight = var / (var + sigma2)
        x0 = lg[r0 + leg:r1 + leg, leg:leg + w]
        out[r0:r1] = weight * x0 + (1.0 - weight) * mean
    return out


def bayes_smooth_block(block: np.ndarray, window: int, smoothness: Sequence[float],
                       neigh_fraction: float, nodata: float | None) -> np.ndarray:
    """Smooth one block given with a ``window // 2`` halo: ``(K, h + 2l, w + 2l)`` ->
    ``(K, h, w)`` float32 probabilities (nodata pixels keep ``nodata``)."""
    p = block.astype(np.float64)
    bad = ~np.isfinite(p).all(0)
    if nodata is not None:
        bad |= (p == nodata).any(0)
    p[:, bad] = np.nan
    lg = _logits(p)
    post = np.stack([_posterior(lg[k], window, float(smoothness[k]), neigh_fraction)
                     for k in range(lg.shape[0])])
    prob = 1.0 / (1.0 + np.exp(-post))
    prob /= prob.sum(0, keepdims=True)
    leg = window // 2
    centre_bad = bad[leg:bad.shape[0] - leg, leg:bad.shape[1] - leg]
    fill = PROBABILITY_NODATA if nodata is None else nodata
    prob[:, centre_bad] = fill
    return prob.astype(np.float32)


def _check_params(window: int, smoothness: float | Sequence[float], neigh_fraction: float,
                  k: int) -> list[float]:
    if window < 3 or window % 2 == 0:
        raise ValueError(f"window must be an odd number >= 3, got {window}")
    if not 0.0 < neigh_fraction <= 1.0:
        raise ValueError(f"neigh_fraction must be in (0, 1], got {neigh_fraction}")
    sm = [float(smoothness)] * k if np.isscalar(smoothness) else [float(s) for s in smoothness]  # type: ignore[arg-type]
    if len(sm) != k:
        raise ValueError(f"smoothness needs one value or one per class ({k}), got {len(sm)}")
    if any(not s > 0 or not math.isfinite(s) for s in sm):
        raise ValueError(f"smoothness must be > 0, got {sm}")
    return sm


def bayes_smooth(probabilities: da.Array | np.ndarray, *, window: int = 9,
                 smoothness: float | Sequence[float] = 20.0, neigh_fraction: float = 0.5,
                 nodata: float | None = PROBABILITY_NODATA) -> da.Array:
    """Lazy Bayesian smoothing of a ``(K, H, W)`` probability array (module doc).

    Returns a dask array of the same shape and chunks (float32).
    """
    arr = probabilities if isinstance(probabilities, da.Array) else da.from_array(
        np.asarray(probabilities), chunks=(-1, 256, 256))
    k = int(arr.shape[0])
    sm = _check_params(window, smoothness, neigh_fraction, k)
    leg = window // 2
    if arr.numblocks[0] != 1:
        arr = arr.rechunk({0: -1})
    return arr.map_overlap(bayes_smooth_block, depth={0: 0, 1: leg, 2: leg},
                           boundary={0: "none", 1: "reflect", 2: "reflect"}, trim=False,
                           dtype=np.float32, window=window, smoothness=sm,
                           neigh_fraction=neigh_fraction, nodata=nodata)


@dataclass
class SmoothResult:
    """What :func:`smooth_raster` wrote."""

    probabilities: str
    class_map: str
    height: int
    width: int
    num_classes: int
    num_nodata: int
    changed_pixels: int  # pixels whose most likely class changed
    class_counts: list[int]
    seconds: float
    runner: str
    class_names: list[str] = field(default_factory=list)
    png: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def smoothed_paths(output: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``smooth.tif`` -> (``smooth.tif`` probabilities, ``smooth_class.tif`` class map)."""
    out = Path(output)
    return out, out.with_name(f"{out.stem}_class{out.suffix or '.tif'}")


def smooth_raster(probabilities: str | os.PathLike[str], output: str | os.PathLike[str], *,
                  window: int = 9, smoothness: float | Sequence[float] = 20.0,
                  neigh_fraction: float = 0.5, block: int = 512,
                  runner: BlockRunner | None = None, progress: bool = True,
                  overwrite: bool = False, legend: str | os.PathLike[str] | None = None,
                  png: str | os.PathLike[str] | None = None, cog: bool = True
                  ) -> SmoothResult:
    """Smooth a probability GeoTIFF and write the smoothed probabilities and class map.

    The outputs keep the input's legend (class names, codes and colours: the tags and band
    descriptions ``predict`` writes) or take ``legend`` (a legend file,
    :mod:`sitsformer.data.legend`): the class map gets the colour table, class names, a
    ``.aux.xml`` and a QGIS ``.qml`` style as ``predict``'s, and both rasters are
    Cloud-Optimized GeoTIFFs (``cog=False``: plain tiled GeoTIFFs). ``png``: also a
    quick-look PNG of the class map with its legend.

    Args:
        probabilities: ``<map>_probabilities.tif`` from ``sitsformer predict --probabilities``
            (float32, one band per class, nodata -1).
        output: smoothed probabilities GeoTIFF; the class map goes to ``<stem>_class.tif``
            (uint8, nodata 255). Both keep the input's CRS and transform.
        window, smoothness, neigh_fraction: the smoothing parameters (module doc).
        block: block side in pixels (memory: about ``K x block^2 x window^2 / 8`` bytes
            per block in flight, independent of the raster size).
        runner: where blocks run (:func:`sitsformer.maps.dask_cluster`); default in-process.
        progress: tqdm bar over blocks.
        overwrite: replace existing outputs.
        legend: a legend file (names and colours; default: the input's legend).
        png: quick-look PNG of the class map to write (None: none).
        cog: Cloud-Optimized GeoTIFFs (False: plain tiled GeoTIFFs).

    Raises:
        FileNotFoundError, FileExistsError, ValueError, sitsformer.data.DataError.
    """
    from sitsformer.data.legend import (
        resolve,
        write_class_legend,
        write_probability_legend,
        write_quicklook,
        write_sidecars,
    )
    from sitsformer.parallel.cluster import BlockRunner as _Runner

    runner = runner or _Runner()
    prob_path, cls_path = smoothed_paths(output)
    check_outputs([prob_path, cls_path, *([png] if png else [])], overwrite)
    arr, src, nodata = open_probabilities(probabilities, block)
    warn_no_crs(src, "the smoothed rasters will have none either (the window is in pixels)")
    k = src.shape[0]
    if k >= 255:
        raise ValueError(f"{src.path}: {k} classes do not fit a uint8 class map")
    lg = resolve(k, legend_file=legend, raster=probabilities)
    smoothed = bayes_smooth(arr, window=window, smoothness=smoothness,
                            neigh_fraction=neigh_fraction, nodata=nodata)
    before = da.argmax(arr, axis=0).astype(np.uint8)
    import dask

    places = list(iter_chunks(smoothed))
    tasks = [dask.delayed(_finish)(smoothed.blocks[idx], before.blocks[idx[1:]], nodata)
             for idx, _, _ in places]
    counts = np.zeros(k, np.int64)
    n_nodata = changed = 0
    start = time.perf_counter()
    targets = {"probs": (prob_path, output_profile(src, k, "float32", nodata, block)),
               "class": (cls_path, output_profile(src, 1, "uint8", CLASS_NODATA, block))}
    tags = {"probs": {"smoothing": f"bayes window={window} smoothness={smoothness} "
                                   f"neigh_fraction={neigh_fraction}", "source": str(src.path)}}
    prepare = {"probs": lambda ds: write_probability_legend(ds, lg),
               "class": lambda ds: write_class_legend(ds, lg)}
    with BlockWriter(targets, None, tags, prepare=prepare,
                     cog={"probs": "average", "class": "nearest"} if cog else None) as writer:
        for i, (prob, cls, cnt, nod, chg) in runner.iter_blocks(tasks, progress=progress,
                                                                 desc="smooth"):
            _, r0, c0 = places[i]
            writer.write("probs", prob, r0, c0)
            writer.write("class", cls, r0, c0)
            counts += cnt
            n_nodata += nod
            changed += chg
    write_sidecars(cls_path, lg)
    if png:
        write_quicklook(png, cls_path, legend=lg, title=f"{cls_path.name} (smoothed)")
    return SmoothResult(str(prob_path), str(cls_path), src.shape[1], src.shape[2], k,
                        int(n_nodata), int(changed), counts.tolist(),
                        time.perf_counter() - start, runner.description, list(lg.names),
                        str(png) if png else None)


def _finish(prob: np.ndarray, before: np.ndarray, nodata: float
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    bad = (prob == nodata).any(0)
    cls = prob.argmax(0).astype(np.uint8)
    cls[bad] = CLASS_NODATA
    k = prob.shape[0]
    counts = np.bincount(cls[~bad].astype(np.int64), minlength=k)[:k]
    changed = int(((cls != before) & ~bad).sum())
    return prob, cls, counts, int(bad.sum()), changed
