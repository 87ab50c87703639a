"""Is one classifier ahead of another? Paired differences over folds and McNemar's test.

Two checks of a comparison made on identical splits (``sitsformer benchmark``):

* :func:`paired_difference`: the mean of the per-fold (or per-seed) differences of a score,
  with a 95 % t-interval. Folds of a cross-validation share training samples, so their
  differences are not independent and the plain ``s^2 / J`` variance is too small; with
  ``n_train``/``n_test`` given, the variance is that of Nadeau and Bengio's corrected
  resampled t-test, ``(1 / J + n_test / n_train) s^2`` (Machine Learning 52, 2003), with
  ``J - 1`` degrees of freedom. The verdict is ``ahead`` when the whole interval is above 0,
  ``behind`` when it is below, else ``not distinguishable``.
* :func:`mcnemar`: McNemar's exact test on the test predictions of both classifiers: of the
  samples exactly one of them classifies correctly, are the two kinds equally frequent?
  (two-sided exact binomial p-value, ``scipy.stats.binomtest(b, b + c, 0.5)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["VERDICTS", "mcnemar", "paired_difference", "verdict"]

VERDICTS = ("ahead", "behind", "not distinguishable")


def paired_difference(a: Sequence[float], b: Sequence[float], *, n_train: float | None = None,
                      n_test: float | None = None, confidence: float = 0.95) -> dict[str, Any]:
    """Mean of ``a[i] - b[i]`` over ``J`` paired runs with a ``confidence`` t-interval.

    Args:
        a, b: the score of each run (fold or seed) of the two classifiers, in the same order.
        n_train, n_test: training and test samples per run (means over the runs): with both,
            the Nadeau-Bengio corrected variance ``(1/J + n_test/n_train) s^2``; without, the
            plain paired ``s^2 / J`` (runs on one fixed split: only training varies).
        confidence: the interval's coverage.

    Returns:
        ``{"mean", "low", "high", "std", "runs", "corrected", "verdict"}``: ``low``/``high``
        are None with a single run (no interval; the verdict is then ``not distinguishable``).
    """
    from scipy import stats

    a_, b_ = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a_.shape != b_.shape or a_.ndim != 1 or not a_.size:
        raise ValueError(f"paired_difference: expected two equally long, non-empty 1-d score "
                         f"lists; found shapes {a_.shape} and {b_.shape}")
    d = a_ - b_
    j = d.size
    mean = float(d.mean())
    corrected = n_train is not None and n_test is not None
    out: dict[str, Any] = {"mean": mean, "low": None, "high": None, "std": None, "runs": j,
                           "corrected": corrected, "verdict": "not distinguishable"}
    if j < 2:
        return out
    s2 = float(d.var(ddof=1))
    if corrected:
        if not n_train or n_train <= 0:
            raise ValueError(f"paired_difference: n_train must be > 0, found {n_train}")
        var = (1.0 / j + float(n_test) / float(n_train)) * s2  # type: ignore[arg-type]
    else:
        var = s2 / j
    half = float(stats.t.ppf(0.5 + confidence / 2.0, j - 1)) * math.sqrt(var)
    out.update(low=mean - half, high=mean + half, std=math.sqrt(s2))
    out["verdict"] = verdict(mean - half, mean + half)
    return out


def verdict(low: float, high: float) -> str:
    """``ahead`` (interval above 0), ``behind`` (below 0) or ``not distinguishable``."""
    if low > 0:
        return "ahead"
    if high < 0:
        return "behind"
    return "not distinguishable"


def mcnemar(correct_a: Any, correct_b: Any) -> dict[str, Any]:
    """McNemar's exact test of two classifiers scored on the same samples.

    Args:
        correct_a, correct_b: per sample, whether each classifier is right (same order).

    Returns:
        ``{"a_only": b, "b_only": c, "n": samples, "p": p}``: ``b`` samples only ``a`` gets
        right, ``c`` only ``b``; ``p`` is the two-sided exact binomial p-value of ``b`` out of
        ``b + c`` at 1/2 (1.0 when ``b + c == 0``).
    """
    from scipy import stats

    ca, cb = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if ca.shape != cb.shape or ca.ndim != 1:
        raise ValueError(f"mcnemar: expected two equally long 1-d lists of per-sample "
                         f"correctness; found shapes {ca.shape} and {cb.shape}")
    b, c = int((ca & ~cb).sum()), int((~ca & cb).sum())
    p = 1.0 if b + c == 0 else float(stats.binomtest(b, b + c, 0.5).pvalue)
    return {"a_only": b, "b_only": c, "n": int(ca.size), "p": p}
