"""``sitsformer demo`` trains on GENERATED data, tests, and says where everything is."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sitsformer.cli import main


def test_demo_runs_and_reports_paths(tmp_path, capsys):
    code = main(["demo", "--epochs", "2", "--output", str(tmp_path), "data.demo_samples=96",
                 "model.embed_dim=16", "model.num_layers=1", "train.threads=1",
                 "logging.progress=false", "logging.tensorboard=false"])
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
