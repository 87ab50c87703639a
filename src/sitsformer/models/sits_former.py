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

import warnings
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
    continuous_doy,
)
from sitsformer.models.config import SITSFormerConfig


PACK_BITS = 5  # significant binary digits of a packed row count (packed_rows)
UNSCALED_INPUT = 100.0  # a first input larger than this (in absolute value) gets a warning


class _Gather(torch.autograd.Function):
    """``x.index_select(0, index)`` for unique indices, with ``index_copy`` as its backward.

    Autograd's own backward of ``index_select`` is a scatter-add, which is several times slower
    on CPU in bf16 (profiled: 100 ms per call in the original configuration) than a plain copy
    to unique rows."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.rows = x.shape[0]
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (index,) = ctx.saved_tensors
        return _scatter(grad, index, ctx.rows), None


class _Scatter(torch.autograd.Function):
    """Rows of ``x`` placed at the unique ``index`` of ``rows`` zero rows; backward: a gather."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, index: torch.Tensor, rows: int) -> torch.Tensor:
        ctx.save_for_backward(index)
        return x.new_zeros(rows, *x.shape[1:]).index_copy_(0, index, x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (index,) = ctx.saved_tensors
        return _Gather.apply(grad, index), None, None


def packed_rows(m: int, total: int, bits: int | None = None) -> int:
    """Rows a packed batch of ``m`` valid dates (of ``total``) is computed with: ``m`` rounded
    up to ``bits`` significant binary digits (at most ``2 ** (1 - bits)`` more rows), never
    more than ``total``.

    oneDNN builds and caches a kernel (with its own reordered copy of the weights in bf16) for
    every new matrix shape. With the exact count of valid dates every batch has new shapes:
    measured here, map inference of the original model grew from 0.5 to 2.0 GB of resident
    memory over 36 windows of a 384 x 384 raster, against a flat 0.4 GB unpacked. Rounded, about
    200 shapes cover every batch of up to 50 000 dates."""
    if m <= 0:
        return 0
    bits = PACK_BITS if bits is None else bits
    shift = max(m.bit_length() - bits, 0)
    return min(-(-m >> shift) << shift, total)


def _gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return _Gather.apply(x, index)


def _scatter(x: torch.Tensor, index: torch.Tensor, rows: int) -> torch.Tensor:
    return _Scatter.apply(x, index, rows)


class Block(nn.Module):
    """One factorised layer: temporal attention, spatial attention (if N > 1), MLP; pre-norm
    (``x + f(norm(x))``), or post-norm (``norm(x + f(x))``, ``post=True``: the original code's
    ``nn.TransformerEncoderLayer``)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float,
                 attn_dropout: float, spatial: bool, post: bool = False,
                 activation: str = "gelu"):
        super().__init__()
        self.post = post
        self.norm_t = nn.LayerNorm(dim)
        self.attn_t = MaskedSelfAttention(dim, num_heads, attn_dropout, dropout)
        self.norm_s = nn.LayerNorm(dim) if spatial else None
        self.attn_s = MaskedSelfAttention(dim, num_heads, attn_dropout, dropout) if spatial else None
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout, activation)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``x (B, T, N, D)``, ``valid (B, T, N)`` True = a clear observation of that token."""
        if self.post:
            return self._forward_post(x, valid)
        b, t, n, _ = x.shape
        xt = rearrange(x, "b t n d -> (b n) t d")
        xt = xt + self.attn_t(self.norm_t(xt), rearrange(valid, "b t n -> (b n) t"))
        x = rearrange(xt, "(b n) t d -> b t n d", b=b)
        if self.attn_s is not None:
            xs = rearrange(x, "b t n d -> (b t) n d")
            xs = xs + self.attn_s(self.norm_s(xs), rearrange(valid, "b t n -> (b t) n"))
            x = rearrange(xs, "(b t) n d -> b t n d", b=b)
        return x + self.mlp(self.norm_mlp(x))

    def _forward_post(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        xt = rearrange(x, "b t n d -> (b n) t d")
        xt = self.norm_t(xt + self.attn_t(xt, rearrange(valid, "b t n -> (b n) t")))
        x = rearrange(xt, "(b n) t d -> b t n d", b=b)
        if self.attn_s is not None:
            xs = rearrange(x, "b t n d -> (b t) n d")
            xs = self.norm_s(xs + self.attn_s(xs, rearrange(valid, "b t n -> (b t) n")))
            x = rearrange(xs, "(b t) n d -> b t n d", b=b)
        return self.norm_mlp(x + self.mlp(x))

    def forward_packed(self, x: torch.Tensor, valid: torch.Tensor, index: torch.Tensor,
                       valid_full: torch.Tensor) -> torch.Tensor:
        """The same layer on the valid dates only.

        ``x (M, N, D)``: the tokens of the M valid dates, ``valid (M, N)`` their token validity,
        ``index (M,)`` where each date sits in the flattened ``(B * T)`` batch, ``valid_full
        (B, T, N)``. Norms, projections and the MLP run on the M dates; only the temporal
        attention itself runs on the padded ``(B * N, T)`` layout (padded dates get zero
        queries, keys and values and are masked out as keys, exactly as in :meth:`forward`).
        """
        b, t, n = valid_full.shape
        qkv = self.attn_t.qkv(x if self.post else self.norm_t(x))  # (M, N, 3D)
        padded = rearrange(_scatter(qkv, index, b * t), "(b t) n e -> (b n) t e", b=b)
        out = self.attn_t.attend(padded, rearrange(valid_full, "b t n -> (b n) t"))
        out = _gather(rearrange(out, "(b n) t d -> (b t) n d", b=b), index)
        x = x + self.attn_t.proj_drop(self.attn_t.proj(out))
        if self.post:
            x = self.norm_t(x)
            if self.attn_s is not None:
                x = self.norm_s(x + self.attn_s(x, valid))
            return self.norm_mlp(x + self.mlp(x))
        if self.attn_s is not None:
            x = x + self.attn_s(self.norm_s(x), valid)
        return x + self.mlp(self.norm_mlp(x))


class SITSFormer(nn.Module):
    """SITS-Former classifier for image (or pixel) time series.

    Args: a :class:`SITSFormerConfig` (or a dict of its fields), or its fields as keyword
    arguments (``SITSFormer(img_size=5, patch_size=5, ...)``); unset fields take the defaults
    of :class:`SITSFormerConfig`, the only place defaults are written.

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

    def __init__(self, config: SITSFormerConfig | dict[str, Any] | None = None, **kwargs: Any):
        super().__init__()
        if isinstance(config, SITSFormerConfig):
            if kwargs:
                raise TypeError("pass either a SITSFormerConfig or keyword settings, not both")
            cfg = SITSFormerConfig.from_dict(config.to_dict())  # a private copy
        else:
            cfg = SITSFormerConfig.from_dict({**(config or {}), **kwargs})
        if cfg.arch != "sitsformer":
            raise ValueError(f"SITSFormer builds arch='sitsformer', the config says "
                             f"arch={cfg.arch!r} (use sitsformer.models.create_model to build "
                             f"any arch)")
        self.config = cfg
        self.num_tokens = (cfg.img_size // cfg.patch_size) ** 2
        if cfg.stem == "conv3d":
            self.embed = Conv3dEmbed(cfg.in_channels, cfg.embed_dim, cfg.patch_size,
                                     channels=tuple(cfg.stem_channels), norm=cfg.stem_norm)
        else:
            self.embed = PatchEmbed(cfg.in_channels, cfg.embed_dim, cfg.patch_size)
        self.temporal = (TemporalConv(cfg.embed_dim, cfg.temporal_conv)
                         if cfg.temporal_conv else None)
        self.date_encoding = DateEncoding(cfg.date_encoding, cfg.embed_dim)
        self.pos_embed = (
            nn.Parameter(torch.zeros(1, 1, self.num_tokens, cfg.embed_dim))
            if self.num_tokens > 1 else None
        )
        self.embed_drop = Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, cfg.dropout, cfg.attn_dropout,
                  spatial=self.num_tokens > 1, post=cfg.norm == "post",
                  activation=cfg.activation)
            for _ in range(cfg.num_layers)
        )
        self.norm = nn.LayerNorm(cfg.embed_dim)
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)
        self._reference_day = (
            _iso_to_days(cfg.reference_date)
            if cfg.reference_date else 0
        )
        self.grad_checkpointing = False
        self.pack_tokens: bool | None = None  # None = on CPU, see :meth:`set_token_packing`
        self._warned_no_doy = False
        self._checked_scale = False  # the first forward looks at the input's magnitude
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

    def set_token_packing(self, enable: bool | None = True) -> None:
        """Compute only the valid dates (``True``), always the padded batch (``False``), or
        ``None`` (the default): pack on CPU, padded elsewhere.

        Packing gathers the images of the valid dates once, runs the stem, norms, projections
        and MLPs on them only and scatters to the padded layout just for the temporal attention;
        the outputs at valid positions are the same as the padded computation's (up to float
        rounding) and padded positions of :meth:`forward_features` are zero. It needs the
        number of valid dates on the host (one synchronisation per forward on a GPU, which is
        why it is off there by default). ``torch.compile`` / ``torch.export`` / tracing always
        take the padded path (static shapes, one graph), as does a batch without padding.
        """
        self.pack_tokens = enable

    def _packs(self, masks: torch.Tensor) -> bool:
        enabled = self.pack_tokens if self.pack_tokens is not None else masks.device.type == "cpu"
        if (not enabled or torch.compiler.is_compiling() or torch.jit.is_tracing()
                or torch.jit.is_scripting()):
            return False
        return not bool(masks.all())

    # ----------------------------------------------------------------------------- forward
    def check_inputs(self, sequences: torch.Tensor, masks: torch.Tensor | None,
                     doy: torch.Tensor | None = None,
                     pixel_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate shapes against the configuration; return ``(sequences, masks)`` as
        ``(B, T, C, H, W)`` and bool ``(B, T)``."""
        return check_inputs(self.config, sequences, masks, doy, pixel_mask)

    def _warn_if_unscaled(self, x: torch.Tensor, masks: torch.Tensor) -> None:
        """Warn once when the first input looks like stored values (reflectance x 10000), not
        scaled and standardised ones: a hand-written loop that skipped the data's scale trains
        on values thousands of times too large with no error. One host synchronisation, on the
        first call only (skipped under compile, tracing and CUDA's sync debug mode)."""
        if (torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()
                or (x.device.type == "cuda" and torch.cuda.get_sync_debug_mode() != 0)):
            return
        self._checked_scale = True
        valid = x[masks] if masks.any() else x
        top = float(valid.detach().abs().amax()) if valid.numel() else 0.0
        if top > UNSCALED_INPUT:
            warnings.warn(
                f"SITSFormer got inputs up to {top:.4g}: they look like stored values (e.g. "
                f"reflectance x 10000), not scaled and standardised ones (about -5..5). Divide by "
                "the data's scale and standardise with the training split's statistics "
                "(sitsformer.data.transforms Scale / Normalize, or the DataModule, which does "
                "both)", stacklevel=3)

    def _date_positions(self, doy: torch.Tensor | None, dates: torch.Tensor | None,
                        b: int, t: int, device: torch.device, masks: torch.Tensor,
                        ) -> torch.Tensor:
        if self.config.date_encoding == "days_since":
            if dates is not None:
                return dates.to(device) - self._reference_day
        elif doy is not None:
            doy = doy.to(device)
            if self.config.continuous_doy and self.config.date_encoding == "sinusoidal":
                return continuous_doy(doy, masks & (doy > 0))
            return doy
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

        With ``norm="post"`` the features are already passed through the final norm (the
        original code's encoder output); with ``"pre"`` the norm comes after pooling.

        For masked pre-training, ``hidden (B, T)`` bool (True = hidden date) replaces the
        embedding of every hidden date by ``mask_token (D,)`` before the date encoding is added.
        """
        x, masks = self.check_inputs(sequences, masks, doy, pixel_mask)
        if not self._checked_scale:
            self._warn_if_unscaled(x, masks)
        if self._packs(masks):
            return self._forward_features_packed(x, masks, doy, pixel_mask, dates, hidden,
                                                 mask_token)
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
        valid = masks[:, :, None].expand(b, t, self.num_tokens)
        if pixel_mask is not None:
            clear = rearrange(pixel_mask.bool(), "b t (gh p1) (gw p2) -> b t (gh gw) (p1 p2)",
                              p1=p, p2=p).any(-1)
            valid = valid & clear
        if self.temporal is not None:
            tokens = self.temporal(tokens, valid)
        pos = self._date_positions(doy, dates, b, t, x.device, masks)
        tokens = tokens + self.date_encoding(pos)[:, :, None, :].to(tokens.dtype)
        if self.pos_embed is not None:
            tokens = tokens + self.pos_embed
        tokens = self.embed_drop(tokens)

        for block in self.blocks:
            if self.grad_checkpointing and self.training:
                tokens = checkpoint(block, tokens, valid, use_reentrant=False)
            else:
                tokens = block(tokens, valid)
        if self.config.norm == "post":
            tokens = self.norm(tokens)
        return tokens, valid

    def _forward_features_packed(self, x: torch.Tensor, masks: torch.Tensor,
                                 doy: torch.Tensor | None, pixel_mask: torch.Tensor | None,
                                 dates: torch.Tensor | None, hidden: torch.Tensor | None,
                                 mask_token: torch.Tensor | None,
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward_features` computing the valid dates only (see
        :meth:`set_token_packing`)."""
        b, t = masks.shape
        n, p = self.num_tokens, self.config.patch_size
        flat = masks.reshape(-1).bool()
        index = flat.nonzero().squeeze(1)  # (M,) valid dates in (B * T)
        rows = packed_rows(index.numel(), b * t)
        if rows > index.numel():
            # round M up with padded dates (masked out like any padded date) so the matmul
            # shapes repeat from batch to batch: see packed_rows
            extra = (~flat).nonzero().squeeze(1)[:rows - index.numel()]
            index = torch.cat([index, extra]).sort().values
        images = _gather(rearrange(x, "b t c h w -> (b t) c h w"), index)
        tokens = self.embed(images)  # (M, N, D)
        if hidden is not None:
            if mask_token is None or tuple(hidden.shape) != (b, t):
                raise ValueError(f"hidden must be (B, T) = {(b, t)} and come with a mask_token; "
                                 f"got hidden {tuple(hidden.shape)}, "
                                 f"mask_token given: {mask_token is not None}")
            hide = hidden.bool().reshape(-1).index_select(0, index)
            tokens = torch.where(hide[:, None, None], mask_token.to(tokens.dtype), tokens)
        valid = masks[:, :, None].expand(b, t, n)
        if pixel_mask is not None:
            clear = rearrange(pixel_mask.bool(), "b t (gh p1) (gw p2) -> b t (gh gw) (p1 p2)",
                              p1=p, p2=p).any(-1)
            valid = valid & clear
        if self.temporal is not None:  # the convolution needs the dates in order: unpack
            full = rearrange(_scatter(tokens, index, b * t), "(b t) n d -> b t n d", b=b)
            tokens = _gather(rearrange(self.temporal(full, valid), "b t n d -> (b t) n d"),
                             index)
        pos = self._date_positions(doy, dates, b, t, x.device, masks).reshape(1, -1)[:, index]
        tokens = tokens + self.date_encoding(pos)[0, :, None, :].to(tokens.dtype)
        if self.pos_embed is not None:
            tokens = tokens + self.pos_embed[0]
        tokens = self.embed_drop(tokens)

        valid_packed = valid.reshape(b * t, n).index_select(0, index)  # (M, N)
        for block in self.blocks:
            if self.grad_checkpointing and self.training:
                tokens = checkpoint(block.forward_packed, tokens, valid_packed, index, valid,
                                    use_reentrant=False)
            else:
                tokens = block.forward_packed(tokens, valid_packed, index, valid)
        if self.config.norm == "post":
            tokens = self.norm(tokens)
        full = _scatter(tokens, index, b * t)
        return rearrange(full, "(b t) n d -> b t n d", b=b), valid

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
        if self.config.norm == "post":  # the tokens were normalised before pooling
            return self.head(features)
        return self.head(self.norm(features))

    def forward(self, sequences: torch.Tensor, masks: torch.Tensor | None = None,
                doy: torch.Tensor | None = None, pixel_mask: torch.Tensor | None = None,
                dates: torch.Tensor | None = None) -> torch.Tensor:
        tokens, valid = self.forward_features(sequences, masks, doy, pixel_mask, dates)
        return self.forward_head(self.pool(tokens, valid))


def check_inputs(cfg: SITSFormerConfig, sequences: torch.Tensor, masks: torch.Tensor | None,
                 doy: torch.Tensor | None = None, pixel_mask: torch.Tensor | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate the inputs of a model built from ``cfg`` (any ``arch``: every model takes the
    same call); return ``(sequences, masks)`` as ``(B, T, C, H, W)`` and bool ``(B, T)``."""
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


def _iso_to_days(iso: str) -> int:
    import numpy as np

    try:
        return int(np.datetime64(iso, "D").astype("int64"))
    except ValueError as err:
        raise ValueError(f"reference_date must be an ISO date like '2019-09-01', got {iso!r}") from err


class TemporalConv(nn.Module):
    """A residual 1-D convolution over time on per-date tokens (``model.temporal_conv``):
    ``tokens + GELU(LayerNorm(conv(tokens with invalid dates zeroed)))``, "same" zero padding,
    each spatial token on its own. Invalid dates (padding, clouds) enter as zeros, so padded
    dates appended after the last valid one change nothing; their own outputs are masked
    later like any invalid date. Local temporal context (slopes, peaks) before attention, as
    TempCNN's convolutions give it."""

    def __init__(self, dim: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(dim)
        self.act = nn.GELU()

    def forward(self, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``tokens (B, T, N, D)``, ``valid (B, T, N)`` bool -> ``(B, T, N, D)``."""
        b = tokens.shape[0]
        x = tokens * valid[..., None].to(tokens.dtype)
        x = self.conv(rearrange(x, "b t n d -> (b n) d t"))
        x = rearrange(x, "(b n) d t -> b t n d", b=b)
        return tokens + self.act(self.norm(x))


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
