"""Masked multi-head self-attention on ``F.scaled_dot_product_attention``.

The mask convention is the library's one convention: ``valid`` is a boolean tensor where
True means "this key is a real observation and may be attended to". Rows whose keys are all
invalid (a sample with no clear date) would give NaN in a softmax; here such rows attend to
every key instead, which keeps everything finite. Callers drop those rows later (the model
zeroes the pooled feature of a sample without any valid date).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from sitsformer.layers.dropout import Dropout

# On CUDA, sequences up to this length are attended with two batched matmuls and a softmax
# rather than a fused SDPA kernel. Measured on an H200 (benchmarks/gpu_attention.py, bf16,
# forward + backward): the temporal attention of the tutorial model, (6272, 8 heads, 20, 32)
# with a key mask, took 4.79 ms with the default SDPA choice (cuDNN), 2.38 ms with the
# memory-efficient kernel and 1.70 ms as matmuls; at 196 tokens the fused kernels win (1.74 ms
# against 8.50 ms), so longer sequences keep SDPA.
SHORT_ATTENTION = 64


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                       attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0,
                       ) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d)) v`` with a boolean ``attn_mask`` (True = attend), the
    scores and the softmax in fp32: what ``F.scaled_dot_product_attention`` computes, as
    plain batched matmuls (faster than the fused kernels for short sequences on a GPU)."""
    scores = torch.matmul(q, k.transpose(-1, -2)).float() * (q.shape[-1] ** -0.5)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    weights = scores.softmax(-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return torch.matmul(weights.to(v.dtype), v)


class MaskedSelfAttention(nn.Module):
    """Multi-head self-attention with a key-validity mask.

    Args:
        dim: token width.
        num_heads: number of heads; must divide ``dim``.
        attn_drop: dropout on the attention weights (training only).
        proj_drop: dropout after the output projection.
    """

    def __init__(self, dim: int, num_heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(
                f"num_heads must divide embed_dim: got embed_dim={dim}, num_heads={num_heads}"
            )
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = Dropout(proj_drop)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """Attend over the second axis of ``x``.

        Args:
            x: tokens ``(B, L, D)``.
            valid: bool ``(B, L)``, True = the key at that position may be attended to.

        Returns:
            ``(B, L, D)``.
        """
        return self.proj_drop(self.proj(self.attend(self.qkv(x), valid)))

    def attend(self, qkv: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """The attention itself, between the projections: ``qkv (B, L, 3D)`` (the output of
        ``self.qkv``) and ``valid (B, L)`` to the heads' outputs ``(B, L, D)`` before ``self.proj``.
        Lets a caller run the projections on packed tokens and only the attention padded."""
        q, k, v = rearrange(qkv, "b l (three h d) -> three b h l d", three=3, h=self.num_heads)
        attn_mask = None
        if valid is not None:
            # A row with no valid key would softmax over nothing (NaN): let it see every key.
            # The mask is always applied, also when every key is valid: no data-dependent
            # branch, so torch.compile / torch.export keep one graph with the mask as an input.
            valid = valid | ~valid.any(dim=1, keepdim=True)
            attn_mask = valid[:, None, None, :]  # (B, 1, 1, L), True = attend
        dropout_p = self.attn_drop if self.training else 0.0
        if qkv.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # PyTorch's CPU flash attention is 2-3x slower in bf16 than in fp32 at these sizes
            # (measured on AVX-512 CPUs, forward + backward); attention is a few % of the FLOPs,
            # so run it in fp32, which is also the more accurate choice.
            with torch.autocast("cpu", enabled=False):
                out = F.scaled_dot_product_attention(
                    q.float(), k.float(), v.float(), attn_mask=attn_mask, dropout_p=dropout_p
                ).to(q.dtype)
        elif qkv.device.type == "cuda" and q.shape[-2] <= SHORT_ATTENTION:
            out = explicit_attention(q, k, v, attn_mask, dropout_p)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
        return rearrange(out, "b h l d -> b l (h d)")
