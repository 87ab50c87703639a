"""The model settings: the one place their defaults live.

:class:`SITSFormerConfig` describes every architecture the library builds: ``arch`` names it
(``"sitsformer"``, the default, so every config and checkpoint written before ``arch`` existed
still builds a SITS-Former; ``"tempcnn"`` or ``"ltae"`` for the baselines of
:mod:`sitsformer.models.baselines`). The shared input settings (``in_channels``, ``num_classes``,
``img_size``, ``max_seq_len``, ``bands``) apply to every architecture; the ``tempcnn_*``,
``ltae_*`` and ``baseline_dropout`` settings only to the baselines; all the others (listed in
:data:`SITSFORMER_ONLY`) only to the SITS-Former. A baseline ignores the SITS-Former-only
settings: :func:`~sitsformer.models.resolve_model_config` resets them to their defaults, so a
training recipe written for the transformer (``embed_dim``, ``num_layers``, ``dropout`` ...)
can be reused with ``model.variant=tempcnn`` and the baseline keeps its published settings.

Every other form derives from :class:`SITSFormerConfig`: a registered variant
(:mod:`sitsformer.models.factory`) lists only the settings it changes, the ``model`` section of an
experiment config (:mod:`sitsformer.training.config`) is generated from these fields, and
checkpoints store ``SITSFormerConfig.to_dict()``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sitsformer.layers.date_encoding import DATE_ENCODINGS

STEMS = ("patch", "conv3d")
POOLS = ("max", "mean")
ARCHS = ("sitsformer", "tempcnn", "ltae")
# settings that only the SITS-Former reads; a baseline arch gets their defaults
SITSFORMER_ONLY = ("patch_size", "embed_dim", "num_layers", "num_heads", "mlp_ratio", "dropout",
                   "attn_dropout", "stem", "date_encoding", "reference_date", "continuous_doy",
                   "pool", "norm", "activation", "stem_norm", "stem_channels")
NORMS = ("pre", "post")
ACTIVATIONS = ("gelu", "relu")


@dataclass
class SITSFormerConfig:
    """Every architecture setting, with its default. Stored in checkpoints as a plain dict."""

    arch: str = "sitsformer"  # "sitsformer", "tempcnn" or "ltae" (see the module docstring)
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
    # sinusoidal only: count the day of year on across 1 January (a date after the series'
    # first new year gets doy + 365), so a season that crosses the new year keeps its order
    # and a series longer than a year has no two dates on one code. False = the original
    # SITS-Former code (and every checkpoint written before this setting existed).
    continuous_doy: bool = True
    pool: str = "max"  # pooling over valid dates: "max" (original) or "mean"
    # kernel (odd) of a residual 1-D convolution over time on the per-date embeddings before
    # the date encoding (tokens + GELU(LayerNorm(conv(tokens with invalid dates zeroed))));
    # 0 = none (the original SITS-Former, and every checkpoint written before this setting)
    temporal_conv: int = 0
    bands: list[str] | None = None  # band names, checked against data when both are known
    # ---- baselines only (arch "tempcnn" / "ltae"); defaults are the published settings
    baseline_dropout: float = 0.2  # TempCNN and L-TAE dropout (TempCNN paper, L-TAE code)
    tempcnn_layers: int = 3  # Pelletier et al. 2019: 3 convolutions ...
    tempcnn_filters: int = 64  # ... of 64 filters ...
    tempcnn_kernel_size: int = 5  # ... of width 5 (odd: "same" padding) ...
    tempcnn_hidden: int = 256  # ... then a dense layer of 256 units
    ltae_d_model: int = 256  # Garnot & Landrieu 2020: inputs projected to d_model ...
    ltae_heads: int = 16  # ... 16 heads, each with a learned master query ...
    ltae_d_k: int = 8  # ... of 8 dimensions (keys too) ...
    ltae_mlp: list[int] = dataclasses.field(default_factory=lambda: [128])  # d_model -> 128
    ltae_decoder: list[int] = dataclasses.field(default_factory=lambda: [64, 32])  # -> classes
    # The original code's layout (variant sitsformer_original_exact, models/original.py):
    # "post" = post-norm layers (x = norm(x + f(x))) with the final norm on every token before
    # pooling and the head on the pooled feature; "pre" = pre-norm, norm on the pooled feature.
    norm: str = "pre"
    activation: str = "gelu"  # of the MLPs: "gelu" or "relu" (the original's)
    stem_norm: bool = False  # conv3d stem: BatchNorm3d after each ReLU (the original's)
    stem_channels: list[int] = dataclasses.field(default_factory=lambda: [32, 64])  # conv3d

    def __post_init__(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(f"invalid SITSFormer config: {msg}")

        def positive(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value > 0

        need(self.arch in ARCHS, f"arch must be one of {ARCHS}, got {self.arch!r}")
        for name in ("img_size", "patch_size", "in_channels", "num_classes", "embed_dim",
                     "num_layers", "num_heads", "max_seq_len", "tempcnn_layers",
                     "tempcnn_filters", "tempcnn_kernel_size", "tempcnn_hidden", "ltae_d_model",
                     "ltae_heads", "ltae_d_k"):
            value = getattr(self, name)
            need(positive(value), f"{name} must be a positive integer, got {value!r}")
        for name in ("ltae_mlp", "ltae_decoder"):
            value = getattr(self, name)
            need(isinstance(value, (list, tuple)) and all(positive(v) for v in value),
                 f"{name} must be a list of positive integers, got {value!r}")
            setattr(self, name, list(value))
        need(len(self.ltae_mlp) > 0, "ltae_mlp must list at least one width, got []")
        need(isinstance(self.temporal_conv, int) and not isinstance(self.temporal_conv, bool)
             and (self.temporal_conv == 0 or (self.temporal_conv > 0
                                              and self.temporal_conv % 2 == 1)),
             f"temporal_conv must be 0 (none) or an odd kernel size, got {self.temporal_conv!r}")
        need(self.tempcnn_kernel_size % 2 == 1,
             f"tempcnn_kernel_size must be odd (same-length convolutions), "
             f"got {self.tempcnn_kernel_size}")
        need(self.ltae_d_model % self.ltae_heads == 0,
             f"ltae_heads ({self.ltae_heads}) must divide ltae_d_model ({self.ltae_d_model})")
        need(0.0 <= self.baseline_dropout < 1.0,
             f"baseline_dropout must be in [0, 1), got {self.baseline_dropout}")
        need(self.arch != "sitsformer" or self.img_size % self.patch_size == 0,
             f"img_size ({self.img_size}) must be a multiple of patch_size ({self.patch_size})")
        need(self.embed_dim % self.num_heads == 0,
             f"num_heads ({self.num_heads}) must divide embed_dim ({self.embed_dim})")
        need(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        need(self.stem in STEMS, f"stem must be one of {STEMS}, got {self.stem!r}")
        need(self.pool in POOLS, f"pool must be one of {POOLS}, got {self.pool!r}")
        need(self.norm in NORMS, f"norm must be one of {NORMS}, got {self.norm!r}")
        need(self.activation in ACTIVATIONS,
             f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        need(not self.stem_norm or self.stem == "conv3d",
             f"stem_norm (BatchNorm3d in the stem) needs stem='conv3d', got {self.stem!r}")
        self.stem_channels = list(self.stem_channels)
        need(len(self.stem_channels) == 2
             and all(isinstance(c, int) and c > 0 for c in self.stem_channels),
             f"stem_channels must be two positive integers, got {self.stem_channels!r}")
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
