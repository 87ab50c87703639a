"""Checkpoints as plain data: readable with ``torch.load(path, weights_only=True)``.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts (format
``"sitsformer-checkpoint/2"``) holding everything needed to rebuild the model from the file alone
(``model_config``), to resume training exactly (optimizer, scheduler, grad-scaler and RNG
states, epoch, step, best metric), and to apply the model to new data the same way as in
training (``input_spec``: :class:`~sitsformer.data.InputSpec` as a dict: bands, classes, scale,
normalisation statistics, time axis, longest series, sample size), plus ``data_meta``, facts
about the run's data (source, split sizes, exclusions).

Format 1 checkpoints (no ``input_spec``; everything in ``data_meta``) are still read:
:func:`load_checkpoint` adds the ``input_spec`` their ``data_meta`` implies.

Files are written to a temporary name in the same folder and renamed with ``os.replace``, so a
crash never leaves a half-written file under the real name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sitsformer.data.spec import InputSpec
from sitsformer.models.factory import model_from_config

FORMAT = "sitsformer-checkpoint/2"
READABLE_FORMATS = ("sitsformer-checkpoint/1", FORMAT)
REQUIRED_KEYS = ("format", "model_config", "model_state_dict", "epoch", "global_step")


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` atomically to ``path`` (temporary file + ``os.replace``).

    ``"format"`` is added when missing. Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, **state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` and check its format.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a sitsformer checkpoint (names the missing keys).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: expected a checkpoint dict, found {type(ckpt).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"{path}: not a {FORMAT} checkpoint, missing key(s) {missing}")
    if ckpt["format"] not in READABLE_FORMATS:
        raise ValueError(f"{path}: checkpoint format {ckpt['format']!r}, expected one of "
                         f"{list(READABLE_FORMATS)}")
    if not ckpt.get("input_spec") and (ckpt.get("data_meta") or ckpt["format"] != FORMAT):
        ckpt["input_spec"] = InputSpec.from_data_meta(dict(ckpt.get("data_meta") or {}),
                                                      ckpt["model_config"]).to_dict()
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """An untrained model of the architecture a checkpoint stores: a
    :class:`~sitsformer.models.SITSFormer`, a
    :class:`~sitsformer.models.pretrain.SITSFormerForPretraining` for a pre-training checkpoint,
    or a :class:`~sitsformer.models.ensemble.SITSEnsemble` (``model_config["ensemble"]``)."""
    config = dict(ckpt["model_config"])
    if "ensemble" in config:
        from sitsformer.models.ensemble import SITSEnsemble

        return SITSEnsemble.from_config(config)
    if "encoder" in config:
        from sitsformer.models.pretrain import SITSFormerForPretraining

        return SITSFormerForPretraining.from_config(config)
    return model_from_config(config)


def load_model(path: str | os.PathLike[str], map_location: Any = "cpu",
               ) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored in a checkpoint from the file alone.

    Returns:
        ``(model, checkpoint)``: the model in eval mode with its weights loaded, and the
        checkpoint dict (``InputSpec.from_checkpoint(checkpoint)`` tells how to prepare inputs).
    """
    ckpt = load_checkpoint(path, map_location)
    model = model_from_checkpoint(ckpt)
    model.load_state_dict(ckpt["model_state_dict"])
    model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu")
    model.eval()
    return model, ckpt
