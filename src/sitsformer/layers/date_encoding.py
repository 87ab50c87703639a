"""Encodings of acquisition dates, added to every token of a date.

Four kinds:

* ``sinusoidal`` (default): a fixed sine/cosine code of the day of year (1..366), as in
  SITS-Former. Irregular dates and different dates per sample are handled naturally. The day
  of year is counted on across 1 January (:func:`continuous_doy`), so that a season crossing
  the new year keeps its order.
* ``learned``: one learned vector per day of year (0..366).
* ``days_since``: the sinusoidal code of the number of days since a reference date, for
  seasons that cross 1 January (a winter crop sown in October and harvested in June).
* ``original``: the original SITS-Former code's table (:func:`original_doy_table`): day of
  year 0 (padding) has a zero code, day ``d`` in 1..366 the interleaved sine/cosine code of
  ``d - 1``. Kept as a buffer, so an original checkpoint's table is loaded as it was saved.
"""

from __future__ import annotations

import math

import torch
from torch import nn

DATE_ENCODINGS = ("sinusoidal", "learned", "days_since", "original")


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


def continuous_doy(doy: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Day of year counted on across 1 January: ``(B, T)`` -> ``(B, T)`` int64.

    Dates are in increasing order (the sample contract), so a valid date whose day of year is
    smaller than that of the valid date before it starts a new year, and it and every date
    after it get 365 more: ``[340, 356, 7, 23]`` becomes ``[340, 356, 372, 388]``. A series
    inside one calendar year is unchanged, and the code of a date still depends only on its
    place in the season, not on the calendar year, so a model maps other years. Only valid
    dates (``valid``, True = valid; default: doy > 0, i.e. not padding) are compared, so the
    day of year written at a masked date changes nothing; masked dates keep theirs. A gap of
    more than a year between two consecutive dates cannot be seen from the day of year.

    Without this, a series from July to the next July (Landsat-8 Rondonia) gives the first and
    the last two dates the same code, and January follows December as a jump from 356 to 7.
    """
    d = doy.long()
    valid = d > 0 if valid is None else valid.bool()
    # No slicing, no branch on T and only ONNX-exportable ops (cumsum, scatter, gather), so
    # that torch.export keeps the date axis dynamic. k = number of valid dates up to t; the
    # k-th valid doy is written at slot k, so the one before a valid date is at slot k - 1.
    k = torch.cumsum(valid.long(), dim=-1)
    slots = d.new_zeros((*d.shape[:-1], d.shape[-1] + 1))
    slots = slots.scatter(-1, torch.where(valid, k, 0), d)
    prev_doy = torch.gather(slots, -1, (k - 1).clamp(min=0))
    years = torch.cumsum(valid & (k > 1) & (d < prev_doy), dim=-1)
    return torch.where(valid, d + 365 * years, d)


def original_doy_table(dim: int, max_len: int = 366) -> torch.Tensor:
    """The original SITS-Former's date table ``(max_len + 1, dim)`` float32, computed as its
    ``PositionalEncoding`` does: row 0 zeros, row ``d`` = ``sin``/``cos`` (interleaved: even
    columns sines, odd columns cosines) of ``(d - 1) * 10000 ** (-2i / dim)``."""
    table = torch.zeros(max_len + 1, dim)
    position = torch.arange(0, max_len).float().unsqueeze(1)
    div_term = (torch.arange(0, dim, 2).float() * -(math.log(10000.0) / dim)).exp()
    table[1:, 0::2] = torch.sin(position * div_term)
    table[1:, 1::2] = torch.cos(position * div_term)[:, : dim // 2]
    return table


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
        if kind == "original":
            self.register_buffer("pe", original_doy_table(dim))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        if self.kind == "original":
            if not torch.compiler.is_compiling() and positions.numel():
                lo, hi = int(positions.min()), int(positions.max())
                if lo < 0 or hi >= self.pe.shape[0]:
                    raise ValueError(
                        f"the original date table expects day-of-year values in "
                        f"0..{self.pe.shape[0] - 1}, found {lo}..{hi}")
            return self.pe[positions.long()]
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
