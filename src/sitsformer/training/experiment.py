"""Supervised training: the ``train`` recipe (what ``sitsformer train`` and ``demo`` run).

``run_experiment(config)`` reads and splits the source, scales and standardises with
train-split statistics, builds the model, optimizer, scheduler and loss, fits, then evaluates
the best checkpoint on the test split (``test_metrics.json``); under ``torchrun`` with DDP.
All of it is :func:`sitsformer.training.run.run` with the default :class:`Recipe` steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sitsformer.training.config import ExperimentConfig
from sitsformer.training.run import Recipe, run


class TrainRecipe(Recipe):
    """Supervised classification: every default step of :class:`Recipe`."""

    name = "train"


def run_experiment(cfg: ExperimentConfig, resume: str | None = None,
                   run_dir: str | Path | None = None,
                   callbacks: Sequence[Any] = (), allow_changes: bool = False) -> dict[str, Any]:
    """Train and test as configured; see :func:`sitsformer.training.run.run` for the
    arguments and the returned summary."""
    return run(cfg, TrainRecipe(), resume=resume, run_dir=run_dir, callbacks=callbacks,
               allow_changes=allow_changes)
