"""Sweeps against what users do: killed workers, two sweeps on one database, secrets in URLs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from toy_runner import ToyRunner

from sitsformer.cli import main
from sitsformer.tuning import SweepSpecError, load_sweep_spec, open_study, run_sweep
from sitsformer.tuning.spec import DEFAULT_HEARTBEAT_S, mask_url, scrub
from sitsformer.tuning.study import make_storage

HERE = Path(__file__).resolve().parent


def _sweep(out, **extra):
    return {"method": "grid", "metric": {"name": "val_oa", "goal": "maximize"}, "epochs": 1,
            "output_dir": str(out), "pruner": "none",
            "parameters": {"lr": {"values": [1.0, 2.0, 3.0]}}, **extra}


# --- a killed trial -------------------------------------------------------------------------

def test_heartbeat_is_on_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("SITSFORMER_SWEEP_HEARTBEAT", raising=False)
    spec = load_sweep_spec(_sweep(tmp_path))
    assert spec.heartbeat_interval == DEFAULT_HEARTBEAT_S == 60
    storage = make_storage(spec)
    assert storage.get_heartbeat_interval() == 60
    assert storage.grace_period == 120
    assert load_sweep_spec(_sweep(tmp_path, heartbeat_interval=0)).heartbeat_interval is None
    assert load_sweep_spec(_sweep(tmp_path, heartbeat_interval=None)).heartbeat_interval is None
    monkeypatch.setenv("SITSFORMER_SWEEP_HEARTBEAT", "5")
    assert load_sweep_spec(_sweep(tmp_path)).heartbeat_interval == 5
    assert load_sweep_spec(_sweep(tmp_path, heartbeat_interval=7)).heartbeat_interval == 7
    # the resolved file the workers read says what this process uses
    assert load_sweep_spec(_sweep(tmp_path)).to_dict()["heartbeat_interval"] == 5


KILLED_WORKER = """
import os, signal, sys
from toy_runner import ToyRunner
from sitsformer.tuning import load_sweep_spec, run_worker

class DiesOnTwo(ToyRunner):
    def run(self, config, report, run_dir):
        if config["optim.lr"] == 2.0:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().run(config, report, run_dir)

run_worker(load_sweep_spec(sys.argv[1]), DiesOnTwo(), progress=False)
"""


@pytest.mark.slow
def test_killed_trial_is_retried_without_any_setting(tmp_path, monkeypatch):
    """No heartbeat key in the file: the default detects the dead worker (the default's length
    is shortened through its environment variable to keep the test short)."""
    monkeypatch.setenv("SITSFORMER_SWEEP_HEARTBEAT", "1")
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(_sweep(tmp_path)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH",
                                                                                  "")]))
    proc = subprocess.run([sys.executable, "-c", KILLED_WORKER, str(path)], env=env, timeout=120)
    assert proc.returncode == -9
    time.sleep(3.5)  # past the grace period (2 x 1 s) since the dead worker's last beat
    result = run_sweep(path, runner=ToyRunner(), progress=False, plots=False)
    df = pd.read_csv(result.table_csv)
    assert "RUNNING" not in df["state"].tolist()
    assert df["status"].tolist() == ["complete", "stale", "complete", "complete"]
    assert sorted(df.loc[~df["retried"], "optim.lr"]) == [1.0, 2.0, 3.0]
    assert result.counts == {"complete": 3, "stale": 1}


# --- two sweeps, one database ---------------------------------------------------------------

def test_default_study_name_is_derived_from_the_definition(tmp_path):
    a = load_sweep_spec(_sweep(tmp_path))
    assert a.study_name.startswith("sweep-") and len(a.study_name) == len("sweep-") + 12
    assert load_sweep_spec(_sweep(tmp_path / "elsewhere", epochs=5, trials=2)).study_name \
        == a.study_name  # budget and paths are not the search
    other = _sweep(tmp_path)
    other["parameters"] = {"lr": {"values": [1.0, 2.0, 4.0]}}
    assert load_sweep_spec(other).study_name != a.study_name
    assert load_sweep_spec({**_sweep(tmp_path), "metric": {"name": "val_oa", "goal": "minimize"}}
                           ).study_name != a.study_name
    assert load_sweep_spec({**_sweep(tmp_path), "name": "crops"}).study_name.startswith("crops-")
    assert load_sweep_spec({**_sweep(tmp_path), "study_name": "mine"}).study_name == "mine"


def test_two_sweep_files_on_one_database_stay_apart(tmp_path):
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    first = tmp_path / "first.yaml"
    first.write_text(yaml.safe_dump(_sweep(tmp_path / "a", storage=db)))
    second = tmp_path / "second.yaml"
    second.write_text(yaml.safe_dump({**_sweep(tmp_path / "b", storage=db),
                                      "parameters": {"lr": {"values": [7.0, 8.0]}}}))
    ra = run_sweep(first, runner=ToyRunner(), progress=False, plots=False)
    rb = run_sweep(second, runner=ToyRunner(), progress=False, plots=False)
    assert ra.study_name != rb.study_name
    assert pd.read_csv(ra.table_csv)["optim.lr"].tolist() == [1.0, 2.0, 3.0]
    assert pd.read_csv(rb.table_csv)["optim.lr"].tolist() == [7.0, 8.0]
    assert rb.best_value == 8.0  # not merged with the first sweep's trials


def test_joining_a_study_with_another_search_space_is_refused(tmp_path):
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    first = tmp_path / "first.yaml"
    first.write_text(yaml.safe_dump(_sweep(tmp_path / "a", storage=db, study_name="crops")))
    run_sweep(first, runner=ToyRunner(), progress=False, plots=False)
    second = tmp_path / "second.yaml"
    second.write_text(yaml.safe_dump({**_sweep(tmp_path / "b", storage=db, study_name="crops"),
                                      "metric": {"name": "val_loss", "goal": "minimize"},
                                      "parameters": {"lr": {"values": [7.0, 8.0]}}}))
    with pytest.raises(SweepSpecError) as info:
        run_sweep(second, runner=ToyRunner(), progress=False, plots=False)
    msg = str(info.value)
    assert "'crops'" in msg and str(first) in msg and str(second) in msg
    assert "metric:" in msg and "val_loss" in msg and "parameters.optim.lr" in msg
    # the first sweep's study is untouched, and continuing it with its own file still works
    again = run_sweep(first, runner=ToyRunner(), progress=False, plots=False)
    assert again.n_trials == 3 and again.best_value == 3.0


def test_cli_refusal_is_one_clear_line(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    for name, values in (("a", [1.0, 2.0]), ("b", [1.0, 5.0])):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(
            {**_sweep(tmp_path / name, storage=db, study_name="same"),
             "runner": "toy_runner:ToyRunner", "parameters": {"lr": {"values": values}}}))
    assert main(["sweep", "--config", str(tmp_path / "a.yaml"), "--quiet", "--no-plots"]) == 0
    capsys.readouterr()
    assert main(["sweep", "--config", str(tmp_path / "b.yaml"), "--quiet", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "belongs to another sweep" in err and "Traceback" not in err


# --- passwords in storage URLs --------------------------------------------------------------

def test_mask_and_scrub():
    url = "postgresql+psycopg://alice:p%40ss:w0rd@db.example:5432/optuna"
    assert mask_url(url) == "postgresql+psycopg://alice:***@db.example:5432/optuna"
    assert mask_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert mask_url("postgresql+psycopg://bob@h/db") == "postgresql+psycopg://bob@h/db"
    assert scrub("failed for p@ss:w0rd and p%40ss:w0rd", url) == "failed for *** and ***"


def test_unreachable_database_error_masks_the_password(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**_sweep(tmp_path / "o"), "runner": "toy_runner:ToyRunner"}))
    url = "postgresql+psycopg://alice:Sup3rSecretPW@127.0.0.1:1/optuna"  # nothing listens
    code = main(["sweep", "--config", str(path), "--storage", url, "--quiet", "--no-plots"])
    captured = capsys.readouterr()
    assert code == 2
    assert "alice:***@127.0.0.1:1/optuna" in captured.err and "Connection refused" in captured.err
    assert "Sup3rSecretPW" not in captured.out + captured.err
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert b"Sup3rSecretPW" not in f.read_bytes(), f


def test_a_killed_trial_is_reclaimed_at_once_on_its_host(tmp_path, monkeypatch, capsys):
    """Issue 32: a killed trial stayed RUNNING; an immediate rerun said "4 trial(s): 3
    complete" and exited 0 (only a rerun two heartbeats later recovered it; with the heartbeat
    off it was lost). The trial records its host and pid: a rerun on that host finds the
    process gone and queues the trial again at once, heartbeat on or off."""
    monkeypatch.delenv("SITSFORMER_SWEEP_HEARTBEAT", raising=False)
    monkeypatch.syspath_prepend(str(HERE))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH",
                                                                                  "")]))
    for heartbeat in (60, 0):
        out = tmp_path / f"hb{heartbeat}"
        path = tmp_path / f"sweep{heartbeat}.yaml"
        path.write_text(yaml.safe_dump(_sweep(out, heartbeat_interval=heartbeat,
                                              runner="toy_runner:ToyRunner")))
        proc = subprocess.run([sys.executable, "-c", KILLED_WORKER, str(path)], env=env,
                              timeout=120)
        assert proc.returncode == -9
        assert main(["sweep", "--config", str(path), "--no-plots", "--quiet"]) == 0
        stdout = capsys.readouterr().out
        assert "4 trial(s): 3 complete, 0 pruned, 0 invalid, 0 failed, 1 stale" in stdout
        assert "still RUNNING" not in stdout
        df = pd.read_csv(out / "trials.csv")
        assert "RUNNING" not in df["state"].tolist()
        assert sorted(df.loc[~df["retried"], "optim.lr"]) == [1.0, 2.0, 3.0]
        stale = df.loc[df["status"] == "stale"].iloc[0]
        assert stale["error"].startswith("its worker (pid ")
        assert f" on host {os.uname().nodename}) is gone; queued again by pid" in stale["error"]


def test_summary_says_a_trial_is_still_running(tmp_path, monkeypatch, capsys):
    """A RUNNING trial of another host (or of a live process) is left alone, and the summary
    says so and how it will be recovered."""
    monkeypatch.syspath_prepend(str(HERE))
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(_sweep(tmp_path / "out", heartbeat_interval=0,
                                          runner="toy_runner:ToyRunner")))
    spec = load_sweep_spec(path)
    study = open_study(spec)
    trial = study.ask()
    for key, value in {"host": "elsewhere", "pid": 4242, "worker": "elsewhere:4242"}.items():
        trial.set_user_attr(key, value)
    assert main(["sweep", "--config", str(path), "--no-plots", "--quiet", "--trials", "3"]) == 0
    stdout = capsys.readouterr().out
    assert "3 trial(s): 2 complete, 0 pruned, 0 invalid, 0 failed, 1 running" in stdout
    assert ("still RUNNING: trial 0 (worker elsewhere:4242); another worker may be running it. "
            "If its worker died, the next sweep run on that host queues it again at once; with "
            "the heartbeat off, a worker on another host that died leaves it RUNNING for good"
            in stdout)
