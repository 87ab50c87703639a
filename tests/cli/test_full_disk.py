"""A full disk (issue 32): one line naming the file, exit code 1, the checkpoints written before
intact. Simulated with the ``SITSFORMER_FAULT_ENOSPC=POINT[:N]`` hook (the N-th and later
writes at POINT raise ``OSError(ENOSPC)``)."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from sitsformer.models.checkpoint import FAULT_ENOSPC_ENV

TINY = ["model.embed_dim=16", "model.num_heads=2", "model.num_layers=1", "train.threads=1",
        "logging.tensorboard=false", "logging.progress=false", "logging.plots=false"]


def _run(args, fault):
    env = {**os.environ, "OMP_NUM_THREADS": "1", FAULT_ENOSPC_ENV: fault}
    return subprocess.run([sys.executable, "-m", "sitsformer", *args], env=env, text=True,
                          capture_output=True, timeout=300)


def test_full_disk_in_train_is_one_line(tmp_path):
    run = tmp_path / "run"
    done = _run(["train", "data.source=demo", "data.demo_samples=48", "data.demo_classes=4",
                 "data.batch_size=16", *TINY, "train.epochs=3", "--output", str(run)],
                "checkpoint.opened:last.pt:2")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: cannot write {run / 'last.pt'}: No space left on device (the disk is full); "
        "the checkpoints already written are intact")
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1  # the first survives


def test_full_disk_in_benchmark_is_one_line(tmp_path, shared_data):
    """The benchmark printed two chained tracebacks (CheckpointWriteError from OSError)."""
    out = tmp_path / "bench"
    done = _run(["benchmark", "--data", str(shared_data / "landsat8_rondonia" /
                                            "landsat8_rondonia.npz"),
                 "--models", "sitsformer", "--baselines", "random_forest", "--protocol", "fixed",
                 "--seeds", "1", "--trees", "10", "--output", str(out), "--quiet",
                 "train.epochs=2", "schedule.warmup_epochs=0", "train.min_steps=null",
                 "train.ensemble=1", *TINY], "checkpoint.opened:last.pt:2")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    last = out / "runs" / "landsat8_rondonia_sitsformer_s0" / "last.pt"
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: cannot write {last}: No space left on device (the disk is full); the rows and "
        "checkpoints already written are intact (continue with --resume once there is room)")
    assert torch.load(last, weights_only=True)["epoch"] == 1
