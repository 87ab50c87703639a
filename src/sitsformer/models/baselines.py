"""The field's deep baselines, with the same call as :class:`~sitsformer.models.SITSFormer`.

* :class:`TempCNN` (Pelletier, Webb & Petitjean 2019, "Temporal Convolutional Neural Network
  for the Classification of Satellite Image Time Series", Remote Sensing 11(5)): convolutions
  along time, each followed by batch norm, ReLU and dropout, a flattened dense layer, softmax.
* :class:`LTAE` (Garnot & Landrieu 2020, "Lightweight Temporal Self-Attention for Classifying
  Satellite Images Time Series"): the Lightweight Temporal Attention Encoder, one learned
  *master query* per head attending over the dates, each head reading its own slice of the
  channels, then an MLP and a decoder.

Both are built from a :class:`~sitsformer.models.SITSFormerConfig` with ``arch="tempcnn"`` /
``"ltae"`` (``create_model("tempcnn")``, ``model.variant=tempcnn`` in a training config); the
defaults of the ``tempcnn_*``, ``ltae_*`` and ``baseline_dropout`` settings are the published
ones, and the SITS-Former-only settings are ignored (see :mod:`sitsformer.models.config`).

Call: ``model(sequences (B, T, C, H, W) or (B, T, C), masks (B, T) True = valid, doy (B, T),
pixel_mask=None, dates=None)`` -> logits ``(B, num_classes)``. Both are pixel models: with
``H = W > 1`` each date is the mean of its pixels (of its clear pixels when ``pixel_mask`` is
given; a date without any clear pixel counts as invalid). Values at invalid dates never reach
the output: they are replaced by zero before anything else, and

* TempCNN needs a fixed length: the series is laid on a grid of ``max_seq_len`` dates, date
  ``t`` of the input at position ``t``, invalid dates and the positions after ``T`` filled with
  zero (the mean of a standardised band). Padded dates appended to a series therefore change
  nothing, and an invalid date inside a series is a zero "gap-filled" value at its place. The
  date index is its time axis (as in the paper, which uses one regular, gap-filled grid for
  all series); ``doy`` and ``dates`` are accepted and not used.
* L-TAE masks invalid dates out of the attention (weight exactly 0) and encodes the day of
  year of each date (counted on across 1 January, :func:`~sitsformer.layers.continuous_doy`)
  with the paper's sinusoids of period ``T = 1000``.

Differences from the reference code, on purpose: L-TAE's input layer norm after the projection
normalises each date over its ``d_model`` channels (the reference normalises over channels and
a fixed number of dates together, which would mix padded dates into valid ones); a sample
without any valid date gets the output of a zero feature (finite) instead of NaN.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sitsformer.layers import Dropout, continuous_doy
from sitsformer.models.config import SITSFormerConfig
from sitsformer.models.sits_former import check_inputs

__all__ = ["LTAE", "TempCNN", "LTAE_PERIOD", "LTAE_ATTN_DROPOUT"]

LTAE_PERIOD = 1000.0  # T of the positional encoding (the paper's value)
LTAE_ATTN_DROPOUT = 0.1  # dropout on the attention weights (the reference code's value)


class _PixelSeriesClassifier(nn.Module):
    """What the two baselines share: config handling, input checks, pixel averaging and the
    surface the trainer, ``predict``, ``export`` and ensembles use."""

    ARCH = ""

    def __init__(self, config: SITSFormerConfig | dict[str, Any] | None = None,
                 **kwargs: Any):
        super().__init__()
        if isinstance(config, SITSFormerConfig):
            if kwargs:
                raise TypeError("pass either a SITSFormerConfig or keyword settings, not both")
            if config.arch != self.ARCH:
                raise ValueError(f"{type(self).__name__} builds arch={self.ARCH!r}, the config "
                                 f"says arch={config.arch!r} (use create_model to build any "
                                 f"arch)")
            cfg = SITSFormerConfig.from_dict(config.to_dict())  # a private copy
        else:
            from sitsformer.models.factory import resolve_model_config

            settings = {**(config or {}), **kwargs}
            arch = settings.setdefault("arch", self.ARCH)
            if arch != self.ARCH:
                raise ValueError(f"{type(self).__name__} builds arch={self.ARCH!r}, the "
                                 f"settings say arch={arch!r}")
            cfg = resolve_model_config(settings)
        self.config = cfg
        self.grad_checkpointing = False  # never on: see set_grad_checkpointing
        self._warned_no_doy = False

    # ----------------------------------------------------------------------------- surface
    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def no_weight_decay(self) -> set[str]:
        """Parameter names that get no weight decay (beyond norms and biases)."""
        return set()

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the last linear layer with a fresh one for ``num_classes`` classes."""
        self.config.num_classes = num_classes
        self.head = nn.Linear(self.head.in_features, num_classes).to(self.head.weight.device)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Accepted for the trainer's sake and ignored: these models are a few hundred
        thousand parameters with activations of ``(B, T, width)``, nothing worth recomputing
        (``grad_checkpointing`` stays False, so memory planning counts no saving)."""

    def set_token_packing(self, enable: bool | None = True) -> None:
        """Accepted and ignored: there are no tokens to pack (the computation is per series)."""

    def check_inputs(self, sequences: torch.Tensor, masks: torch.Tensor | None,
                     doy: torch.Tensor | None = None,
                     pixel_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate shapes against the configuration; return ``(sequences, masks)`` as
        ``(B, T, C, H, W)`` and bool ``(B, T)`` (the same checks as the SITS-Former's)."""
        return check_inputs(self.config, sequences, masks, doy, pixel_mask)

    def pixel_series(self, sequences: torch.Tensor, masks: torch.Tensor | None,
                     doy: torch.Tensor | None = None, pixel_mask: torch.Tensor | None = None,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Checked inputs as one series per sample: ``(B, T, C)`` with zero at every invalid
        date, and the validity ``(B, T)``. Several pixels are averaged (the clear ones when
        ``pixel_mask`` is given; a date without a clear pixel becomes invalid)."""
        x, masks = self.check_inputs(sequences, masks, doy, pixel_mask)
        if pixel_mask is None:
            series = x.mean(dim=(-2, -1))
        else:
            clear = pixel_mask.bool()[:, :, None]  # (B, T, 1, H, W)
            count = clear.sum(dim=(-2, -1))  # (B, T, 1)
            total = torch.where(clear, x, torch.zeros_like(x)).sum(dim=(-2, -1))
            series = total / count.clamp(min=1).to(x.dtype)
            masks = masks & (count[..., 0] > 0)
        series = torch.where(masks[..., None], series, torch.zeros_like(series))
        return series, masks

    def forward_features(self, sequences: torch.Tensor, masks: torch.Tensor | None = None,
                         doy: torch.Tensor | None = None,
                         pixel_mask: torch.Tensor | None = None,
                         dates: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled feature ``(B, D)`` of each series (what :meth:`forward_head` classifies)."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, sequences: torch.Tensor, masks: torch.Tensor | None = None,
                doy: torch.Tensor | None = None, pixel_mask: torch.Tensor | None = None,
                dates: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, num_classes)``; see the module docstring for the inputs."""
        return self.forward_head(self.forward_features(sequences, masks, doy, pixel_mask, dates))


class BatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` that also trains on a batch of one ``(1, C)`` sample: batch
    statistics of a single value do not exist (PyTorch raises), so such a batch is normalised
    with the running statistics, which it does not update. A training split whose size leaves a
    last batch of one sample would otherwise stop training with an error."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.dim() == 2 and x.shape[0] == 1 and self.track_running_stats:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)
        return super().forward(x)


def _dense(width_in: int, width_out: int) -> list[nn.Module]:
    """Linear, batch norm and ReLU: the reference codes' hidden layer."""
    return [nn.Linear(width_in, width_out), BatchNorm1d(width_out), nn.ReLU()]


class TempCNN(_PixelSeriesClassifier):
    """TempCNN: ``tempcnn_layers`` convolutions along time (``tempcnn_filters`` filters of width
    ``tempcnn_kernel_size``, "same" zero padding), each with batch norm, ReLU and dropout; the
    ``(filters, max_seq_len)`` map flattened into a dense layer of ``tempcnn_hidden`` units
    (batch norm, ReLU, dropout); a linear layer to the classes (softmax in the loss).

    Parameters (C bands, F filters, k kernel width, n layers, L = max_seq_len, H hidden, K
    classes; a batch norm has 2 per channel)::

        (C*F*k + 3F) + (n-1) * (F*F*k + 3F) + (F*L*H + 3H) + (H*K + K)
    """

    ARCH = "tempcnn"

    def __init__(self, config: SITSFormerConfig | dict[str, Any] | None = None,
                 **kwargs: Any):
        super().__init__(config, **kwargs)
        cfg = self.config
        width, k, p = cfg.tempcnn_filters, cfg.tempcnn_kernel_size, cfg.baseline_dropout
        self.convs = nn.Sequential(*(
            nn.Sequential(nn.Conv1d(cfg.in_channels if i == 0 else width, width, k,
                                    padding=k // 2),
                          nn.BatchNorm1d(width), nn.ReLU(), Dropout(p))
            for i in range(cfg.tempcnn_layers)
        ))
        self.dense = nn.Sequential(*_dense(width * cfg.max_seq_len, cfg.tempcnn_hidden),
                                   Dropout(p))
        self.head = nn.Linear(cfg.tempcnn_hidden, cfg.num_classes)

    def forward_features(self, sequences: torch.Tensor, masks: torch.Tensor | None = None,
                         doy: torch.Tensor | None = None,
                         pixel_mask: torch.Tensor | None = None,
                         dates: torch.Tensor | None = None) -> torch.Tensor:
        """The dense layer's output ``(B, tempcnn_hidden)``; ``doy`` and ``dates`` unused."""
        series, _ = self.pixel_series(sequences, masks, doy, pixel_mask)
        t = series.shape[1]
        grid = F.pad(series, (0, 0, 0, self.config.max_seq_len - t))  # (B, L, C), zeros after T
        maps = self.convs(grid.transpose(1, 2))  # (B, F, L)
        return self.dense(maps.flatten(1))


class LTAE(_PixelSeriesClassifier):
    """Lightweight Temporal Attention Encoder classifier.

    Per date: a linear projection of the bands to ``ltae_d_model`` channels, layer norm, plus
    the sinusoidal encoding of the day of year (period 1000; the same ``d_model / heads`` sinusoids repeated for every head). Each of ``ltae_heads`` heads has a
    learned master query of ``ltae_d_k`` dimensions; keys are a linear map of the dates
    (``d_model -> heads * d_k``), values are the head's own ``d_model / heads`` channels (no
    projection); the weights are a softmax over the valid dates of the scaled dot products. The
    heads' outputs, concatenated (``d_model``), go through the MLP ``ltae_mlp`` (linear, batch
    norm, ReLU per layer), dropout and a layer norm: the feature. The decoder ``ltae_decoder``
    (linear, batch norm, ReLU per layer) and a linear layer give the classes.

    Parameters (C bands, D = d_model, h heads, d = d_k, widths m_1..m_j of ltae_mlp with
    m_0 = D, widths u_1..u_r of ltae_decoder with u_0 = m_j, K classes)::

        (C*D + D) + 2D + h*d + (D*h*d + h*d)
        + sum_i (m_{i-1}*m_i + 3 m_i) + 2 m_j + sum_i (u_{i-1}*u_i + 3 u_i) + (u_r*K + K)
    """

    ARCH = "ltae"

    def __init__(self, config: SITSFormerConfig | dict[str, Any] | None = None,
                 **kwargs: Any):
        super().__init__(config, **kwargs)
        cfg = self.config
        d_model, heads, d_k = cfg.ltae_d_model, cfg.ltae_heads, cfg.ltae_d_k
        # No layer norm over the bands before the projection (the reference's input is the
        # 128 channels of its pixel-set encoder): over raw bands it keeps only their pattern
        # within a date (two bands: the sign of their difference; one band: nothing). The
        # bands arrive standardised by the input spec.
        self.in_proj = nn.Linear(cfg.in_channels, d_model)
        self.proj_norm = nn.LayerNorm(d_model)
        self.query = nn.Parameter(torch.empty(heads, d_k))
        self.key = nn.Linear(d_model, heads * d_k)
        nn.init.normal_(self.query, std=math.sqrt(2.0 / d_k))
        nn.init.normal_(self.key.weight, std=math.sqrt(2.0 / d_k))
        self.attn_drop = Dropout(LTAE_ATTN_DROPOUT)
        widths = [d_model, *cfg.ltae_mlp]
        self.mlp = nn.Sequential(*(layer for a, b in zip(widths, widths[1:])
                                   for layer in _dense(a, b)))
        self.drop = Dropout(cfg.baseline_dropout)
        self.out_norm = nn.LayerNorm(widths[-1])
        dec = [widths[-1], *cfg.ltae_decoder]
        self.decoder = nn.Sequential(*(layer for a, b in zip(dec, dec[1:])
                                       for layer in _dense(a, b)))
        self.head = nn.Linear(dec[-1], cfg.num_classes)
        # frequencies of the d_model / heads sinusoids: position / T^(2 (i // 2) / d_head)
        d_head = d_model // heads
        channel = torch.arange(d_head)
        self.register_buffer("inv_freq", LTAE_PERIOD ** (-2.0 * (channel // 2) / d_head),
                             persistent=False)
        self.register_buffer("even", channel % 2 == 0, persistent=False)

    def no_weight_decay(self) -> set[str]:
        """The master queries (like a transformer's learned embeddings) get no decay."""
        return {"query"}

    def date_encoding(self, positions: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` day positions -> ``(B, T, d_model)``: sin at even, cos at odd channels of
        each head's ``d_model / heads`` block, the same block for every head."""
        angles = positions.float()[..., None] * self.inv_freq  # (B, T, d_head)
        enc = torch.where(self.even, angles.sin(), angles.cos())
        return enc.repeat(1, 1, self.config.ltae_heads)

    def _positions(self, doy: torch.Tensor | None, masks: torch.Tensor) -> torch.Tensor:
        b, t = masks.shape
        if doy is not None:
            doy = doy.to(masks.device)
            return continuous_doy(doy, masks & (doy > 0))
        if not self._warned_no_doy and not torch.compiler.is_compiling():
            warnings.warn("LTAE got no 'doy': using the date index 1..T as the date position. "
                          "Pass the acquisition days of year for irregular series.",
                          stacklevel=4)
            self._warned_no_doy = True
        return torch.arange(1, t + 1, device=masks.device).expand(b, t)

    def attention(self, x: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor,
                                                                         torch.Tensor]:
        """Master-query attention over the valid dates: ``x (B, T, d_model)`` -> the heads'
        outputs concatenated ``(B, d_model)`` and the weights ``(B, heads, T)`` (0 at invalid
        dates; all 0 for a sample without any valid date)."""
        b, t, d_model = x.shape
        heads, d_k = self.config.ltae_heads, self.config.ltae_d_k
        keys = self.key(x).view(b, t, heads, d_k)
        scores = torch.einsum("hd,bthd->bht", self.query.to(keys.dtype), keys) / math.sqrt(d_k)
        valid = masks[:, None, :]  # (B, 1, T)
        scores = scores.masked_fill(~valid, torch.finfo(scores.dtype).min)
        weights = scores.softmax(dim=-1) * valid.to(scores.dtype)
        values = x.view(b, t, heads, d_model // heads)
        out = torch.einsum("bht,bthe->bhe", self.attn_drop(weights), values)
        return out.reshape(b, d_model), weights

    def forward_features(self, sequences: torch.Tensor, masks: torch.Tensor | None = None,
                         doy: torch.Tensor | None = None,
                         pixel_mask: torch.Tensor | None = None,
                         dates: torch.Tensor | None = None) -> torch.Tensor:
        """The encoder's output ``(B, ltae_mlp[-1])`` (before the decoder); ``dates`` unused."""
        series, masks = self.pixel_series(sequences, masks, doy, pixel_mask)
        x = self.proj_norm(self.in_proj(series))
        x = x + self.date_encoding(self._positions(doy, masks)).to(x.dtype)
        out, _ = self.attention(x, masks)
        return self.out_norm(self.drop(self.mlp(out)))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.decoder(features))
