"""One writer per output (issue 32): a run, benchmark or map output is locked with ``flock``;
a second writer is refused with a one-line message naming the holder's pid and host; the lock
of a killed process does not block."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import yaml

from sitsformer.cli import main
from sitsformer.parallel.locks import LOCK_NAME, output_lock

TINY = ["data.demo_samples=48", "data.demo_classes=4", "data.batch_size=16",
        "model.embed_dim=16", "model.num_heads=2", "model.num_layers=1", "train.threads=1",
        "logging.tensorboard=false", "logging.progress=false", "logging.plots=false"]


def _train(config, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "sitsformer", "train", "--config",
                             str(config), *TINY, *extra], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_second_train_on_one_run_folder_is_refused(tmp_path):
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"variant": "sitsformer_pixel"}, "data": {"source": "demo"},
        "logging": {"run_dir": str(tmp_path / "runs"), "name": "exp"}}))
    run = tmp_path / "runs" / "exp"
    first = _train(config, "train.epochs=100000")
    try:
        deadline = time.time() + 120
        while not (run / "metrics.csv").exists():  # the first writer is training
            assert first.poll() is None, first.communicate()
            assert time.time() < deadline
            time.sleep(0.2)
        second = _train(config, "train.epochs=1", "--overwrite")
        out, err = second.communicate(timeout=120)
        assert second.returncode == 1, err
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert lines == [f"error: run folder {run} is in use by another sitsformer process "
                         f"(pid {first.pid} on host {socket.gethostname()}, since "
                         + lines[0].split(", since ", 1)[1]]
        assert "wait for it to finish, or choose another output" in lines[0]
        # without --overwrite too: the lock is named, not the files the holder writes
        second = _train(config, "train.epochs=1")
        out, err = second.communicate(timeout=120)
        assert second.returncode == 1 and err.strip().splitlines()[-1] == lines[0], err
        assert first.poll() is None  # the holder goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    # the holder is dead: its lock file stays, but does not block
    assert (run / LOCK_NAME).exists()
    third = _train(config, "train.epochs=1", "--overwrite")
    out, err = third.communicate(timeout=120)
    assert third.returncode == 0, err
    assert not (run / LOCK_NAME).exists()  # removed by the writer that ended


def test_benchmark_and_predict_outputs_are_locked(tmp_path, capsys):
    bench = tmp_path / "bench"
    with output_lock(bench, what="benchmark folder"):
        assert main(["benchmark", "--output", str(bench), "--data", "demo", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"error: benchmark folder {bench} is in use by another sitsformer process " \
           f"(pid {os.getpid()} on host {socket.gethostname()}" in err
    assert not (bench / "benchmark_rows.jsonl").exists()
