"""``sitsformer demo`` trains on GENERATED data, tests, and says where everything is."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sitsformer.cli import main
from sitsformer.data import DataWarning


def test_demo_runs_and_reports_paths(tmp_path, capsys):
    # 96 samples in 24 groups of 4: the group split keeps whole groups, none left for validation
    with pytest.warns(DataWarning, match=r"demo: data.val_fraction=0.15 but the 'group' split "
                      r"of 96 samples left no validation sample \(24 groups"):
        code = main(["demo", "--epochs", "2", "--output", str(tmp_path),
                     "data.demo_samples=96", "model.embed_dim=16", "model.num_layers=1",
                     "train.threads=1", "logging.progress=false", "logging.tensorboard=false"])
    assert code == 0
    out = capsys.readouterr().out
    assert "GENERATED" in out
    run = Path(re.search(r"run folder:\s+(\S+)", out).group(1))
    assert run.parent == tmp_path
    metrics = Path(re.search(r"metrics:\s+(\S+)", out).group(1))
    plots = Path(re.search(r"plots:\s+(\S+)", out).group(1))
    assert metrics.exists() and plots.exists() and len(metrics.read_text().splitlines()) == 3
    test = json.loads((run / "test_metrics.json").read_text())
    assert re.search(rf"oa={test['test_oa']:.4f}", out)


def test_logs_get_one_line_per_epoch_and_no_bars(tmp_path):
    """Output to a file or pipe (a log) has no carriage-return bars, one line per epoch.
    (SITSFORMER_PROGRESS=1 bringing them back is checked where a bar is asserted:
    tests/data/test_cli_data.py, tests/maps/test_smoothing.py.)"""
    import os
    import subprocess
    import sys

    argv = [sys.executable, "-m", "sitsformer", "demo", "--epochs", "2", "--output",
            str(tmp_path), "data.demo_samples=96", "model.embed_dim=16", "model.num_layers=1",
            "train.threads=1", "logging.tensorboard=false"]
    env = {k: v for k, v in os.environ.items() if k != "SITSFORMER_PROGRESS"}
    # bytes: text mode would turn every carriage return into a newline
    done = subprocess.run(argv, capture_output=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    log = (done.stdout + done.stderr).decode()
    assert "\r" not in log
    assert [line.split()[1] for line in log.splitlines()
            if line.startswith("epoch ")] == ["1/2", "2/2"]
