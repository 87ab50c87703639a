"""Encodings of acquisition dates, added to every token of a date.

Three kinds:

* ``sinusoidal`` (default): a fixed sine/cosine code of the day of year (1..366), as in
  SITS-Former. Irregular dates and different dates per sample are handled naturally.
* ``learned``: one learned vector per day of year (0..366).
* ``days_since``: the sinusoidal code of the number of days since a reference date, for
  seasons that cross 1 January (a winter crop sown in October and harvested in June).
"""

from __future__ import annotations

import math

import torch
from torch import nn

DATE_ENCODINGS = ("sinusoidal", "learned", "days_since")


def sinusoidal_encoding(positions: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sine/cosine code of real-valued positions.

    Args:
        positions: ``(...)`` day numbers (any real values).
        dim: code width (even).

    Returns:
        ``(..., dim)`` float32; the first half are sines, the second half cosines.
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=positions.device, dtype=torch.float32) / half
    )
    args = positions.float()[..., None] * freqs
    code = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if dim % 2:
        code = torch.nn.functional.pad(code, (0, 1))
    return code


class DateEncoding(nn.Module):
    """Map date positions ``(B, T)`` to codes ``(B, T, D)``.

    Args:
        kind: one of ``sinusoidal``, ``learned``, ``days_since``.
        dim: code width.
    """

    def __init__(self, kind: str, dim: int):
        super().__init__()
        if kind not in DATE_ENCODINGS:
            raise ValueError(f"date_encoding must be one of {DATE_ENCODINGS}, got {kind!r}")
        self.kind = kind
        self.dim = dim
        self.table = nn.Embedding(367, dim) if kind == "learned" else None
        if self.table is not None:
            nn.init.trunc_normal_(self.table.weight, std=0.02)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        if self.table is not None:
            if torch.compiler.is_compiling():
                # Under torch.compile / torch.export the range check (a value-dependent host
                # synchronisation) is left out so that the graph stays whole; eager runs keep it.
                return self.table(positions.long())
            lo, hi = int(positions.min()), int(positions.max())
            if lo < 0 or hi > 366:
                raise ValueError(
                    f"learned date encoding expects day-of-year values in 0..366, found {lo}..{hi}"
                )
            return self.table(positions.long())
        return sinusoidal_encoding(positions, self.dim)
