"""MaskedSelfAttention under CPU bf16 autocast (attention itself is computed in fp32)."""

from __future__ import annotations

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
