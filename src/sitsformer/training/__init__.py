"""Training: the trainer, tasks, callbacks, optimisation factories, configs and one run recipe.

Everything needed to train a SITS-Former model::

    from sitsformer.training import (SITSFormerTrainer, create_criterion, create_optimizer,
                                     create_scheduler)

The trainer is task-agnostic: it calls ``task.forward_loss(model, batch) -> (loss, outputs)``
and the task's metric hooks (protocol in :mod:`sitsformer.training.tasks`); the default task
is :class:`ClassificationTask`. :func:`run` runs a whole experiment from a config with a
recipe (:mod:`sitsformer.training.run`); ``run_experiment``, ``run_pretraining`` and
``run_finetuning`` are the three recipes. Checkpoints are written with
:func:`sitsformer.models.save_checkpoint` and read back with :func:`sitsformer.models.load_model`;
loaders come from :mod:`sitsformer.data` (:func:`~sitsformer.data.make_loader`).
"""

from sitsformer.training.config import (
    ConfigError,
    ExperimentConfig,
    FinetuneExperimentConfig,
    PretrainExperimentConfig,
    load_config,
)
from sitsformer.training.experiment import TrainRecipe, run_experiment
from sitsformer.training.finetune import FinetuneRecipe, FreezeEncoder, run_finetuning
from sitsformer.training.losses import (
    CrossEntropyLoss,
    FocalLoss,
    compute_class_weights,
    create_criterion,
)
from sitsformer.training.optim import create_optimizer, param_groups
from sitsformer.training.pretrain import PretrainRecipe, ReconstructionTask, run_pretraining
from sitsformer.training.run import Recipe, run
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
    "ConfigError",
    "CrossEntropyLoss",
    "ExperimentConfig",
    "FinetuneExperimentConfig",
    "FinetuneRecipe",
    "FocalLoss",
    "FreezeEncoder",
    "NonFiniteLossError",
    "PretrainExperimentConfig",
    "PretrainRecipe",
    "Recipe",
    "ReconstructionTask",
    "RunLogger",
    "SITSFormerTrainer",
    "TrainRecipe",
    "TrainingError",
    "compute_class_weights",
    "create_criterion",
    "create_optimizer",
    "create_scheduler",
    "load_config",
    "param_groups",
    "read_metrics",
    "run",
    "run_experiment",
    "run_finetuning",
    "run_pretraining",
]
