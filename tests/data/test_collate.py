"""The sample contract: collate pads, stacks and rejects bad samples with a named key."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sitsformer.data import SampleError, check_sample, collate, make_demo_data


def sample(t, c=2, h=1, w=1, label=0, **extra):
    rng = np.random.default_rng(t)
    return {
        "sequence": rng.random((t, c, h, w), dtype=np.float32),
        "mask": np.ones(t, dtype=bool),
        "doy": np.arange(1, t + 1) * 10,
        "label": label,
        **extra,
    }


def test_collate_pads_to_longest_with_invalid_dates():
    a, b = sample(3, label=1), sample(5, label=2)
    a["mask"][1] = False
    batch = collate([a, b])
    assert batch["sequence"].shape == (2, 5, 2, 1, 1)
    assert batch["sequence"].dtype == torch.float32
    assert batch["mask"].tolist() == [[True, False, True, False, False], [True] * 5]
    assert batch["doy"].tolist() == [[10, 20, 30, 0, 0], [10, 20, 30, 40, 50]]
    assert batch["label"].tolist() == [1, 2]
    np.testing.assert_array_equal(batch["sequence"][0, :3].numpy(), a["sequence"])
    assert batch["sequence"][0, 3:].abs().sum() == 0


def test_pixel_series_and_dates_are_converted():
    s = sample(4)
    s["sequence"] = s["sequence"][:, :, 0, 0]  # (T, C)
    s["dates"] = np.array(["2021-01-01", "2021-01-11", "2021-02-01", "2021-12-31"],
                          dtype="datetime64[D]")
    batch = collate([s])
    assert batch["sequence"].shape == (1, 4, 2, 1, 1)
    assert batch["dates"][0].tolist() == s["dates"].astype("int64").tolist()


def test_pixel_mask_is_padded_and_filled_from_the_date_mask():
    a = sample(2, h=2, w=2, pixel_mask=np.array([[[1, 0], [1, 1]], [[0, 0], [0, 0]]], bool))
    b = sample(3, h=2, w=2)
    b["mask"][2] = False
    batch = collate([a, b])
    assert batch["pixel_mask"].shape == (2, 3, 2, 2)
    assert batch["pixel_mask"][0, 0].tolist() == [[True, False], [True, True]]
    assert not batch["pixel_mask"][0, 2].any()  # padding
    assert batch["pixel_mask"][1, :2].all() and not batch["pixel_mask"][1, 2].any()


def test_extra_scalar_keys_are_kept():
    batch = collate([sample(2, group=7, index=0), sample(2, group=9, index=1)])
    assert batch["group"].tolist() == [7, 9] and batch["index"].tolist() == [0, 1]


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda s: s.pop("mask"), "sample 0 of the batch: missing key 'mask'"),
        (lambda s: s.update(mask=np.ones(2, bool)), r"'mask' must be \(T,\) = \(3,\), got \(2,\)"),
        (lambda s: s.update(doy=np.array([0, 400, 3])), r"0..366, found 0..400"),
        (lambda s: s.update(sequence=np.zeros((3, 2, 1))), r"\(T, C, H, W\) or \(T, C\)"),
        (lambda s: s.update(label=np.zeros(3)), "scalar or"),
    ],
)
def test_bad_samples_are_named(change, match):
    s = sample(3)
    change(s)
    with pytest.raises(SampleError, match=match):
        collate([s])


def test_mixed_shapes_in_a_batch_are_rejected():
    with pytest.raises(SampleError, match="share"):
        collate([sample(3, c=2), sample(3, c=3)])


def test_check_sample_keeps_dtypes():
    out = check_sample(sample(3))
    assert out["mask"].dtype == torch.bool and out["doy"].dtype == torch.int64
    assert out["label"].dtype == torch.int64 and out["label"].dim() == 0


def test_demo_data_is_deterministic_and_follows_the_contract():
    a = make_demo_data(n_samples=16, img_size=3, seed=5)
    b = make_demo_data(n_samples=16, img_size=3, seed=5)
    c = make_demo_data(n_samples=16, img_size=3, seed=6)
    for sa, sb in zip(a.samples, b.samples):
        np.testing.assert_array_equal(sa["sequence"], sb["sequence"])
    assert not np.array_equal(a.samples[0]["sequence"], c.samples[0]["sequence"])
    for s in a.samples:
        checked = check_sample(s)
        t = checked["sequence"].shape[0]
        assert 20 <= t <= 40 and checked["sequence"].shape[1:] == (10, 3, 3)
        assert torch.all(checked["doy"].diff() > 0)  # dates sorted, no duplicates
        # a date is valid when at least half of its pixels are clear
        assert torch.equal(checked["mask"], checked["pixel_mask"].float().mean((1, 2)) >= 0.5)
    labels = [s["label"] for s in a.samples]
    groups = [s["group"] for s in a.samples]
    # each field (group) has one class
    assert all(len({lab for lab, g in zip(labels, groups) if g == gid}) == 1 for gid in set(groups))


def test_demo_classes_are_separable_by_their_seasonal_curves():
    """The generated classes differ in phenology: class means of NIR at mid-summer differ."""
    demo = make_demo_data(n_samples=400, img_size=1, seed=0, cloud_prob=0.0)
    nir = {}
    for s in demo.samples:
        summer = (s["doy"] > 180) & (s["doy"] < 220)
        if summer.any():
            nir.setdefault(s["label"], []).append(s["sequence"][summer, 6].mean())
    means = {k: float(np.mean(v)) for k, v in nir.items()}
    assert means[demo.classes.index("maize")] > means[demo.classes.index("winter cereal")] + 500
    assert means[demo.classes.index("water")] < 500
