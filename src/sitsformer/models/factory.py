"""Building models: registered variants, the one settings merge, and the factory.

A *variant* is a named set of settings that differ from the :class:`SITSFormerConfig` defaults
(``@register_model`` on a function returning that dict). :func:`resolve_model_config` is the
only place where defaults, a variant and overrides are merged; :func:`create_model` builds the
architecture its result names (``arch``: the SITS-Former, TempCNN or L-TAE), and the training
recipes, fine-tuning, checkpoints and sweeps go through the same two functions.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from sitsformer.models.baselines import LTAE, TempCNN
from sitsformer.models.config import SITSFORMER_ONLY, SITSFormerConfig
from sitsformer.models.sits_former import SITSFormer

_VARIANTS: dict[str, Callable[[], dict[str, Any]]] = {}
# the class that builds each value of SITSFormerConfig.arch
ARCHITECTURES: dict[str, type[nn.Module]] = {"sitsformer": SITSFormer, "tempcnn": TempCNN,
                                             "ltae": LTAE}
_DEFAULTS = SITSFormerConfig()


def register_model(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """Register a function returning a variant's settings (those that differ from the
    :class:`SITSFormerConfig` defaults), under the function's name."""
    _VARIANTS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Names of all registered variants, sorted."""
    return sorted(_VARIANTS)


def variant_config(name: str) -> dict[str, Any]:
    """The settings a registered variant changes (not the full configuration: see
    :func:`resolve_model_config`)."""
    if name not in _VARIANTS:
        raise KeyError(f"unknown model variant {name!r}; registered: {', '.join(list_models())}")
    return dict(_VARIANTS[name]())


def resolve_model_config(config: dict[str, Any] | str | None = None,
                         **overrides: Any) -> SITSFormerConfig:
    """Defaults <- variant <- settings, validated: the one merge of model settings.

    ``config`` is a variant name, a dict of settings (it may name a variant under
    ``"variant"``), or None. Settings whose value is None are dropped, so unset options never
    override a variant. Unknown keys and invalid values are errors naming them.

    When the result is a baseline (``arch`` other than ``"sitsformer"``), every setting that
    only the SITS-Former reads (:data:`~sitsformer.models.config.SITSFORMER_ONLY`: ``embed_dim``,
    ``num_layers``, ``num_heads``, ``dropout``, ``patch_size`` ...) is reset to its default:
    the baseline ignores it, and the stored config then says so instead of repeating values
    that had no effect. This is what lets a transformer recipe run with
    ``model.variant=tempcnn``; a baseline's own sizes are the ``tempcnn_*`` / ``ltae_*`` /
    ``baseline_dropout`` settings.
    """
    if isinstance(config, str):
        config = {"variant": config}
    merged = {**(config or {}), **overrides}
    variant = merged.pop("variant", None)
    settings = variant_config(variant) if variant else {}
    settings.update({k: v for k, v in merged.items() if v is not None})
    if settings.get("arch", _DEFAULTS.arch) != "sitsformer":
        for name in SITSFORMER_ONLY:
            settings.pop(name, None)
    return SITSFormerConfig.from_dict(settings)


def build_model(config: SITSFormerConfig) -> nn.Module:
    """The untrained model of a resolved config: the class :data:`ARCHITECTURES` names for
    ``config.arch`` (a :class:`SITSFormer`, :class:`~sitsformer.models.TempCNN` or
    :class:`~sitsformer.models.LTAE`)."""
    return ARCHITECTURES[config.arch](config)


def create_model(config: dict[str, Any] | str | None = None, **overrides: Any) -> nn.Module:
    """Build any registered model from a variant name, a config dict, or both.

    ``create_model("tempcnn", in_channels=10, num_classes=8)``, ``create_model("ltae",
    ltae_heads=8)``, ``create_model("sitsformer_pixel", embed_dim=64)``; settings are merged by
    :func:`resolve_model_config` and ``arch`` picks the class (:func:`build_model`).
    """
    return build_model(resolve_model_config(config, **overrides))


def create_sits_former(config: dict[str, Any] | str | None = None, **overrides: Any) -> nn.Module:
    """Build a model from a config dict, a registered variant name, or both: a SITSFormer
    unless the settings name another ``arch`` (then the same as :func:`create_model`).

    ``create_sits_former({"embed_dim": 128, ...})``, ``create_sits_former("sitsformer_original",
    num_classes=8)``; see :func:`resolve_model_config` for how settings are merged.
    """
    return create_model(config, **overrides)


def model_from_config(config: dict[str, Any]) -> nn.Module:
    """Rebuild a model from ``SITSFormerConfig.to_dict()`` output (e.g. stored in a checkpoint);
    a config without ``arch`` (written before it existed) builds a SITSFormer."""
    return build_model(SITSFormerConfig.from_dict(dict(config)))


# --------------------------------------------------------------------------------- variants
# Each lists only what differs from SITSFormerConfig's defaults (the tutorial's scene model:
# 224x224 in 16x16 patches, 13 bands, width 256, 8 layers, 8 heads).
@register_model
def sitsformer_original() -> dict[str, Any]:
    """The published SITS-Former: 5x5 patch, 10 bands, conv3d stem, 3 layers, width 256."""
    return dict(img_size=5, patch_size=5, in_channels=10, num_layers=3, stem="conv3d")


@register_model
def sitsformer_original_exact() -> dict[str, Any]:
    """The original code's function, layer for layer (loads its checkpoints exactly: see
    :func:`sitsformer.models.original.load_original_checkpoint`): ``sitsformer_original`` with
    post-norm layers, ReLU MLPs, the final norm on every token before max-pooling, BatchNorm3d
    in the stem, the original's day-of-year table, attention dropout 0.1 and 75 dates."""
    return dict(sitsformer_original(), norm="post", activation="relu", stem_norm=True,
                date_encoding="original", continuous_doy=False, attn_dropout=0.1,
                max_seq_len=75)


@register_model
def sitsformer_pixel() -> dict[str, Any]:
    """Pixel time series (H = W = 1), 10 bands; the original encoder with a linear embedding."""
    return dict(img_size=1, patch_size=1, in_channels=10, embed_dim=128, num_layers=3,
                num_heads=4, max_seq_len=128)


@register_model
def sitsformer_tiny() -> dict[str, Any]:
    """A few thousand parameters on 8x8 images: for tests and quick experiments."""
    return dict(img_size=8, patch_size=4, in_channels=10, embed_dim=32, num_layers=2,
                num_heads=4, mlp_ratio=2.0)


@register_model
def sitsformer_small() -> dict[str, Any]:
    """64x64 images in 8x8 patches, width 192, 4 layers."""
    return dict(img_size=64, patch_size=8, in_channels=10, embed_dim=192, num_layers=4,
                num_heads=6)


@register_model
def sitsformer_base() -> dict[str, Any]:
    """The tutorial's scene model: 224x224 in 16x16 patches, 13 bands, width 256, 8 layers
    (the SITSFormerConfig defaults)."""
    return {}


# ------------------------------------------------------------------------------- baselines
# Published settings (the config's tempcnn_* / ltae_* / baseline_dropout defaults) for pixel
# time series of 10 bands; in_channels, num_classes and max_seq_len come from the data in
# training. A transformer recipe's SITS-Former settings are ignored (resolve_model_config).
@register_model
def tempcnn() -> dict[str, Any]:
    """TempCNN (Pelletier et al. 2019): 3 convolutions of 64 filters (width 5) with batch norm,
    ReLU and dropout 0.2, a dense layer of 256, softmax; pixel series of 10 bands."""
    return dict(arch="tempcnn", img_size=1, in_channels=10)


@register_model
def ltae() -> dict[str, Any]:
    """L-TAE (Garnot & Landrieu 2020): d_model 256, 16 heads with master queries (d_k 8),
    day-of-year encoding (period 1000), MLP 256-128, decoder 64-32; pixel series of 10 bands."""
    return dict(arch="ltae", img_size=1, in_channels=10)
