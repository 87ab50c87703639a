"""Fine-tuning: exact loading of a pre-trained encoder, fresh head, freezing, layer decay."""

from __future__ import annotations

import pytest
import torch
from _helpers import assert_close

from sitsformer.models import (
    PretrainedMismatchError,
    build_finetune_model,
    create_sits_former,
    load_pretrained_encoder,
    save_checkpoint,
)
from sitsformer.models.pretrain import SITSFormerForPretraining
from sitsformer.training.finetune import FreezeEncoder, set_encoder_trainable
from sitsformer.training.optim import create_optimizer

BANDS = ["B2", "B3", "B4"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(**kw):
    cfg = dict(img_size=1, patch_size=1, in_channels=3, num_classes=4, embed_dim=16, num_layers=2,
               num_heads=2, mlp_ratio=2.0, dropout=0.0, max_seq_len=16, bands=BANDS)
    cfg.update(kw)
    return cfg


def _pretrain_ckpt(tmp_path, **kw):
    model = SITSFormerForPretraining(create_sits_former(_cfg(**kw)), target="center")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))  # distinct from any fresh initialisation
    path = save_checkpoint(tmp_path / "pre.pt", {
        "model_config": model.config.to_dict(), "model_state_dict": model.state_dict(), "epoch": 1,
        "global_step": 10, "task": "pretrain", "data_meta": {"bands": BANDS, "scale": 1e-4},
    })
    return model, path


def test_load_pretrained_encoder_copies_every_encoder_weight_and_resets_head(tmp_path):
    pre, path = _pretrain_ckpt(tmp_path)
    model = create_sits_former(_cfg(num_classes=7))
    head_before = model.head.weight.clone()
    report = load_pretrained_encoder(model, path)
    assert report["missing"] == ["head.bias", "head.weight"]
    assert report["dropped"] == ["decoder.bias", "decoder.weight", "mask_token"]
    assert report["data_meta"]["bands"] == BANDS and report["task"] == "pretrain"
    enc = pre.encoder.state_dict()
    for name, value in model.state_dict().items():
        if name.startswith("head."):
            continue
        assert torch.equal(value, enc[name]), name
    assert model.head.weight.shape == (7, 16)
    assert not torch.equal(model.head.weight, head_before)  # freshly initialised
    assert model.head.weight.abs().max() < 0.1  # trunc_normal(std=0.02), not the random +-1 noise


def test_build_finetune_model_uses_pretrained_config(tmp_path):
    pre, path = _pretrain_ckpt(tmp_path)
    model, report = build_finetune_model(path, num_classes=3, dropout=0.2)
    assert model.config.num_classes == 3 and model.config.dropout == 0.2
    assert model.config.bands == BANDS
    x = torch.randn(2, 5, 3)
    mask = torch.ones(2, 5, dtype=torch.bool)
    doy = torch.arange(1, 6).repeat(2, 1)
    model.eval()
    pre.eval()
    assert_close(model.forward_features(x, mask, doy)[0],
                               pre.encoder.forward_features(x, mask, doy)[0])


@pytest.mark.parametrize("change, message", [
    (dict(bands=["B2", "B3", "B8"]), "band set"),
    (dict(in_channels=4, bands=None), "band count"),
    (dict(date_encoding="learned"), "date encoding"),
    (dict(embed_dim=32), "embed_dim"),
    (dict(num_layers=3), "num_layers"),
])
def test_mismatch_is_a_clear_error(tmp_path, change, message):
    _, path = _pretrain_ckpt(tmp_path)
    model = create_sits_former(_cfg(**change))
    with pytest.raises(PretrainedMismatchError, match=message) as err:
        load_pretrained_encoder(model, path)
    assert str(path) in str(err.value)


def test_missing_or_unexpected_keys_are_listed(tmp_path):
    pre, _ = _pretrain_ckpt(tmp_path)
    state = pre.state_dict()
    del state["encoder.blocks.1.mlp.fc1.weight"]
    ckpt = {"model_config": pre.config.to_dict(), "model_state_dict": state}
    with pytest.raises(PretrainedMismatchError,
                       match=r"missing \(other than the head\): \['blocks\.1"):
        load_pretrained_encoder(create_sits_former(_cfg()), ckpt)
    state = pre.state_dict()
    state["encoder.extra.weight"] = torch.zeros(1)
    ckpt = {"model_config": pre.config.to_dict(), "model_state_dict": state}
    with pytest.raises(PretrainedMismatchError, match=r"unexpected: \['extra.weight'\]"):
        load_pretrained_encoder(create_sits_former(_cfg()), ckpt)


def test_classifier_checkpoint_loads_with_a_fresh_head(tmp_path):
    clf = create_sits_former(_cfg(num_classes=4))
    path = save_checkpoint(tmp_path / "clf.pt", {
        "model_config": clf.config.to_dict(), "model_state_dict": clf.state_dict(), "epoch": 1,
        "global_step": 1, "task": "classification"})
    model = create_sits_former(_cfg(num_classes=9))
    report = load_pretrained_encoder(model, path)
    assert report["dropped"] == ["head.bias", "head.weight"]
    assert torch.equal(model.blocks[0].attn_t.qkv.weight, clf.blocks[0].attn_t.qkv.weight)


def test_frozen_encoder_stays_fixed_and_head_learns():
    model = create_sits_former(_cfg())
    opt = create_optimizer(model, "adamw", lr=1e-2, weight_decay=0.1)
    freeze = FreezeEncoder(epochs=1)
    x, mask = torch.randn(4, 6, 3), torch.ones(4, 6, dtype=torch.bool)
    doy, y = torch.arange(1, 7).repeat(4, 1), torch.tensor([0, 1, 2, 3])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert freeze.apply(model, completed_epochs=0)
    for epoch in range(2):
        if epoch == 1:  # what the trainer calls after epoch 1
            trainer = type("T", (), {"model": model, "model_without_ddp": model,
                                     "optimizer": opt})()
            freeze(trainer, "epoch_end", {"epoch": 1})
        loss = torch.nn.functional.cross_entropy(model(x, mask, doy), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
        if epoch == 0:
            assert changed == {"head.weight", "head.bias"}
        else:
            assert "blocks.0.attn_t.qkv.weight" in changed and "embed.proj.weight" in changed
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert set_encoder_trainable(model, True) == 0  # already unfrozen
    # unfreezing parameters the optimizer never got would silently not train them: an error
    fresh = create_sits_former(_cfg())
    FreezeEncoder(1).apply(fresh, 0)
    head_only = create_optimizer(fresh, "adamw", lr=1e-2)
    trainer = type("T", (), {"model": fresh, "model_without_ddp": fresh, "optimizer": head_only})()
    with pytest.raises(RuntimeError, match="not in the optimizer"):
        FreezeEncoder(1)(trainer, "epoch_end", {"epoch": 1})


def test_layer_decay_scales_learning_rates_by_depth():
    model = create_sits_former(_cfg())
    opt = create_optimizer(model, "adamw", lr=1.0, layer_decay=0.5)
    lr_of = {}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            lr_of[names[id(p)]] = group["lr"]
    assert lr_of["head.weight"] == 1.0
    assert lr_of["blocks.1.mlp.fc1.weight"] == 0.5
    assert lr_of["blocks.0.mlp.fc1.weight"] == 0.25
    assert lr_of["embed.proj.weight"] == 0.125
