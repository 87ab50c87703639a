"""``sitsformer benchmark`` on one tiny setting: the real Rondonia set, 2-fold x 1-repeat
cross-validation, two deep models (the recipe and a smaller one), both baselines, 1 epoch.

The numbers say nothing about accuracy here (one epoch); the tests check that the comparison is
honest: every method is scored on the very same test samples of every fold, the folds
partition the samples, the baselines' scores are those of models fitted on that fold, the
table's statistics are those of the rows, and an interrupted benchmark (SIGKILL, SIGTERM)
resumes to the table of one never stopped.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from sitsformer.cli import main

TINY = ["--sets", "rondonia", "--folds", "2", "--repeats", "1", "--trees", "20", "--rounds",
        "20", "--quiet", "train.epochs=1", "train.min_steps=null", "schedule.warmup_epochs=0",
        "train.threads=1", "model.embed_dim=16", "model.num_layers=1", "logging.plots=false"]
METHODS = ["sitsformer", "small", "random_forest", "lightgbm"]


@pytest.mark.slow
def test_benchmark_rondonia_cv_tiny(shared_data, tmp_path, monkeypatch, capsys):
    from scipy import stats
    from sklearn.ensemble import RandomForestClassifier

    from sitsformer.data import open_source
    from sitsformer.training.benchmark import _features, _unpack, baseline_predict

    monkeypatch.setenv("SITSFORMER_SHARED_DATA", str(shared_data))
    out = tmp_path / "bench"
    args = ["benchmark", *TINY, "--models", "sitsformer,small:model.embed_dim=8", "--output",
            str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "benchmark.json").read_text())
    rows = report["rows"]
    assert [(r["method"], r["unit"]) for r in rows] == [
        (m, u) for u in ("r0f0", "r0f1") for m in METHODS]
    assert report["complete"] and report["splits"]["rondonia"]["protocol"] == "cv"
    # the folds: split files that partition the 160 samples; rows say which fold and seed
    ds = open_source(shared_data / "landsat8_rondonia/landsat8_rondonia.npz")
    labels = np.asarray(ds.labels)
    tested = []
    for r in rows:
        assert (r["protocol"], r["repeat"], r["seed"]) == ("cv", 0, 0)
        assert r["split_file"] == str(out / "splits" / "rondonia" / f"{r['unit']}.csv")
    sides = {}
    for unit in ("r0f0", "r0f1"):
        with open(out / "splits" / "rondonia" / f"{unit}.csv") as fh:
            split = {row["id"]: row["split"] for row in csv.DictReader(fh)}
        sides[unit] = (np.array([int(i) for i, s in split.items() if s == "train"]),
                       np.array([int(i) for i, s in split.items() if s == "test"]))
        tested += sides[unit][1].tolist()
        fold_rows = [r for r in rows if r["unit"] == unit]
        assert {(r["n_train"], r["n_test"]) for r in fold_rows} == {
            (len(sides[unit][0]), len(sides[unit][1]))}
    assert sorted(tested) == list(range(len(labels)))  # each sample tested exactly once
    # the deep models' numbers: the runs' own test scores, on the fold's test samples
    for r in rows:
        if r["kind"] != "model":
            continue
        run = Path(r["run_dir"])
        assert run.name == f"rondonia_{r['method']}_{r['unit']}"
        test = json.loads((run / "test_metrics.json").read_text())
        assert test["test_oa"] == pytest.approx(r["oa"]) and r["run_oa"] == test["test_oa"]
        meta = json.loads((run / "data_meta.json").read_text())
        assert meta["split_sizes"]["test"] == r["n_test"]
        assert meta["input_spec"]["scale"] == 1.0  # NDVI floats: the inferred scale
    import yaml

    assert rows[1]["overrides"] == ["model.embed_dim=8"]  # the model's overrides win
    small = yaml.safe_load((Path(rows[1]["run_dir"]) / "config.yaml").read_text())
    assert small["model"]["embed_dim"] == 8 and small["data"]["split"] == "file"
    # the baselines: refitted here on the fold, they give the same OA
    x = _features(type("D", (), {"labels": labels, "samples": ds})())
    for r in rows:
        fit, test = sides[r["unit"]]
        if r["method"] == "random_forest":
            rf = RandomForestClassifier(n_estimators=20, n_jobs=-1, random_state=r["seed"])
            pred = rf.fit(x[fit], labels[fit]).predict(x[test])
        elif r["method"] == "lightgbm":
            pred = baseline_predict("lightgbm", x, labels, fit, test, r["seed"], rounds=20)
        else:
            continue
        assert r["oa"] == pytest.approx(float((pred == labels[test]).mean()))
        assert np.array_equal(_unpack(r["correct"], r["n_test"]), pred == labels[test])
    # the table: mean and std of the rows; each model against each baseline: the paired
    # difference, the Nadeau-Bengio interval, the verdict and McNemar on the pooled folds
    summary = {e["method"]: e for e in report["summary"]}
    by = {(r["method"], r["unit"]): r for r in rows}
    for method in METHODS:
        oas = [by[(method, u)]["oa"] for u in ("r0f0", "r0f1")]
        assert summary[method]["oa"] == pytest.approx(np.mean(oas))
        assert summary[method]["oa_std"] == pytest.approx(np.std(oas, ddof=1))
    # every model against the baselines; the first (the recipe) also against the other model
    assert set(summary["sitsformer"]["vs"]) == {"random_forest", "lightgbm", "small"}
    assert set(summary["small"]["vs"]) == {"random_forest", "lightgbm"}
    for model in ("sitsformer", "small"):
        for base, v in summary[model]["vs"].items():
            d = np.array([by[(model, u)]["oa"] - by[(base, u)]["oa"] for u in ("r0f0", "r0f1")])
            half = stats.t.ppf(0.975, 1) * math.sqrt((1 / 2 + 80 / 80) * d.var(ddof=1))
            assert v["mean"] == pytest.approx(d.mean()) and v["corrected"]
            assert (v["low"], v["high"]) == (pytest.approx(d.mean() - half),
                                             pytest.approx(d.mean() + half))
            want = ("ahead" if d.mean() - half > 0 else "behind" if d.mean() + half < 0
                    else "not distinguishable")
            assert v["verdict"] == want
            a = np.concatenate([_unpack(by[(model, u)]["correct"], 80) for u in ("r0f0", "r0f1")])
            b = np.concatenate([_unpack(by[(base, u)]["correct"], 80) for u in ("r0f0", "r0f1")])
            only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
            assert (v["model_only"], v["baseline_only"]) == (only_a, only_b)
            assert v["mcnemar_p"] == pytest.approx(
                stats.binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1)
    md = (out / "benchmark.md").read_text()
    assert md in printed and "| rondonia | lightgbm |" in md
    assert "| rondonia | small | random_forest |" in md
    assert "| rondonia | sitsformer | small |" in md
    assert "rondonia: cv: 1 x 2-fold cross-validation of 160 samples, stratified" in md
    assert (out / "benchmark.png").stat().st_size > 0
    with open(out / "benchmark.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [t["method"] for t in table] == METHODS
    assert table[0]["oa_vs_lightgbm_verdict"] == summary["sitsformer"]["vs"]["lightgbm"][
        "verdict"]
    # run again: refused without --overwrite
    assert main(args) == 1 and "--overwrite" in capsys.readouterr().err


def _table(report: dict) -> list:
    """The table without the run times (which differ between two runs)."""
    keep = []
    for e in report["summary"]:
        keep.append({k: v for k, v in e.items() if not k.startswith("seconds")})
    return keep


def _row_scores(rows: list) -> list:
    return [(r["method"], r["unit"], r["oa"], r["kappa"], r["macro_f1"], r["correct"])
            for r in rows]


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["KILL", "TERM"])
def test_benchmark_stopped_mid_fold_resumes_to_the_uninterrupted_table(
        signal_name, shared_data, tmp_path, monkeypatch, capsys):
    """A benchmark stopped in the middle of fold 1's training: SIGKILL leaves the rows of
    fold 0; SIGTERM also writes the table of those rows (exit 130, no traceback). --resume
    keeps fold 0's rows, continues fold 1 from its last.pt, and ends with the table of a
    benchmark never stopped."""
    import os
    import subprocess
    import sys

    monkeypatch.setenv("SITSFORMER_SHARED_DATA", str(shared_data))
    # last.pt written after every epoch, so that the 5th write falls in fold 1
    tiny = ["--models", "sitsformer", *TINY, "train.epochs=3", "train.ensemble=1",
            "train.checkpoint_interval_s=null"]
    ref, out = tmp_path / "ref", tmp_path / "bench"
    assert main(["benchmark", "--output", str(ref), *tiny]) == 0
    env = {**os.environ, "SITSFORMER_FAULT_KILL": "checkpoint.replaced:last.pt:5",
           "SITSFORMER_FAULT_SIGNAL": signal_name}
    stopped = subprocess.run([sys.executable, "-m", "sitsformer", "benchmark", "--output",
                              str(out), *tiny], env=env, capture_output=True, text=True,
                             timeout=600)
    kept = [json.loads(line) for line in (out / "benchmark_rows.jsonl").read_text().splitlines()]
    assert [(r["method"], r["unit"]) for r in kept] == [
        ("sitsformer", "r0f0"), ("random_forest", "r0f0"), ("lightgbm", "r0f0")]
    if signal_name == "KILL":
        assert stopped.returncode == -9, stopped.stderr  # fold 0: 3 epochs; fold 1 dies after 2
        assert not (out / "benchmark.json").exists()
    else:
        assert stopped.returncode == 130, stopped.stderr
        assert "Traceback" not in stopped.stderr and "--resume" in stopped.stderr
        partial = json.loads((out / "benchmark.json").read_text())
        assert not partial["complete"] and "SIGTERM" in partial["interrupted"]
        assert partial["rows"] == kept
        md = (out / "benchmark.md").read_text()
        assert md.startswith("# sitsformer benchmark") and "**Incomplete**" in md
        assert md in stopped.stdout
    capsys.readouterr()
    assert main(["benchmark", "--output", str(out), *tiny]) == 1
    assert "--resume" in capsys.readouterr().err
    assert main(["benchmark", "--output", str(out), "--resume", *tiny]) == 0
    assert "rondonia sitsformer r0f0: kept from" in capsys.readouterr().out
    report = json.loads((out / "benchmark.json").read_text())
    want = json.loads((ref / "benchmark.json").read_text())
    rows = report["rows"]
    assert rows[:3] == kept
    assert rows[3]["resumed_from"] == str(out / "runs" / "rondonia_sitsformer_r0f1" / "last.pt")
    epochs = (out / "runs" / "rondonia_sitsformer_r0f1" / "metrics.jsonl").read_text()
    assert [json.loads(e)["epoch"] for e in epochs.splitlines()] == [1, 2, 3]
    assert _row_scores(rows) == _row_scores(want["rows"])
    assert _table(report) == _table(want) and report["complete"]
    # rows made with other settings are not mixed into the table
    assert main(["benchmark", "--output", str(out), "--resume", *tiny, "model.embed_dim=8"]) == 1
    assert "made with other settings" in capsys.readouterr().err


@pytest.mark.slow
def test_benchmark_victoria_grouped_cv_and_fixed_upstream(shared_data, tmp_path, monkeypatch,
                                                          capsys):
    """Victoria has polygon ids: its group set is cross-validated by polygons (no polygon in
    two folds), its upstream set keeps the published split (fixed protocol, seeds); the table
    says which split each set used."""
    from sitsformer.data import open_source

    monkeypatch.setenv("SITSFORMER_SHARED_DATA", str(shared_data))
    out = tmp_path / "bench"
    assert main(["benchmark", "--sets", "victoria_group,victoria_upstream", "--models",
                 "sitsformer", "--folds", "2",
                 "--repeats", "1", "--seeds", "1", "--baselines", "random_forest", "--trees",
                 "10", "--output", str(out), "--quiet", "train.epochs=1",
                 "train.min_steps=null", "schedule.warmup_epochs=0", "train.threads=1",
                 "train.ensemble=1", "model.embed_dim=16", "model.num_layers=1",
                 "logging.plots=false"]) == 0
    capsys.readouterr()
    report = json.loads((out / "benchmark.json").read_text())
    assert [(r["set"], r["method"], r["unit"]) for r in report["rows"]] == [
        ("victoria_group", m, u) for u in ("r0f0", "r0f1")
        for m in ("sitsformer", "random_forest")] + [
        ("victoria_upstream", m, "s0") for m in ("sitsformer", "random_forest")]
    ds = open_source(shared_data / "s2_victoria_igarss2019/s2_victoria_igarss2019.npz")
    groups = np.asarray(ds.groups)
    tested = []
    for unit in ("r0f0", "r0f1"):
        with open(out / "splits" / "victoria_group" / f"{unit}.csv") as fh:
            split = {int(row["id"]): row["split"] for row in csv.DictReader(fh)}
        test = np.array([i for i, s in split.items() if s == "test"])
        train = np.array([i for i, s in split.items() if s == "train"])
        assert np.intersect1d(groups[train], groups[test]).size == 0  # polygons stay whole
        tested += test.tolist()
    assert sorted(tested) == list(range(800))
    splits = report["splits"]
    assert splits["victoria_group"]["protocol"] == "cv"
    assert splits["victoria_upstream"]["protocol"] == "fixed"
    up = [r for r in report["rows"] if r["set"] == "victoria_upstream"]
    assert {(r["n_test"], r["seed"], r["split_file"]) for r in up} == {(400, 0, None)}
    md = (out / "benchmark.md").read_text()
    assert "victoria_group: cv: 1 x 2-fold cross-validation of 800 samples, grouped by 182 " \
           "group ids (StratifiedGroupKFold" in md
    assert "victoria_upstream: fixed: the 'upstream' split of 800 samples" in md
    # the sets' own 5-day grid reached the training runs (the recipe has none)
    run = Path(report["rows"][0]["run_dir"])
    assert json.loads((run / "data_meta.json").read_text())["input_spec"]["time_axis"] == \
        "dates"
