"""Training-split augmentation: what each transform changes (and leaves alone), and that only
the training split of a DataModule is augmented."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sitsformer.data import DataModule
from sitsformer.data.augment import (
    BandNoise,
    RandomDateDropout,
    RandomDateShift,
    train_augmentation,
)
from sitsformer.data.errors import DataError


def sample(t=8, c=3):
    mask = np.ones(t, bool)
    mask[[1, 5]] = False
    doy = np.array([0, 10, 60, 120, 200, 300, 360, 366][:t])
    return {"sequence": np.arange(t * c, dtype=np.float32).reshape(t, c), "mask": mask,
            "doy": doy, "dates": np.datetime64("2020-01-01") + doy.astype("timedelta64[D]"),
            "label": np.int64(1)}


def test_date_dropout_only_hides_valid_dates_and_keeps_one():
    s = sample()
    torch.manual_seed(0)
    out = RandomDateDropout(0.5)(s)
    assert not (out["mask"] & ~s["mask"]).any()  # nothing becomes valid
    assert out["mask"].sum() < s["mask"].sum()
    np.testing.assert_array_equal(out["sequence"], s["sequence"])
    assert s["mask"].sum() == 6  # the input is not modified
    torch.manual_seed(0)
    again = RandomDateDropout(0.5)(s)
    np.testing.assert_array_equal(again["mask"], out["mask"])  # seeded: repeatable
    for seed in range(20):  # p close to 1: still one valid date
        torch.manual_seed(seed)
        assert RandomDateDropout(0.99)(s)["mask"].sum() == 1
    with pytest.raises(DataError, match=r"in \[0, 1\), got 1.0"):
        RandomDateDropout(1.0)


def test_date_shift_moves_every_date_and_wraps_the_year():
    s = sample()
    out = RandomDateShift.apply(s, 10)
    np.testing.assert_array_equal(out["doy"], [0, 20, 70, 130, 210, 310, 4, 10])
    np.testing.assert_array_equal(out["dates"] - s["dates"], np.full(8, 10, "timedelta64[D]"))
    back = RandomDateShift.apply(s, -15)
    np.testing.assert_array_equal(back["doy"], [0, 361, 45, 105, 185, 285, 345, 351])
    torch.manual_seed(3)
    shifted = RandomDateShift(5)(s)
    delta = int((shifted["dates"] - s["dates"])[0].astype(int))
    assert -5 <= delta <= 5
    np.testing.assert_array_equal(shifted["doy"], RandomDateShift.apply(s, delta)["doy"])


def test_band_noise_changes_valid_observations_only():
    s = sample(t=8, c=3)
    torch.manual_seed(1)
    out = BandNoise(0.1)(s)
    diff = out["sequence"] - s["sequence"]
    assert (diff[~s["mask"]] == 0).all()
    assert (diff[s["mask"]] != 0).all()
    assert 0.02 < float(diff[s["mask"]].std()) < 0.3


def test_train_augmentation_is_none_when_off():
    assert train_augmentation() is None
    assert [type(t).__name__ for t in train_augmentation(0.1, 3, 0.01).transforms] == [
        "RandomDateShift", "RandomDateDropout", "BandNoise"]


def test_only_the_training_split_is_augmented():
    plain = DataModule("demo", demo_samples=60, demo_classes=3, split="stratified").setup()
    aug = DataModule("demo", demo_samples=60, demo_classes=3, split="stratified",
                     date_dropout=0.5, band_noise=0.5).setup()
    assert aug.spec == plain.spec  # statistics come from the stored samples
    for name in ("val", "test"):
        a, b = aug.datasets[name][0], plain.datasets[name][0]
        np.testing.assert_array_equal(a["sequence"], b["sequence"])
        np.testing.assert_array_equal(a["mask"], b["mask"])
    torch.manual_seed(0)
    a, b = aug.datasets["train"][0], plain.datasets["train"][0]
    assert a["mask"].sum() < b["mask"].sum()
    assert not np.allclose(a["sequence"][a["mask"]], b["sequence"][a["mask"]])
