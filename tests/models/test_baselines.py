"""TempCNN and L-TAE: the published sizes, the SITS-Former's call, masking, checkpoints and the
surface the trainer, ensembles and export use."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _helpers import assert_close

from sitsformer.configs import shipped_configs
from sitsformer.models import (
    LTAE,
    SITSEnsemble,
    SITSFormer,
    TempCNN,
    create_model,
    load_model,
    model_from_config,
    resolve_model_config,
    save_checkpoint,
)
from sitsformer.models.config import SITSFORMER_ONLY, SITSFormerConfig
from sitsformer.models.export import export_program
from sitsformer.models.pretrain import SITSFormerForPretraining
from sitsformer.training.config import MODEL_SECTION_EXTRA, load_config
from sitsformer.training.optim import create_optimizer

ARCHS = ["tempcnn", "ltae"]
C, K, L = 10, 5, 24


def build(arch: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(arch, num_classes=K, max_seq_len=L, **kw).eval()


def batch(b: int = 4, t: int = 12, seed: int = 1):
    """Pixel series, sample 0 with its last dates padded, sample 1 with every third date masked;
    masked dates hold large garbage and day of year 0."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, C, generator=g)
    masks = torch.ones(b, t, dtype=torch.bool)
    masks[0, 7:] = False
    masks[1, 1::3] = False
    doy = torch.sort(torch.randint(1, 366, (b, t), generator=g), dim=1).values
    x[~masks] = 1e3
    doy[~masks] = 0
    return x, masks, doy


def logits(model, x, masks, doy, **kw):
    with torch.no_grad():
        return model(x, masks, doy=doy, **kw)


def test_published_settings():
    tcnn = build("tempcnn")
    conv = tcnn.convs
    assert len(conv) == 3
    assert [(c[0].out_channels, c[0].kernel_size[0]) for c in conv] == [(64, 5)] * 3
    assert all(isinstance(c[1], torch.nn.BatchNorm1d) and c[3].p == 0.2 for c in conv)
    assert tcnn.dense[0].out_features == 256 and tcnn.dense[3].p == 0.2
    ltae = build("ltae")
    assert ltae.query.shape == (16, 8) and ltae.in_proj.out_features == 256
    assert [m.out_features for m in ltae.mlp if isinstance(m, torch.nn.Linear)] == [128]
    assert ltae.drop.p == 0.2 and float(ltae.inv_freq[2]) == pytest.approx(1000 ** (-2 / 16))


@pytest.mark.parametrize("arch", ARCHS)
def test_parameter_count_is_the_formula(arch):
    model = build(arch)
    n = sum(p.numel() for p in model.parameters())
    cfg = model.config
    if arch == "tempcnn":
        f, k, h = cfg.tempcnn_filters, cfg.tempcnn_kernel_size, cfg.tempcnn_hidden
        layers = cfg.tempcnn_layers
        want = ((C * f * k + 3 * f) + (layers - 1) * (f * f * k + 3 * f)
                + (f * L * h + 3 * h) + (h * K + K))
        assert want == 440_005  # C=10, K=5, L=24: the dense layer (F*L*H) dominates
    else:
        d, heads, dk = cfg.ltae_d_model, cfg.ltae_heads, cfg.ltae_d_k
        mlp, dec = [d, *cfg.ltae_mlp], [cfg.ltae_mlp[-1], *cfg.ltae_decoder]
        want = ((C * d + d) + 2 * d + heads * dk + (d * heads * dk + heads * dk)
                + sum(a * o + 3 * o for a, o in zip(mlp, mlp[1:])) + 2 * mlp[-1]
                + sum(a * o + 3 * o for a, o in zip(dec, dec[1:])) + (dec[-1] * K + K))
    assert n == want


@pytest.mark.parametrize("arch", ARCHS)
def test_padded_dates_change_nothing(arch):
    model = build(arch)
    x, masks, doy = batch()
    ref = logits(model, x, masks, doy)
    # appended padded dates (garbage values, day of year 0, mask False)
    extra = 6
    x2 = torch.cat([x, torch.full((4, extra, C), -7e2)], 1)
    m2 = torch.cat([masks, torch.zeros(4, extra, dtype=torch.bool)], 1)
    d2 = torch.cat([doy, torch.zeros(4, extra, dtype=torch.long)], 1)
    assert_close(logits(model, x2, m2, d2), ref, atol=1e-5)
    # the values at masked dates are never read ...
    x3 = torch.where(masks[..., None], x, torch.randn_like(x) * 50)
    assert_close(logits(model, x3, masks, doy), ref, atol=1e-5)
    # ... while unmasking them changes the output
    assert (logits(model, x, torch.ones_like(masks), doy)[:2] - ref[:2]).abs().max() > 1e-3


def test_ltae_attends_over_valid_dates_only():
    """A masked date inside a series is the same as no date at all (positions are days of year):
    sample 1 without its masked dates gives the same logits."""
    model = build("ltae")
    x, masks, doy = batch()
    ref = logits(model, x, masks, doy)[1]
    keep = masks[1]
    alone = logits(model, x[1:2, keep], None, doy[1:2, keep])[0]
    assert_close(alone, ref, atol=1e-5)
    with torch.no_grad():
        _, weights = model.attention(torch.randn(4, 12, 256), masks)
    assert float(weights[~masks[:, None, :].expand_as(weights)].abs().max()) == 0.0
    assert_close(weights.sum(-1), torch.ones(4, 16))


def test_ltae_uses_the_day_of_year():
    model = build("ltae")
    x, masks, doy = batch()
    moved = torch.where(masks, doy + 30, doy)
    assert (logits(model, x, masks, moved) - logits(model, x, masks, doy)).abs().max() > 1e-4


def test_tempcnn_grid_is_the_date_index():
    """TempCNN reads dates by their index on a grid of max_seq_len: doy is not used, and a
    masked date inside a series is a zero at its place (the same as a valid date of zeros)."""
    model = build("tempcnn")
    x, masks, doy = batch()
    ref = logits(model, x, masks, doy)
    assert_close(logits(model, x, masks, None), ref)
    zeros = torch.where(masks[..., None], x, torch.zeros_like(x))
    assert_close(logits(model, zeros, torch.ones_like(masks), doy), ref, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_no_valid_date_and_single_sample_training(arch):
    model = build(arch)
    x, masks, doy = batch()
    masks[2] = False
    out = logits(model, x, masks, doy)
    assert torch.isfinite(out).all()
    # a training batch of one sample (the last batch of some splits) trains too
    model.train()
    loss = model(x[:1], masks[:1], doy=doy[:1]).logsumexp(-1).sum()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("arch", ARCHS)
def test_images_are_averaged_over_their_clear_pixels(arch):
    model, pixel_model = build(arch, img_size=3), build(arch)  # the same weights
    x, masks, doy = batch()
    noise = torch.randn(4, 12, C, 3, 3)
    images = x[..., None, None] + noise - noise.mean(dim=(-2, -1), keepdim=True)
    assert_close(logits(model, images, masks, doy), logits(pixel_model, x, masks, doy),
                 atol=1e-4)
    # cloudy pixels are left out of the mean; a date without a clear pixel is invalid
    pixel_mask = torch.ones(4, 12, 3, 3, dtype=torch.bool)
    pixel_mask[:, :, 0, 0] = False
    cloudy = images.clone()
    cloudy[:, :, :, 0, 0] = 5e2
    assert_close(logits(model, cloudy, masks, doy, pixel_mask=pixel_mask),
                 logits(model, images, masks, doy, pixel_mask=pixel_mask), atol=1e-5)
    pixel_mask[1, 0] = False
    masks2 = masks.clone()
    masks2[1, 0] = False
    assert_close(logits(model, cloudy, masks, doy, pixel_mask=pixel_mask)[1],
                 logits(model, cloudy, masks2, doy, pixel_mask=pixel_mask)[1], atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_checkpoint_round_trip_gives_identical_outputs(arch, tmp_path):
    model = build(arch, ltae_heads=8, tempcnn_filters=32)
    model.train()
    x, masks, doy = batch()
    for _ in range(2):  # move the batch-norm statistics away from their initial values
        model(x, masks, doy=doy)
    model.eval()
    save_checkpoint(tmp_path / "m.pt", {"model_config": model.config.to_dict(),
                                         "model_state_dict": model.state_dict(), "epoch": 1,
                                         "global_step": 1})
    loaded, ckpt = load_model(tmp_path / "m.pt")
    assert type(loaded) is type(model) and ckpt["model_config"]["arch"] == arch
    assert loaded.config == model.config
    assert torch.equal(logits(loaded, x, masks, doy), logits(model, x, masks, doy))
    # an ensemble of baselines is stored and rebuilt the same way
    ens = SITSEnsemble([model, loaded])
    again = SITSEnsemble.from_config(ens.config_dict())
    again.load_state_dict(ens.state_dict())
    assert torch.equal(logits(again.eval(), x, masks, doy), logits(ens.eval(), x, masks, doy))


def test_a_config_without_arch_builds_a_sitsformer():
    """Every config written before ``arch`` existed (no baseline keys either) still loads."""
    old = SITSFormerConfig(img_size=1, patch_size=1, in_channels=C, embed_dim=32,
                           num_heads=4, num_layers=1).to_dict()
    for key in [k for k in old if k == "arch" or k.startswith(("tempcnn_", "ltae_", "baseline_"))]:
        del old[key]
    assert isinstance(model_from_config(old), SITSFormer)


def test_transformer_settings_are_ignored_by_baselines():
    """The rule: a baseline resets every SITS-Former-only setting to its default, so a
    transformer recipe (the benchmark's victoria_pixel) runs with model.variant=tempcnn / ltae
    and the baseline keeps the published sizes."""
    defaults = SITSFormerConfig()
    for arch in ARCHS:
        cfg = load_config(shipped_configs()["victoria_pixel"], [f"model.variant={arch}"])
        settings = {k: v for k, v in dataclasses.asdict(cfg.model).items()
                    if k not in MODEL_SECTION_EXTRA}
        assert settings["embed_dim"] == 128 and settings["dropout"] == 0.0  # the recipe's
        resolved = resolve_model_config(cfg.model.variant, **{**settings, "patch_size": 1})
        assert resolved.arch == arch
        assert all(getattr(resolved, k) == getattr(defaults, k) for k in SITSFORMER_ONLY)
        assert resolved.baseline_dropout == 0.2
    # baseline settings are overridable; the SITS-Former's own still work for it
    assert resolve_model_config("tempcnn", tempcnn_filters=16).tempcnn_filters == 16
    assert resolve_model_config("sitsformer_pixel", dropout=0.0).dropout == 0.0


def test_errors_say_what_was_expected():
    with pytest.raises(ValueError, match="TempCNN builds arch='tempcnn'.*arch='ltae'"):
        TempCNN(resolve_model_config("ltae"))
    with pytest.raises(ValueError, match="SITSFormer builds arch='sitsformer'.*'tempcnn'"):
        SITSFormer(resolve_model_config("tempcnn"))
    with pytest.raises(ValueError, match="arch must be one of .* got 'rnn'"):
        create_model("tempcnn", arch="rnn")
    with pytest.raises(ValueError, match="ltae_heads \\(12\\) must divide ltae_d_model"):
        create_model("ltae", ltae_heads=12)
    with pytest.raises(ValueError, match="tempcnn_kernel_size must be odd"):
        create_model("tempcnn", tempcnn_kernel_size=4)
    model = build("tempcnn")
    with pytest.raises(ValueError, match="T=30 dates but max_seq_len=24"):
        model(torch.randn(2, 30, C), None)
    with pytest.raises(ValueError, match="in_channels=10 bands, the input has 3"):
        model(torch.randn(2, 5, 3), None)
    with pytest.raises(TypeError, match="pre-training needs a SITSFormer encoder, got TempCNN"):
        SITSFormerForPretraining(model)


@pytest.mark.parametrize("arch", ARCHS)
def test_trainer_surface(arch):
    model = build(arch)
    model.set_grad_checkpointing(True)
    model.set_token_packing(True)
    assert model.grad_checkpointing is False
    opt = create_optimizer(model, lr=1e-3, weight_decay=0.05)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    if arch == "ltae":
        assert id(model.query) not in decayed
    model.reset_classifier(3)
    assert model.num_classes == model.config.num_classes == 3
    x, masks, doy = batch()
    assert logits(model, x, masks, doy).shape == (4, 3)
    feats = model.forward_features(x, masks, doy)
    assert_close(model.forward_head(feats), model(x, masks, doy=doy))


@pytest.mark.parametrize("arch", ARCHS)
def test_exported_program_equals_eager(arch, one_thread):
    model = build(arch)
    program = export_program(model).module()
    for b, t in [(4, 12), (3, 7)]:  # dynamic batch and number of dates
        x, masks, doy = batch(b, t)
        with torch.no_grad():
            got = program(x[..., None, None], masks, doy)
        assert_close(got, logits(model, x, masks, doy), atol=1e-5)


def test_classes_build_from_keyword_settings():
    """``LTAE(...)`` / ``TempCNN({...})`` take settings like ``SITSFormer(...)``: arch filled in,
    transformer settings reset by the same merge as the factory's."""
    ltae = LTAE(img_size=1, in_channels=4, num_classes=3, max_seq_len=8, ltae_heads=4)
    assert ltae.config == resolve_model_config({"arch": "ltae", "img_size": 1, "in_channels": 4,
                                                "num_classes": 3, "max_seq_len": 8,
                                                "ltae_heads": 4})
    tcnn = TempCNN({"in_channels": 4, "embed_dim": 64, "max_seq_len": 8})
    assert tcnn.config.arch == "tempcnn" and tcnn.config.embed_dim == SITSFormerConfig().embed_dim
    x = torch.randn(2, 8, 4)
    assert ltae.eval()(x, None, doy=torch.arange(1, 9).expand(2, 8)).shape == (2, 3)
