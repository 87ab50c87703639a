"""What the stored values are: per-band ranges, what they imply, the scale, the valid range.

``scale`` is the factor the values are stored with (models see ``value / scale``). When a run
does not state it (``data.scale: auto``, the default), it is inferred from the values of the
training split, band by band:

============================================  ==================================  =========
values (1st .. 99th percentile)                what they imply                     scale
============================================  ==================================  =========
within -1 .. 1, some negative                  an index in -1..1 (NDVI, EVI ...)   1
within 0 .. 1.5                                float reflectance 0..1              1
integers (or beyond 1.5) up to +-20000         integer reflectance (or index)      10000
                                               x 10000
anything else                                  not recognised: used as stored      1
============================================  ==================================  =========

Bands that imply different scales are an error asking for ``data.scale`` (one scale applies to
all bands). The inferred scale and the reason are recorded (``InputSpec.scale`` /
``scale_source``, ``data inspect``); an explicit value always wins.

The *valid range* (in model units, after the scale) is the sensor's physical range:
reflectance ``-1 .. 2``, an index ``-1 .. 1``; for unrecognised values a wide quantile fence
``q01 - 10 (q99 - q01) .. q99 + 10 (q99 - q01)``. Observations outside it are masked like
missing ones and counted in ``meta["exclusions"]["out_of_range_observations"]``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from sitsformer.data.errors import DataError

__all__ = ["KINDS", "ScaleGuess", "band_ranges", "guess_scale", "infer_scale", "valid_range",
           "value_kind"]

KINDS = {
    "index": ("an index in -1..1", 1.0),
    "reflectance": ("float reflectance 0..1", 1.0),
    "reflectance_x10000": ("integer reflectance (or index) x 10000", 10000.0),
    "unknown": ("not recognised (used as stored)", 1.0),
}
PHYSICAL = {"index": (-1.0, 1.0), "reflectance": (-1.0, 2.0),
            "reflectance_x10000": (-1.0, 2.0)}


def band_ranges(values: np.ndarray, bands: list[str]) -> dict[str, dict[str, Any]]:
    """Per band: min, 1st percentile, median, 99th percentile, max, whether all values are
    integers, and the kind they imply (:func:`value_kind`). ``values`` is ``(M, C)``."""
    out = {}
    for k, b in enumerate(bands):
        v = values[:, k]
        v = v[np.isfinite(v)]
        if not v.size:
            continue
        q01, med, q99 = np.quantile(v, [0.01, 0.5, 0.99])
        integer = bool(np.all(v == np.round(v)))
        kind = value_kind(float(q01), float(q99), integer)
        out[b] = {"min": float(v.min()), "q01": float(q01), "median": float(med),
                  "q99": float(q99), "max": float(v.max()), "integer": integer, "kind": kind,
                  "implies": KINDS[kind][0]}
    return out


def value_kind(q01: float, q99: float, integer: bool) -> str:
    """The kind of values a band with these percentiles holds (a key of :data:`KINDS`)."""
    if -1.0 <= q01 < 0.0 and q99 <= 1.0 and not (integer and q99 > 0):
        return "index"
    if 0.0 <= q01 and q99 <= 1.5 and not (integer and q99 > 1):
        return "reflectance"
    top = max(abs(q01), abs(q99))
    if (integer or top > 1.5) and 1.5 < top <= 20000 and q01 >= -20000:
        return "reflectance_x10000"
    return "unknown"


def infer_scale(ranges: dict[str, dict[str, Any]], where: str = "data") -> tuple[float, str, str]:
    """``(scale, kind, reason)`` from :func:`band_ranges`.

    Raises:
        DataError: when bands imply different scales (naming them).
    """
    informative = {b: r for b, r in ranges.items() if r["q99"] > r["q01"]} or ranges
    by_scale: dict[float, list[str]] = {}
    for b, r in informative.items():
        by_scale.setdefault(KINDS[r["kind"]][1], []).append(b)
    if len(by_scale) > 1:
        parts = "; ".join(f"{', '.join(bs)} imply scale {s:g}" for s, bs in by_scale.items())
        raise DataError(f"{where}: the bands' values imply different scales ({parts}); one scale "
                        "applies to all bands: set data.scale (the factor values are stored with)")
    ranges = informative
    kinds = sorted({r["kind"] for r in ranges.values()})
    kind = "reflectance_x10000" if "reflectance_x10000" in kinds else (
        "unknown" if "unknown" in kinds else ("index" if kinds == ["index"] else "reflectance"))
    scale = KINDS[kind][1]
    lo = min(r["q01"] for r in ranges.values())
    hi = max(r["q99"] for r in ranges.values())
    integer = all(r["integer"] for r in ranges.values())
    reason = (f"inferred: {'integer ' if integer else ''}values {lo:.4g} .. {hi:.4g} "
              f"(1st..99th percentile) imply {KINDS[kind][0]}")
    return scale, kind, reason


class ScaleGuess(NamedTuple):
    """What values imply: the scale, the kind (a key of :data:`KINDS`), the reason (the
    percentiles found) and the per-band ranges."""

    scale: float
    kind: str
    reason: str
    ranges: dict[str, dict[str, Any]]


def guess_scale(values: np.ndarray, bands: list[str], where: str = "data") -> ScaleGuess:
    """The scale stored values ``(M, C)`` imply: :func:`band_ranges` then :func:`infer_scale`.
    The one inference ``data inspect``, training (``data.scale: auto``) and ``predict`` (is
    the input on the training scale?) apply.

    Raises:
        DataError: bands imply different scales.
    """
    ranges = band_ranges(np.asarray(values, np.float64).reshape(len(values), -1), bands)
    scale, kind, reason = infer_scale(ranges, where)
    return ScaleGuess(scale, kind, reason, ranges)


def valid_range(kind: str, values: np.ndarray | None = None) -> tuple[float, float] | None:
    """The physical range of ``kind`` in model units; for ``"unknown"`` a quantile fence of
    ``values`` (``(M, C)`` in model units), or None without values."""
    if kind in PHYSICAL:
        return PHYSICAL[kind]
    if values is None or not values.size:
        return None
    finite = values[np.isfinite(values)]
    q01, q99 = np.quantile(finite, [0.01, 0.99])
    spread = max(float(q99 - q01), 1e-6)
    return float(q01 - 10 * spread), float(q99 + 10 * spread)


def kind_of_scaled(values: np.ndarray) -> str:
    """The kind of already scaled values (``(M, C)``): ``index``, ``reflectance`` or
    ``unknown`` (a given scale: which physical range applies)."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return "unknown"
    q01, q99 = np.quantile(finite, [0.01, 0.99])
    if -1.0 <= q01 and q99 <= 2.0:
        return "index" if q01 < 0 and q99 <= 1.0 else "reflectance"
    return "unknown"


def check_scale(scale: Any) -> float | str | None:
    """``"auto"``, None (values used as stored) or a positive number; else ``DataError``."""
    if scale is None or scale == "auto":
        return scale
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not np.isfinite(scale) \
            or scale <= 0:
        raise DataError(f"data.scale must be 'auto', null or a positive number (the factor "
                        f"values are stored with), got {scale!r}")
    return float(scale)
