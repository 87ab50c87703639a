"""Masked-date pre-training: hiding, mask token, loss, interpolation baseline."""

from __future__ import annotations

import pytest
import torch
from _helpers import assert_close

from sitsformer.models import create_sits_former
from sitsformer.models.pretrain import (
    SITSFormerForPretraining,
    interpolation_baseline,
    random_hiding,
    reconstruction_loss,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(**kw):
    cfg = dict(img_size=4, patch_size=2, in_channels=3, num_classes=5, embed_dim=16, num_layers=2,
               num_heads=2, mlp_ratio=2.0, dropout=0.0, max_seq_len=16)
    cfg.update(kw)
    return create_sits_former(cfg)


def _batch(b=3, t=8, c=3, s=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, c, s, s, generator=g)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[0, 6:] = False  # padding
    mask[1, 2] = False  # a cloudy date
    doy = torch.arange(1, t + 1).repeat(b, 1) * 10
    return x, mask, doy


def test_random_hiding_only_valid_dates_and_keeps_one_visible():
    g = torch.Generator().manual_seed(1)
    mask = torch.zeros(6, 10, dtype=torch.bool)
    mask[0] = True  # 10 valid -> 3 hidden
    mask[1, :2] = True  # 2 valid -> 1 hidden, 1 visible
    mask[2, 4] = True  # 1 valid -> nothing hidden (keep it visible)
    # row 3: no valid date
    mask[4, ::2] = True  # 5 valid -> round(1.5) = 2 hidden
    mask[5, 1:8] = True
    for _ in range(20):
        hidden = random_hiding(mask, 0.3, generator=g)
        assert not (hidden & ~mask).any(), "hidden a date that is not valid"
        assert hidden.sum(1).tolist()[:5] == [3, 1, 0, 0, 2]
        assert ((mask & ~hidden).sum(1) >= mask.any(1).long()).all()
    # same generator seed -> same draw
    a = random_hiding(mask, 0.3, torch.Generator().manual_seed(5))
    b = random_hiding(mask, 0.3, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="ratio"):
        random_hiding(mask, 1.0)


def test_reconstruction_loss_ignores_non_counted_positions():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 5, 3, generator=g), torch.randn(2, 5, 3, generator=g)
    weight = torch.zeros(2, 5, 1, dtype=torch.bool)
    weight[0, 1] = weight[1, 3] = True
    loss = reconstruction_loss(pred, target, weight)
    expected = torch.cat([(pred[0, 1] - target[0, 1]) ** 2,
                          (pred[1, 3] - target[1, 3]) ** 2]).mean()
    assert_close(loss, expected)
    changed = target.clone()
    changed[~weight.expand_as(target)] = float("nan")  # even NaN outside never leaks in
    assert_close(reconstruction_loss(pred, changed, weight), expected)
    empty = reconstruction_loss(pred.requires_grad_(), target, torch.zeros_like(weight))
    assert empty.item() == 0.0
    empty.backward()
    assert torch.equal(pred.grad, torch.zeros_like(pred))


@pytest.mark.parametrize("target", ["center", "patch"])
def test_pretraining_model_hides_information_and_counts_hidden_only(target):
    model = SITSFormerForPretraining(_tiny(), target=target).eval()
    x, mask, doy = _batch()
    hidden = random_hiding(mask, 0.3, torch.Generator().manual_seed(0))
    out = model(x, mask, doy, hidden=hidden)
    shape = (3, 8, 3) if target == "center" else (3, 8, 3, 4, 4)
    assert out["pred"].shape == shape and out["target"].shape == shape
    # the weight is exactly the hidden valid dates
    assert torch.equal(out["weight"].expand(shape).flatten(2).all(-1), hidden & mask)
    # the values at hidden dates are replaced by the mask token: changing them changes nothing
    x2 = x.clone()
    x2[hidden] = 1000.0
    out2 = model(x2, mask, doy, hidden=hidden)
    assert_close(out2["pred"], out["pred"])
    # the loss is an MSE over hidden positions only
    w = out["weight"].expand(shape)
    assert_close(out["loss"], ((out["pred"] - out["target"])[w] ** 2).mean())


def test_mask_token_is_in_state_dict_and_round_trips(tmp_path):
    model = SITSFormerForPretraining(_tiny(), target="patch")
    sd = model.state_dict()
    assert "mask_token" in sd and sd["mask_token"].shape == (16,)
    assert not any(k.startswith("encoder.head.") for k in sd)
    torch.save({"model_config": model.config.to_dict(), "model_state_dict": sd}, tmp_path / "m.pt")
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    clone = SITSFormerForPretraining.from_config(ckpt["model_config"])
    clone.load_state_dict(ckpt["model_state_dict"])
    assert torch.equal(clone.mask_token, model.mask_token)
    x, mask, doy = _batch()
    hidden = random_hiding(mask, 0.3, torch.Generator().manual_seed(0))
    assert_close(clone.eval()(x, mask, doy, hidden=hidden)["pred"],
                               model.eval()(x, mask, doy, hidden=hidden)["pred"])


def test_pixel_mask_excludes_cloudy_pixels():
    model = SITSFormerForPretraining(_tiny(), target="patch").eval()
    x, mask, doy = _batch()
    hidden = torch.zeros_like(mask)
    hidden[:, 3] = True
    pm = torch.ones(3, 8, 4, 4, dtype=torch.bool)
    pm[:, 3, :2] = False  # top half cloudy at the hidden date
    out = model(x, mask, doy, pixel_mask=pm, hidden=hidden)
    w = out["weight"].expand_as(out["pred"])
    assert int(w.sum()) == 3 * 3 * 8  # 3 samples x 3 bands x 8 clear pixels
    assert not w[:, 3, :, :2].any()
    centre = SITSFormerForPretraining(_tiny(), target="center").eval()
    pm[0, 3, 2, 2] = False  # the centre pixel of sample 0 is cloudy
    out = centre(x, mask, doy, pixel_mask=pm, hidden=hidden)
    assert out["weight"][:, 3, 0].tolist() == [False, True, True]


def test_no_valid_date_gives_finite_loss_and_gradients():
    model = SITSFormerForPretraining(_tiny(), target="center").train()
    x, mask, doy = _batch()
    mask[:] = False
    out = model(x, mask, doy)
    assert not out["hidden"].any()
    assert out["loss"].item() == 0.0 and torch.isfinite(out["pred"]).all()
    out["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name


def test_training_reduces_loss_and_uses_every_parameter():
    torch.manual_seed(0)
    model = SITSFormerForPretraining(_tiny(img_size=1, patch_size=1), target="center")
    x = torch.linspace(0, 1, 12)[None, :, None].repeat(16, 1, 3) * torch.rand(16, 1, 3)
    mask = torch.ones(16, 12, dtype=torch.bool)
    doy = torch.arange(1, 13).repeat(16, 1) * 20
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    first = None
    for _ in range(30):
        loss = model(x, mask, doy, generator=g)["loss"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert unused == []


def test_interpolation_baseline_is_exact_on_a_linear_series():
    t = 9
    pos = torch.tensor([[1, 5, 12, 20, 33, 40, 41, 60, 80]], dtype=torch.float64)
    series = (3.0 * pos - 7.0)[..., None].repeat(1, 1, 2).float()  # (1, T, 2), linear in date
    visible = torch.tensor([[True, False, True, False, False, True, True, False, True]])
    out = interpolation_baseline(series, visible, pos)
    assert_close(out, series)
    # one-sided gaps copy the nearest visible date; no visible date -> zeros
    vis = torch.tensor([[False, False, True, False, False, True, False, False, False]])
    out = interpolation_baseline(series, vis, pos)
    assert torch.equal(out[0, :2], series[0, 2].expand(2, 2))
    assert torch.equal(out[0, 6:], series[0, 5].expand(3, 2))
    assert torch.equal(interpolation_baseline(series, torch.zeros(1, t, dtype=torch.bool), pos),
                       torch.zeros_like(series))


def test_model_baseline_matches_pred_shape():
    model = SITSFormerForPretraining(_tiny(), target="center")
    x, mask, doy = _batch()
    hidden = random_hiding(mask, 0.3, torch.Generator().manual_seed(0))
    base = model.baseline(x, mask, hidden, doy)
    assert base.shape == (3, 8, 3)
    visible = mask & ~hidden
    assert_close(base[visible], x[:, :, :, 2, 2][visible])


def test_rejects_bad_target():
    with pytest.raises(ValueError, match="target must be one of"):
        SITSFormerForPretraining(_tiny(), target="pixel")
