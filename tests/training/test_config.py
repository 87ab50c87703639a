"""Experiment config: YAML + dotted overrides, typed, errors naming the key."""

from __future__ import annotations

import pytest
import yaml

from sitsformer.training.config import ConfigError, ExperimentConfig, load_config, save_config


def test_defaults_yaml_and_overrides_merge_in_order(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("optim:\n  lr: 1e-3\n  betas: [0.9, 0.95]\ntrain:\n  epochs: 7\n"
                    "data:\n  options: {label_column: lc_id}\n")
    cfg = load_config(path, ["optim.lr=3e-4", "model.embed_dim=64", "loss.class_weights=balanced",
                             "data.options.group_column=objectid"])
    assert cfg.optim.lr == 3e-4 and isinstance(cfg.optim.lr, float)  # "3e-4" is a float here
    assert cfg.optim.betas == [0.9, 0.95] and cfg.train.epochs == 7
    assert cfg.model.embed_dim == 64 and cfg.model.variant == "sitsformer_pixel"
    assert cfg.loss.class_weights == "balanced"
    assert cfg.data.options == {"label_column": "lc_id", "group_column": "objectid"}
    assert cfg.schedule.type == "cosine"  # untouched default


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(overrides=["train.epochs=3", "logging.wandb=true"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg and yaml.safe_load((tmp_path / "config.yaml").read_text())["train"][
        "epochs"] == 3
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("override,message", [
    ("optim.lrr=1", "unknown config key 'optim.lrr'"),
    ("trian.epochs=1", "unknown config key 'trian'"),
    ("train.epochs=1.5", "config key 'train.epochs': expected int, found float 1.5"),
    ("train.epochs=ten", "config key 'train.epochs': expected int, found str 'ten'"),
    ("logging.tensorboard=maybe", "config key 'logging.tensorboard': expected bool"),
    ("model.dropout=[1]", "config key 'model.dropout'"),
    ("optim=3", "config key 'optim': expected a mapping"),
    ("epochs", "must look like section.key=value"),
])
def test_bad_keys_and_types_are_rejected_with_the_key_named(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[override])
    assert message in str(err.value)


def test_error_in_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("schedule:\n  warmup: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key 'schedule.warmup'"):
        load_config(path)


def test_shipped_configs_are_valid():
    from sitsformer.configs import shipped_configs

    files = {n: p for n, p in shipped_configs().items() if not n.startswith("sweeps/")
             or n.endswith("_base")}
    assert set(files) >= {"demo", "victoria_pixel", "sweeps/demo_base"}
    for f in files.values():
        load_config(f)  # raises ConfigError naming the key on any mistake
