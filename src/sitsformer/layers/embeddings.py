"""Per-date spatial embeddings: turn one image ``(C, H, W)`` into ``N`` tokens of width ``D``."""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn


class PatchEmbed(nn.Module):
    """ViT patch embedding: a strided convolution, one token per ``patch_size`` square.

    Input ``(B, C, H, W)``, output ``(B, N, D)`` with ``N = (H / p) * (W / p)``.
    With ``patch_size == img_size == 1`` this is a linear layer over the bands of one pixel.
    """

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(self.proj(x), "b d h w -> b (h w) d")


class Conv3dEmbed(nn.Module):
    """SITS-Former's spectral-spatial stem, applied to every patch of every date.

    Each ``(C, p, p)`` patch is treated as a one-channel volume over (band, row, column) and
    passed through two 3-D convolutions (32 then 64 filters, kernel ``(5, 3, 3)``, ReLU), then
    flattened and projected to ``embed_dim``. With 10 bands and a 5x5 patch this is exactly the
    original model's embedding (the volume shrinks to 64 x 2 x 1 x 1 = 128 features). Fewer bands
    or smaller patches are zero-padded just enough for both convolutions to fit.
    """

    def __init__(
        self,
        in_channels: int,
        embed_dim: int,
        patch_size: int,
        channels: tuple[int, int] = (32, 64),
        kernel: tuple[int, int, int] = (5, 3, 3),
    ):
        super().__init__()
        self.patch_size = patch_size
        # Padding per conv so that two valid convolutions leave at least one cell on every axis.
        pad_d = max(0, math.ceil((2 * (kernel[0] - 1) + 1 - in_channels) / 4))
        pad_s = max(0, math.ceil((2 * (kernel[1] - 1) + 1 - patch_size) / 4))
        padding = (pad_d, pad_s, pad_s)
        self.conv = nn.Sequential(
            nn.Conv3d(1, channels[0], kernel, padding=padding),
            nn.ReLU(inplace=True),
            nn.Conv3d(channels[0], channels[1], kernel, padding=padding),
            nn.ReLU(inplace=True),
        )
        out = [
            in_channels + 4 * pad_d - 2 * (kernel[0] - 1),
            patch_size + 4 * pad_s - 2 * (kernel[1] - 1),
        ]
        self.num_features = channels[1] * out[0] * out[1] * out[1]
        self.proj = nn.Linear(self.num_features, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        b, _, h, w = x.shape
        patches = rearrange(x, "b c (gh p1) (gw p2) -> (b gh gw) 1 c p1 p2", p1=p, p2=p)
        feats = self.conv(patches).flatten(1)  # (B * N, num_features)
        return rearrange(self.proj(feats), "(b n) d -> b n d", b=b)
