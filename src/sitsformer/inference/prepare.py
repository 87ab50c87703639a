"""Prepare raw input values the way the model saw them in training (from ``data_meta``).

A checkpoint's ``data_meta`` may hold (every key optional):

* ``bands``: band names the model was trained on, in order;
* ``classes``: class names (index = class);
* ``scale``: input values are divided by it, as the trainer did (``10000``: reflectance x
  10000 -> reflectance). Not applied when the raster reader already rescaled the values (a
  source whose ``scale`` attribute is set, e.g. ``GeoTiffTimeSeries(..., scale=10000)``);
* ``normalization`` (or ``norm``): ``{"mean": [C], "std": [C]}`` applied after the scale;
* ``time_axis``: ``"dates"`` (positions are days of year / dates) or ``"t_index"`` (the model
  was trained on time-step positions 1..T because the dates were unknown).

:func:`check_compatible` refuses input that does not match (a wrong map is worse than none).
"""

from __future__ import annotations

import re
from typing import Any, Callable

import numpy as np

__all__ = ["InputMismatchError", "check_compatible", "input_transform"]


class InputMismatchError(ValueError):
    """The input does not match what the checkpoint was trained on (bands, dates, size)."""


_GENERIC = re.compile(r"^(band_?)?\d+$", re.IGNORECASE)  # band0, band_1, 2: no real name


def _norm(meta: dict[str, Any]) -> dict[str, Any] | None:
    norm = meta.get("normalization", meta.get("norm"))
    if norm is None and "mean" in meta and "std" in meta:
        norm = {"mean": meta["mean"], "std": meta["std"]}
    return norm


def input_transform(data_meta: dict[str, Any] | None, apply_scale: bool = True,
                    ) -> Callable[[np.ndarray], np.ndarray]:
    """A function mapping raw values ``(..., C, H, W)`` to model inputs (scale, normalisation).

    Args:
        data_meta: the checkpoint's ``data_meta``.
        apply_scale: False when the reader already applied the scale.
    """
    meta = dict(data_meta or {})
    scale = meta.get("scale") if apply_scale else None
    norm = _norm(meta)
    mean = std = None
    if norm is not None and norm.get("mean") is not None and norm.get("std") is not None:
        mean = np.asarray(norm["mean"], dtype=np.float32).reshape(-1, 1, 1)  # (C, 1, 1)
        std = np.asarray(norm["std"], dtype=np.float32).reshape(-1, 1, 1)

    def apply(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if scale not in (None, 0, 1):
            x = x / np.float32(scale)
        if mean is not None:
            if mean.shape[0] != x.shape[-3]:
                raise InputMismatchError(f"normalisation statistics are for {mean.shape[0]} "
                                         f"bands, the input has {x.shape[-3]}")
            x = (x - mean) / std
        return x

    return apply


def check_compatible(model_config: dict[str, Any], data_meta: dict[str, Any] | None,
                     bands: list[str], has_dates: bool, num_dates: int,
                     where: str = "input") -> None:
    """Raise :class:`InputMismatchError` when the input does not fit the checkpoint.

    Args:
        model_config: the checkpoint's ``model_config`` (``in_channels``, ``bands``,
            ``max_seq_len``, ``date_encoding``).
        data_meta: the checkpoint's ``data_meta`` (``bands``, ``time_axis``).
        bands: band names of the input.
        has_dates: whether the input knows its acquisition dates.
        num_dates: number of dates ``T`` in the input.
        where: name of the input, for messages.
    """
    meta = dict(data_meta or {})
    want_bands = meta.get("bands") or model_config.get("bands")
    n_in = int(model_config.get("in_channels", len(bands)))
    if len(bands) != n_in:
        raise InputMismatchError(
            f"{where}: the checkpoint expects {n_in} bands"
            + (f" {list(want_bands)}" if want_bands else "") + f", the input has {len(bands)} "
            f"{list(bands)}")
    if want_bands:
        want = [str(b) for b in want_bands]
        generic = all(_GENERIC.match(b) for b in bands) or all(_GENERIC.match(b) for b in want)
        if not generic and [b.lower() for b in bands] != [b.lower() for b in want]:
            raise InputMismatchError(
                f"{where}: band mismatch: the checkpoint was trained on {want}, the input has "
                f"{list(bands)} (same order required)")
    time_axis = meta.get("time_axis")
    encoding = model_config.get("date_encoding", "sinusoidal")
    if not has_dates and (time_axis == "dates" or encoding == "days_since"):
        raise InputMismatchError(
            f"{where}: the checkpoint was trained with acquisition dates (time_axis="
            f"{time_axis!r}, date_encoding={encoding!r}) but the input has no dates")
    if has_dates and time_axis == "t_index":
        raise InputMismatchError(
            f"{where}: the checkpoint was trained on time-step positions 1..T (dates unknown, "
            "time_axis='t_index'); a dated raster would be read as different dates. Retrain with "
            "dates, or map an input prepared the same way as the training data")
    max_len = model_config.get("max_seq_len")
    if max_len is not None and num_dates > int(max_len):
        raise InputMismatchError(
            f"{where}: {num_dates} dates but the model accepts at most max_seq_len={max_len}; "
            "select a date range of the input")
