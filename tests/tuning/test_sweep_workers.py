"""Several worker processes share one sweep through its SQLite storage: no duplicate, no lost
trial, the budget is exact. Real processes, real storage."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

HERE = Path(__file__).resolve().parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.slow
def test_three_processes_share_a_random_sweep_exactly(tmp_path):
    sweep = {"method": "random", "metric": {"name": "val_oa", "goal": "maximize"}, "trials": 9,
             "epochs": 2, "seed": 0, "output_dir": str(tmp_path), "pruner": "none",
             "parameters": {"lr": {"distribution": "uniform", "min": 0.0, "max": 1.0}}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    env = {**_env(), "TOY_SLEEP": "0.05"}
    procs = [subprocess.Popen([sys.executable, str(HERE / "toy_runner.py"), str(path)], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    ran = [int(p.communicate(timeout=120)[0].split()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(ran) == 9  # every trial run by exactly one worker, none beyond the budget

    from sitsformer.tuning import load_sweep_spec, open_study

    study = open_study(load_sweep_spec(path))
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(9))
    assert all(t.state.name == "COMPLETE" for t in trials)
    lrs = [t.params["optim.lr"] for t in trials]
    assert len(set(lrs)) == 9  # workers never repeat each other's draws
    assert len({t.user_attrs["worker"] for t in trials}) == sum(n > 0 for n in ran)


@pytest.mark.slow
def test_cli_workers_run_each_grid_point_once(tmp_path):
    """``sitsformer sweep --workers 2``: two processes, one grid, every point exactly once
    (the toy runner, named in the sweep file, stands in for training)."""
    sweep = {"method": "grid", "metric": {"name": "val_accuracy", "goal": "maximize"},
             "runner": "toy_runner:ToyRunner", "epochs": 2, "output_dir": "out",
             "parameters": {"learning_rate": {"values": [1.0, 2.0, 3.0, 4.0]},
                            "embed_dim": {"value": 12},
                            "num_heads": {"values": [2, 3, 4, 5]}}}  # 12 % 5 != 0: invalid
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    proc = subprocess.run([sys.executable, "-m", "sitsformer.cli", "sweep", "--config",
                           str(path), "--workers", "2", "--quiet", "--no-plots"],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "16 trial(s): 12 complete, 0 pruned, 4 invalid, 0 failed" in proc.stdout
    ran = [int(line.split()[3]) for line in proc.stdout.splitlines()
           if line.startswith("worker finished")]
    assert len(ran) == 2 and sum(ran) == 16
    df = pd.read_csv(tmp_path / "out" / "trials.csv")
    points = sorted(zip(df["optim.lr"], df["model.num_heads"]))
    assert points == sorted(itertools.product([1.0, 2.0, 3.0, 4.0], [2, 3, 4, 5]))
    assert sorted(df["number"]) == list(range(16))
    assert (df.loc[df["model.num_heads"] == 5, "status"] == "invalid").all()
    assert df["val_accuracy"].max() == 4.0 + 0.0  # ToyRunner's score: the learning rate
    best = yaml.safe_load((tmp_path / "out" / "best_config.yaml").read_text())
    assert best["optim.lr"] == 4.0


KILLED_WORKER = """
import os, signal, sys
from toy_runner import ToyRunner
from sitsformer.tuning import load_sweep_spec, run_worker

class DiesOnTwo(ToyRunner):
    def run(self, config, report, run_dir):
        if config["optim.lr"] == 2.0:
            os.kill(os.getpid(), signal.SIGKILL)  # a worker lost mid-trial (power cut, OOM)
        return super().run(config, report, run_dir)

run_worker(load_sweep_spec(sys.argv[1]), DiesOnTwo(), progress=False)
"""


@pytest.mark.slow
def test_trial_of_a_killed_worker_is_run_again(tmp_path):
    sweep = {"method": "grid", "metric": {"name": "val_oa", "goal": "maximize"}, "epochs": 1,
             "output_dir": str(tmp_path), "heartbeat_interval": 1, "pruner": "none",
             "parameters": {"lr": {"values": [1.0, 2.0, 3.0]}}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    proc = subprocess.run([sys.executable, "-c", KILLED_WORKER, str(path)], env=_env(),
                          timeout=120)
    assert proc.returncode == -9
    import time

    time.sleep(5.0)  # well past the grace period (2 x heartbeat_interval) since its last beat

    from sitsformer.tuning import run_sweep
    from toy_runner import ToyRunner

    result = run_sweep(path, runner=ToyRunner(), progress=False, plots=False)
    df = pd.read_csv(result.table_csv)
    assert df["status"].tolist() == ["complete", "stale", "complete", "complete"]
    assert df["retried"].tolist() == [False, True, False, False]
    assert sorted(df.loc[~df["retried"], "optim.lr"]) == [1.0, 2.0, 3.0]  # each point once
