"""Training: the trainer, optimizer/scheduler/criterion factories, checkpoints, tracking.

Everything needed to train a SITS-Former model::

    from sitsformer.training import (SITSFormerTrainer, create_criterion, create_optimizer,
                                     create_scheduler, make_loader)

The trainer is task-agnostic: it calls ``task.forward_loss(model, batch) -> (loss, outputs)``
and the task's metric hooks (protocol in :mod:`sitsformer.training.tasks`); the default task
is :class:`ClassificationTask`. Checkpoints (:mod:`sitsformer.training.checkpoint`) are plain
data, readable with ``torch.load(path, weights_only=True)``, and rebuild the model alone.
"""

from sitsformer.training.checkpoint import load_checkpoint, load_model, save_checkpoint
from sitsformer.training.data_utils import EpochSampler, SampleDataset, make_loader
from sitsformer.training.losses import (
    CrossEntropyLoss,
    FocalLoss,
    compute_class_weights,
    create_criterion,
)
from sitsformer.training.optim import create_optimizer, param_groups
from sitsformer.training.scheduler import create_scheduler
from sitsformer.training.tasks import ClassificationTask
from sitsformer.training.tracking import RunLogger, read_metrics
from sitsformer.training.trainer import (
    NonFiniteLossError,
    SITSFormerTrainer,
    TrainingError,
)

__all__ = [
    "ClassificationTask",
    "CrossEntropyLoss",
    "EpochSampler",
    "FocalLoss",
    "NonFiniteLossError",
    "RunLogger",
    "SITSFormerTrainer",
    "SampleDataset",
    "TrainingError",
    "compute_class_weights",
    "create_criterion",
    "create_optimizer",
    "create_scheduler",
    "load_checkpoint",
    "load_model",
    "make_loader",
    "param_groups",
    "read_metrics",
    "save_checkpoint",
]
