"""Self-supervised pre-training of a SITS-Former encoder by masked-date reconstruction.

The recipe of the original SITS-Former, as a sequence of small named steps:

1. :func:`random_hiding` picks a share of the *valid* dates of every sample (``hidden``,
   True = hidden from the encoder), always leaving at least one valid date visible.
2. The encoder embeds every date, then replaces the embedding of each hidden date by a learned
   mask token (a parameter of :class:`SITSFormerForPretraining`, so it is saved with the model,
   not drawn up by a data loader) and adds the date encoding: the model knows *when* a date was
   hidden, not what it looked like.
3. A linear decoder regresses the hidden observation from the encoded token: the centre pixel
   (all bands, ``target="center"``) or the whole patch (``target="patch"``).
4. :func:`reconstruction_loss` is a mean squared error over hidden, valid (and, when a
   ``pixel_mask`` is given, clear) positions only.

:func:`interpolation_baseline` predicts the same hidden positions by linear interpolation
between the neighbouring visible dates, the yardstick a pre-trained model has to beat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from einops import rearrange
from torch import nn

from sitsformer.models.factory import model_from_config
from sitsformer.models.sits_former import SITSFormer, _init_weights

TARGETS = ("center", "patch")


# ------------------------------------------------------------------------------ steps
def random_hiding(mask: torch.Tensor, ratio: float = 0.3,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Choose the dates to hide in every sample.

    Per sample with ``n`` valid dates, ``round(ratio * n)`` of them are hidden (at least one
    when ``ratio > 0`` and ``n >= 2``), never all of them: at least one valid date stays visible
    whenever the sample has one. Invalid dates (padding, clouds) are never hidden.

    Args:
        mask: ``(B, T)`` bool, True = valid date.
        ratio: share of the valid dates to hide, in ``[0, 1)``.
        generator: optional random generator (on ``mask``'s device) for reproducible draws.

    Returns:
        ``hidden (B, T)`` bool, True = hidden date; ``hidden`` implies ``mask``.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"hide ratio must be in [0, 1), got {ratio}")
    valid = mask.bool()
    b, t = valid.shape
    n_valid = valid.sum(dim=1)  # (B,)
    n_hide = torch.round(n_valid.double() * ratio).long()
    if ratio > 0:
        n_hide = n_hide.clamp(min=1)
    n_hide = torch.minimum(n_hide, (n_valid - 1).clamp(min=0))
    scores = torch.rand(b, t, generator=generator, device=valid.device)
    scores = scores.masked_fill(~valid, 2.0)  # invalid dates sort last
    rank = scores.argsort(dim=1).argsort(dim=1)  # (B, T) rank of every date among its sample
    return valid & (rank < n_hide[:, None])


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor,
                        weight: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the positions where ``weight`` is True.

    Args:
        pred: predictions, any shape.
        target: values to reconstruct, same shape as ``pred``.
        weight: bool, broadcastable to ``pred``: True = the position counts.

    Returns:
        A scalar. Values of ``pred`` or ``target`` where ``weight`` is False never enter the
        result (not even a NaN there); with no counted position the loss is ``0`` (still
        attached to ``pred``'s graph, so backward works).
    """
    weight = weight.bool().expand_as(pred)
    zero = torch.zeros((), device=pred.device)
    sq = torch.where(weight, (pred.float() - target.float()) ** 2, zero)
    count = weight.sum()
    return sq.sum() / count.clamp(min=1)


def interpolation_baseline(sequences: torch.Tensor, visible: torch.Tensor,
                           positions: torch.Tensor | None = None) -> torch.Tensor:
    """Predict every date by linear interpolation between the nearest visible dates.

    Args:
        sequences: ``(B, T, ...)`` values (a pixel series ``(B, T, C)`` or images
            ``(B, T, C, H, W)``).
        visible: ``(B, T)`` bool, True = the date may be used (valid and not hidden).
        positions: ``(B, T)`` date positions (days since a reference, or day of year within a
            single season); ``None`` = the date index.

    Returns:
        A tensor like ``sequences``: at a date between two visible dates, the linear
        interpolation in ``positions``; before the first (after the last) visible date, a copy
        of it; in a sample without any visible date, zeros. Visible dates are returned as they
        are.
    """
    b, t = visible.shape
    visible = visible.bool()
    device = sequences.device
    idx = torch.arange(t, device=device).expand(b, t)
    prev = torch.where(visible, idx, torch.full_like(idx, -1)).cummax(dim=1).values
    nxt = torch.where(visible, idx, torch.full_like(idx, t)).flip(1).cummin(dim=1).values.flip(1)
    has_prev, has_next = prev >= 0, nxt < t
    prev_i, next_i = prev.clamp(0, t - 1), nxt.clamp(0, t - 1)
    prev_i = torch.where(has_prev, prev_i, next_i)  # one-sided: copy the only neighbour
    next_i = torch.where(has_next, next_i, prev_i)

    pos = idx.double() if positions is None else positions.to(device).double()
    p0, p1 = pos.gather(1, prev_i), pos.gather(1, next_i)
    span = p1 - p0
    frac = torch.where(span != 0, (pos - p0) / torch.where(span != 0, span, torch.ones_like(span)),
                       torch.zeros_like(span)).to(sequences.dtype)

    flat = rearrange(sequences, "b t ... -> b t (...)")
    v0 = flat.gather(1, prev_i[..., None].expand_as(flat))
    v1 = flat.gather(1, next_i[..., None].expand_as(flat))
    out = v0 + frac[..., None] * (v1 - v0)
    any_visible = visible.any(dim=1)[:, None, None]
    out = torch.where(any_visible, out, torch.zeros_like(out))
    return out.reshape(sequences.shape)


# ------------------------------------------------------------------------------ model
@dataclass
class PretrainingConfig:
    """A pre-training model's settings: the encoder's config dict, the target, the hide ratio."""

    encoder: dict[str, Any]
    target: str = "center"
    hide_ratio: float = 0.3

    def to_dict(self) -> dict[str, Any]:
        return {"encoder": dict(self.encoder), "target": self.target, "hide_ratio": self.hide_ratio}


class SITSFormerForPretraining(nn.Module):
    """A SITS-Former encoder with a mask token and a reconstruction head.

    The encoder's classification head is replaced by ``nn.Identity`` (it has nothing to learn
    here, and unused parameters would stall distributed training), so the encoder's state dict
    is exactly what :func:`sitsformer.training.finetune.load_pretrained_encoder` expects:
    everything but ``head.*``.

    Args:
        encoder: the :class:`SITSFormer` to pre-train (modified in place: head removed).
        target: ``"center"`` regresses the centre pixel (all bands) of every hidden date;
            ``"patch"`` regresses every pixel of the hidden date's patch.
        hide_ratio: share of the valid dates hidden per sample (default 0.3, as in the paper).

    Forward (same inputs as :class:`SITSFormer`, plus):
        hidden: optional ``(B, T)`` bool, True = hidden date; drawn by :func:`random_hiding`
            when ``None``.
        generator: random generator for that draw.

    Returns:
        a dict with ``pred`` and ``target`` (``(B, T, C)`` for ``"center"``, ``(B, T, C, H, W)``
        for ``"patch"``), ``weight`` (bool, broadcastable to ``pred``: hidden, valid and clear
        positions), ``hidden (B, T)`` and the scalar ``loss``.
    """

    def __init__(self, encoder: SITSFormer, target: str = "center", hide_ratio: float = 0.3):
        super().__init__()
        if target not in TARGETS:
            raise ValueError(f"pre-training target must be one of {TARGETS}, got {target!r}")
        if not 0.0 <= hide_ratio < 1.0:
            raise ValueError(f"hide_ratio must be in [0, 1), got {hide_ratio}")
        if not isinstance(encoder, SITSFormer):
            raise TypeError(f"masked pre-training needs a SITSFormer encoder, got "
                            f"{type(encoder).__name__} (arch="
                            f"{getattr(getattr(encoder, 'config', None), 'arch', None)!r}); "
                            f"the baselines are trained from scratch with 'sitsformer train'")
        self.encoder = encoder
        self.encoder.head = nn.Identity()
        self.target = target
        self.hide_ratio = hide_ratio
        cfg = encoder.config
        self.mask_token = nn.Parameter(torch.zeros(cfg.embed_dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        out = cfg.in_channels if target == "center" else cfg.in_channels * cfg.patch_size ** 2
        self.decoder = nn.Linear(cfg.embed_dim, out)
        _init_weights(self.decoder)

    @property
    def config(self) -> PretrainingConfig:
        """Everything needed to rebuild this model; ``.to_dict()`` is stored in checkpoints."""
        return PretrainingConfig(self.encoder.config.to_dict(), self.target, self.hide_ratio)

    @classmethod
    def from_config(cls, config: dict[str, Any] | PretrainingConfig) -> SITSFormerForPretraining:
        """Rebuild from :attr:`config` or its ``to_dict()`` (a checkpoint's ``model_config``)."""
        if isinstance(config, PretrainingConfig):
            config = config.to_dict()
        unknown = sorted(set(config) - {"encoder", "target", "hide_ratio"})
        if unknown or "encoder" not in config:
            raise ValueError(f"not a pre-training model config: expected keys 'encoder', "
                             f"'target', 'hide_ratio'; found {sorted(config)}")
        return cls(model_from_config(dict(config["encoder"])),
                   target=config.get("target", "center"), hide_ratio=config.get("hide_ratio", 0.3))

    def no_weight_decay(self) -> set[str]:
        return {"mask_token"} | {f"encoder.{n}" for n in self.encoder.no_weight_decay()}

    def layer_id(self, name: str) -> int:
        """Depth for layer-wise LR decay: the mask token sits with the embeddings (0), the
        decoder with the head (``num_layers + 1``)."""
        if name.startswith("encoder."):
            return self.encoder.layer_id(name[len("encoder."):])
        if name.startswith("decoder."):
            return len(self.encoder.blocks) + 1
        return 0

    def _targets(self, x: torch.Tensor, masks: torch.Tensor, hidden: torch.Tensor,
                 pixel_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``target`` and ``weight`` (hidden & valid & clear) for a checked ``x (B,T,C,H,W)``."""
        h, w = x.shape[-2:]
        counted = hidden & masks  # (B, T)
        if self.target == "center":
            target = x[:, :, :, h // 2, w // 2]  # (B, T, C)
            weight = counted
            if pixel_mask is not None:
                weight = weight & pixel_mask.bool()[:, :, h // 2, w // 2]
            return target, weight[:, :, None]  # (B, T, 1)
        weight = counted[:, :, None, None].expand(-1, -1, h, w)
        if pixel_mask is not None:
            weight = weight & pixel_mask.bool()
        return x, weight[:, :, None]  # (B, T, 1, H, W)

    def forward(self, sequences: torch.Tensor, masks: torch.Tensor | None = None,
                doy: torch.Tensor | None = None, pixel_mask: torch.Tensor | None = None,
                dates: torch.Tensor | None = None, hidden: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        enc = self.encoder
        x, masks = enc.check_inputs(sequences, masks, doy, pixel_mask)
        if hidden is None:
            hidden = random_hiding(masks, self.hide_ratio, generator)
        hidden = hidden.bool() & masks
        tokens, _ = enc.forward_features(x, masks, doy, pixel_mask, dates, hidden=hidden,
                                         mask_token=self.mask_token)
        if enc.config.norm == "pre":  # "post": forward_features applied the final norm
            tokens = enc.norm(tokens)  # (B, T, N, D)
        cfg = enc.config
        p, side = cfg.patch_size, cfg.img_size // cfg.patch_size
        if self.target == "center":
            centre = (cfg.img_size // 2 // p) * side + cfg.img_size // 2 // p
            pred = self.decoder(tokens[:, :, centre])  # (B, T, C)
        else:
            pred = rearrange(self.decoder(tokens), "b t (gh gw) (c p1 p2) -> b t c (gh p1) (gw p2)",
                             gh=side, p1=p, p2=p)  # (B, T, C, H, W)
        target, weight = self._targets(x, masks, hidden, pixel_mask)
        loss = reconstruction_loss(pred, target, weight)
        return {"pred": pred, "target": target, "weight": weight, "hidden": hidden, "loss": loss}

    def baseline(self, sequences: torch.Tensor, masks: torch.Tensor | None, hidden: torch.Tensor,
                 positions: torch.Tensor | None = None) -> torch.Tensor:
        """The interpolation baseline's prediction, shaped like ``forward``'s ``pred``."""
        x, masks = self.encoder.check_inputs(sequences, masks)
        full = interpolation_baseline(x, masks & ~hidden.bool(), positions)
        if self.target == "center":
            h, w = x.shape[-2:]
            return full[:, :, :, h // 2, w // 2]
        return full


__all__ = [
    "PretrainingConfig",
    "SITSFormerForPretraining",
    "interpolation_baseline",
    "random_hiding",
    "reconstruction_loss",
]
