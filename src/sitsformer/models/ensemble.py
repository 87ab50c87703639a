"""``SITSEnsemble``: K classifiers of one architecture whose class probabilities are averaged.

Seeds differ by several OA points on small data sets; averaging the probabilities of a few
models trained with different seeds is steadier than any one of them. The ensemble is one
module, stored in one checkpoint (``model_config = {"ensemble": [member configs]}``;
:func:`~sitsformer.models.model_from_checkpoint` rebuilds it), so ``evaluate`` and ``predict``
use it like a single model.

Its forward returns the logarithm of the mean probability, so ``softmax(output)`` is exactly
the mean of the members' ``softmax`` outputs and ``argmax`` is the ensemble's vote.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from sitsformer.models.factory import model_from_config

__all__ = ["SITSEnsemble"]


class SITSEnsemble(nn.Module):
    """The probability average of ``members`` (classifiers with equal ``config``, e.g.
    :class:`~sitsformer.models.SITSFormer` models trained with different seeds).

    ``config`` is the members' config (inputs, classes and sizes are theirs).
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        configs = [m.config.to_dict() for m in members]  # type: ignore[operator]
        for i, c in enumerate(configs[1:], 1):
            diff = sorted(k for k in c if c[k] != configs[0].get(k))
            if diff:
                raise ValueError(f"ensemble member {i} differs from member 0 in {diff}")
        self.members = nn.ModuleList(members)
        self.config = members[0].config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SITSEnsemble:
        """Untrained members from ``{"ensemble": [member config dicts]}``."""
        return cls([model_from_config(dict(c)) for c in config["ensemble"]])

    def config_dict(self) -> dict[str, Any]:
        """What a checkpoint stores as ``model_config``."""
        return {"ensemble": [m.config.to_dict() for m in self.members]}  # type: ignore[operator]

    def forward(self, sequences: torch.Tensor, masks: torch.Tensor | None = None,
                **kwargs: Any) -> torch.Tensor:
        """``log(mean_k softmax(member_k(...)))``, shape ``(B, num_classes)``."""
        probs = torch.stack([m(sequences, masks, **kwargs).float().softmax(-1)
                             for m in self.members]).mean(0)
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()
