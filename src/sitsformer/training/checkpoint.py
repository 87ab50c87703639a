"""Checkpoints as plain data: readable with ``torch.load(path, weights_only=True)``.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts (format
``"sitsformer-checkpoint/1"``) holding everything needed to rebuild the model from the file alone
(``model_config``), to resume training exactly (optimizer, scheduler, grad-scaler and RNG
states, epoch, step, best metric), and to apply the model to new data the same way as in
training (``data_meta``: bands, classes, scale, normalisation statistics, date handling).

Files are written to a temporary name in the same folder and renamed with ``os.replace``, so a
crash never leaves a half-written file under the real name.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sitsformer.models import SITSFormer, model_from_config

FORMAT = "sitsformer-checkpoint/1"
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
    if ckpt["format"] != FORMAT:
        raise ValueError(f"{path}: checkpoint format {ckpt['format']!r}, expected {FORMAT!r}")
    return ckpt


def load_model(path: str | os.PathLike[str], map_location: Any = "cpu",
               ) -> tuple[SITSFormer, dict[str, Any]]:
    """Rebuild the model stored in a checkpoint from the file alone.

    Returns:
        ``(model, checkpoint)``: the model in eval mode with its weights loaded, and the
        checkpoint dict (``data_meta`` tells how to prepare inputs).
    """
    ckpt = load_checkpoint(path, map_location)
    model = model_from_config(dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["model_state_dict"])
    model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu")
    model.eval()
    return model, ckpt


# ----------------------------------------------------------------------------- RNG states
def get_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) RNG states as plain data."""
    py = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npst = state["numpy"]
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
