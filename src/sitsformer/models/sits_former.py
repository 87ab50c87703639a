"""SITS-Former: a transformer over satellite image time series with factorised attention.

Input: a batch of image time series ``sequences (B, T, C, H, W)`` with ``masks (B, T)``
(True = a valid, observed date) and optionally the day of year of every date ``doy (B, T)``.
Each date's image is cut into ``N`` patches and embedded (a strided convolution, or the original
model's 3-D convolution stem); the date encoding is added; then every layer attends over the
valid dates of each spatial token (temporal attention) and over the tokens of each date
(spatial attention, skipped when there is one token). Features are max-pooled over valid dates,
averaged over tokens, normalised and classified.

With ``img_size == patch_size`` and ``stem="conv3d"`` the model is the original SITS-Former
(Yuan et al., 2022): one token per date, 3 layers of width 256, 8 heads, max-pool, linear head.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from sitsformer.layers import (
    Conv3dEmbed,
    DateEncoding,
    Dropout,
    MaskedSelfAttention,
    Mlp,
    PatchEmbed,
)
from sitsformer.layers.date_encoding import DATE_ENCODINGS
from sitsformer.models._registry import register_model, variant_config

STEMS = ("patch", "conv3d")
POOLS = ("max", "mean")


@dataclass
class SITSFormerConfig:
    """Every architecture setting, with its default. Stored in checkpoints as a plain dict."""

    img_size: int = 224  # H = W of the input images (1 for pixel time series)
    patch_size: int = 16  # side of a spatial token; img_size must be a multiple
    in_channels: int = 13  # spectral bands
    num_classes: int = 10
    embed_dim: int = 256
    num_layers: int = 8
    num_heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.1  # on embeddings, attention outputs and MLPs
    attn_dropout: float = 0.0  # on attention weights
    max_seq_len: int = 64  # longest accepted time series
    stem: str = "patch"  # "patch" (strided conv) or "conv3d" (the original SITS-Former stem)
    date_encoding: str = "sinusoidal"  # "sinusoidal", "learned" or "days_since"
    reference_date: str | None = None  # ISO date, required by date_encoding="days_since"
    pool: str = "max"  # pooling over valid dates: "max" (original) or "mean"
    bands: list[str] | None = None  # band names, checked against data when both are known

    def __post_init__(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(f"invalid SITSFormer config: {msg}")

        for name in ("img_size", "patch_size", "in_channels", "num_classes", "embed_dim",
                     "num_layers", "num_heads", "max_seq_len"):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool) and value > 0,
                 f"{name} must be a positive integer, got {value!r}")
        need(self.img_size % self.patch_size == 0,
             f"img_size ({self.img_size}) must be a multiple of patch_size ({self.patch_size})")
        need(self.embed_dim % self.num_heads == 0,
             f"num_heads ({self.num_heads}) must divide embed_dim ({self.embed_dim})")
        need(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        need(self.stem in STEMS, f"stem must be one of {STEMS}, got {self.stem!r}")
        need(self.pool in POOLS, f"pool must be one of {POOLS}, got {self.pool!r}")
        need(self.date_encoding in DATE_ENCODINGS,
             f"date_encoding must be one of {DATE_ENCODINGS}, got {self.date_encoding!r}")
        need(self.date_encoding != "days_since" or self.reference_date is not None,
             "date_encoding='days_since' needs reference_date (an ISO date such as '2019-09-01')")
        need(self.bands is None or len(self.bands) == self.in_channels,
             f"bands lists {0 if self.bands is None else len(self.bands)} names "
             f"but in_channels is {self.in_channels}")

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> SITSFormerConfig:
        """Build from a dict; unknown keys are an error naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(
                f"unknown SITSFormer config key(s) {unknown}; expected a subset of {sorted(known)}"
            )
        return cls(**config)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Block(nn.Module):
    """One factorised layer: temporal attention, spatial attention (if N > 1), MLP; pre-norm."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float,
                 attn_dropout: float, spatial: bool):
        super().__init__()
        self.norm_t = nn.LayerNorm(dim)
        self.attn_t = MaskedSelfAttention(dim, num_heads, attn_dropout, dropout)
        self.norm_s = nn.LayerNorm(dim) if spatial else None
        self.attn_s = MaskedSelfAttention(dim, num_heads, attn_dropout, dropout) if spatial else None
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``x (B, T, N, D)``, ``valid (B, T, N)`` True = a clear observation of that token."""
        b, t, n, _ = x.shape
        xt = rearrange(x, "b t n d -> (b n) t d")
        xt = xt + self.attn_t(self.norm_t(xt), rearrange(valid, "b t n -> (b n) t"))
        x = rearrange(xt, "(b n) t d -> b t n d", b=b)
        if self.attn_s is not None:
            xs = rearrange(x, "b t n d -> (b t) n d")
            xs = xs + self.attn_s(self.norm_s(xs), rearrange(valid, "b t n -> (b t) n"))
            x = rearrange(xs, "(b t) n d -> b t n d", b=b)
        return x + self.mlp(self.norm_mlp(x))


class SITSFormer(nn.Module):
    """SITS-Former classifier for image (or pixel) time series.

    Args: see :class:`SITSFormerConfig`; every argument is a field there.

    Forward:
        sequences: ``(B, T, C, H, W)`` float (a pixel series ``(B, T, C)`` is accepted).
        masks: ``(B, T)`` bool or 0/1, True = valid date. ``None`` = every date valid.
        doy: ``(B, T)`` day of year 1..366 (0 allowed at padded dates). ``None`` falls back to
            the date index 1..T, with a warning (once per model).
        pixel_mask: optional ``(B, T, H, W)`` bool, True = clear pixel. A token is used at a
            date only if at least one of its pixels is clear.
        dates: ``(B, T)`` int days since 1970-01-01, needed by ``date_encoding="days_since"``.

    Returns:
        logits ``(B, num_classes)``. A sample with no valid date at all gets a finite, fixed
        output: the head applied to a zero feature (no NaN in forward or backward); trainers
        should exclude such samples (``sitsformer.data`` reports them).
    """

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_channels: int = 13,
                 num_classes: int = 10, embed_dim: int = 256, num_layers: int = 8,
                 num_heads: int = 8, mlp_ratio: float = 4.0, dropout: float = 0.1,
                 max_seq_len: int = 64, **kwargs: Any):
        super().__init__()
        cfg = SITSFormerConfig.from_dict(dict(
            img_size=img_size, patch_size=patch_size, in_channels=in_channels,
            num_classes=num_classes, embed_dim=embed_dim, num_layers=num_layers,
            num_heads=num_heads, mlp_ratio=mlp_ratio, dropout=dropout, max_seq_len=max_seq_len,
            **kwargs,
        ))
        self.config = cfg
        self.num_tokens = (cfg.img_size // cfg.patch_size) ** 2
        if cfg.stem == "conv3d":
            self.embed = Conv3dEmbed(cfg.in_channels, cfg.embed_dim, cfg.patch_size)
        else:
            self.embed = PatchEmbed(cfg.in_channels, cfg.embed_dim, cfg.patch_size)
        self.date_encoding = DateEncoding(cfg.date_encoding, cfg.embed_dim)
        self.pos_embed = (
            nn.Parameter(torch.zeros(1, 1, self.num_tokens, cfg.embed_dim))
            if self.num_tokens > 1 else None
        )
        self.embed_drop = Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, cfg.dropout, cfg.attn_dropout,
                  spatial=self.num_tokens > 1)
            for _ in range(cfg.num_layers)
        )
        self.norm = nn.LayerNorm(cfg.embed_dim)
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)
        self._reference_day = (
            _iso_to_days(cfg.reference_date)
            if cfg.reference_date else 0
        )
        self.grad_checkpointing = False
        self._warned_no_doy = False
        self.apply(_init_weights)
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)

    # ----------------------------------------------------------------------------- surface
    def no_weight_decay(self) -> set[str]:
        """Parameter names that should not be weight-decayed (beyond norms and biases)."""
        names = {"pos_embed"}
        if self.date_encoding.table is not None:
            names.add("date_encoding.table.weight")
        return names

    def layer_id(self, name: str) -> int:
        """Depth of a parameter for layer-wise learning-rate decay: 0 = embeddings,
        ``i + 1`` = block ``i``, ``num_layers + 1`` = final norm and head."""
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        if name.startswith(("norm.", "head.")):
            return len(self.blocks) + 1
        return 0

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head with a freshly initialised one for ``num_classes`` classes."""
        self.config.num_classes = num_classes
        self.head = nn.Linear(self.config.embed_dim, num_classes).to(self.norm.weight.device)
        _init_weights(self.head)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute block activations in backward to save memory (large images, long T)."""
        self.grad_checkpointing = enable

    # ----------------------------------------------------------------------------- forward
    def check_inputs(self, sequences: torch.Tensor, masks: torch.Tensor | None,
                     doy: torch.Tensor | None = None,
                     pixel_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate shapes against the configuration; return ``(sequences, masks)`` as
        ``(B, T, C, H, W)`` and bool ``(B, T)``."""
        cfg = self.config
        if sequences.dim() == 3:  # pixel time series (B, T, C)
            sequences = sequences[..., None, None]
        if sequences.dim() != 5:
            raise ValueError(
                f"sequences must be (B, T, C, H, W) (or (B, T, C) for pixels), "
                f"got shape {tuple(sequences.shape)}"
            )
        b, t, c, h, w = sequences.shape
        if c != cfg.in_channels:
            raise ValueError(
                f"band count mismatch: the model expects in_channels={cfg.in_channels} "
                f"bands, the input has {c} (sequences shape {tuple(sequences.shape)})"
            )
        if h != cfg.img_size or w != cfg.img_size:
            raise ValueError(
                f"image size mismatch: the model expects {cfg.img_size}x{cfg.img_size}, "
                f"the input is {h}x{w}"
            )
        if t > cfg.max_seq_len:
            raise ValueError(
                f"sequence too long: T={t} dates but max_seq_len={cfg.max_seq_len}; "
                f"subsample the dates or build the model with a larger max_seq_len"
            )
        if masks is None:
            masks = torch.ones(b, t, dtype=torch.bool, device=sequences.device)
        if tuple(masks.shape) != (b, t):
            raise ValueError(f"masks must be (B, T) = {(b, t)}, got {tuple(masks.shape)}")
        if doy is not None and tuple(doy.shape) != (b, t):
            raise ValueError(f"doy must be (B, T) = {(b, t)}, got {tuple(doy.shape)}")
        if pixel_mask is not None and tuple(pixel_mask.shape) != (b, t, h, w):
            raise ValueError(
                f"pixel_mask must be (B, T, H, W) = {(b, t, h, w)}, got {tuple(pixel_mask.shape)}"
            )
        return sequences, masks.bool()

    def _date_positions(self, doy: torch.Tensor | None, dates: torch.Tensor | None,
                        b: int, t: int, device: torch.device) -> torch.Tensor:
        if self.config.date_encoding == "days_since":
            if dates is not None:
                return dates.to(device) - self._reference_day
        elif doy is not None:
            return doy.to(device)
        if not self._warned_no_doy and not torch.compiler.is_compiling():
            needed = "dates" if self.config.date_encoding == "days_since" else "doy"
            warnings.warn(
                f"SITSFormer got no {needed!r}: using the date index 1..T as the date position. "
                "Pass the acquisition dates for irregular or cloud-filtered time series.",
                stacklevel=3,
            )
            self._warned_no_doy = True
        return torch.arange(1, t + 1, device=device).expand(b, t)

    def forward_features(self, sequences: torch.Tensor, masks: torch.Tensor | None = None,
                         doy: torch.Tensor | None = None,
                         pixel_mask: torch.Tensor | None = None,
                         dates: torch.Tensor | None = None,
                         hidden: torch.Tensor | None = None,
                         mask_token: torch.Tensor | None = None,
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode; return per-token features ``(B, T, N, D)`` and token validity ``(B, T, N)``.

        For masked pre-training, ``hidden (B, T)`` bool (True = hidden date) replaces the
        embedding of every hidden date by ``mask_token (D,)`` before the date encoding is added.
        """
        x, masks = self.check_inputs(sequences, masks, doy, pixel_mask)
        b, t = masks.shape
        p = self.config.patch_size
        tokens = self.embed(rearrange(x, "b t c h w -> (b t) c h w"))
        tokens = rearrange(tokens, "(b t) n d -> b t n d", b=b)  # (B, T, N, D)
        if hidden is not None:
            if mask_token is None or tuple(hidden.shape) != (b, t):
                raise ValueError(f"hidden must be (B, T) = {(b, t)} and come with a mask_token; "
                                 f"got hidden {tuple(hidden.shape)}, "
                                 f"mask_token given: {mask_token is not None}")
            tokens = torch.where(hidden.bool()[:, :, None, None], mask_token.to(tokens.dtype),
                                 tokens)
        pos = self._date_positions(doy, dates, b, t, x.device)
        tokens = tokens + self.date_encoding(pos)[:, :, None, :].to(tokens.dtype)
        if self.pos_embed is not None:
            tokens = tokens + self.pos_embed
        tokens = self.embed_drop(tokens)

        valid = masks[:, :, None].expand(b, t, self.num_tokens)
        if pixel_mask is not None:
            clear = rearrange(pixel_mask.bool(), "b t (gh p1) (gw p2) -> b t (gh gw) (p1 p2)",
                              p1=p, p2=p).any(-1)
            valid = valid & clear
        for block in self.blocks:
            if self.grad_checkpointing and self.training:
                tokens = checkpoint(block, tokens, valid, use_reentrant=False)
            else:
                tokens = block(tokens, valid)
        return tokens, valid

    def pool(self, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Pool ``(B, T, N, D)`` over valid dates then tokens to ``(B, D)``. Tokens (and samples)
        without any valid date contribute a zero feature."""
        seen = valid.any(dim=1)  # (B, N)
        if self.config.pool == "max":
            filled = tokens.masked_fill(~valid[..., None], torch.finfo(tokens.dtype).min)
            per_token = filled.amax(dim=1)
        else:
            weights = valid[..., None].to(tokens.dtype)
            per_token = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1)
        per_token = torch.where(seen[..., None], per_token, torch.zeros_like(per_token))
        count = seen.sum(1, keepdim=True).clamp(min=1).to(per_token.dtype)
        return per_token.sum(1) / count  # (B, D)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(features))

    def forward(self, sequences: torch.Tensor, masks: torch.Tensor | None = None,
                doy: torch.Tensor | None = None, pixel_mask: torch.Tensor | None = None,
                dates: torch.Tensor | None = None) -> torch.Tensor:
        tokens, valid = self.forward_features(sequences, masks, doy, pixel_mask, dates)
        return self.forward_head(self.pool(tokens, valid))


def _iso_to_days(iso: str) -> int:
    import numpy as np

    try:
        return int(np.datetime64(iso, "D").astype("int64"))
    except ValueError as err:
        raise ValueError(f"reference_date must be an ISO date like '2019-09-01', got {iso!r}") from err


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def create_sits_former(config: dict[str, Any] | str | None = None, **overrides: Any) -> SITSFormer:
    """Build a SITSFormer from a config dict, a registered variant name, or both.

    ``create_sits_former({"embed_dim": 128, ...})``, ``create_sits_former("sitsformer_original",
    num_classes=8)``. A dict may name a variant under ``"variant"``; keys whose value is None
    are dropped so that unset CLI options never override defaults. Unknown keys are an error.
    """
    if isinstance(config, str):
        config = {"variant": config}
    merged = dict(config or {})
    merged.update(overrides)
    variant = merged.pop("variant", None)
    base = variant_config(variant) if variant else {}
    base.update({k: v for k, v in merged.items() if v is not None})
    SITSFormerConfig.from_dict(base)  # fail early with the offending key named
    return SITSFormer(**base)


def model_from_config(config: dict[str, Any]) -> SITSFormer:
    """Rebuild a model from ``SITSFormerConfig.to_dict()`` output (e.g. stored in a checkpoint)."""
    return SITSFormer(**config)


# --------------------------------------------------------------------------------- variants
@register_model
def sitsformer_original() -> dict[str, Any]:
    """The published SITS-Former: 5x5 patch, 10 bands, conv3d stem, 3 layers, width 256."""
    return dict(img_size=5, patch_size=5, in_channels=10, embed_dim=256, num_layers=3,
                num_heads=8, mlp_ratio=4.0, dropout=0.1, max_seq_len=64, stem="conv3d",
                date_encoding="sinusoidal", pool="max")


@register_model
def sitsformer_pixel() -> dict[str, Any]:
    """Pixel time series (H = W = 1), 10 bands; the original encoder with a linear embedding."""
    return dict(img_size=1, patch_size=1, in_channels=10, embed_dim=128, num_layers=3,
                num_heads=4, mlp_ratio=4.0, dropout=0.1, max_seq_len=128, stem="patch")


@register_model
def sitsformer_tiny() -> dict[str, Any]:
    """A few thousand parameters on 8x8 images: for tests and quick experiments."""
    return dict(img_size=8, patch_size=4, in_channels=10, embed_dim=32, num_layers=2,
                num_heads=4, mlp_ratio=2.0, dropout=0.1, max_seq_len=64)


@register_model
def sitsformer_small() -> dict[str, Any]:
    """64x64 images in 8x8 patches, width 192, 4 layers."""
    return dict(img_size=64, patch_size=8, in_channels=10, embed_dim=192, num_layers=4,
                num_heads=6, mlp_ratio=4.0, dropout=0.1, max_seq_len=64)


@register_model
def sitsformer_base() -> dict[str, Any]:
    """The tutorial's scene model: 224x224 in 16x16 patches, 13 bands, width 256, 8 layers."""
    return dict(img_size=224, patch_size=16, in_channels=13, embed_dim=256, num_layers=8,
                num_heads=8, mlp_ratio=4.0, dropout=0.1, max_seq_len=64)
