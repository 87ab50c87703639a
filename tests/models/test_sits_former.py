"""Behaviour of SITSFormer: shapes, masking invariances, empty samples, dtypes, registry, errors."""

from __future__ import annotations

import io
import warnings

import pytest
import torch

from sitsformer.data import collate, make_demo_data
from sitsformer.models import SITSFormer, SITSFormerConfig, create_sits_former, list_models


def tiny(**kw) -> SITSFormer:
    cfg = dict(img_size=8, patch_size=4, in_channels=3, num_classes=5, embed_dim=32,
               num_layers=2, num_heads=4, mlp_ratio=2, dropout=0.0, max_seq_len=16)
    cfg.update(kw)
    return SITSFormer(**cfg).eval()


def inputs(b=2, t=6, c=3, s=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, c, s, s, generator=g)
    doy = torch.sort(torch.randint(1, 366, (b, t), generator=g), dim=1).values
    mask = torch.ones(b, t, dtype=torch.bool)
    return x, mask, doy


@pytest.mark.parametrize("stem", ["patch", "conv3d"])
def test_padding_and_batching_do_not_change_a_samples_logits(stem):
    model = tiny(stem=stem)
    x, mask, doy = inputs(b=1, t=5)
    alone = model(x, mask, doy)
    # The same sample padded to T=9 and batched with a longer, random, fully valid sample.
    other_x, other_mask, other_doy = inputs(b=1, t=9, seed=1)
    bx = torch.zeros(2, 9, 3, 8, 8)
    bx[0, :5], bx[1] = x[0], other_x[0]
    bx[0, 5:] = 123.0  # garbage in the padding
    bmask = torch.zeros(2, 9, dtype=torch.bool)
    bmask[0, :5], bmask[1] = True, True
    bdoy = torch.zeros(2, 9, dtype=torch.long)
    bdoy[0, :5], bdoy[1] = doy[0], other_doy[0]
    batched = model(bx, bmask, bdoy)
    torch.testing.assert_close(batched[0], alone[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("pool", ["max", "mean"])
def test_values_at_masked_dates_do_not_matter(pool):
    model = tiny(pool=pool)
    x, mask, doy = inputs(b=2, t=7)
    mask[0, [1, 4]] = False
    mask[1, 0] = False
    ref = model(x, mask, doy)
    x2 = x.clone()
    x2[~mask] = torch.randn_like(x2[~mask]) * 1e3
    doy2 = doy.clone()
    doy2[~mask] = 17
    torch.testing.assert_close(model(x2, mask, doy2), ref, atol=1e-5, rtol=0)
    # ... while the values at a valid date do matter.
    x3 = x.clone()
    x3[0, 0] += 1.0
    assert not torch.allclose(model(x3, mask, doy)[0], ref[0], atol=1e-4)


def test_pixel_mask_hides_cloudy_patches():
    model = tiny()
    x, mask, doy = inputs(b=1, t=4)
    pixel_mask = torch.ones(1, 4, 8, 8, dtype=torch.bool)
    pixel_mask[0, 2, :4, :4] = False  # the first patch is fully cloudy at date 2
    ref = model(x, mask, doy, pixel_mask=pixel_mask)
    x2 = x.clone()
    x2[0, 2, :, :4, :4] = 500.0
    torch.testing.assert_close(model(x2, mask, doy, pixel_mask=pixel_mask), ref, atol=1e-5, rtol=0)
    # An all-clear pixel mask is the same as giving none.
    torch.testing.assert_close(
        model(x, mask, doy, pixel_mask=torch.ones_like(pixel_mask)), model(x, mask, doy)
    )


@pytest.mark.parametrize("stem", ["patch", "conv3d"])
def test_sample_without_valid_date_is_finite_and_documented(stem):
    model = tiny(stem=stem)
    model.train()
    x, mask, doy = inputs(b=3, t=5)
    mask[1] = False
    x.requires_grad_(True)
    logits = model(x, mask, doy)
    assert torch.isfinite(logits).all()
    # Documented result: the head applied to a zero feature.
    expected = model.head(model.norm(torch.zeros(1, 32)))[0]
    torch.testing.assert_close(logits[1], expected)
    logits.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert x.grad[1].abs().sum() == 0  # nothing flows into the empty sample


def test_train_mode_without_dropout_equals_eval_mode():
    model = tiny(dropout=0.0)
    x, mask, doy = inputs()
    mask[0, 3] = False
    model.train()
    a = model(x, mask, doy)
    model.eval()
    b = model(x, mask, doy)
    torch.testing.assert_close(a, b)


def test_dropout_makes_train_mode_stochastic():
    model = tiny(dropout=0.3).train()
    x, mask, doy = inputs()
    assert not torch.allclose(model(x, mask, doy), model(x, mask, doy))


def test_bf16_autocast_on_cpu_is_close_to_fp32():
    model = tiny()
    x, mask, doy = inputs(b=4)
    mask[:, -1] = False
    ref = model(x, mask, doy)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, mask, doy)
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max() + 0.05


@pytest.mark.parametrize("name", list_models())
def test_every_registered_variant_runs_forward_and_backward(name):
    if name == "sitsformer_base":
        overrides = dict(img_size=32, num_layers=2)  # same architecture, a smaller image
    else:
        overrides = {}
    model = create_sits_former(name, num_classes=3, **overrides).train()
    cfg = model.config
    b, t = 2, 5
    x = torch.randn(b, t, cfg.in_channels, cfg.img_size, cfg.img_size)
    mask = torch.tensor([[1, 1, 0, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    doy = torch.arange(1, t + 1).repeat(b, 1) * 30
    logits = model(x, mask, doy)
    assert logits.shape == (b, 3)
    logits.logsumexp(-1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_original_variant_matches_the_paper():
    model = create_sits_former("sitsformer_original", num_classes=8)
    n = sum(p.numel() for p in model.parameters())
    assert 2.4e6 < n < 2.6e6, n  # "about 2.5 M parameters"
    assert model.num_tokens == 1 and len(model.blocks) == 3
    assert model.config.embed_dim == 256 and model.config.num_heads == 8
    assert all(block.attn_s is None for block in model.blocks)  # one token: no spatial attention
    assert model.embed.num_features == 128  # 64 filters x 2 x 1 x 1 after two (5,3,3) convs


def test_pixel_time_series_input_is_accepted():
    model = create_sits_former("sitsformer_pixel", num_classes=4, dropout=0.0).eval()
    x = torch.randn(3, 7, 10)
    doy = torch.arange(1, 8).repeat(3, 1) * 20
    torch.testing.assert_close(model(x, None, doy), model(x[..., None, None], None, doy))


def test_state_dict_round_trip_with_weights_only(tmp_path):
    model = tiny(date_encoding="learned")
    path = tmp_path / "state.pt"
    torch.save({"model_config": model.config.to_dict(), "state": model.state_dict()}, path)
    loaded = torch.load(path, weights_only=True)
    clone = SITSFormer(**loaded["model_config"]).eval()
    clone.load_state_dict(loaded["state"])
    x, mask, doy = inputs()
    torch.testing.assert_close(clone(x, mask, doy), model(x, mask, doy))


def test_missing_doy_warns_once_and_uses_date_index():
    model = tiny()
    x, mask, _ = inputs()
    with pytest.warns(UserWarning, match="date index"):
        a = model(x, mask)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(x, mask)  # no second warning
    b = model(x, mask, doy=torch.arange(1, 7).repeat(2, 1))
    torch.testing.assert_close(a, b)


def test_date_encoding_depends_on_dates():
    model = tiny()
    x, mask, doy = inputs()
    assert not torch.allclose(model(x, mask, doy), model(x, mask, (doy + 60).clamp(max=366)))


def test_days_since_reference_handles_seasons_crossing_new_year():
    model = tiny(date_encoding="days_since", reference_date="2020-09-01")
    x, mask, _ = inputs(b=1, t=4)
    import numpy as np

    dates = np.array(["2020-10-15", "2020-12-20", "2021-01-10", "2021-03-01"], dtype="datetime64[D]")
    days = torch.from_numpy(dates.astype("int64"))[None]
    # Shifting every date by whole years changes days-since differently; the same offsets from a
    # reference one year later give the same output.
    later = tiny(date_encoding="days_since", reference_date="2021-09-01")
    later.load_state_dict(model.state_dict())
    torch.testing.assert_close(later(x, mask, dates=days + 365), model(x, mask, dates=days))
    # The order of dates across 1 January is kept: positions increase.
    assert torch.all((days - model._reference_day).diff() > 0)


def test_continuous_doy_counts_on_across_new_year():
    from sitsformer.layers.date_encoding import continuous_doy

    doy = torch.tensor([[340, 356, 7, 23, 0, 0],  # Dec -> Jan, then padding
                        [1, 100, 200, 0, 0, 0],  # one calendar year: unchanged
                        [193, 209, 353, 1, 17, 193]])  # Landsat-8 Rondonia: Jul -> next Jul
    assert continuous_doy(doy).tolist() == [[340, 356, 372, 388, 0, 0],
                                            [1, 100, 200, 0, 0, 0],
                                            [193, 209, 353, 366, 382, 558]]
    # Only valid dates are compared: a masked date's doy changes no other position.
    valid = torch.tensor([[True, False, True, True, True]])
    assert continuous_doy(torch.tensor([[340, 17, 356, 7, 23]]), valid).tolist() == \
        [[340, 17, 356, 372, 388]]


def test_series_longer_than_a_year_gives_its_dates_distinct_codes():
    x, mask, _ = inputs(b=1, t=6)
    doy = torch.tensor([[193, 209, 353, 1, 177, 193]])  # the first and last dates share a doy
    plain, cont = tiny(continuous_doy=False), tiny()
    cont.load_state_dict(plain.state_dict())
    # Within one calendar year both settings are the same model ...
    one_year = torch.tensor([[10, 40, 90, 150, 200, 300]])
    torch.testing.assert_close(cont(x, mask, one_year), plain(x, mask, one_year))
    # ... across 1 January they differ, and the continuous one equals the plain one given the
    # counted-on days (which the plain model cannot tell apart from a one-year series).
    assert not torch.allclose(cont(x, mask, doy), plain(x, mask, doy), atol=1e-4)
    counted = torch.tensor([[193, 209, 353, 366, 542, 558]])
    torch.testing.assert_close(cont(x, mask, doy), plain(x, mask, counted))


def test_checkpoints_written_before_continuous_doy_keep_the_plain_doy(tmp_path):
    from sitsformer.models import load_model, save_checkpoint

    model = tiny(continuous_doy=False)
    cfg = model.config.to_dict()
    del cfg["continuous_doy"]  # what a checkpoint of an earlier version stores
    path = save_checkpoint(tmp_path / "old.pt", {
        "format": "sitsformer-checkpoint/2", "model_config": cfg,
        "model_state_dict": model.state_dict(), "epoch": 1, "global_step": 1})
    loaded, ckpt = load_model(path)
    assert loaded.config.continuous_doy is False and ckpt["model_config"]["continuous_doy"] is False
    x, mask, _ = inputs(b=1, t=4)
    doy = torch.tensor([[300, 350, 20, 60]])
    torch.testing.assert_close(loaded(x, mask, doy), model.eval()(x, mask, doy))


def test_learned_date_encoding_rejects_out_of_range_doy():
    model = tiny(date_encoding="learned")
    x, mask, doy = inputs()
    with pytest.raises(ValueError, match="0..366"):
        model(x, mask, doy + 400)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(embed_dim=30, num_heads=4), "num_heads .* must divide embed_dim"),
        (dict(img_size=10, patch_size=4), "multiple of patch_size"),
        (dict(stem="conv2d"), "stem must be one of"),
        (dict(date_encoding="days_since"), "reference_date"),
        (dict(dropout=1.5), "dropout"),
    ],
)
def test_bad_configs_name_the_problem(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kwargs)


def test_unknown_config_key_is_named():
    with pytest.raises(ValueError, match=r"unknown SITSFormer config key\(s\) \['emb_dim'\]"):
        create_sits_former({"emb_dim": 64})
    with pytest.raises(KeyError, match="unknown model variant"):
        create_sits_former("sitsformer_huge")


def test_none_values_do_not_override_defaults():
    model = create_sits_former({"variant": "sitsformer_tiny", "num_classes": None, "embed_dim": 48})
    assert model.config.num_classes == SITSFormerConfig().num_classes
    assert model.config.embed_dim == 48 and model.config.img_size == 8


@pytest.mark.parametrize(
    "shape, match",
    [
        ((2, 6, 4, 8, 8), r"in_channels=3 bands, the input has 4"),
        ((2, 6, 3, 16, 16), r"expects 8x8, the input is 16x16"),
        ((2, 17, 3, 8, 8), r"T=17 dates but max_seq_len=16"),
        ((6, 3, 8, 8), r"\(B, T, C, H, W\)"),
    ],
)
def test_wrong_inputs_say_expected_and_found(shape, match):
    model = tiny()
    with pytest.raises(ValueError, match=match):
        model(torch.randn(*shape))


def test_wrong_mask_shape_is_reported():
    model = tiny()
    x, _, doy = inputs()
    with pytest.raises(ValueError, match=r"masks must be \(B, T\) = \(2, 6\), got \(2, 5\)"):
        model(x, torch.ones(2, 5, dtype=torch.bool), doy)


def test_tutorial_configuration_trains_one_step_on_cpu_at_batch_2():
    model = SITSFormer(img_size=224, patch_size=16, in_channels=13, num_classes=10, embed_dim=256,
                       num_layers=8, num_heads=8, mlp_ratio=4, dropout=0.1, max_seq_len=20)
    model.set_grad_checkpointing(True)
    x = torch.randn(2, 20, 13, 224, 224)
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 15:] = False
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = model.head.weight.detach().clone()
    loss = torch.nn.functional.cross_entropy(model(x, mask, torch.arange(1, 21).repeat(2, 1) * 15),
                                             torch.tensor([3, 7]))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert not torch.equal(before, model.head.weight)


def test_demo_batch_goes_through_the_original_model():
    demo = make_demo_data(n_samples=6, img_size=5, seed=3)
    batch = collate(demo.samples)
    model = create_sits_former("sitsformer_original", num_classes=len(demo.classes)).eval()
    out = model(batch["sequence"] / 10000, batch["mask"], batch["doy"],
                pixel_mask=batch["pixel_mask"])
    assert out.shape == (6, len(demo.classes)) and torch.isfinite(out).all()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    assert set(torch.load(buf, weights_only=True)) == set(model.state_dict())


def test_unscaled_inputs_get_one_warning_naming_the_fix():
    """Stored values (x 10000) fed to the model warn once, on the first call; scaled inputs do
    not warn; the warning never changes the output."""
    import warnings

    from sitsformer.models import SITSFormer

    torch.manual_seed(0)
    x = torch.rand(3, 5, 4)  # reflectance 0..1, pixel series
    doy = torch.arange(1, 6).expand(3, 5)
    model = SITSFormer(img_size=1, patch_size=1, in_channels=4, num_classes=2).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(x, doy=doy)
        model(x * 10000, doy=doy)  # checked on the first call only
    fresh = SITSFormer(img_size=1, patch_size=1, in_channels=4, num_classes=2).eval()
    fresh.load_state_dict(model.state_dict())
    with pytest.warns(UserWarning, match=r"inputs up to 99\d\d.*look like stored values"):
        out = fresh(x * 10000, doy=doy)
    torch.testing.assert_close(out, model(x * 10000, doy=doy))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fresh(x * 10000, doy=doy)  # once per model
