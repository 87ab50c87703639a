"""The comparison statistics of ``sitsformer benchmark`` on hand-made numbers: the paired
interval equals the formula (plain and Nadeau-Bengio corrected), the verdicts follow the
interval, and McNemar's p equals the exact binomial computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from sitsformer.evaluation.significance import mcnemar, paired_difference, verdict


def test_paired_difference_plain_t_interval_by_hand():
    a = [0.80, 0.82, 0.78, 0.85]
    b = [0.75, 0.80, 0.77, 0.79]
    d = [0.05, 0.02, 0.01, 0.06]
    mean = sum(d) / 4
    s2 = sum((x - mean) ** 2 for x in d) / 3
    half = stats.t.ppf(0.975, 3) * math.sqrt(s2 / 4)  # t_{0.975, 3} = 3.182446
    assert stats.t.ppf(0.975, 3) == pytest.approx(3.182446, abs=1e-6)
    out = paired_difference(a, b)
    assert out["mean"] == pytest.approx(mean)
    assert out["low"] == pytest.approx(mean - half) and out["high"] == pytest.approx(mean + half)
    assert out["std"] == pytest.approx(math.sqrt(s2)) and out["runs"] == 4
    # 0.035 +- 0.0379: four folds are too few to tell, though every difference is positive
    assert not out["corrected"] and out["verdict"] == "not distinguishable"
    assert out["low"] == pytest.approx(-0.002879, abs=1e-6)
    assert paired_difference(a[:3] + [0.83], b)["verdict"] == "ahead"  # 0.030 +- 0.029


def test_paired_difference_nadeau_bengio_correction_by_hand():
    # 2 x 5-fold CV of 100 samples: 80 train / 20 test per fold
    d = np.array([0.05, 0.02, 0.01, 0.06, 0.03, 0.04, -0.01, 0.02, 0.05, 0.03])
    b = np.full(10, 0.7)
    out = paired_difference(b + d, b, n_train=80, n_test=20)
    j, mean, s2 = 10, d.mean(), d.var(ddof=1)
    half = stats.t.ppf(0.975, j - 1) * math.sqrt((1 / j + 20 / 80) * s2)
    assert out["corrected"]
    assert out["mean"] == pytest.approx(mean)
    assert (out["low"], out["high"]) == (pytest.approx(mean - half), pytest.approx(mean + half))
    # the corrected interval is wider than the plain one (0.030 +- 0.028 vs +- 0.015)
    plain = paired_difference(b + d, b)
    assert plain["high"] - plain["low"] < out["high"] - out["low"]
    assert plain["verdict"] == "ahead" and out["verdict"] == "ahead"
    assert out["low"] == pytest.approx(0.030 - 2.262157 * math.sqrt(0.35 * s2), abs=1e-6)


def test_verdicts_and_edge_cases():
    assert verdict(0.01, 0.02) == "ahead"
    assert verdict(-0.02, -0.01) == "behind"
    assert verdict(-0.01, 0.02) == "not distinguishable"
    assert verdict(0.0, 0.02) == "not distinguishable"  # touching 0 is not ahead
    behind = paired_difference([0.5, 0.52, 0.49], [0.7, 0.71, 0.72])
    assert behind["verdict"] == "behind" and behind["high"] < 0
    one = paired_difference([0.8], [0.7])  # one run: no interval
    assert one["low"] is None and one["verdict"] == "not distinguishable"
    assert one["mean"] == pytest.approx(0.1)
    same = paired_difference([0.8, 0.9], [0.7, 0.8])  # identical differences: zero width
    assert same["low"] == pytest.approx(0.1) and same["verdict"] == "ahead"
    with pytest.raises(ValueError, match="equally long"):
        paired_difference([0.8, 0.9], [0.7])


def test_mcnemar_equals_the_exact_binomial_by_hand():
    # contingency: both right 50, only a right 9, only b right 3, both wrong 8
    ca = np.array([True] * 50 + [True] * 9 + [False] * 3 + [False] * 8)
    cb = np.array([True] * 50 + [False] * 9 + [True] * 3 + [False] * 8)
    out = mcnemar(ca, cb)
    assert (out["a_only"], out["b_only"], out["n"]) == (9, 3, 70)
    n = 12
    p = 2 * sum(math.comb(n, k) for k in range(4)) / 2 ** n  # two-sided, k <= 3
    assert out["p"] == pytest.approx(p) and out["p"] == pytest.approx(0.146, abs=1e-3)
    assert out["p"] == pytest.approx(stats.binomtest(9, 12, 0.5).pvalue)
    assert mcnemar(cb, ca)["p"] == pytest.approx(p)  # symmetric
    assert mcnemar(ca, ca)["p"] == 1.0  # no discordant sample
    balanced = mcnemar([True, False] * 5, [False, True] * 5)  # 5 / 5
    assert balanced["p"] == pytest.approx(1.0)
