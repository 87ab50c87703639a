"""Models: SITSFormer, its configuration and registered variants, the factory, checkpoints
and the encoder filter used by fine-tuning.

* :class:`SITSFormerConfig` holds every architecture setting and its default (the only place
  defaults are written); variants list what they change; :func:`create_sits_former` builds.
* :func:`save_checkpoint` / :func:`load_checkpoint` / :func:`load_model`: plain-data checkpoints
  that rebuild the model from the file alone and carry its :class:`~sitsformer.data.InputSpec`;
  tutorial-style checkpoints are imported on reading, :func:`import_checkpoint` converts them.
* :func:`load_pretrained_encoder` / :func:`build_finetune_model`: a pre-trained encoder into a
  classifier with a fresh head, exactly.
"""

from sitsformer.models.checkpoint import (
    FORMAT,
    CheckpointError,
    CheckpointWriteError,
    import_checkpoint,
    load_checkpoint,
    load_model,
    model_from_checkpoint,
    save_checkpoint,
)
from sitsformer.models.config import SITSFormerConfig
from sitsformer.models.ensemble import SITSEnsemble
from sitsformer.models.factory import (
    create_sits_former,
    list_models,
    model_from_config,
    register_model,
    resolve_model_config,
    variant_config,
)
from sitsformer.models.original import OriginalCheckpointError, load_original_checkpoint
from sitsformer.models.pretrained import (
    PretrainedMismatchError,
    build_finetune_model,
    check_encoder_compatible,
    load_pretrained_encoder,
    pretrained_encoder_state,
    unwrap_model,
)
from sitsformer.models.sits_former import SITSFormer

__all__ = [
    "FORMAT",
    "CheckpointError",
    "CheckpointWriteError",
    "OriginalCheckpointError",
    "PretrainedMismatchError",
    "SITSFormer",
    "SITSEnsemble",
    "SITSFormerConfig",
    "build_finetune_model",
    "check_encoder_compatible",
    "create_sits_former",
    "import_checkpoint",
    "list_models",
    "load_checkpoint",
    "load_model",
    "load_original_checkpoint",
    "load_pretrained_encoder",
    "model_from_checkpoint",
    "model_from_config",
    "pretrained_encoder_state",
    "register_model",
    "resolve_model_config",
    "save_checkpoint",
    "unwrap_model",
    "variant_config",
]
