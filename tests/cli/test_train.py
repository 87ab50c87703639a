"""``sitsformer train``: YAML + overrides, resolved config in the run folder, resume, errors."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from sitsformer.cli import main

TINY = ["data.demo_samples=48", "data.demo_classes=4", "data.batch_size=16",
        "model.embed_dim=16", "model.num_heads=2", "model.num_layers=1", "train.threads=1",
        "logging.tensorboard=false", "logging.progress=false"]


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"variant": "sitsformer_pixel"},
        "data": {"source": "demo", "split": "group"},
        "optim": {"lr": 3e-3},
        "train": {"epochs": 3, "monitor": "val_oa"},
        "logging": {"run_dir": str(tmp_path / "runs"), "name": "exp"},
    }))
    return path


def test_train_writes_run_and_resumes(config_file, tmp_path, capsys):
    assert main(["train", "--config", str(config_file), *TINY, "train.epochs=2", "--json"]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "runs" / "exp"
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["run_dir"] == str(run) and summary["epochs"] == 2
    for name in ("config.yaml", "best.pt", "last.pt", "metrics.csv", "metrics.jsonl",
                 "curves.png", "test_metrics.json", "data_meta.json"):
        assert (run / name).exists(), name
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["train"]["epochs"] == 2 and resolved["optim"]["lr"] == 3e-3
    assert resolved["model"]["embed_dim"] == 16
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["config"] == resolved and ckpt["data_meta"]["generated"] is True
    assert ckpt["format"] == "sitsformer-checkpoint/2"
    spec = ckpt["input_spec"]
    assert len(spec["mean"]) == len(spec["std"]) == len(spec["bands"]) == 10
    assert spec["time_axis"] == "dates" and spec["scale"] == 10000.0 and spec["sample_size"] == 1
    assert json.loads((run / "data_meta.json").read_text())["input_spec"] == spec
    test = json.loads((run / "test_metrics.json").read_text())
    assert 0.0 <= test["test_oa"] <= 1.0 and f"oa={test['test_oa']:.4f}" in out

    # resume the same run to 3 epochs: history continues, metrics file has 3 rows
    assert main(["train", "--config", str(config_file), *TINY, "--resume",
                 str(run / "last.pt")]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 3

    # the same named run again without --resume: refused (nothing overwritten), then --overwrite
    before = (run / "last.pt").read_bytes()
    assert main(["train", "--config", str(config_file), *TINY, "train.epochs=1"]) == 1
    err = capsys.readouterr().err
    assert "output exists" in err and "--resume" in err and "--overwrite" in err
    assert (run / "last.pt").read_bytes() == before
    assert main(["train", "--config", str(config_file), *TINY, "train.epochs=1",
                 "--overwrite"]) == 0
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1


def test_plots_line_only_when_plots_are_drawn(config_file, tmp_path, capsys):
    run = tmp_path / "runs" / "exp"
    assert main(["train", "--config", str(config_file), *TINY, "train.epochs=1",
                 "logging.plots=false"]) == 0
    assert "plots:" not in capsys.readouterr().out and not (run / "curves.png").exists()
    assert main(["train", "--config", str(config_file), *TINY, "train.epochs=1",
                 "--overwrite"]) == 0
    assert f"plots:           {run / 'curves.png'}" in capsys.readouterr().out


@pytest.mark.parametrize("override,message", [
    ("optim.learning_rate=1", "unknown config key 'optim.learning_rate'"),
    ("train.epochs=two", "config key 'train.epochs': expected int"),
    ("model.variant=nope", "config key 'model.variant': unknown variant 'nope'; expected "
                           "one of the registered variants ['ltae', 'sitsformer_base', "),
])
def test_train_rejects_bad_config(config_file, capsys, override, message):
    assert main(["train", "--config", str(config_file), override]) == 1
    assert message in capsys.readouterr().err


def test_print_config(config_file, capsys):
    assert main(["train", "--config", str(config_file), "optim.lr=0.01", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["optim"]["lr"] == 0.01 and printed["train"]["epochs"] == 3


def test_run_names_are_names_and_foreign_files_stay(config_file, tmp_path, capsys):
    """Issue 32: ``logging.name=../../victim`` wrote outside ``logging.run_dir`` and replaced
    the config.yaml and metrics.csv found there. Names are names; a folder holding another
    run's files is not written over without --overwrite (--resume still continues a run)."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "config.yaml").write_text("mine: 1\n")
    (victim / "metrics.csv").write_text("epoch\n7\n")
    rc = main(["train", "--config", str(config_file), *TINY, "logging.name=../../victim"])
    err = capsys.readouterr().err
    assert rc == 1 and err.strip() == (
        f"error: {config_file}: config key 'logging.name': value '../../victim' is not a "
        "folder name; expected "
        "a name without '/', '\\' or '..' (the run folder is logging.run_dir/logging.name; "
        "choose the parent with logging.run_dir or the whole folder with --output)")
    for bad in ("..", "a/b", "a\\b"):
        assert main(["train", "--config", str(config_file), f"logging.name={bad}"]) == 1
        assert "is not a folder name" in capsys.readouterr().err
    rc = main(["train", "--config", str(config_file), *TINY, "--output", str(victim)])
    err = capsys.readouterr().err
    assert rc == 1 and err.strip() == (
        f"error: output exists: the run folder {victim} already holds {victim / 'config.yaml'}, "
        f"{victim / 'metrics.csv'}; choose another --output, or pass --overwrite to start "
        "afresh (replacing them)")
    assert (victim / "config.yaml").read_text() == "mine: 1\n"
    assert (victim / "metrics.csv").read_text() == "epoch\n7\n"
    assert main(["train", "--config", str(config_file), *TINY, "train.epochs=1", "--output",
                 str(victim), "--overwrite"]) == 0
    assert (victim / "last.pt").exists() and "mine" not in (victim / "config.yaml").read_text()


def test_a_class_without_training_sample_is_named_before_training(tmp_path, capsys):
    """Issue 32: a class seen only in the test split trained silently; now a warning names it
    (and where its samples are) before the first epoch."""
    import warnings

    from sitsformer.data.errors import DataWarning

    rows = ["label,split,B2_20200101,B3_20200101,B2_20200201,B3_20200201"]
    for i in range(24):
        label, split = ("Water", "test") if i >= 21 else (("Crop", "Forest")[i % 2],
                                                           "val" if i % 5 == 0 else "train")
        rows.append(f"{label},{split},{100 + i},{200 + i},{300 + i},{400 + 2 * i}")
    table = tmp_path / "t.csv"
    table.write_text("\n".join(rows) + "\n")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        rc = main(["train", "data.source=" + str(table), "data.split=upstream",
                   "data.batch_size=8", *TINY[3:], "train.epochs=1",
                   "--output", str(tmp_path / "run")])
    assert rc == 0, capsys.readouterr().err
    msgs = [str(w.message) for w in seen if issubclass(w.category, DataWarning)]
    assert f"{table}: 1 class(es) have no training sample: 'Water' (3 in the test split); the " \
           "model cannot learn them" in " ".join(msgs), msgs
    assert (f"{table}: the test split holds a single class, 'Water' (3 samples), of the 3 "
            "classes ['Crop', 'Forest', 'Water']: its kappa will be 0") in " ".join(msgs), msgs
    # both are said while the data is read, before training: the data module alone warns
    from sitsformer.data.module import DataModule

    with pytest.warns(DataWarning) as told:
        DataModule(str(table), split="upstream").read()
    assert sorted(str(w.message).split(": ")[1][:22] for w in told
                  if issubclass(w.category, DataWarning)) == [
        "1 class(es) have no tr", "the test split holds a"]
