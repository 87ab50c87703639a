"""``sitsformer benchmark`` on one tiny setting: the real Rondonia set, 2 seeds, 1 epoch.

The numbers say nothing about accuracy here (one epoch); the test checks that the comparison is
honest: both methods are scored on the very same test samples for every seed, the forest's
scores are those of a forest fitted on that split, and the table is the mean of the runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sitsformer.cli import main


@pytest.mark.slow
def test_benchmark_rondonia_tiny(shared_data, tmp_path, monkeypatch, capsys):
    from sklearn.ensemble import RandomForestClassifier

    from sitsformer.data import DataModule
    from sitsformer.training.benchmark import DEFAULT_SETS, recipe_without_data
    from sitsformer.training.config import load_config

    monkeypatch.setenv("SITSFORMER_SHARED_DATA", str(shared_data))
    out = tmp_path / "bench"
    args = ["benchmark", "--sets", "rondonia", "--seeds", "2", "--trees", "20", "--output",
            str(out), "--quiet", "train.epochs=1", "train.min_steps=null",
            "schedule.warmup_epochs=0", "train.threads=1",
            "model.embed_dim=16", "model.num_layers=1", "logging.plots=false"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "benchmark.json").read_text())
    rows = report["rows"]
    assert [(r["method"], r["seed"]) for r in rows] == [
        ("sitsformer", 0), ("random_forest", 0), ("sitsformer", 1), ("random_forest", 1)]
    # the transformer's numbers are those its runs wrote, on a test split of the same size
    for r in rows[::2]:
        run = Path(r["run_dir"])
        test = json.loads((run / "test_metrics.json").read_text())
        assert test["test_oa"] == r["oa"] and test["test_kappa"] == r["kappa"]
        assert json.loads((run / "data_meta.json").read_text())["split_sizes"]["test"] == \
            r["n_test"]
    # the forest: the same split, refitted here independently, gives the same OA
    bset = DEFAULT_SETS["rondonia"]
    _, recipe = recipe_without_data(None)
    cfg = load_config(None, [f"data.source={bset.resolved_source()}", "data.split=stratified"],
                      base=recipe)
    dm = DataModule.from_config(cfg.data).read()
    x = np.stack([np.asarray(dm.samples[i]["sequence"]).reshape(-1)
                  for i in range(len(dm.labels))])
    fit = np.concatenate([dm.splits["train"], dm.splits["val"]])
    for r in rows[1::2]:
        rf = RandomForestClassifier(n_estimators=20, n_jobs=-1, random_state=r["seed"])
        pred = rf.fit(x[fit], dm.labels[fit]).predict(x[dm.splits["test"]])
        assert r["oa"] == pytest.approx(float((pred == dm.labels[dm.splits["test"]]).mean()))
        assert r["n_test"] == len(dm.splits["test"])
    # the table is the mean (and sample std) of the runs, with the difference to the forest
    summary = {e["method"]: e for e in report["summary"]}
    for method in ("sitsformer", "random_forest"):
        oas = [r["oa"] for r in rows if r["method"] == method]
        assert summary[method]["oa"] == pytest.approx(np.mean(oas))
        assert summary[method]["oa_std"] == pytest.approx(np.std(oas, ddof=1))
    assert summary["sitsformer"]["oa_vs_forest"] == pytest.approx(
        summary["sitsformer"]["oa"] - summary["random_forest"]["oa"])
    md = (out / "benchmark.md").read_text()
    assert md in printed and "| rondonia | random_forest |" in md
    assert (out / "benchmark.png").stat().st_size > 0 and (out / "benchmark.csv").exists()
    # run again: refused without --overwrite
    assert main(args) == 1 and "--overwrite" in capsys.readouterr().err


@pytest.mark.slow
def test_benchmark_killed_mid_seed_resumes_to_the_uninterrupted_table(shared_data, tmp_path,
                                                                      monkeypatch, capsys):
    """A benchmark killed (SIGKILL) in the middle of seed 1's training: --resume keeps seed 0's
    rows, continues seed 1 from its last.pt, and ends with the table of a run never stopped."""
    import os
    import subprocess
    import sys

    monkeypatch.setenv("SITSFORMER_SHARED_DATA", str(shared_data))
    tiny = ["--sets", "rondonia", "--seeds", "2", "--trees", "20", "--quiet",
            "train.epochs=3", "train.min_steps=null", "train.ensemble=1",
            "schedule.warmup_epochs=0",
            "train.threads=1", "model.embed_dim=16", "model.num_layers=1", "logging.plots=false"]
    ref, out = tmp_path / "ref", tmp_path / "bench"
    assert main(["benchmark", "--output", str(ref), *tiny]) == 0
    env = {**os.environ, "SITSFORMER_FAULT_KILL": "checkpoint.replaced:last.pt:5"}
    killed = subprocess.run([sys.executable, "-m", "sitsformer", "benchmark", "--output",
                             str(out), *tiny], env=env, capture_output=True, text=True,
                            timeout=600)
    assert killed.returncode == -9, killed.stderr  # seed 0: 3 epochs; seed 1 dies after 2
    assert not (out / "benchmark.json").exists()
    kept = [json.loads(line) for line in (out / "benchmark_rows.jsonl").read_text().splitlines()]
    assert [(r["method"], r["seed"]) for r in kept] == [("sitsformer", 0), ("random_forest", 0)]
    capsys.readouterr()
    assert main(["benchmark", "--output", str(out), *tiny]) == 1
    assert "--resume" in capsys.readouterr().err
    assert main(["benchmark", "--output", str(out), "--resume", *tiny]) == 0
    assert "rondonia seed 0: kept from" in capsys.readouterr().out
    rows = json.loads((out / "benchmark.json").read_text())["rows"]
    ref_rows = json.loads((ref / "benchmark.json").read_text())["rows"]
    assert rows[:2] == kept
    assert rows[2]["resumed_from"] == str(out / "runs" / "rondonia_seed1" / "last.pt")
    epochs = (out / "runs" / "rondonia_seed1" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(e)["epoch"] for e in epochs] == [1, 2, 3]
    for r, want in zip(rows, ref_rows, strict=True):
        assert (r["method"], r["seed"]) == (want["method"], want["seed"])
        assert [r[k] for k in ("oa", "kappa", "macro_f1")] == \
            [want[k] for k in ("oa", "kappa", "macro_f1")]
    # rows made with other settings are not mixed into the table
    assert main(["benchmark", "--output", str(out), "--resume", *tiny, "model.embed_dim=8"]) == 1
    assert "made with other settings" in capsys.readouterr().err
