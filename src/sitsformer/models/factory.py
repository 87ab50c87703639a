"""Building models: registered variants, the one settings merge, and the factory.

A *variant* is a named set of settings that differ from the :class:`SITSFormerConfig` defaults
(``@register_model`` on a function returning that dict). :func:`resolve_model_config` is the
only place where defaults, a variant and overrides are merged; :func:`create_sits_former`
builds from its result, and the training recipes, fine-tuning and sweeps call it too.
"""

from __future__ import annotations

from typing import Any, Callable

from sitsformer.models.config import SITSFormerConfig
from sitsformer.models.sits_former import SITSFormer

_VARIANTS: dict[str, Callable[[], dict[str, Any]]] = {}


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
    """
    if isinstance(config, str):
        config = {"variant": config}
    merged = {**(config or {}), **overrides}
    variant = merged.pop("variant", None)
    settings = variant_config(variant) if variant else {}
    settings.update({k: v for k, v in merged.items() if v is not None})
    return SITSFormerConfig.from_dict(settings)


def create_sits_former(config: dict[str, Any] | str | None = None, **overrides: Any) -> SITSFormer:
    """Build a SITSFormer from a config dict, a registered variant name, or both.

    ``create_sits_former({"embed_dim": 128, ...})``, ``create_sits_former("sitsformer_original",
    num_classes=8)``; see :func:`resolve_model_config` for how settings are merged.
    """
    return SITSFormer(resolve_model_config(config, **overrides))


def model_from_config(config: dict[str, Any]) -> SITSFormer:
    """Rebuild a model from ``SITSFormerConfig.to_dict()`` output (e.g. stored in a checkpoint)."""
    return SITSFormer(SITSFormerConfig.from_dict(dict(config)))


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
