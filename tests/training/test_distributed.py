"""torchrun with 2 CPU processes (gloo), stopped and resumed, gives the same run as 1 process
with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from sitsformer.training.config import load_config
from sitsformer.training.experiment import run_experiment
from _helpers import free_port

ARGS = ["train", "data.demo_samples=64", "data.split=random", "data.val_fraction=0.25",
        "data.test_fraction=0.25", "data.batch_size=16", "data.eval_batch_size=8",
        "model.embed_dim=16", "model.num_heads=2", "model.num_layers=1", "model.dropout=0.0",
        "train.epochs=2", "schedule.type=constant", "train.threads=1",
        "logging.tensorboard=false", "logging.plots=false",
        "logging.progress=false", "logging.name=run"]


def _run(cmd: list[str], cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_two_process_torchrun_matches_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    # The 1-process reference runs in this process (saves a second interpreter start-up).
    run_experiment(load_config(overrides=[*ARGS[1:], f"logging.run_dir={one}"]))
    def torchrun() -> list[str]:
        return [sys.executable, "-m", "torch.distributed.run", "--nnodes=1",
                "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={free_port()}",
                "-m", "sitsformer.cli"]

    # 2 processes: epoch 1, stop, then resume for epoch 2 (DDP resume included)
    _run([*torchrun(), *ARGS, "train.epochs=1", f"logging.run_dir={two}"], tmp_path)
    assert torch.load(two / "run" / "last.pt", weights_only=True)["epoch"] == 1
    _run([*torchrun(), *ARGS, f"logging.run_dir={two}", "--resume",
          str(two / "run" / "last.pt")], tmp_path)
    a = torch.load(one / "run" / "last.pt", weights_only=True)
    b = torch.load(two / "run" / "last.pt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 4  # 32 train samples / 16 per step x 2
    for k, v in a["model_state_dict"].items():
        torch.testing.assert_close(b["model_state_dict"][k], v, rtol=1e-4, atol=1e-6)
    for ra, rb in zip(a["history"], b["history"]):
        assert ra["val_oa"] == rb["val_oa"]
        assert ra["val_loss"] == pytest.approx(rb["val_loss"], rel=1e-5)
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-5)
    ta = json.loads((one / "run" / "test_metrics.json").read_text())
    tb = json.loads((two / "run" / "test_metrics.json").read_text())
    assert ta["test_oa"] == tb["test_oa"] and ta["test_kappa"] == pytest.approx(tb["test_kappa"])
    assert len(list((two / "run").glob("*.pt"))) == 2  # rank 0 alone writes files
