"""MaskedSelfAttention under CPU bf16 autocast (attention itself is computed in fp32)."""

from __future__ import annotations

import pytest
import torch

from sitsformer.layers import MaskedSelfAttention


def test_autocast_attention_close_to_fp32_and_ignores_masked_keys() -> None:
    torch.manual_seed(0)
    attn = MaskedSelfAttention(32, 4).eval()
    x = torch.randn(3, 9, 32)
    valid = torch.ones(3, 9, dtype=torch.bool)
    valid[0, 5:] = False
    valid[2] = False  # no valid key at all: finite output
    with torch.no_grad():
        ref = attn(x, valid)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = attn(x, valid)
            x2 = x.clone()
            x2[0, 5:] = 1e4  # values at masked dates must not matter
            low2 = attn(x2, valid)
    assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()
    torch.testing.assert_close(low.float(), ref, atol=0.03, rtol=0.03)
    assert torch.equal(low2[0, :5], low[0, :5])


@pytest.mark.parametrize("length", [1, 7, 20])
def test_explicit_attention_equals_sdpa(length):
    """The matmul form used for short sequences on CUDA computes what SDPA computes, with the
    key mask, including a row whose only valid key is the first."""
    from sitsformer.layers.attention import explicit_attention

    g = torch.Generator().manual_seed(length)
    q, k, v = (torch.randn(5, 4, length, 8, generator=g) for _ in range(3))
    valid = torch.rand(5, length, generator=g) > 0.4
    valid[:, 0] = True
    valid[1] = False
    valid[1, 0] = True
    mask = valid[:, None, None, :]
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    got = explicit_attention(q, k, v, mask)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # a masked key changes nothing: perturb the values at invalid keys
    v2 = torch.where(valid[:, None, :, None], v, v + 100.0)
    torch.testing.assert_close(explicit_attention(q, k, v2, mask), got, rtol=1e-5, atol=1e-5)
