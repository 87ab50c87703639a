"""The benchmark's protocol without training: the cross-validation folds partition the samples
(each tested exactly once per repeat), groups never straddle two folds, and the model list of
``--models`` is parsed as documented."""

from __future__ import annotations

import numpy as np
import pytest

from sitsformer.training.benchmark import (
    DEFAULT_MODELS,
    MODELS,
    ModelEntry,
    Protocol,
    cv_folds,
    parse_baselines,
    parse_models,
)


def _labels(n: int = 103, k: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, k, n)


@pytest.mark.parametrize("grouped", [False, True])
def test_folds_partition_the_samples_once_per_repeat(grouped):
    labels = _labels()
    groups = np.random.default_rng(1).integers(0, 30, len(labels)) if grouped else None
    folds = list(cv_folds(labels, groups, folds=5, repeats=2, seed=0))
    assert [(r, f) for r, f, _, _ in folds] == [(r, f) for r in range(2) for f in range(5)]
    for r in range(2):
        tests = [test for rr, _, _, test in folds if rr == r]
        counts = np.bincount(np.concatenate(tests), minlength=len(labels))
        assert (counts == 1).all()  # every sample tested exactly once in this repeat
    for _, _, train, test in folds:
        assert np.intersect1d(train, test).size == 0
        assert np.union1d(train, test).size == len(labels)
        if grouped:  # no group on both sides
            assert np.intersect1d(groups[train], groups[test]).size == 0
    # the two repeats differ, the same seed gives the same folds
    assert not all(np.array_equal(a[3], b[3]) for a, b in zip(folds[:5], folds[5:]))
    again = list(cv_folds(labels, groups, folds=5, repeats=2, seed=0))
    assert all(np.array_equal(a[3], b[3]) for a, b in zip(folds, again, strict=True))


def test_stratified_folds_keep_the_class_shares():
    labels = np.repeat(np.arange(4), 25)  # 25 per class, 5 folds: 5 per class and fold
    for _, _, _, test in cv_folds(labels, None, folds=5, repeats=1):
        assert np.bincount(labels[test]).tolist() == [5, 5, 5, 5]


def test_folds_refuse_too_few_groups_or_samples_per_class():
    labels = _labels(40)
    with pytest.raises(ValueError, match="expected at least 5 groups; found 3"):
        list(cv_folds(labels, np.arange(40) % 3, folds=5, repeats=1))
    with pytest.raises(ValueError, match="expected at least 5 samples per class; found 2"):
        list(cv_folds(np.array([0] * 20 + [1, 1]), None, folds=5, repeats=1))


def test_parse_models_and_baselines():
    assert parse_models(None) == [ModelEntry(n, MODELS[n]) for n in DEFAULT_MODELS]
    two = parse_models("sitsformer,small:model.embed_dim=32:model.num_layers=1")
    assert two == [ModelEntry("sitsformer", ()),
                   ModelEntry("small", ("model.embed_dim=32", "model.num_layers=1"))]
    with pytest.raises(ValueError, match="unknown model 'tempcnn'"):
        parse_models("sitsformer,tempcnn")
    with pytest.raises(ValueError, match="expected NAME or NAME:KEY=VALUE"):
        parse_models("small:embed_dim")
    with pytest.raises(ValueError, match="distinct names"):
        parse_models("sitsformer,sitsformer")
    assert parse_baselines(None) == ["random_forest", "lightgbm"]
    assert parse_baselines("") == [] and parse_baselines("lightgbm") == ["lightgbm"]
    with pytest.raises(ValueError, match="expected names among"):
        parse_baselines("svm")
    with pytest.raises(ValueError, match="expected auto, cv or fixed; found 'kfold'"):
        Protocol("kfold")
