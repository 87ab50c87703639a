"""A sweep on a real PostgreSQL server (the ``postgres`` extra), started here on 127.0.0.1.

The server runs from a temporary data folder with password authentication; as root (CI) it runs
as the ``postgres`` system user, since PostgreSQL refuses to run as root. Without the server
binaries the tests skip, except in CI (``CI`` set), where that is a failure: ``.ci/run``
installs them.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from _helpers import free_port

HERE = Path(__file__).resolve().parent
PASSWORD = "Pg-Test-S3cret-Word"


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found and Path(found).with_name("pg_ctl").exists():
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(versions[-1]).parent if versions else None


@pytest.fixture(scope="module")
def postgres_url():
    pytest.importorskip("psycopg", reason="the postgres extra: pip install 'sitsformer[postgres]'")
    bin_dir = _pg_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) not found; .ci/run "
                        "installs them with apt-get install postgresql")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found "
                    "(apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="sitsformer-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses root: run it as its own system user
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, pwfile, log = root / "data", root / "pw", root / "server.log"
    pwfile.write_text(PASSWORD + "\n")
    if as_user:
        shutil.chown(pwfile, "postgres")
    port = free_port()
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "sweeper",
                    "--pwfile", str(pwfile), "--auth", "scram-sha-256", "--no-sync", "-E",
                    "UTF8"], check=True, capture_output=True)
    subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                    "-t", "60", "-o", f"-F -c listen_addresses=127.0.0.1 -p {port} "
                    f"-c unix_socket_directories={root}", "start"], check=True,
                   capture_output=True)
    try:
        yield f"postgresql+psycopg://sweeper:{PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "-w", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", TOY_SLEEP="0.3")
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    return env


def test_two_workers_share_a_postgres_sweep_exactly(postgres_url, tmp_path):
    sweep = {"method": "random", "metric": {"name": "val_oa", "goal": "maximize"},
             "trials": 10, "epochs": 2, "seed": 0, "pruner": "none", "output_dir": "out",
             "runner": "toy_runner:slow_toy_runner",
             "parameters": {"lr": {"distribution": "uniform", "min": 0.0, "max": 1.0}}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    r = subprocess.run([sys.executable, "-m", "sitsformer.cli", "sweep", "--config", str(path),
                        "--storage", postgres_url, "--workers", "2", "--quiet"],
                       capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]

    from sitsformer.tuning import load_sweep_spec, open_study

    spec = load_sweep_spec(path)
    spec.storage = postgres_url
    trials = open_study(spec).get_trials()
    assert sorted(t.number for t in trials) == list(range(10))  # none lost, none beyond budget
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.params["optim.lr"] for t in trials}) == 10  # no trial drawn twice
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers took trials
    df = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert sorted(df["number"]) == list(range(10))

    # the password is in no file the sweep wrote and nowhere in its output
    saved = yaml.safe_load((tmp_path / "out" / "sweep.yaml").read_text())
    assert saved["storage"] == postgres_url.replace(PASSWORD, "***")
    assert "sweeper:***@127.0.0.1" in r.stdout
    assert PASSWORD not in r.stdout + r.stderr
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert PASSWORD.encode() not in f.read_bytes(), f


def test_wrong_password_error_names_the_database_not_the_password(postgres_url, tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"method": "grid", "metric": {"name": "val_oa"},
                                    "output_dir": "out", "runner": "toy_runner:ToyRunner",
                                    "parameters": {"lr": {"values": [1.0]}}}))
    wrong = postgres_url.replace(PASSWORD, "Wrong-Pass-123")
    r = subprocess.run([sys.executable, "-m", "sitsformer.cli", "sweep", "--config", str(path),
                        "--storage", wrong, "--quiet"], capture_output=True, text=True,
                       env=_env(), timeout=120)
    assert r.returncode == 2
    assert "password authentication failed" in r.stderr and "sweeper:***@127.0.0.1" in r.stderr
    assert "Wrong-Pass-123" not in r.stdout + r.stderr and "Traceback" not in r.stderr
