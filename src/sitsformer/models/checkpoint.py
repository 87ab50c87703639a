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

Files are written to a temporary name in the same folder (``.<name>.<random>.tmp``) and renamed
with ``os.replace``, so a crash never leaves a half-written file under the real name; a
temporary left by a killed process is removed by :func:`remove_stale_temporaries` (the trainer
calls it when a run starts or resumes). A write that fails (full disk, read-only folder) raises
:class:`CheckpointWriteError` naming the file, and the file of that name is left as it was.

Reading never runs code: :func:`load_checkpoint` uses ``weights_only=True`` and turns every
failure (empty, truncated or corrupt file, a file holding Python objects) into one
:class:`CheckpointError` line naming the file and the reason. Checkpoints written the way the
public tutorial writes them (a dict with ``model_state_dict``, ``optimizer_state_dict``,
``model_config``, ``epoch`` ...) are imported on reading (see :func:`load_checkpoint`), and so
are the original SITS-Former code's files (:mod:`sitsformer.models.original`).
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import signal
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sitsformer.data.spec import InputSpec
from sitsformer.models.factory import model_from_config, resolve_model_config

FORMAT = "sitsformer-checkpoint/2"
READABLE_FORMATS = ("sitsformer-checkpoint/1", FORMAT)
REQUIRED_KEYS = ("format", "model_config", "model_state_dict", "epoch", "global_step")
TEMPORARY_GLOB = ".*.tmp"  # save_checkpoint's (and the run logger's) temporary files
FAULT_ENV = "SITSFORMER_FAULT_KILL"
FAULT_SIGNAL_ENV = "SITSFORMER_FAULT_SIGNAL"
FAULT_ENOSPC_ENV = "SITSFORMER_FAULT_ENOSPC"


class CheckpointError(ValueError):
    """A checkpoint cannot be read or used; the message names the file and the reason."""


class CheckpointWriteError(OSError):
    """A checkpoint (or another run file) could not be written; the message names the file."""


_fault_counts: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Crash-test hook: ``SITSFORMER_FAULT_KILL=NAME[:N]`` makes the process send itself
    SIGKILL the ``N``-th time (default 1) it reaches the point ``NAME``, e.g.
    ``checkpoint.replaced:last.pt:2``; ``SITSFORMER_FAULT_SIGNAL=TERM`` (or ``INT``) sends that
    signal instead (a polite stop); ``SITSFORMER_FAULT_ENOSPC=NAME[:N]`` makes that point
    raise ``OSError(ENOSPC)`` instead (a full disk), from the ``N``-th time on. Unset (always,
    outside crash tests) it does nothing but read two environment variables; it is called a
    few times per epoch, never per step."""
    for env in (FAULT_ENV, FAULT_ENOSPC_ENV):
        want = os.environ.get(env)
        if not want:
            continue
        target, _, nth = want.rpartition(":")
        if not nth.isdigit():
            target, nth = want, "1"
        if target != name:
            continue
        key = f"{env}:{name}"
        _fault_counts[key] = _fault_counts.get(key, 0) + 1
        if env == FAULT_ENV and _fault_counts[key] == int(nth):
            sig = os.environ.get(FAULT_SIGNAL_ENV, "KILL").upper().removeprefix("SIG")
            os.kill(os.getpid(), getattr(signal, f"SIG{sig}"))
        if env == FAULT_ENOSPC_ENV and _fault_counts[key] >= int(nth):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files (``.<name>.*.tmp``) a killed writer left in ``folder``;
    returns the paths removed. Call it only when no other process writes to the folder."""
    removed = []
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.glob(TEMPORARY_GLOB):
            if p.is_file():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def write_error(path: Path, err: OSError) -> CheckpointWriteError:
    """A :class:`CheckpointWriteError` naming ``path`` and the system's reason."""
    reason = err.strerror or str(err)
    hint = {28: " (the disk is full)", 30: " (read-only file system)",
            13: " (no permission to write there)"}.get(err.errno or 0, "")
    return CheckpointWriteError(err.errno, f"cannot write {path}: {reason}{hint}")


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` atomically to ``path`` (temporary file + ``os.replace``).

    ``"format"`` is added when missing. Returns the path written.
    """
    path = Path(path)
    state = {"format": FORMAT, **state}
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        fault_point(f"checkpoint.opened:{path.name}")
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        fault_point(f"checkpoint.written:{path.name}")
        os.replace(tmp, path)
        fault_point(f"checkpoint.replaced:{path.name}")
    except BaseException as err:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise write_error(path, err) from err
        if isinstance(err, RuntimeError) and "write" in str(err).lower():  # torch's zip writer
            raise CheckpointWriteError(None, f"cannot write {path}: {_first_line(err)}") from err
        raise
    return path


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _read_error(path: Path, err: BaseException) -> CheckpointError:
    """One line saying why ``path`` cannot be read (never torch's weights_only=False hint)."""
    size = path.stat().st_size
    if size == 0:
        return CheckpointError(f"{path}: not a readable checkpoint: the file is empty (0 bytes)")
    if isinstance(err, pickle.UnpicklingError) and "weights only" in str(err).lower():
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        detail = f" (it asks for {found.group(1)})" if found else ""
        return CheckpointError(
            f"{path}: refused: the file holds Python objects, not plain data{detail}; loading "
            "them could run code, and sitsformer checkpoints never contain any")
    if isinstance(err, PermissionError):
        return CheckpointError(f"{path}: cannot read the checkpoint: {err.strerror}")
    return CheckpointError(f"{path}: not a readable checkpoint: the file is truncated or "
                           f"corrupt ({size} bytes; {_first_line(err)})")


def _import_foreign(path: Path, ckpt: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint written the way the public tutorial's ``save_checkpoint`` writes it (a dict
    with ``model_state_dict`` and ``model_config``, no ``format``) as a format-2 checkpoint:
    the model config completed with the defaults, ``global_step`` 0 when unknown, an input
    spec that passes values through unchanged (band names ``band0`` ...), and the original
    keys kept. Warns that the input preparation is unknown."""
    config = ckpt.get("model_config")
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{path}: holds model weights ('model_state_dict') but no 'model_config' dict, so "
            "the architecture is unknown; rebuild the model with create_sits_former(...) and "
            "load checkpoint['model_state_dict'] into it")
    try:
        resolved = resolve_model_config(dict(config)).to_dict()
    except ValueError as err:
        raise CheckpointError(f"{path}: its model_config cannot be used: {err}") from None
    warnings.warn(f"{path}: imported a tutorial-style checkpoint (model_state_dict + "
                  "model_config); it records no input preparation, so inputs are used as "
                  "given (no scaling, no standardisation, bands band0...)", UserWarning,
                  stacklevel=3)
    spec = InputSpec.from_data_meta({}, resolved).to_dict()
    return {**ckpt, "format": FORMAT, "model_config": resolved, "input_spec": spec,
            "epoch": int(ckpt.get("epoch") or 0), "global_step": int(ckpt.get("global_step") or 0),
            "imported_from": "tutorial-style checkpoint (model_state_dict + model_config)"}


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` and check its format.

    A dict with ``model_state_dict`` and ``model_config`` but no ``format`` (the public
    tutorial's ``save_checkpoint``) is imported: see :func:`_import_foreign`.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: (a ``ValueError``) the file is empty, truncated or corrupt, holds
            Python objects that are not plain data, or is not a sitsformer checkpoint (names
            the file and the missing keys).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, EOFError, OSError, RuntimeError, zipfile.BadZipFile,
            ValueError, KeyError, AttributeError, TypeError, IndexError) as err:
        raise _read_error(path, err) from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dict, found "
                              f"{type(ckpt).__name__}")
    from sitsformer.models.original import detect_original, original_to_checkpoint

    if detect_original(ckpt) is not None:  # the original SITS-Former code's files
        try:
            return original_to_checkpoint(ckpt, str(path))
        except ValueError as err:
            raise CheckpointError(str(err)) from None
    if "format" in ckpt:  # a library checkpoint stores every setting of its version
        _settings_before_continuous_doy(ckpt.get("model_config"))
    elif "model_state_dict" in ckpt:
        ckpt = _import_foreign(path, ckpt)
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: not a {FORMAT} checkpoint, missing key(s) {missing}")
    if ckpt["format"] not in READABLE_FORMATS:
        raise CheckpointError(f"{path}: checkpoint format {ckpt['format']!r}, expected one of "
                              f"{list(READABLE_FORMATS)}")
    if not ckpt.get("input_spec") and (ckpt.get("data_meta") or ckpt["format"] != FORMAT):
        ckpt["input_spec"] = InputSpec.from_data_meta(dict(ckpt.get("data_meta") or {}),
                                                      ckpt["model_config"]).to_dict()
    return ckpt


def _settings_before_continuous_doy(config: Any) -> None:
    """A model config written before ``continuous_doy`` existed encoded the plain day of year:
    keep it so (``continuous_doy=False``) in it and in every model config nested in it
    (ensemble members, a pre-training encoder)."""
    if isinstance(config, dict):
        if "date_encoding" in config:
            config.setdefault("continuous_doy", False)
        for value in config.values():
            _settings_before_continuous_doy(value)
    elif isinstance(config, list):
        for value in config:
            _settings_before_continuous_doy(value)


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
    try:
        model = model_from_checkpoint(ckpt)
        model.load_state_dict(ckpt["model_state_dict"])
    except (ValueError, RuntimeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: the stored weights do not fit the stored model "
                              f"config: {_first_line(err)}") from None
    model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu")
    model.eval()
    return model, ckpt


def import_checkpoint(src: str | os.PathLike[str], dst: str | os.PathLike[str],
                      input_spec: InputSpec | dict[str, Any] | None = None) -> Path:
    """Convert a checkpoint (a tutorial-style one, or an older format) into a format-2
    checkpoint at ``dst``, optionally with the ``input_spec`` its model expects (bands, scale,
    normalisation; without one, inputs are used as given). Returns ``dst``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ckpt = load_checkpoint(src)
    if input_spec is not None:
        ckpt["input_spec"] = (input_spec.to_dict() if hasattr(input_spec, "to_dict")
                              else dict(input_spec))
    ckpt["format"] = FORMAT
    return save_checkpoint(dst, ckpt)
