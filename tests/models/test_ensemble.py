"""SITSEnsemble: its probabilities are the mean of its members', and a checkpoint rebuilds it."""

from __future__ import annotations

import pytest
import torch

from sitsformer.models import SITSEnsemble, SITSFormer, load_model, save_checkpoint

CFG = dict(img_size=1, patch_size=1, in_channels=3, num_classes=4, embed_dim=16, num_layers=1,
           num_heads=2, mlp_ratio=2.0, dropout=0.0, max_seq_len=12)


def members(k=3):
    out = []
    for seed in range(k):
        torch.manual_seed(seed)
        out.append(SITSFormer(**CFG).eval())
    return out


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 10, 3, generator=g)
    mask = torch.rand(5, 10, generator=g) > 0.3
    doy = torch.sort(torch.randint(1, 366, (5, 10), generator=g), 1).values
    return x, mask, doy


def test_probabilities_are_the_mean_of_the_members():
    nets = members()
    ens = SITSEnsemble(nets).eval()
    x, mask, doy = batch()
    with torch.no_grad():
        mean = torch.stack([m(x, mask, doy=doy).softmax(-1) for m in nets]).mean(0)
        out = ens(x, mask, doy=doy)
    torch.testing.assert_close(out.softmax(-1), mean, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(5))
    assert ens.config.num_classes == 4


def test_members_must_share_the_architecture():
    other = SITSFormer(**{**CFG, "embed_dim": 32})
    with pytest.raises(ValueError, match=r"member 1 differs from member 0 in \['embed_dim'\]"):
        SITSEnsemble([members(1)[0], other])


def test_checkpoint_rebuilds_the_ensemble(tmp_path):
    ens = SITSEnsemble(members(2)).eval()
    path = save_checkpoint(tmp_path / "ens.pt", {
        "model_config": ens.config_dict(), "model_state_dict": ens.state_dict(), "epoch": 0,
        "global_step": 0})
    loaded, ckpt = load_model(path)
    assert isinstance(loaded, SITSEnsemble) and len(loaded.members) == 2
    assert ckpt["model_config"]["ensemble"][1]["embed_dim"] == 16
    x, mask, doy = batch(1)
    with torch.no_grad():
        assert torch.equal(loaded(x, mask, doy=doy), ens(x, mask, doy=doy))
