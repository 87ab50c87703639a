"""Weight averaging: an exponential moving average (EMA) of a model's weights.

Picking one epoch on a small validation carve is noisy (a few samples decide); averaging the
weights of the last updates gives a smoother model without asking the validation split. With
``train.ema_decay`` set, :class:`~sitsformer.training.SITSFormerTrainer` updates a
:class:`WeightEMA` after every optimizer update, validates the averaged weights, and stores
them as the checkpoints' ``model_state_dict`` (what ``evaluate`` and ``predict`` load); the
raw training weights travel as ``train_model_state_dict`` so that a resumed run continues
exactly.

The update after the ``n``-th optimizer step (``n = 1, 2, ...``) is::

    d = min(decay, (1 + n) / (10 + n))          # warm-up: early weights are forgotten fast
    ema = d * ema + (1 - d) * weights

for every floating-point parameter and buffer (other buffers are copied). The average starts
from the weights it is created with.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["WeightEMA"]


class WeightEMA:
    """The exponential moving average of ``model``'s weights (see the module doc).

    Args:
        model: the model being trained (a DDP wrapper's ``module``).
        decay: the long-run decay, in (0, 1); e.g. 0.99 averages over about 100 updates.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        """The decay the next update uses."""
        n = self.updates + 1
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step of the average towards ``model``'s current weights."""
        d = self.current_decay()
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if s.is_floating_point():
                s.mul_(d).add_(v.detach().to(s.dtype), alpha=1.0 - d)
            else:
                s.copy_(v)
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights, as a model ``state_dict``."""
        return {k: v.clone() for k, v in self.shadow.items()}

    def load(self, weights: dict[str, torch.Tensor], updates: int) -> None:
        """Restore the average (from a checkpoint's ``model_state_dict``) and its step count."""
        for k, v in weights.items():
            self.shadow[k].copy_(v)
        self.updates = int(updates)

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        """Within the block, ``model`` holds the averaged weights; afterwards its own again."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield
        finally:
            model.load_state_dict(own)

    def __repr__(self) -> str:
        return f"WeightEMA(decay={self.decay}, updates={self.updates})"


def ema_extra(ema: WeightEMA | None) -> dict[str, Any]:
    """Checkpoint entries of an average (its step count and decay)."""
    return {} if ema is None else {"ema_updates": ema.updates, "ema_decay": ema.decay}
