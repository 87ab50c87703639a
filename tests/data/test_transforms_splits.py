"""Transforms, normalisation statistics, splits and class weights."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from sitsformer.data import (Compose, DateCrop, DemoDataset, DropCloudyDates, Normalize,
                             RandomDateSubsample, RandomFlipRotate, Scale, class_weights,
                             compute_normalization, group_split, open_source, random_split,
                             spatial_block_split, stratified_split)


def _sample(t=6, c=2, h=3, w=3):
    rng = np.random.default_rng(0)
    return {"sequence": rng.normal(size=(t, c, h, w)).astype(np.float32),
            "mask": np.array([True, True, False, True, True, True][:t]),
            "doy": np.arange(1, t + 1), "dates": np.datetime64("2021-01-01") + np.arange(t),
            "pixel_mask": rng.random((t, h, w)) > 0.3, "label": rng.integers(0, 3, (h, w))}


def test_flip_rotate_same_for_every_date_and_keys():
    s = _sample()
    out = RandomFlipRotate.apply(s, hflip=True, vflip=False, k=1)
    expect = np.rot90(s["sequence"][..., ::-1], 1, axes=(-2, -1))
    np.testing.assert_array_equal(out["sequence"], expect)
    np.testing.assert_array_equal(out["pixel_mask"], np.rot90(s["pixel_mask"][..., ::-1], 1,
                                                              axes=(-2, -1)))
    np.testing.assert_array_equal(out["label"], np.rot90(s["label"][..., ::-1], 1))
    np.testing.assert_array_equal(out["mask"], s["mask"])
    four = s
    for _ in range(4):
        four = RandomFlipRotate.apply(four, False, False, 1)
    np.testing.assert_array_equal(four["sequence"], s["sequence"])
    torch.manual_seed(3)
    t = RandomFlipRotate()({k: torch.as_tensor(v) if k != "dates" else v for k, v in s.items()})
    assert isinstance(t["sequence"], torch.Tensor)
    assert torch.allclose(t["sequence"].sum((-1, -2)), torch.as_tensor(s["sequence"]).sum((-1, -2)),
                          atol=1e-5)


def test_scale_normalize_and_statistics_on_train_only():
    ds = DemoDataset(n_samples=40, img_size=1, seed=1)
    train = np.arange(20)
    mean, std = compute_normalization(ds, train, transform=Scale(1e-4))
    vals = []
    for i in train:
        s = ds.raw_sample(int(i))
        v = s["mask"][:, None, None] & s["pixel_mask"]
        vals.append(np.moveaxis(s["sequence"] * 1e-4, 1, -1)[v])
    vals = np.concatenate(vals).astype(np.float64)
    np.testing.assert_allclose(mean, vals.mean(0), rtol=1e-6)
    np.testing.assert_allclose(std, vals.std(0), rtol=1e-5)
    mean_all, _ = compute_normalization(ds, None, transform=Scale(1e-4))
    assert not np.allclose(mean, mean_all)  # only the given indices count
    t = Compose([Scale(1e-4), Normalize(mean, std)])
    s = t(ds.raw_sample(0))
    np.testing.assert_allclose(s["sequence"], (ds.raw_sample(0)["sequence"] * 1e-4
                                               - mean[None, :, None, None].astype(np.float32))
                               / std[None, :, None, None].astype(np.float32), rtol=1e-5,
                               atol=1e-6)


def test_date_subsample_crop_and_cloudy_dates():
    s = _sample()
    torch.manual_seed(0)
    out = RandomDateSubsample(4)(s)
    assert out["mask"].all() and len(out["doy"]) == 4  # 5 valid dates: only valid ones drawn
    assert np.all(np.diff(out["doy"]) > 0)
    idx = out["doy"] - 1
    np.testing.assert_array_equal(out["sequence"], s["sequence"][idx])
    np.testing.assert_array_equal(out["dates"], s["dates"][idx])
    first = DateCrop(3, mode="first")(s)
    np.testing.assert_array_equal(first["doy"], [1, 2, 3])
    last = DateCrop(3, mode="last")(s)
    np.testing.assert_array_equal(last["pixel_mask"], s["pixel_mask"][3:])
    frac = s["pixel_mask"].reshape(6, -1).mean(1) * s["mask"]
    drop = DropCloudyDates(0.7)
    kept = drop(s)
    np.testing.assert_array_equal(kept["doy"], np.flatnonzero(frac >= 0.7) + 1)
    none = DropCloudyDates(1.01)(s)
    assert len(none["doy"]) == 1 and none["doy"][0] == np.argmax(frac) + 1


def test_random_and_stratified_splits():
    tr, te = random_split(100, 0.25, seed=1)
    assert len(te) == 25 and len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == 100
    np.testing.assert_array_equal(random_split(100, 0.25, seed=1)[1], te)
    labels = np.repeat(np.arange(4), [40, 20, 20, 20])
    tr, va, te = stratified_split(labels, 0.25, 0.25, seed=0)
    assert np.bincount(labels[te]).tolist() == [10, 5, 5, 5]
    assert np.bincount(labels[va]).tolist() == [10, 5, 5, 5]
    assert len(np.union1d(np.union1d(tr, va), te)) == 100


def test_group_split_victoria_has_no_shared_polygon(shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = open_source(shared_data / "s2_victoria_igarss2019/raw", bands="s2")
    up = ds.split == "train"
    assert len(np.intersect1d(ds.groups[up], ds.groups[~up])) == 38  # the upstream leak
    tr, te = group_split(ds, test_size=0.5, seed=0)
    assert len(np.intersect1d(ds.groups[tr], ds.groups[te])) == 0
    assert len(tr) + len(te) == 800 and 300 < len(te) < 500
    assert set(ds.labels[te]) == set(range(8)) and set(ds.labels[tr]) == set(range(8))
    tr, va, te = group_split(ds.groups, 0.2, 0.2, seed=1, labels=ds.labels)
    sides = [set(ds.groups[i]) for i in (tr, va, te)]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])


def test_spatial_block_split():
    rows, cols = np.divmod(np.arange(400), 20)
    coords = np.stack([rows, cols], 1)
    tr, te = spatial_block_split(coords, block_size=5, test_size=0.25, seed=0)
    bt = {tuple(b) for b in coords[tr] // 5}
    be = {tuple(b) for b in coords[te] // 5}
    assert not bt & be and len(te) == 100  # 16 blocks of 25 pixels, 4 blocks in test


def test_class_weights():
    w = class_weights(np.array([0, 0, 0, 1, -100, 2, 2, 2, 2, 2, 2]), 4)
    n = 10
    np.testing.assert_allclose(w.numpy(), [n / (4 * 3), n / (4 * 1), n / (4 * 6), 0.0])
    maps = torch.tensor([[0, 1], [1, -100]])
    np.testing.assert_allclose(class_weights(maps, 2).numpy(), [3 / 2, 3 / 4])
    with pytest.raises(ValueError, match=r"labels must be in 0..1"):
        class_weights([0, 5], 2)
