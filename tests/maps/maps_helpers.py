"""Helpers of the map post-processing tests (a module name of its own: every test folder's
conftest.py is imported as ``conftest``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

CRS = "EPSG:32633"
TRANSFORM = from_origin(500000.0, 5100000.0, 10.0, 10.0)


def regions(h: int = 90, w: int = 110) -> np.ndarray:
    """Three classes in large blocks: left, right-top, right-bottom."""
    truth = np.zeros((h, w), np.uint8)
    truth[:, 40:] = 1
    truth[50:, 70:] = 2
    return truth


def probabilities(truth: np.ndarray, k: int = 3, noise: float = 0.0, seed: int = 0,
                  high: float = 0.9) -> np.ndarray:
    """``(K, H, W)`` float32: ``high`` on the true class, salt-and-pepper errors on a
    ``noise`` share of the pixels (the wrong class gets ``high``)."""
    rng = np.random.default_rng(seed)
    label = truth.astype(np.int64).copy()
    flip = rng.random(truth.shape) < noise
    label[flip] = (label[flip] + rng.integers(1, k, int(flip.sum()))) % k
    low = (1 - high) / (k - 1)
    p = np.full((k, *truth.shape), low, np.float32)
    for c in range(k):
        p[c][label == c] = high
    # a little per-pixel jitter so no two pixels are exactly alike
    p *= rng.uniform(0.95, 1.05, p.shape).astype(np.float32)
    return (p / p.sum(0)).astype(np.float32)


def write_raster(path: Path, data: np.ndarray, nodata: float, dtype: str | None = None) -> Path:
    data = data if data.ndim == 3 else data[None]
    prof = dict(driver="GTiff", height=data.shape[1], width=data.shape[2], count=data.shape[0],
                dtype=dtype or str(data.dtype), nodata=nodata, crs=CRS, transform=TRANSFORM)
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(data.astype(prof["dtype"]))
    return path


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()
