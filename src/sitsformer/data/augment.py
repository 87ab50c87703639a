"""Temporal augmentation of training samples (applied after the input preparation).

Random transforms the field uses on pixel and patch time series, each on a whole prepared
sample dict (numpy arrays, as :class:`~sitsformer.data.PreparedDataset` serves them):

* :class:`RandomDateDropout`: every valid date is hidden (``mask`` False) with probability
  ``p``; at least one valid date is always kept. The series keeps its length, so the model
  simply sees fewer observations, as under clouds.
* :class:`RandomDateShift`: the day of year (and ``dates``) of the whole series moves by a
  random whole number of days in ``[-max_days, max_days]`` (acquisition calendars differ
  from year to year). Day of year stays in 1..366 (it wraps around the year); padded dates
  (doy 0) are left alone.
* :class:`BandNoise`: Gaussian noise of standard deviation ``std`` (in standardised units when
  the spec normalises) added to the valid observations.

:func:`train_augmentation` builds the composition a config's ``data`` section asks for
(``data.date_dropout``, ``data.date_shift_days``, ``data.band_noise``), or None when all are
off. Randomness comes from ``torch``'s generator (distinct streams per DataLoader worker;
``torch.manual_seed`` makes a run repeatable). Only the training split is augmented.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sitsformer.data.errors import DataError
from sitsformer.data.transforms import Compose

__all__ = ["BandNoise", "RandomDateDropout", "RandomDateShift", "train_augmentation"]


class RandomDateDropout:
    """Hide each valid date with probability ``p`` (``mask`` False); keep at least one."""

    def __init__(self, p: float) -> None:
        if not 0.0 <= p < 1.0:
            raise DataError(f"date dropout probability must be in [0, 1), got {p}")
        self.p = float(p)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        mask = np.asarray(sample["mask"]).astype(bool)
        valid = np.flatnonzero(mask)
        if self.p == 0.0 or valid.size <= 1:
            return sample
        drop = torch.rand(valid.size).numpy() < self.p
        if drop.all():
            drop[int(torch.randint(0, valid.size, ()))] = False
        out = dict(sample)
        new = mask.copy()
        new[valid[drop]] = False
        out["mask"] = new
        return out

    def __repr__(self) -> str:
        return f"RandomDateDropout(p={self.p})"


class RandomDateShift:
    """Move the whole series by a random number of days in ``[-max_days, max_days]``."""

    def __init__(self, max_days: int) -> None:
        if max_days < 0:
            raise DataError(f"date shift must be >= 0 days, got {max_days}")
        self.max_days = int(max_days)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        if self.max_days == 0:
            return sample
        shift = int(torch.randint(-self.max_days, self.max_days + 1, ()))
        return self.apply(sample, shift)

    @staticmethod
    def apply(sample: dict[str, Any], shift: int) -> dict[str, Any]:
        """Deterministic version: every date moves by ``shift`` days."""
        out = dict(sample)
        if sample.get("doy") is not None:
            doy = np.asarray(sample["doy"]).astype(np.int64)
            moved = (doy - 1 + shift) % 366 + 1
            out["doy"] = np.where(doy > 0, moved, 0)
        if sample.get("dates") is not None:
            dates = np.asarray(sample["dates"])
            out["dates"] = dates + (np.timedelta64(shift, "D") if dates.dtype.kind == "M"
                                    else shift)
        return out

    def __repr__(self) -> str:
        return f"RandomDateShift(max_days={self.max_days})"


class BandNoise:
    """Add Gaussian noise (standard deviation ``std``) to the valid observations."""

    def __init__(self, std: float) -> None:
        if std < 0:
            raise DataError(f"band noise std must be >= 0, got {std}")
        self.std = float(std)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        if self.std == 0.0:
            return sample
        x = np.asarray(sample["sequence"], np.float32)
        noise = torch.randn(x.shape).numpy().astype(np.float32) * np.float32(self.std)
        valid = np.asarray(sample["mask"]).astype(bool).reshape((-1,) + (1,) * (x.ndim - 1))
        out = dict(sample)
        out["sequence"] = np.where(valid, x + noise, x)
        return out

    def __repr__(self) -> str:
        return f"BandNoise(std={self.std})"


def train_augmentation(date_dropout: float = 0.0, date_shift_days: int = 0,
                       band_noise: float = 0.0) -> Compose | None:
    """The training-split augmentation (date shift, then date dropout, then band noise), or
    None when every setting is 0."""
    steps: list[Any] = []
    if date_shift_days:
        steps.append(RandomDateShift(date_shift_days))
    if date_dropout:
        steps.append(RandomDateDropout(date_dropout))
    if band_noise:
        steps.append(BandNoise(band_noise))
    return Compose(steps) if steps else None
