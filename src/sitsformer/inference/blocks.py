"""One block of map inference, and the ledger of finished blocks that makes a run resumable.

:func:`predict_block` is what every worker runs: read one window (plus its halo) from the
source, classify its pixels, write the result to its own file in the run's parts folder
(written under a temporary name and renamed, so a part is either whole or absent) and return
its pixel counts. :class:`BlockLedger` is that folder: ``run.json`` (what the run is: model,
source and settings, so a rerun with other settings cannot mix its blocks in) and
``ledger.jsonl`` (one line per finished block, appended and flushed by the process that
collects the results). A block counts as done when its ledger line and its part file are there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sitsformer.data.spec import InputSpec
from sitsformer.models.checkpoint import fault_point
from sitsformer.parallel import tune_worker_malloc, worker_index

__all__ = ["BlockLedger", "BlockSettings", "fingerprint", "parts_dir", "predict_block",
           "read_block"]

_MODELS: dict[int, tuple[Any, torch.nn.Module]] = {}  # per process: model id -> (device, model)


@dataclass
class BlockSettings:
    """Everything a block needs besides the model, the source and its window."""

    spec: InputSpec
    scaled: bool
    overlap: int
    half: int
    edge_mode: str
    batch_size: int
    dates: np.ndarray | None
    device: str
    precision: str
    k: int
    cls_nodata: int
    probabilities: bool
    probabilities_dtype: str = "float32"
    torch_threads: int | None = None


def parts_dir(output: str | os.PathLike[str]) -> Path:
    """The hidden folder beside ``output`` holding a run's finished blocks."""
    out = Path(output)
    return out.with_name(f".{out.name}.parts")


def block_device(device: str, gpus: int | None = None) -> torch.device:
    """The device this process computes blocks on. ``"cuda"`` without an index on a machine
    with several GPUs (``gpus``, default: the visible ones) means one worker per GPU: worker
    ``i`` (:func:`sitsformer.parallel.worker_index`) uses GPU ``i % gpus``."""
    dev = torch.device(device)
    gpus = torch.cuda.device_count() if gpus is None else int(gpus)
    if dev.type == "cuda" and dev.index is None and gpus > 1:
        dev = torch.device("cuda", worker_index() % gpus)
    return dev


def _worker_model(model: torch.nn.Module, device: str) -> tuple[torch.nn.Module, torch.device]:
    """The model on this process's device, moved there once per process."""
    cached = _MODELS.get(id(model))
    if cached is not None and cached[1] is model:
        return model, cached[0]
    dev = block_device(device)
    model.eval().to(dev)
    _MODELS[id(model)] = (dev, model)
    return model, dev


def read_block(src: Any, s: BlockSettings, window: tuple[int, int, int, int],
               ) -> tuple[np.ndarray, np.ndarray]:
    """Read and prepare one window plus its halo (what :func:`predict_block` classifies)."""
    from sitsformer.inference.predict import _read_window

    r0, c0, h, w = window
    return _read_window(src, lambda x: s.spec.prepare_array(x, scaled=s.scaled), r0, c0, h, w,
                        s.overlap, s.edge_mode)


def predict_block(model: torch.nn.Module, src: Any, s: BlockSettings, folder: Path,
                  index: int, window: tuple[int, int, int, int],
                  block: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """Classify one window, write ``block_<index>.npz`` into ``folder``, return its counts.
    ``block``: the window already read by :func:`read_block` (None: read it here)."""
    from sitsformer.inference.predict import _predict_window

    fault_point("predict.block")  # crash tests: SITSFORMER_FAULT_KILL=predict.block:N
    tune_worker_malloc()
    if s.torch_threads:
        torch.set_num_threads(int(s.torch_threads))
    model, dev = _worker_model(model, s.device)
    if s.precision == "fp32":
        autocast: Any = contextlib.nullcontext()
    else:
        autocast = torch.autocast(dev.type, dtype=torch.bfloat16 if s.precision == "bf16"
                                  else torch.float16)
    doy = days = None
    if s.dates is not None:
        d = np.asarray(s.dates).astype("datetime64[D]")
        doy = torch.from_numpy((d - d.astype("datetime64[Y]")).astype(np.int64) + 1)
        days = torch.from_numpy(d.astype(np.int64))
    x, pm = block if block is not None else read_block(src, s, window)
    _, _, h, w = window
    cls, conf, prob, nodata = _predict_window(
        model, x, pm, h, w, s.overlap, s.half, s.batch_size, doy, days, dev, autocast, s.k,
        s.cls_nodata, s.probabilities)
    arrays: dict[str, np.ndarray] = {"cls": cls.astype(np.uint8 if s.cls_nodata == 255
                                                       else np.uint16), "conf": conf}
    if prob is not None:
        arrays["prob"] = compact_probabilities(prob) if s.probabilities_dtype == "uint8" \
            else prob
    part = folder / f"block_{index:07d}.npz"
    tmp = part.with_name(f".{part.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, part)
    valid = cls != s.cls_nodata
    counts = np.bincount(cls[valid].astype(np.int64), minlength=s.k)[:s.k]
    return {"nodata": int(nodata), "counts": counts.tolist()}


def compact_probabilities(prob: np.ndarray) -> np.ndarray:
    """float probabilities (nodata < 0) -> ``uint8`` round(254 p), nodata 255."""
    q = np.clip(np.rint(prob * 254.0), 0, 254).astype(np.uint8)
    q[prob < 0] = 255
    return q


def fingerprint(model: torch.nn.Module, src: Any, where: str, s: BlockSettings,
                windows: list[tuple[int, int, int, int]]) -> dict[str, Any]:
    """What a run is: a rerun resumes only when all of this is the same."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    files = [str(f) for f in getattr(src, "files", [])]
    return {"model_sha256": h.hexdigest(), "source": where, "files": files,
            "height": int(src.height), "width": int(src.width), "bands": list(src.bands),
            "dates": None if s.dates is None else [str(d) for d in s.dates],
            "spec": s.spec.to_dict(), "windows": len(windows), "first_window": list(windows[0]),
            "overlap": s.overlap, "edge_mode": s.edge_mode, "precision": s.precision,
            "probabilities": s.probabilities, "probabilities_dtype": s.probabilities_dtype}


class BlockLedger:
    """The parts folder of one run (module doc).

    Args:
        folder: the parts folder (:func:`parts_dir`).
        run: the run's :func:`fingerprint`.
        overwrite: discard the parts of an earlier run with other settings instead of refusing
            (parts of the same run are always resumed).

    Raises:
        FileExistsError: the folder holds parts of a run with other settings (names them).
    """

    def __init__(self, folder: Path, run: dict[str, Any], *, overwrite: bool = False) -> None:
        self.folder = Path(folder)
        self.done: dict[int, dict[str, Any]] = {}
        run = json.loads(json.dumps(run, default=str))
        meta = self.folder / "run.json"
        before = json.loads(meta.read_text()) if meta.exists() else None
        changed = [] if before is None else sorted(
            k for k in set(before) | set(run) if before.get(k) != run.get(k))
        if self.folder.exists() and (changed and overwrite or before is None):
            shutil.rmtree(self.folder)
            before = None
        if before is not None:
            if changed:
                raise FileExistsError(
                    f"{self.folder} holds the unfinished blocks of a run with other settings "
                    f"({', '.join(changed)} differ); rerun with the same settings to resume, or "
                    "pass overwrite=True / --overwrite to discard them")
            self._read()
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = meta.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(run, indent=1))
            os.replace(tmp, meta)
        self._fh = open(self.folder / "ledger.jsonl", "a")

    def _read(self) -> None:
        path = self.folder / "ledger.jsonl"
        if not path.exists():
            return
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
            if self.part(entry["block"]).exists():
                self.done[int(entry["block"])] = entry

    def part(self, index: int) -> Path:
        return self.folder / f"block_{index:07d}.npz"

    def add(self, index: int, stats: dict[str, Any]) -> None:
        """Record a finished block (its part file is already there)."""
        entry = {"block": int(index), **stats}
        self._fh.write(json.dumps(entry) + "\n")
        self._fh.flush()  # in the OS's hands: survives a killed process (no fsync: a
        # power cut may lose the last lines, which then are only recomputed)
        self.done[int(index)] = entry

    def read(self, index: int) -> dict[str, np.ndarray]:
        with np.load(self.part(index)) as z:
            return {k: z[k] for k in z.files}

    def remove(self) -> None:
        """Delete the folder (the outputs are complete)."""
        self._fh.close()
        shutil.rmtree(self.folder, ignore_errors=True)
