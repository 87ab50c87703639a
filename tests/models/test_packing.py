"""Token packing (only valid dates computed) gives the padded computation's results."""

from __future__ import annotations

import copy

import pytest
import torch

from sitsformer.models import SITSFormer


def tiny(**kw) -> SITSFormer:
    cfg = dict(img_size=8, patch_size=4, in_channels=3, num_classes=5, embed_dim=32,
               num_layers=2, num_heads=4, mlp_ratio=2, dropout=0.0, max_seq_len=16)
    cfg.update(kw)
    return SITSFormer(**cfg)


def batch(b=4, t=7, s=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, 3, s, s, generator=g)
    mask = torch.rand(b, t, generator=g) > 0.35  # holes anywhere, not only at the end
    mask[1] = False  # a sample with no valid date at all
    mask[2] = True  # one without padding
    doy = torch.sort(torch.randint(1, 366, (b, t), generator=g), dim=1).values * mask
    return x, mask, doy


def both(model: SITSFormer) -> tuple[SITSFormer, SITSFormer]:
    padded, packed = model, copy.deepcopy(model)
    padded.set_token_packing(False)
    packed.set_token_packing(True)
    return padded, packed


@pytest.mark.parametrize("stem,img", [("patch", 8), ("conv3d", 5)])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_packed_logits_and_gradients_equal_padded(one_thread, stem, img, checkpointing):
    torch.manual_seed(0)
    padded, packed = both(tiny(stem=stem, img_size=img, patch_size=4 if img == 8 else 5))
    x, mask, doy = batch(s=img)
    g = torch.Generator().manual_seed(3)
    pixel_mask = torch.rand(x.shape[0], x.shape[1], img, img, generator=g) > 0.3
    grads = []
    for model in (padded, packed):
        model.train().set_grad_checkpointing(checkpointing)
        xi = x.clone().requires_grad_(True)
        logits = model(xi, mask, doy, pixel_mask=pixel_mask)
        logits.square().sum().backward()
        grads.append((logits.detach(), xi.grad, {n: p.grad for n, p in model.named_parameters()}))
    (l0, gx0, gp0), (l1, gx1, gp1) = grads
    torch.testing.assert_close(l1, l0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gx1, gx0, atol=1e-5, rtol=1e-5)
    assert (gx1[~mask] == 0).all()  # padded dates get no gradient
    for name in gp0:
        torch.testing.assert_close(gp1[name], gp0[name], atol=1e-5, rtol=1e-4, msg=name)


def test_packed_features_match_at_valid_dates_and_are_zero_elsewhere(one_thread):
    padded, packed = both(tiny().eval())
    x, mask, doy = batch()
    hidden = torch.zeros_like(mask)
    hidden[0, :3] = True
    token = torch.randn(32)
    with torch.no_grad():
        f0, v0 = padded.forward_features(x, mask, doy, hidden=hidden, mask_token=token)
        f1, v1 = packed.forward_features(x, mask, doy, hidden=hidden, mask_token=token)
    assert torch.equal(v0, v1)
    torch.testing.assert_close(f1[mask], f0[mask], atol=1e-5, rtol=1e-5)
    assert (f1[~mask] == 0).all()


def test_packing_default_is_cpu_only_and_never_under_export(one_thread):
    model = tiny().eval()
    x, mask, doy = batch()
    assert model._packs(mask)  # CPU default
    assert not model._packs(torch.ones_like(mask))  # nothing to skip
    model.set_token_packing(False)
    assert not model._packs(mask)
    model.set_token_packing(None)
    exported = torch.export.export(model, (x, mask, doy))  # padded path: static shapes
    torch.testing.assert_close(exported.module()(x, mask, doy), model(x, mask, doy),
                               atol=1e-5, rtol=1e-5)


def test_packed_rows_rounds_up_to_few_shapes():
    from sitsformer.models.sits_former import packed_rows

    assert [packed_rows(m, 10_000, bits=5) for m in (0, 1, 31, 32, 33, 63, 64, 65, 1000)] == \
        [0, 1, 31, 32, 34, 64, 64, 68, 1024]
    assert packed_rows(1000, 1001, bits=2) == 1001  # never more rows than the batch has
    rows = [packed_rows(m, 10**6) for m in range(1, 50_000)]
    assert all(m <= r <= m * (1 + 2 ** -4) for m, r in zip(range(1, 50_000), rows))
    assert len(set(rows)) < 250  # a few hundred shapes cover every batch up to 50k dates


@pytest.mark.parametrize("bits", [1, 2])
def test_rows_added_by_rounding_change_nothing(one_thread, monkeypatch, bits):
    """Padded dates added to round the packed batch up (1-2 significant bits: up to 2x the
    rows) leave logits and gradients those of the padded computation."""
    import sitsformer.models.sits_former as sf

    monkeypatch.setattr(sf, "PACK_BITS", bits)
    torch.manual_seed(0)
    padded, packed = both(tiny(stem="conv3d", img_size=5, patch_size=5))
    x, mask, doy = batch(b=6, t=9, s=5, seed=4)
    assert sf.packed_rows(int(mask.sum()), mask.numel()) > int(mask.sum())
    out = []
    for model in (padded, packed):
        model.train()
        xi = x.clone().requires_grad_(True)
        logits = model(xi, mask, doy)
        logits.square().sum().backward()
        out.append((logits.detach(), xi.grad))
    torch.testing.assert_close(out[1][0], out[0][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1][1], out[0][1], atol=1e-5, rtol=1e-5)
    assert (out[1][1][~mask] == 0).all()
