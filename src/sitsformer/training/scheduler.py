"""``create_scheduler``: warm-up + cosine, step, multi-step, exponential, constant, plateau.

Every schedule except ``plateau`` is a pure function of the step count it has been stepped
(``LambdaLR`` with a picklable callable), so its state is plain numbers and resume is exact.

The unit of a step is chosen once:

* without ``steps_per_epoch`` the schedule counts **epochs**: call ``scheduler.step()`` once per
  epoch (as the tutorial does); ``num_epochs``, ``warmup_epochs``, ``step_size`` are epochs.
* with ``steps_per_epoch`` (optimizer updates per epoch) it counts **updates**: call
  ``scheduler.step()`` after every optimizer step; epochs are converted to updates, so the
  warm-up rises smoothly within the first epochs.

The chosen unit is stored on the scheduler as ``scheduler.interval`` (``"epoch"`` or ``"step"``),
which :class:`~sitsformer.training.SITSFormerTrainer` reads. ``plateau`` returns
``ReduceLROnPlateau`` (interval ``"epoch"``), stepped with the validation loss.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau

SCHEDULERS = ("cosine", "step", "multistep", "exponential", "constant", "linear", "plateau")


class WarmupSchedule:
    """LR multiplier as a function of the step: linear warm-up then a decay.

    The warm-up goes from ``1 / (warmup + 1)`` at step 0 to 1 at step ``warmup``. After it:
    ``cosine`` and ``linear`` go from 1 to ``min_ratio`` at step ``total`` and stay there;
    ``step`` multiplies by ``gamma`` every ``step_size`` steps, ``multistep`` at each milestone;
    ``exponential`` by ``gamma`` every step; ``constant`` stays at 1.
    """

    def __init__(self, kind: str, total: int, warmup: int = 0, min_ratio: float = 0.0,
                 step_size: int = 1, gamma: float = 0.1, milestones: list[int] | None = None):
        self.kind = kind
        self.total = int(total)
        self.warmup = int(warmup)
        self.min_ratio = float(min_ratio)
        self.step_size = int(step_size)
        self.gamma = float(gamma)
        self.milestones = [int(m) for m in (milestones or [])]

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        s = step - self.warmup
        if self.kind in ("cosine", "linear"):
            span = max(1, self.total - self.warmup)
            progress = min(1.0, s / span)
            shape = (0.5 * (1.0 + math.cos(math.pi * progress)) if self.kind == "cosine"
                     else 1.0 - progress)
            return self.min_ratio + (1.0 - self.min_ratio) * shape
        if self.kind == "step":
            return self.gamma ** (s // self.step_size)
        if self.kind == "multistep":
            return self.gamma ** sum(step >= m for m in self.milestones)
        if self.kind == "exponential":
            return self.gamma ** s
        return 1.0


def create_scheduler(optimizer: torch.optim.Optimizer, scheduler_type: str = "cosine",
                     num_epochs: int = 100, warmup_epochs: float = 0, min_lr: float = 0.0,
                     step_size: int = 30, gamma: float = 0.1,
                     milestones: list[int] | None = None, steps_per_epoch: int | None = None,
                     patience: int = 10, factor: float = 0.1, mode: str = "min",
                     **kwargs: Any) -> LRScheduler | ReduceLROnPlateau:
    """Build a learning-rate scheduler (see the module docstring for step units).

    Args:
        optimizer: the optimizer whose groups' current ``lr`` is the peak learning rate.
        scheduler_type: one of ``cosine``, ``linear``, ``step``, ``multistep``, ``exponential``,
            ``constant``, ``plateau``.
        num_epochs: length of the run (cosine/linear decay ends there).
        warmup_epochs: linear warm-up length in epochs (fractions allowed with steps_per_epoch).
        min_lr: the cosine/linear floor, absolute (each group keeps its ratio to the base lr).
        step_size, gamma: ``step`` decay every ``step_size`` epochs by ``gamma``
            (``exponential`` uses ``gamma`` per epoch).
        milestones: epochs at which ``multistep`` multiplies by ``gamma``.
        steps_per_epoch: optimizer updates per epoch; given, the scheduler is stepped per update.
        patience, factor, mode: ``plateau`` settings.
        **kwargs: passed to ``ReduceLROnPlateau``.

    Returns:
        The scheduler, with ``.interval`` set to ``"epoch"`` or ``"step"``.
    """
    kind = scheduler_type.lower()
    if kind not in SCHEDULERS:
        raise ValueError(f"scheduler_type must be one of {SCHEDULERS}, got {scheduler_type!r}")
    if kind == "plateau":
        sched: Any = ReduceLROnPlateau(optimizer, mode=mode, factor=factor, patience=patience,
                                       min_lr=min_lr, **kwargs)
        sched.interval = "epoch"
        return sched
    if kind == "step" and int(step_size) < 1:
        raise ValueError(f"step_size must be >= 1 (epochs between decays), got {step_size}")
    per = int(steps_per_epoch) if steps_per_epoch else 1
    if per < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    lambdas = []
    for group in optimizer.param_groups:
        base = group.get("initial_lr", group["lr"])
        lambdas.append(WarmupSchedule(
            kind, total=num_epochs * per, warmup=round(warmup_epochs * per),
            min_ratio=(min_lr / base) if base > 0 else 0.0, step_size=step_size * per,
            gamma=gamma if kind != "exponential" or per == 1 else gamma ** (1.0 / per),
            milestones=[m * per for m in (milestones or [])],
        ))
    sched = LambdaLR(optimizer, lambdas)
    sched.interval = "step" if steps_per_epoch else "epoch"
    return sched
