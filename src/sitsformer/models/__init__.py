"""Models: SITSFormer, its registered variants and the factory."""

from sitsformer.models._registry import list_models, register_model, variant_config
from sitsformer.models.sits_former import (
    SITSFormer,
    SITSFormerConfig,
    create_sits_former,
    model_from_config,
)

__all__ = [
    "SITSFormer",
    "SITSFormerConfig",
    "create_sits_former",
    "list_models",
    "model_from_config",
    "register_model",
    "variant_config",
]
