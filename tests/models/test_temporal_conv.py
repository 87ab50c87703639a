"""``model.temporal_conv``: a residual 1-D convolution over time on the per-date embeddings of
the SITS-Former (off by default, so the original model and old checkpoints are unchanged).
Shapes, padding invariance (padded dates appended after the series change no logit), packed
== padded, the setting's validation, and a train -> evaluate round trip through the CLI that
rebuilds the model from the checkpoint alone."""

from __future__ import annotations

import json

import pytest
import torch

from sitsformer.models import SITSFormer, SITSFormerConfig, load_checkpoint, load_model

PIXEL = dict(img_size=1, patch_size=1, in_channels=3, num_classes=5, embed_dim=32,
             num_layers=2, num_heads=4, max_seq_len=40, dropout=0.0)


def _inputs(b: int = 4, t: int = 20, c: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, c, generator=g)
    doy = torch.sort(torch.randint(1, 366, (b, t), generator=g), dim=1).values
    masks = torch.ones(b, t, dtype=torch.bool)
    masks[1, 15:] = False  # a shorter series
    masks[2, 4] = False  # a cloudy date inside
    return x, masks, doy


def _model(k: int, pack: bool | None = False) -> SITSFormer:
    torch.manual_seed(0)
    net = SITSFormer(**PIXEL, temporal_conv=k).eval()
    net.set_token_packing(pack)
    return net


def test_default_is_off_and_the_stem_has_its_shape():
    assert SITSFormerConfig().temporal_conv == 0
    assert _model(0).temporal is None
    net = _model(5)
    assert net.temporal.conv.kernel_size == (5,) and net.temporal.conv.in_channels == 32
    x, masks, doy = _inputs()
    with torch.no_grad():
        assert net(x, masks, doy=doy).shape == (4, 5)
        tokens, valid = net.forward_features(x, masks, doy=doy)
    assert tokens.shape == (4, 20, 1, 32) and valid.shape == (4, 20, 1)


def test_off_is_the_model_without_the_setting():
    """temporal_conv=0 builds the very same parameters and outputs as before the setting."""
    x, masks, doy = _inputs()
    torch.manual_seed(0)
    old = SITSFormer(**PIXEL).eval()
    new = _model(0)
    assert list(old.state_dict()) == list(new.state_dict())
    with torch.no_grad():
        assert torch.equal(old(x, masks, doy=doy), new(x, masks, doy=doy))


@pytest.mark.parametrize("pack", [False, True])
def test_padded_dates_appended_change_no_logit(pack):
    net = _model(5, pack)
    x, masks, doy = _inputs()
    pad = 7
    x2 = torch.cat([x, torch.randn(4, pad, 3) * 100], 1)  # garbage values on the padding
    m2 = torch.cat([masks, torch.zeros(4, pad, dtype=torch.bool)], 1)
    d2 = torch.cat([doy, torch.full((4, pad), 365)], 1)
    with torch.no_grad():
        a = net(x, masks, doy=doy)
        b = net(x2, m2, doy=d2)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_invalid_dates_values_do_not_matter_and_packed_equals_padded():
    net = _model(3, False)
    x, masks, doy = _inputs()
    noisy = x.clone()
    noisy[~masks] = 1e3  # a cloud's values are never seen
    with torch.no_grad():
        ref = net(x, masks, doy=doy)
        torch.testing.assert_close(net(noisy, masks, doy=doy), ref, rtol=1e-5, atol=1e-5)
        net.set_token_packing(True)
        torch.testing.assert_close(net(x, masks, doy=doy), ref, rtol=1e-5, atol=1e-5)
    # and the gradients flow through the packed path's unpack / repack
    net.train()
    net(x, masks, doy=doy).sum().backward()
    assert net.temporal.conv.weight.grad is not None
    assert net.temporal.conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("bad", [2, -3, True, 4.0])
def test_even_or_negative_kernels_are_refused(bad):
    with pytest.raises(ValueError, match="temporal_conv must be 0"):
        SITSFormerConfig(temporal_conv=bad)


def test_cli_train_then_evaluate_rebuilds_the_stem(shared_data, tmp_path, one_thread):
    """``sitsformer train ... model.temporal_conv=5`` stores the setting in the checkpoint;
    ``evaluate`` (and load_model) rebuild the stem from the checkpoint alone."""
    from sitsformer.cli import main

    source = shared_data / "landsat8_rondonia" / "landsat8_rondonia.npz"
    run = tmp_path / "run"
    assert main(["train", "--config", "victoria_pixel", f"data.source={source}",
                 "data.split=stratified", "model.temporal_conv=5", "model.embed_dim=32",
                 "model.num_layers=1", "train.epochs=2", "schedule.warmup_epochs=1",
                 "train.min_steps=1", "train.ensemble=1", "train.threads=1",
                 "logging.tensorboard=false", "logging.plots=false", "--output", str(run),
                 "--quiet"]) == 0
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["model_config"]["temporal_conv"] == 5
    assert any(k.startswith("temporal.conv.") for k in ckpt["model_state_dict"])
    model, _ = load_model(run / "last.pt")
    assert model.temporal is not None and model.temporal.conv.kernel_size == (5,)
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(run / "last.pt"), "--data", str(source),
                 "--output", str(out)]) == 0
    tested = json.loads((run / "test_metrics.json").read_text())
    assert 0.0 <= tested["test_oa"] <= 1.0
