"""Per-class temporal patterns of a labelled data source: the median and the inter-quartile
range of every band (and NDVI when the source has a red and a near-infrared band) over the
season, from the clear observations of the samples.

The time axis is the day counted from 1 January of each sample's first year when the source has
dates (the day of year for a series within one year; a season across New Year stays in order;
the observations of all samples falling on the same day are pooled, in 10-day bins when there
are more than 60 distinct days), else the time-step position. A patch sample contributes its centre pixel.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["plot_patterns", "temporal_patterns"]

RED = ("b04", "b4", "red", "r")
NIR = ("b08", "b8", "nir", "b8a")


def _band_index(bands: list[str], names: tuple[str, ...]) -> int | None:
    low = [b.lower() for b in bands]
    return next((low.index(n) for n in names if n in low), None)


def temporal_patterns(dataset: Any, max_per_class: int = 500, seed: int = 0
                      ) -> dict[str, Any]:
    """``{"axis": "day of year"|"time step", "x": [...], "bands": [...], "classes": {name:
    {"n": samples, band: {"median": [...], "q25": [...], "q75": [...]}}}}``; NaN where a class
    has no clear observation at a time. At most ``max_per_class`` samples per class (a seeded
    random subset).

    Raises:
        ValueError: the source has no labels (names the source).
    """
    labels = getattr(dataset, "labels", None)
    classes = getattr(dataset, "classes", None)
    source = dataset.meta.get("source", dataset)
    if labels is None or classes is None:
        raise ValueError(f"{source}: the source has no sample labels (class per sample): "
                         "temporal patterns are drawn per class")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(len(classes)):
        idx = np.flatnonzero(labels == c)
        if len(idx) > max_per_class:
            idx = np.sort(rng.choice(idx, max_per_class, replace=False))
        picked.append(idx)
    bands = [str(b) for b in dataset.bands]
    red, nir = _band_index(bands, RED), _band_index(bands, NIR)
    names = bands + (["NDVI"] if red is not None and nir is not None else [])
    obs_t, obs_c, obs_v = [], [], []
    dated = True
    for c, idx in enumerate(picked):
        for i in idx:
            s = dataset.raw_sample(int(i))
            x = np.asarray(s["sequence"], np.float64)
            ok = np.asarray(s["mask"], bool).copy()
            if x.ndim == 4:  # (T, C, H, W): the centre pixel
                h, w = x.shape[2] // 2, x.shape[3] // 2
                if s.get("pixel_mask") is not None:
                    ok &= np.asarray(s["pixel_mask"], bool)[:, h, w]
                x = x[:, :, h, w]
            if "dates" in s:  # days from 1 January of the sample's first year: a season
                d = np.asarray(s["dates"]).astype("datetime64[D]")  # across New Year stays
                first = d[ok].min() if ok.any() else d.min()  # in order
                t = (d - first.astype("datetime64[Y]")).astype(np.int64) + 1
            else:
                dated = False
                t = np.arange(1, len(x) + 1)
            if red is not None and nir is not None:
                r, n = x[:, red], x[:, nir]
                with np.errstate(invalid="ignore", divide="ignore"):
                    ndvi = np.where(r + n != 0, (n - r) / (n + r), np.nan)
                x = np.column_stack([x, ndvi])
            obs_t.append(t[ok])
            obs_c.append(np.full(int(ok.sum()), c))
            obs_v.append(x[ok])
    t = np.concatenate(obs_t) if obs_t else np.zeros(0, np.int64)
    cls = np.concatenate(obs_c) if obs_c else np.zeros(0, np.int64)
    v = np.concatenate(obs_v) if obs_v else np.zeros((0, len(names)))
    days = np.unique(t)
    if dated and len(days) > 60:
        t = (t - 1) // 10 * 10 + 5
        days = np.unique(t)
    axis = "time step"
    if dated:
        axis = "day of year" if not len(days) or days.max() <= 366 else \
            "days from 1 January of the first year"
    out: dict[str, Any] = {"axis": axis,
                           "x": days.tolist(), "bands": names, "classes": {},
                           "source": str(source)}
    for c, name in enumerate(classes):
        entry: dict[str, Any] = {"n": int(len(picked[c]))}
        sel = cls == c
        for b, band in enumerate(names):
            med, q25, q75 = [], [], []
            for d in days:
                vals = v[sel & (t == d), b]
                vals = vals[np.isfinite(vals)]
                if len(vals):
                    q = np.percentile(vals, [50, 25, 75])
                    med.append(float(q[0]))
                    q25.append(float(q[1]))
                    q75.append(float(q[2]))
                else:
                    med.append(np.nan)
                    q25.append(np.nan)
                    q75.append(np.nan)
            entry[band] = {"median": med, "q25": q25, "q75": q75}
        out["classes"][str(name)] = entry
    return out


def plot_patterns(patterns: dict[str, Any], path: str | os.PathLike[str],
                  colors: list[tuple[int, int, int]] | None = None) -> None:
    """One panel per band: a line per class (median) with its inter-quartile band."""
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: the caller's backend stays as it is

    bands = patterns["bands"]
    ncol = min(3, len(bands))
    nrow = -(-len(bands) // ncol)
    fig = Figure(figsize=(4.2 * ncol, 3.0 * nrow))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    x = np.asarray(patterns["x"], float)
    names = list(patterns["classes"])
    if colors is None:
        cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
        colors = [tuple(int(255 * v) for v in cmap(i % cmap.N)[:3]) for i in range(len(names))]
    for b, band in enumerate(bands):
        ax = axes[b // ncol][b % ncol]
        for c, name in enumerate(names):
            e = patterns["classes"][name][band]
            col = tuple(v / 255 for v in colors[c % len(colors)])
            ax.fill_between(x, e["q25"], e["q75"], color=col, alpha=0.2, linewidth=0)
            ax.plot(x, e["median"], color=col, lw=1.6,
                    label=f"{name} (n={patterns['classes'][name]['n']})")
        ax.set_title(band)
        ax.set_xlabel(patterns["axis"])
        ax.grid(alpha=0.3)
    for j in range(len(bands), nrow * ncol):
        axes[j // ncol][j % ncol].axis("off")
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle("median and inter-quartile range per class", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
