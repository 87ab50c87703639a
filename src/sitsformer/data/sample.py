"""The sample contract and ``collate``.

A sample is a dict (one convention everywhere in the library):

* ``sequence``   float32 ``(T, C, H, W)``; a pixel series ``(T, C)`` is accepted and reshaped
  to ``(T, C, 1, 1)``.
* ``mask``       bool ``(T,)``: True = a valid (observed, usable) date. Padding and fully
  cloudy dates are False.
* ``doy``        int64 ``(T,)``: day of year 1..366 (0 only at padding).
* ``dates``      optional, the acquisition dates as ``datetime64[D]`` (or int days since
  1970-01-01) ``(T,)``; batched as int64 days since 1970-01-01.
* ``pixel_mask`` optional bool ``(T, H, W)``: True = clear pixel.
* ``label``      int64 scalar (classification) or ``(H, W)`` (per-pixel maps; ``ignore_index``
  marks unlabelled pixels).

``collate`` pads every sample to the longest ``T`` in the batch (padding is invalid: mask
False, doy 0, zeros) and stacks everything with a leading batch axis.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

IGNORE_INDEX = -100
"""Label value that losses and metrics skip (PyTorch's cross-entropy default)."""


class SampleError(ValueError):
    """A sample does not follow the contract; the message names the sample and the key."""


def _as_tensor(value: Any, key: str, where: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "M":  # datetime64 -> int days since epoch
            return torch.from_numpy(value.astype("datetime64[D]").astype(np.int64))
        arr = np.ascontiguousarray(value)
        if not arr.flags.writeable:  # a read-only memory map: torch needs its own copy
            arr = arr.copy()
        return torch.from_numpy(arr)
    try:
        return torch.as_tensor(value)
    except Exception as err:  # noqa: BLE001 - re-raised with context
        raise SampleError(f"{where}: key {key!r} cannot be turned into a tensor ({err})") from err


def check_sample(sample: Mapping[str, Any], where: str = "sample") -> dict[str, torch.Tensor]:
    """Validate one sample and return it as tensors of the contract's dtypes and shapes.

    Raises:
        SampleError: naming ``where`` and the key, with the expected and found shape or dtype.
    """
    for key in ("sequence", "mask"):
        if key not in sample:
            raise SampleError(f"{where}: missing key {key!r} (keys present: {sorted(sample)})")
    seq = _as_tensor(sample["sequence"], "sequence", where).float()
    if seq.dim() == 2:
        seq = seq[:, :, None, None]
    if seq.dim() != 4:
        raise SampleError(
            f"{where}: 'sequence' must be (T, C, H, W) or (T, C), got shape {tuple(seq.shape)}"
        )
    t, _, h, w = seq.shape
    out: dict[str, torch.Tensor] = {"sequence": seq}
    mask = _as_tensor(sample["mask"], "mask", where)
    if tuple(mask.shape) != (t,):
        raise SampleError(f"{where}: 'mask' must be (T,) = ({t},), got {tuple(mask.shape)}")
    out["mask"] = mask.bool()
    if "doy" in sample and sample["doy"] is not None:
        doy = _as_tensor(sample["doy"], "doy", where).long()
        if tuple(doy.shape) != (t,):
            raise SampleError(f"{where}: 'doy' must be (T,) = ({t},), got {tuple(doy.shape)}")
        if t and (int(doy.min()) < 0 or int(doy.max()) > 366):
            raise SampleError(
                f"{where}: 'doy' must be day-of-year values in 0..366, "
                f"found {int(doy.min())}..{int(doy.max())}"
            )
        out["doy"] = doy
    if "dates" in sample and sample["dates"] is not None:
        dates = _as_tensor(sample["dates"], "dates", where).long()
        if tuple(dates.shape) != (t,):
            raise SampleError(f"{where}: 'dates' must be (T,) = ({t},), got {tuple(dates.shape)}")
        out["dates"] = dates
    if "pixel_mask" in sample and sample["pixel_mask"] is not None:
        pm = _as_tensor(sample["pixel_mask"], "pixel_mask", where).bool()
        if tuple(pm.shape) != (t, h, w):
            raise SampleError(
                f"{where}: 'pixel_mask' must be (T, H, W) = {(t, h, w)}, got {tuple(pm.shape)}"
            )
        out["pixel_mask"] = pm
    if "label" in sample and sample["label"] is not None:
        label = _as_tensor(sample["label"], "label", where).long()
        if label.dim() not in (0, 2):
            raise SampleError(
                f"{where}: 'label' must be a scalar or (H, W), got shape {tuple(label.shape)}"
            )
        out["label"] = label
    for key, value in sample.items():  # keep extra numeric scalars (sample index, group id)
        if key in out or key in ("doy", "dates", "pixel_mask", "label"):
            continue
        if (
            isinstance(value, (bool, int, float, np.number))
            or (isinstance(value, torch.Tensor) and value.ndim == 0)
            or (isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "biuf")
        ):
            out[key] = torch.as_tensor(value)
    return out


def _pad_time(x: torch.Tensor, length: int, value: float | bool | int = 0) -> torch.Tensor:
    if x.shape[0] == length:
        return x
    pad = x.new_full((length - x.shape[0], *x.shape[1:]), value)
    return torch.cat([x, pad], dim=0)


def collate(samples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """Pad a list of samples to the longest ``T`` and stack them into a batch.

    Returns:
        ``sequence (B, T, C, H, W)``, ``mask (B, T)`` bool, ``doy (B, T)`` int64 (all zeros when
        no sample has dates), ``label (B,)`` or ``(B, H, W)`` when present, ``dates (B, T)`` and
        ``pixel_mask (B, T, H, W)`` when any sample has them, plus any other numeric key.
    """
    if len(samples) == 0:
        raise SampleError("collate got an empty list of samples")
    checked = [check_sample(s, where=f"sample {i} of the batch") for i, s in enumerate(samples)]
    shapes = {tuple(s["sequence"].shape[1:]) for s in checked}
    if len(shapes) > 1:
        raise SampleError(f"samples in one batch must share (C, H, W); found {sorted(shapes)}")
    t_max = max(s["sequence"].shape[0] for s in checked)
    _, h, w = next(iter(shapes))
    batch: dict[str, torch.Tensor] = {
        "sequence": torch.stack([_pad_time(s["sequence"], t_max) for s in checked]),
        "mask": torch.stack([_pad_time(s["mask"], t_max, False) for s in checked]),
        "doy": torch.stack([
            _pad_time(s.get("doy", torch.zeros(s["mask"].shape[0], dtype=torch.long)), t_max)
            for s in checked
        ]),
    }
    if any("dates" in s for s in checked):
        missing = [i for i, s in enumerate(checked) if "dates" not in s]
        if missing:
            raise SampleError(f"samples {missing} have no 'dates' while others in the batch do")
        batch["dates"] = torch.stack([_pad_time(s["dates"], t_max) for s in checked])
    if any("pixel_mask" in s for s in checked):
        batch["pixel_mask"] = torch.stack([
            _pad_time(s["pixel_mask"] if "pixel_mask" in s
                      else s["mask"][:, None, None].expand(-1, h, w), t_max, False)
            for s in checked
        ])
    if any("label" in s for s in checked):
        missing = [i for i, s in enumerate(checked) if "label" not in s]
        if missing:
            raise SampleError(f"samples {missing} have no 'label' while others in the batch do")
        batch["label"] = torch.stack([s["label"] for s in checked])
    extra = set().union(*(s.keys() for s in checked)) - set(batch)
    for key in sorted(extra):
        if all(key in s and s[key].dim() == 0 for s in checked):
            batch[key] = torch.stack([s[key] for s in checked])
    return batch
