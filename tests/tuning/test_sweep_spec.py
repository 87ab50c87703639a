"""The sweep file: parsing, validation errors that name the key, the Optuna search space."""

from __future__ import annotations

import math

import optuna
import pytest
import yaml

from sitsformer.tuning import (
    SweepSpecError,
    load_sweep_spec,
    make_pruner,
    make_sampler,
    parse_parameter,
    suggest,
)
from sitsformer.tuning.wandb_backend import (
    WandbUnavailable,
    check_wandb_available,
    wandb_sweep_config,
)

TUTORIAL = {
    "method": "bayes",
    "metric": {"name": "val_accuracy", "goal": "maximize"},
    "trials": 20,
    "parameters": {
        "learning_rate": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2},
        "embed_dim": {"values": [128, 256, 384, 512]},
        "num_layers": {"values": [4, 6, 8, 12]},
        "num_heads": {"values": [4, 8, 12, 16]},
        "dropout": {"distribution": "uniform", "min": 0.1, "max": 0.5},
        "weight_decay": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
    },
}


def test_tutorial_sweep_maps_flat_names_to_config_keys(tmp_path):
    spec = load_sweep_spec(TUTORIAL, output_dir=tmp_path)
    keys = {p.name: p.key for p in spec.parameters}
    assert keys == {"learning_rate": "optim.lr", "embed_dim": "model.embed_dim",
                    "num_layers": "model.num_layers", "num_heads": "model.num_heads",
                    "dropout": "model.dropout", "weight_decay": "optim.weight_decay"}
    lr = spec.parameters[0]
    assert (lr.kind, lr.low, lr.high, lr.log) == ("log_uniform_values", 1e-5, 1e-2, True)
    assert spec.direction == "maximize" and spec.n_trials() == 20
    assert isinstance(make_sampler(spec), optuna.samplers.TPESampler)
    assert isinstance(make_pruner(spec), optuna.pruners.MedianPruner)
    assert spec.resolved_storage() == f"sqlite:///{(tmp_path / 'sweep.db').resolve()}"


def test_samples_stay_in_their_distributions(tmp_path):
    spec = load_sweep_spec({**TUTORIAL, "method": "random"}, output_dir=tmp_path)
    study = optuna.create_study(sampler=make_sampler(spec))
    for _ in range(30):
        t = study.ask()
        p = suggest(t, spec.parameters)
        assert 1e-5 <= p["optim.lr"] <= 1e-2 and 0.1 <= p["model.dropout"] <= 0.5
        assert p["model.embed_dim"] in (128, 256, 384, 512)
        study.tell(t, 0.0)
    lrs = [t.params["optim.lr"] for t in study.trials]
    # log-uniform: about half the draws below the geometric middle (3.2e-4), far more than the
    # 3 % a linear uniform draw would put there
    assert sum(v < math.sqrt(1e-5 * 1e-2) for v in lrs) >= 8


def test_grid_and_dotted_keys_and_constants(tmp_path):
    spec = load_sweep_spec({
        "method": "grid", "metric": {"name": "val_loss", "goal": "minimize"},
        "parameters": {"optim.lr": {"values": [1e-3, 1e-2]}, "model.num_layers": {
            "distribution": "int_uniform", "min": 1, "max": 3}, "embed_dim": {"value": 32}},
    }, output_dir=tmp_path)
    assert spec.grid() == {"optim.lr": [1e-3, 1e-2], "model.num_layers": [1, 2, 3],
                           "model.embed_dim": [32]}
    assert spec.n_trials() == 6  # grid default: every point once
    assert spec.direction == "minimize"


@pytest.mark.parametrize("param, message", [
    ({"distribution": "uniform", "min": 1},
     "parameters.dropout: distribution 'uniform' needs 'max'"),
    ({"distribution": "uniform", "min": 0.5, "max": 0.1}, "parameters.dropout: need min < max"),
    ({"distribution": "log_uniform_values", "min": 0, "max": 1}, "needs min > 0"),
    ({"distribution": "beta", "min": 0, "max": 1},
     "parameters.dropout: unsupported distribution 'beta'"),
    ({"values": []}, "parameters.dropout: 'values' must be a non-empty list"),
    ({"values": [0.1, 0.1]}, "has duplicates"),
    ({"mins": 1}, "parameters.dropout: unknown key(s) ['mins']"),
    (0.1, "parameters.dropout: expected a mapping"),
    ({"distribution": "uniform", "min": "low", "max": 1},
     "parameters.dropout.min: expected a number"),
])
def test_bad_parameters_are_named(param, message):
    with pytest.raises(SweepSpecError) as err:
        parse_parameter("dropout", param, "s.yaml")
    assert message in str(err.value)
    assert str(err.value).startswith("s.yaml: ")


def test_bad_files_are_named(tmp_path):
    path = tmp_path / "s.yaml"
    cases = [
        ({**TUTORIAL, "method": "hill"}, "s.yaml: method: expected one of"),
        ({**TUTORIAL, "metric": {"name": "x", "goal": "up"}}, "metric.goal"),
        ({**TUTORIAL, "paramters": {}}, "unknown key(s) ['paramters']"),
        ({**TUTORIAL, "trials": None, "count": None}, "'trials' (or 'count') is required"),
        ({**TUTORIAL, "base_config": "missing.yaml"},
         "base_config: training config not found"),
        ({**TUTORIAL, "parameters": {"widht": {"values": [1]}}},
         "parameters.widht: unknown parameter name"),
        ({**TUTORIAL, "parameters": {"lr": {"value": 1}, "optim.lr": {"value": 2}}},
         "sets 'optim.lr', which parameter 'lr' sets too"),
        ({**TUTORIAL, "method": "grid"}, "parameters.dropout: method 'grid' needs 'values'"),
        ({**TUTORIAL, "pruner": {"type": "median", "patience": 3}},
         "unknown option(s) ['patience']"),
    ]
    for raw, message in cases:
        path.write_text(yaml.safe_dump(raw))
        with pytest.raises(SweepSpecError) as err:
            load_sweep_spec(path)
        assert message in str(err.value), (raw, str(err.value))
        assert str(path) in str(err.value)


def test_file_paths_resolve_against_the_sweep_file(tmp_path):
    (tmp_path / "base.yaml").write_text("train: {epochs: 3}\n")
    path = tmp_path / "sub" / "s.yaml"
    path.parent.mkdir()
    raw = {k: v for k, v in TUTORIAL.items() if k != "trials"}
    path.write_text(yaml.safe_dump({**raw, "count": 7, "base_config": "../base.yaml",
                                    "output_dir": "out", "early_terminate":
                                        {"type": "hyperband", "min_iter": 2}}))
    spec = load_sweep_spec(path)
    assert spec.base_config == (tmp_path / "base.yaml").resolve()
    assert spec.output_dir == path.parent.resolve() / "out"
    assert spec.n_trials() == 7
    assert spec.pruner == {"type": "hyperband", "min_resource": 2, "reduction_factor": 3}
    # the W&B form of the same file: our own keys removed, the metric and method kept
    wb = wandb_sweep_config(spec)
    assert set(wb) == {"method", "metric", "parameters", "early_terminate", "name"}
    assert wb["parameters"] == TUTORIAL["parameters"]


def test_wandb_backend_is_guarded(monkeypatch):
    monkeypatch.setenv("CI", "1")
    with pytest.raises(WandbUnavailable, match="disabled in CI"):
        check_wandb_available()
    monkeypatch.delenv("CI")
    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.raises(WandbUnavailable, match="needs the W&B server"):
        check_wandb_available()
    monkeypatch.delenv("WANDB_MODE")
    try:
        import wandb  # noqa: F401
    except ImportError:
        with pytest.raises(WandbUnavailable, match="pip install"):
            check_wandb_available()


def test_cli_reports_bad_sweep_files(tmp_path, capsys):
    from sitsformer.cli import main

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**TUTORIAL, "parameters": {"dropout": {
        "distribution": "uniform", "min": 0.5, "max": 0.1}}}))
    assert main(["sweep", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"sitsformer sweep: error: {path}: parameters.dropout: need min < max" in err
    # a swept key the training config does not have is caught before any trial
    path.write_text(yaml.safe_dump({**TUTORIAL, "output_dir": str(tmp_path / "o"),
                                    "parameters": {"optim.lrr": {"values": [1.0]}}}))
    assert main(["sweep", "--config", str(path)]) == 2
    assert "sweep parameter key 'optim.lrr': optim has no key 'lrr'" in capsys.readouterr().err
    assert not (tmp_path / "o" / "sweep.db").exists()
