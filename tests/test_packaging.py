"""The package as a user installs it: the wheel, its metadata, and running it outside the clone.

The wheel is built from this checkout and installed into a fresh virtual environment in a
temporary folder; the dependencies come from the test interpreter's own site-packages through a
plain path entry (a ``.pth`` line, so that none of that folder's ``.pth`` hooks, such as the
editable install of the clone, run). Commands then run from a folder outside the checkout.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "SITSFORMER_SHARED_DATA", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # no build isolation: the build backend (setuptools>=77) is already installed, so this
    # needs no network; `python -m build` would do the same in an isolated environment
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-q", "-w", str(out), str(REPO)],
                   check=True, env=_env(), cwd=out)
    (path,) = out.glob("sitsformer-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv (outside the checkout) with the wheel installed; returns its bin folder."""
    root = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(root)
    py = root / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "_sitsformer_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                    "--disable-pip-version-check", "-q", str(wheel)], check=True, env=_env())
    return root / "bin"


def test_wheel_ships_configs_license_and_metadata(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(zf.read(meta_name).decode())
    for name in ("demo.yaml", "victoria_pixel.yaml", "sweeps/demo.yaml",
                 "sweeps/demo_base.yaml", "sweeps/tutorial.yaml"):
        assert f"sitsformer/configs/{name}" in names
    assert "sitsformer/report/template.html" in names  # `sitsformer report`'s page
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    classifiers = meta.get_all("Classifier")
    python = f"Programming Language :: Python :: {sys.version_info.major}.{sys.version_info.minor}"
    assert python in classifiers  # the version the tests run on (CI's python3)
    assert meta["Requires-Python"] == ">=3.10"
    assert "psycopg[binary]>=3.1; extra == \"postgres\"" in meta.get_all("Requires-Dist")


def test_license_file_is_mit():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 the sitsformer developers" in text


def test_pip_check_is_clean():
    r = subprocess.run([sys.executable, "-m", "pip", "check", "--disable-pip-version-check"],
                       capture_output=True, text=True, env=_env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No broken requirements found" in r.stdout


@pytest.mark.slow  # builds and installs a wheel, then trains twice (~30 s on 2 cores)
def test_installed_wheel_runs_demo_and_train_outside_the_clone(installed, tmp_path):
    tiny = ["data.demo_samples=96", "model.embed_dim=16", "model.num_layers=1",
            "train.threads=1", "logging.progress=false", "logging.tensorboard=false"]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = _env()
    where = subprocess.run([str(installed / "python"), "-c", "import sitsformer, "
                            "sitsformer.configs as c; print(sitsformer.__file__); "
                            "print(c.CONFIG_DIR)"], capture_output=True, text=True,
                           check=True, env=env, cwd=work).stdout.split()
    assert all(Path(p).is_relative_to(installed.parent) for p in where), where  # not the clone

    demo = subprocess.run([str(installed / "sitsformer"), "demo", "--epochs", "1", "--out",
                           "demo_runs", *tiny], capture_output=True, text=True, env=env, cwd=work)
    assert demo.returncode == 0, demo.stderr[-2000:]
    train = subprocess.run([str(installed / "sitsformer"), "train", "--config", "demo",
                            "train.epochs=1", "logging.run_dir=train_runs", *tiny, "--json"],
                           capture_output=True, text=True, env=env, cwd=work)
    assert train.returncode == 0, train.stderr[-2000:]

    demo_run = Path(re.search(r"run folder:\s+(\S+)", demo.stdout).group(1))
    summary = json.loads(train.stdout.strip().splitlines()[-1])
    train_run = Path(summary["run_dir"])
    for run, parent in ((demo_run, "demo_runs"), (train_run, "train_runs")):
        run = run if run.is_absolute() else work / run
        assert run.parent.resolve() == (work / parent).resolve()
        assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
        assert (run / "best.pt").is_file()
        assert json.loads((run / "test_metrics.json").read_text())["test_oa"] >= 0.0
    # `train --config demo` is the demo recipe: the same resolved config (but the run folder)
    import yaml

    def resolved(run: Path) -> dict:
        cfg = yaml.safe_load(((run if run.is_absolute() else work / run) / "config.yaml")
                             .read_text())
        cfg["logging"].pop("run_dir")
        cfg["logging"].pop("name", None)
        return cfg

    assert resolved(demo_run) == resolved(train_run)
    assert not (REPO / "demo_runs").exists() and not (REPO / "train_runs").exists()


@pytest.mark.slow
def test_installed_wheel_writes_a_report_outside_the_clone(installed, tmp_path):
    # the page template is package data: a report from the installed wheel has the viewer
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    work = tmp_path / "elsewhere"
    work.mkdir()
    with rasterio.open(work / "map.tif", "w", driver="GTiff", height=8, width=8, count=1,
                       dtype="uint8", nodata=255, crs="EPSG:32633",
                       transform=from_origin(0, 80, 10, 10)) as ds:
        ds.write(np.arange(64, dtype=np.uint8).reshape(1, 8, 8) % 2)
        ds.write_colormap(1, {0: (10, 20, 30, 255), 1: (200, 100, 0, 255)})
        ds.update_tags(class_names='["water", "crop"]')
    done = subprocess.run([str(installed / "sitsformer"), "report", "--map", "map.tif",
                           "--output", "r.html"], capture_output=True, text=True, env=_env(),
                          cwd=work)
    assert done.returncode == 0, done.stderr[-2000:]
    page = (work / "r.html").read_text()
    assert '<li data-class="1" data-color="#c86400">' in page and 'id="viewport"' in page
