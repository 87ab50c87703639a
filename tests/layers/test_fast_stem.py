"""The conv3d stem's fast path (dense maps / im2col + matmul) equals nn.Conv3d."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from sitsformer.layers import Conv3dEmbed, conv3d_as_matmul
from sitsformer.layers.embeddings import conv3d_dense_weight
from sitsformer.models import create_sits_former


@pytest.mark.parametrize("padding", [(0, 0, 0), (1, 1, 1), (2, 0, 1)])
def test_conv3d_as_matmul_equals_conv3d(padding: tuple[int, int, int]) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 7, 5, 6, generator=g)  # (M, C_in, D, H, W)
    w = torch.randn(5, 3, 3, 2, 3, generator=g)
    b = torch.randn(5, generator=g)
    ref = F.conv3d(x, w, b, padding=padding)
    got = conv3d_as_matmul(rearrange(x, "m c d h w -> m d h w c"), w, b, padding)
    torch.testing.assert_close(rearrange(got, "m d h w c -> m c d h w"), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("channels_last_out", [False, True])
@pytest.mark.parametrize("padding", [(0, 0, 0), (1, 0, 1)])
def test_conv3d_dense_weight_equals_conv3d(padding: tuple[int, int, int],
                                           channels_last_out: bool) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 6, 4, 5, generator=g)
    w = torch.randn(5, 3, 3, 2, 3, generator=g, requires_grad=True)
    b = torch.randn(5, generator=g, requires_grad=True)
    ref = F.conv3d(x, w, b, padding=padding)
    dense, bias = conv3d_dense_weight(w, b, (6, 4, 5), padding, channels_last_out=channels_last_out)
    got = F.linear(rearrange(x, "m c d h w -> m (d h w c)"), dense, bias)
    order = "m (d h w c)" if channels_last_out else "m (c d h w)"
    torch.testing.assert_close(got, rearrange(ref, f"m c d h w -> {order}"), atol=1e-5, rtol=1e-5)
    # Gradients flow back to the kernel as through the convolution. They are sums of ~10^3
    # products reaching ~10^3 in size, accumulated in another order than oneDNN's (which varies
    # with its kernel choice), so the tolerance is relative to the gradient's scale: 1e-6 of it.
    gw_ref, gb_ref = torch.autograd.grad(ref.square().sum(), [w, b])
    gw, gb = torch.autograd.grad(got.square().sum(), [w, b])
    torch.testing.assert_close(gw, gw_ref, atol=1e-6 * float(gw_ref.abs().max()), rtol=1e-5)
    torch.testing.assert_close(gb, gb_ref, atol=1e-6 * float(gb_ref.abs().max()), rtol=1e-5)


@pytest.mark.parametrize(("bands", "patch", "img"), [(10, 5, 5), (10, 1, 1), (4, 3, 6), (13, 8, 8)])
def test_conv3d_embed_fast_equals_reference(bands: int, patch: int, img: int) -> None:
    """Forward and every gradient of the fast stem match the nn.Conv3d modules (fp32, 1e-5)."""
    torch.manual_seed(0)
    embed = Conv3dEmbed(bands, 32, patch)
    x = torch.randn(3, bands, img, img, requires_grad=True)
    results = []
    for fast in (True, False):
        embed.fast = fast
        y = embed(x)
        grads = torch.autograd.grad((y * torch.linspace(-1, 1, y.shape[-1])).sum(),
                                    [x, *embed.parameters()])
        results.append((y, grads))
    (y_fast, g_fast), (y_ref, g_ref) = results
    assert y_fast.shape == (3, (img // patch) ** 2, 32)
    torch.testing.assert_close(y_fast, y_ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_original_model_fast_stem_same_logits_and_keys() -> None:
    """The published configuration: same state-dict keys as nn.Conv3d, same logits either way,
    and bf16 autocast stays close to fp32."""
    torch.manual_seed(0)
    model = create_sits_former("sitsformer_original", num_classes=8).eval()
    keys = set(model.state_dict())
    assert {"embed.conv.0.weight", "embed.conv.0.bias", "embed.conv.2.weight",
            "embed.conv.2.bias", "embed.proj.weight"} <= keys
    x = torch.rand(4, 12, 10, 5, 5)
    mask = torch.ones(4, 12, dtype=torch.bool)
    mask[1, 7:] = False
    doy = torch.arange(1, 13).repeat(4, 1) * 20
    with torch.no_grad():
        fast = model(x, mask, doy=doy)
        model.embed.fast = False
        ref = model(x, mask, doy=doy)
        model.embed.fast = True
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x, mask, doy=doy)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), ref, atol=0.1, rtol=0.05)


@pytest.mark.parametrize("in_channels,patch", [(10, 5), (4, 3)])  # dense maps; im2col (padded)
def test_stem_batchnorm_fast_equals_modules_in_training(in_channels: int, patch: int) -> None:
    """The original's BatchNorm3d after each ReLU: the fast path gives the outputs, gradients
    and running statistics of the nn.Conv3d + nn.BatchNorm3d modules, in training and eval."""
    torch.manual_seed(0)
    fast = Conv3dEmbed(in_channels, 16, patch, channels=(4, 8), norm=True)
    ref = Conv3dEmbed(in_channels, 16, patch, channels=(4, 8), norm=True)
    ref.load_state_dict(fast.state_dict())
    ref.fast = False
    x = torch.randn(6, in_channels, patch, patch)
    for mode in ("train", "eval"):
        for m in (fast, ref):
            m.train(mode == "train")
            m.zero_grad()
        out_f, out_r = fast(x), ref(x)
        torch.testing.assert_close(out_f, out_r, atol=1e-5, rtol=1e-5)
        out_f.square().sum().backward()
        out_r.square().sum().backward()
        for (name, p), q in zip(fast.named_parameters(), ref.parameters()):
            torch.testing.assert_close(p.grad, q.grad, atol=1e-4, rtol=1e-4, msg=name)
    for (name, b), c in zip(fast.named_buffers(), ref.buffers()):
        if b is not None and "dense_index" not in name:
            torch.testing.assert_close(b, c, msg=name)
    assert int(fast.norms[0].num_batches_tracked) == 1
