"""Shipped configs: ``sitsformer config list|show`` and ``--config NAME`` everywhere."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from sitsformer.cli import main
from sitsformer.configs import (CONFIG_DIR, UnknownConfigError, resolve_config,
                                shipped_configs)
from sitsformer.tuning import load_sweep_spec


def test_shipped_names_are_the_package_files():
    shipped = shipped_configs()
    assert set(shipped) == {"demo", "victoria_pixel", "sweeps/demo", "sweeps/demo_base",
                            "sweeps/tutorial"}
    assert all(p.is_file() and p.parent.is_relative_to(CONFIG_DIR) for p in shipped.values())


def test_resolve_names_paths_and_unknown(tmp_path, monkeypatch):
    assert resolve_config("demo") == CONFIG_DIR / "demo.yaml"
    assert resolve_config("demo.yaml") == CONFIG_DIR / "demo.yaml"
    assert resolve_config("demo", kind="sweep") == CONFIG_DIR / "sweeps" / "demo.yaml"
    assert resolve_config("sweeps/tutorial", kind="sweep") == CONFIG_DIR / "sweeps/tutorial.yaml"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo.yaml").write_text("train: {epochs: 1}\n")
    assert resolve_config("demo.yaml").resolve() == tmp_path / "demo.yaml"  # a real file wins
    assert resolve_config("demo") == CONFIG_DIR / "demo.yaml"  # no file "demo": the name
    with pytest.raises(UnknownConfigError, match=r"'nope'.*shipped: demo, sweeps/demo"):
        resolve_config("nope")


def test_config_list_and_show_round_trip(tmp_path, capsys):
    assert main(["config", "list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(shipped_configs())
    assert main(["config", "show", "demo"]) == 0
    shown = capsys.readouterr().out
    assert shown == (CONFIG_DIR / "demo.yaml").read_text()  # comments and all
    assert yaml.safe_load(shown)["data"]["source"] == "demo"
    assert main(["config", "show", "nope"]) == 1
    assert "shipped: demo" in capsys.readouterr().err


def test_show_redirected_then_train_from_the_copy_equals_the_name(tmp_path):
    copy = tmp_path / "my.yaml"
    with copy.open("w") as f:
        subprocess.run([sys.executable, "-m", "sitsformer.cli", "config", "show", "demo"],
                       stdout=f, check=True)
    by_name = subprocess.run([sys.executable, "-m", "sitsformer.cli", "train", "--config",
                              "demo", "--print-config"], capture_output=True, text=True,
                             check=True, cwd=tmp_path).stdout
    by_file = subprocess.run([sys.executable, "-m", "sitsformer.cli", "train", "--config",
                              str(copy), "--print-config"], capture_output=True, text=True,
                             check=True).stdout
    assert by_name == by_file and yaml.safe_load(by_name)["model"]["embed_dim"] == 64


@pytest.mark.parametrize("command", ["train", "pretrain", "finetune"])
def test_every_config_option_reports_an_unknown_name(command, capsys):
    extra = ["--pretrained", "x.pt"] if command == "finetune" else []
    assert main([command, "--config", "no_such_config", *extra, "--print-config"]) == 1
    err = capsys.readouterr().err
    assert "'no_such_config'" in err and "sweeps/tutorial" in err


def test_pretrain_takes_a_shipped_name(capsys):
    assert main(["pretrain", "--config", "demo", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["model"]["embed_dim"] == 64


def test_sweep_reports_an_unknown_name(capsys):
    assert main(["sweep", "--config", "no_such_sweep"]) == 2
    assert "'no_such_sweep'" in capsys.readouterr().err


@pytest.mark.slow  # one real trial of the shipped demo sweep (~20 s on 2 cores)
def test_sweep_takes_a_shipped_name_and_writes_below_the_cwd(tmp_path, monkeypatch):
    spec = load_sweep_spec(resolve_config("demo", kind="sweep"))
    monkeypatch.chdir(tmp_path)
    spec = load_sweep_spec(resolve_config("demo", kind="sweep"))
    assert spec.output_dir == tmp_path / "runs" / "sweeps" / "demo"  # never inside the package
    assert spec.base_config == CONFIG_DIR / "sweeps" / "demo_base.yaml"
    code = main(["sweep", "--config", "demo", "--trials", "1", "--quiet", "--no-plots",
                 "--output-dir", str(tmp_path / "o")])
    assert code == 0
    assert yaml.safe_load((tmp_path / "o" / "sweep.yaml").read_text())["trials"] == 1
