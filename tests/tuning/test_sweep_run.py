"""Running sweeps: pruning, invalid and failing trials, resuming, results, real training."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest
import yaml
from toy_runner import ToyRunner

from sitsformer.training.config import load_config
from sitsformer.tuning import SweepSpecError, load_sweep_spec, open_study, run_sweep

PNG = b"\x89PNG\r\n\x1a\n"


def grid_sweep(out, values, **extra):
    return {"method": "grid", "metric": {"name": "val_accuracy", "goal": "maximize"},
            "epochs": 3, "output_dir": str(out),
            "pruner": {"type": "median", "n_startup_trials": 2, "n_warmup_steps": 0},
            "parameters": {"learning_rate": {"values": values}}, **extra}


def test_pruner_stops_poor_trials_on_the_epoch_metric(tmp_path):
    result = run_sweep(grid_sweep(tmp_path, [5.0, 4.0, 1.0, 4.8]), runner=ToyRunner(),
                       progress=False, plots=False)
    df = pd.read_csv(result.table_csv)
    assert df["optim.lr"].tolist() == [5.0, 4.0, 1.0, 4.8]  # grid point k = trial k
    # trials 0 and 1 complete (their best epoch is the last: 5 and 4); trial 2 reports 1/3 at
    # epoch 1, below the median (4.5/3) of the completed trials there: pruned after 1 epoch;
    # trial 3 (4.8/3 at epoch 1) is above that median and completes.
    assert df["state"].tolist() == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"]
    assert df["epochs_run"].tolist() == [3, 3, 1, 3]
    assert df["val_accuracy"].tolist()[:2] == [5.0, 4.0]
    assert df["last_reported"][2] == pytest.approx(1 / 3)
    assert result.best_number == 0 and result.best_value == 5.0
    assert result.counts == {"complete": 3, "pruned": 1}


def test_invalid_and_failing_trials_are_recorded_not_fatal(tmp_path):
    sweep = grid_sweep(tmp_path, [1.0], pruner="none")
    sweep["parameters"].update({"num_heads": {"values": [4, 3]},
                                "dropout": {"values": [0.1, 0.5]}})
    sweep["parameters"]["embed_dim"] = {"value": 16}
    result = run_sweep(sweep, runner=ToyRunner(), progress=False, plots=False)
    df = pd.read_csv(result.table_csv).set_index(["model.num_heads", "model.dropout"])
    assert len(df) == 4
    assert df.loc[(4, 0.1), "status"] == "complete"
    assert df.loc[(4, 0.5), "status"] == "failed"
    assert df.loc[(4, 0.5), "state"] == "FAIL"
    assert df.loc[(4, 0.5), "error"] == "RuntimeError: toy training diverged"
    for dropout in (0.1, 0.5):  # 16 % 3 != 0: invalid whatever the dropout, never run
        assert df.loc[(3, dropout), "status"] == "invalid"
        assert df.loc[(3, dropout), "epochs_run"] == 0
        assert "num_heads (3) must divide embed_dim (16)" in df.loc[(3, dropout), "error"]
    assert result.counts == {"complete": 1, "failed": 1, "invalid": 2}
    study = open_study(load_sweep_spec(sweep))
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL][0]
    assert "toy training diverged" in failed.user_attrs["traceback"]
    assert "| failed |" in result.table_md.read_text()


def test_interrupted_sweep_continues_where_it_stopped(tmp_path):
    sweep = {"method": "random", "metric": {"name": "val_oa", "goal": "maximize"}, "trials": 3,
             "epochs": 2, "seed": 3, "output_dir": str(tmp_path), "pruner": "none",
             "parameters": {"lr": {"distribution": "uniform", "min": 0.0, "max": 1.0}}}
    first = run_sweep(sweep, runner=ToyRunner(), progress=False, plots=False)
    before = pd.read_csv(first.table_csv)
    # Ctrl-C during the 2nd trial of the next run: that trial is queued again
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, trials=6, runner=ToyRunner(interrupt_on={2}), progress=False)
    result = run_sweep(sweep, trials=6, runner=ToyRunner(), progress=False, plots=False)
    df = pd.read_csv(result.table_csv)
    pd.testing.assert_frame_equal(df.iloc[:3][["number", "optim.lr", "val_oa"]],
                                  before[["number", "optim.lr", "val_oa"]])
    retried = df[df["retried"]]
    assert len(retried) == 1 and retried["status"].item() == "interrupted"
    counted = df[~df["retried"]]
    assert len(counted) == 6 and (counted["state"] == "COMPLETE").all()
    # the interrupted trial's parameters were run again, exactly once
    assert (counted["optim.lr"] == retried["optim.lr"].item()).sum() == 1
    # a finished sweep run again does nothing more
    again = run_sweep(sweep, trials=6, runner=ToyRunner(), progress=False, plots=False)
    assert again.n_trials == 7


def test_results_table_best_config_and_plots(tmp_path):
    sweep = {"method": "bayes", "metric": {"name": "val_accuracy", "goal": "maximize"},
             "trials": 6, "epochs": 2, "seed": 0, "output_dir": str(tmp_path),
             "pruner": "none", "parameters": {
                 "learning_rate": {"distribution": "log_uniform_values", "min": 1e-3, "max": 1.0},
                 "num_layers": {"distribution": "int_uniform", "min": 1, "max": 4}}}
    result = run_sweep(sweep, runner=ToyRunner(), progress=False)
    df = pd.read_csv(result.table_csv)
    assert len(df) == 6 and df["number"].tolist() == list(range(6))
    scores = df["optim.lr"] + 0.01 * df["model.num_layers"]
    assert df["val_accuracy"].tolist() == pytest.approx(scores.tolist())
    best = int(scores.idxmax())
    assert result.best_number == best
    written = yaml.safe_load(result.best_config.read_text())
    assert written == {"optim.lr": df["optim.lr"][best], "train.epochs": 2,
                       "model.num_layers": int(df["model.num_layers"][best])}
    info = json.loads((tmp_path / "best.json").read_text())
    assert info["best_number"] == best and info["best_value"] == pytest.approx(scores[best])
    assert set(result.plots) == {"optimization_history", "intermediate_values",
                                 "param_importances"}
    for path in result.plots.values():
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000
    md = result.table_md.read_text().splitlines()
    assert md[4].startswith("| number | state | status | val_accuracy | optim.lr |")
    assert len([line for line in md if line.startswith("| ")]) == 7


def test_no_importance_plot_without_varying_params(tmp_path):
    sweep = grid_sweep(tmp_path, [1.0], pruner="none")
    result = run_sweep(sweep, runner=ToyRunner(), progress=False)
    assert set(result.plots) == {"optimization_history", "intermediate_values"}


def test_custom_runner_needs_one_worker(tmp_path):
    with pytest.raises(SweepSpecError, match="workers=1"):
        run_sweep(grid_sweep(tmp_path, [1.0]), runner=ToyRunner(), workers=2)


@pytest.mark.slow
def test_real_training_trials_and_best_config(tmp_path):
    """Two real (tiny) training runs plus an invalid combination, then the best config is a
    training config that reproduces the best trial's settings."""
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({
        "model": {"variant": "sitsformer_pixel", "embed_dim": 16, "num_layers": 1},
        "data": {"source": "demo", "demo_samples": 64, "demo_classes": 3, "batch_size": 16},
        "train": {"epochs": 5, "monitor": "val_oa", "threads": 1},
        "logging": {"tensorboard": False, "plots": False, "progress": False},
    }))
    sweep = grid_sweep(tmp_path / "out", [1e-3, 3e-3], base_config=str(base), epochs=2,
                       pruner="none")
    sweep["parameters"]["num_heads"] = {"values": [4, 3]}  # 16 % 3 != 0
    result = run_sweep(sweep, progress=False, plots=False)
    df = pd.read_csv(result.table_csv)
    assert sorted(df["status"]) == ["complete", "complete", "invalid", "invalid"]
    done = df[df["status"] == "complete"]
    assert (done["epochs_run"] == 2).all() and (done["model.num_heads"] == 4).all()
    for _, row in done.iterrows():  # the table's value is the trial's best val_oa
        history = pd.read_csv(tmp_path / "out" / "trials" / f"trial_{row['number']:04d}"
                              / "metrics.csv")
        assert row["val_accuracy"] == pytest.approx(history["val_oa"].max())
        assert history["lr"].notna().all()
    best = load_config(result.best_config)
    assert best.optim.lr == result.best_params["optim.lr"]
    assert (best.model.num_heads, best.model.embed_dim, best.train.epochs) == (4, 16, 2)
    assert best.data.demo_samples == 64
    # and `sitsformer train` takes it as it is (one epoch here, in this process)
    from sitsformer.cli import main

    code = main(["train", "--config", str(result.best_config), "train.epochs=1",
                 f"logging.run_dir={tmp_path / 'retrain'}", "logging.name=best"])
    assert code == 0
    rerun = load_config(tmp_path / "retrain" / "best" / "config.yaml")
    assert rerun.optim.lr == best.optim.lr and rerun.model.num_heads == 4
