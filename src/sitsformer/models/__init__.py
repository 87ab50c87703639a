"""Models: SITSFormer, the TempCNN and L-TAE baselines, their configuration and registered
variants, the factory, checkpoints and the encoder filter used by fine-tuning.

* :class:`SITSFormerConfig` holds every architecture setting and its default (the only place
  defaults are written); ``arch`` names the architecture (SITS-Former by default, ``"tempcnn"``,
  ``"ltae"``); variants list what they change; :func:`create_model` builds any of them
  (``create_model("tempcnn")``), :func:`create_sits_former` is its older name.
* :func:`save_checkpoint` / :func:`load_checkpoint` / :func:`load_model`: plain-data checkpoints
  that rebuild the model from the file alone and carry its :class:`~sitsformer.data.InputSpec`;
  tutorial-style checkpoints are imported on reading, :func:`import_checkpoint` converts them.
* :func:`load_pretrained_encoder` / :func:`build_finetune_model`: a pre-trained encoder into a
  classifier with a fresh head, exactly.
"""

from sitsformer.models.baselines import LTAE, TempCNN
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
    ARCHITECTURES,
    build_model,
    create_model,
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
    "ARCHITECTURES",
    "FORMAT",
    "LTAE",
    "TempCNN",
    "build_model",
    "create_model",
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
