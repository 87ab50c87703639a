"""A run folder stays consistent after a kill -9 at any instant (issue 13).

Real processes, real SIGKILL: each case forks the test process (torch already imported, so a
case costs a second, not an interpreter start) and the child trains through the CLI with
``SITSFORMER_FAULT_KILL=POINT:N`` set, which makes it send itself SIGKILL the N-th time it
reaches a point of the save sequence; two more cases are killed from outside after a random
delay, and one runs ``python -m sitsformer`` in a fresh subprocess. Each killed run is then
resumed and the folder checked: no temporary file left, every epoch's metrics row present (in
``metrics.jsonl`` and ``metrics.csv``, equal to the checkpoint's history), checkpoints
readable, and the final weights equal to an uninterrupted run's.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sitsformer.cli import main
from sitsformer.models.checkpoint import FAULT_ENV, load_checkpoint

ARGS = ["model.embed_dim=16", "model.num_layers=1", "data.demo_samples=64",
        "data.batch_size=16", "train.threads=1", "logging.progress=false",
        "logging.tensorboard=false", "logging.plots=false", "train.epochs=3"]
SAME = ("epoch", "global_step", "lr", "train_loss", "val_loss", "val_oa")

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("straight") / "run"
    assert main(["train", *ARGS, "--output", str(out)]) == 0
    return load_checkpoint(out / "last.pt")


def forked_run(out: Path, point: str | None = None, kill_after: float | None = None) -> int:
    """Train in a forked child; returns its exit code (-9 when killed)."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 99
        try:
            if point:
                os.environ[FAULT_ENV] = point
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            code = main(["train", *ARGS, "--output", str(out)])
        finally:
            os._exit(code)
    if kill_after is not None:
        time.sleep(kill_after)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def check_consistent(out: Path, straight: dict) -> None:
    assert sorted(p.name for p in out.glob(".*")) == []  # no temporaries left
    last = load_checkpoint(out / "last.pt")
    assert last["epoch"] == 3 and load_checkpoint(out / "best.pt")["epoch"] >= 1
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    with (out / "metrics.csv").open() as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [1, 2, 3]
    for row, hist, ref in zip(rows, last["history"], straight["history"]):
        assert {k: row[k] for k in SAME} == {k: hist[k] for k in SAME}
        assert {k: row[k] for k in SAME} == {k: ref[k] for k in SAME}
    for name, tensor in straight["model_state_dict"].items():
        assert torch.equal(last["model_state_dict"][name], tensor), name


def resume(out: Path) -> None:
    assert main(["train", *ARGS, "--resume", str(out / "last.pt")]) == 0


@pytest.mark.parametrize("point", [
    "checkpoint.opened:best.pt:2",     # best.pt's temporary created, nothing written yet
    "checkpoint.replaced:best.pt:2",   # best.pt of epoch 2, last.pt still of epoch 1
    "checkpoint.opened:last.pt:2",
    "checkpoint.written:last.pt:2",    # complete temporary, not renamed
    "checkpoint.replaced:last.pt:2",   # renamed, the epoch's metrics row not written yet
    "metrics.written:metrics.jsonl:3",  # epoch 2's metrics in a temporary
    "metrics.written:metrics.csv:3",   # jsonl has epoch 2, csv does not yet
    "checkpoint.replaced:last.pt:3",   # the last epoch saved, metrics and test not written
])
def test_kill_at_a_point_of_the_save_sequence(point, straight, tmp_path, one_thread):
    out = tmp_path / "run"
    assert forked_run(out, point) == -signal.SIGKILL
    resume(out)
    check_consistent(out, straight)


@pytest.mark.parametrize("seed", [0, 1])
def test_kill_after_a_random_delay(seed, straight, tmp_path, one_thread):
    out = tmp_path / "run"
    code = forked_run(out, kill_after=random.Random(seed).uniform(0.3, 2.0))
    assert code in (0, -signal.SIGKILL)
    if not (out / "last.pt").exists():  # killed before the first epoch ended
        assert main(["train", *ARGS, "--output", str(out), "--overwrite"]) == 0
    else:
        resume(out)
    check_consistent(out, straight)


def test_kill_a_cli_subprocess_between_checkpoint_and_metrics(straight, tmp_path):
    """The campaign's case, in a fresh interpreter: killed after last.pt of epoch 2 was renamed
    and before its metrics row was written; resuming brings the row back."""
    out = tmp_path / "run"
    env = {**os.environ, FAULT_ENV: "checkpoint.replaced:last.pt:2"}
    done = subprocess.run([sys.executable, "-m", "sitsformer", "train", *ARGS, "--output",
                           str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    rows = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows == [1] and load_checkpoint(out / "last.pt")["epoch"] == 2
    resume(out)
    check_consistent(out, straight)
