"""Every numeric setting has a valid range, checked when the config is read (issue 13)."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import torch

from sitsformer.cli import main
from sitsformer.training import create_scheduler
from sitsformer.training.config import (
    RANGES,
    ConfigError,
    FinetuneExperimentConfig,
    PretrainExperimentConfig,
    load_config,
)


def numeric_keys(cls: type, prefix: str = "") -> set[str]:
    keys = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            keys |= numeric_keys(tp, f"{prefix}{f.name}.")
            continue
        args = set(typing.get_args(tp)) | {tp}
        flat = args | {a for t in args for a in typing.get_args(t)}
        if flat & {int, float} or any(typing.get_origin(a) is list and
                                      typing.get_args(a)[0] in (int, float) for a in args):
            keys.add(prefix + f.name)
    return keys


def test_every_numeric_setting_has_a_range():
    keys = numeric_keys(PretrainExperimentConfig) | numeric_keys(FinetuneExperimentConfig)
    assert keys - set(RANGES) == set()
    assert set(RANGES) - keys == set()  # and no stale entry


@pytest.mark.parametrize("override, key, shown, value", [
    ("train.grad_clip=-1", "train.grad_clip", "expected > 0 (null = no clipping)", "-1.0"),
    ("train.epochs=0", "train.epochs", "expected >= 1", "0"),
    ("train.accumulation_steps=0", "train.accumulation_steps", "expected >= 1", "0"),
    ("schedule.step_size=0", "schedule.step_size", "expected >= 1", "0"),
    ("data.batch_size=0", "data.batch_size", "expected >= 1", "0"),
    ("train.save_every=0", "train.save_every",
     "expected >= 1 (null = no epoch_XXXX.pt files)", "0"),
    ("optim.lr=0", "optim.lr", "expected > 0", "0.0"),
    ("optim.lr=.nan", "optim.lr", "expected > 0", "nan"),
    ("optim.betas=[0.9,1.0]", "optim.betas", "expected [0, 1)", "[0.9, 1.0]"),
    ("data.val_fraction=1", "data.val_fraction", "expected [0, 1)", "1.0"),
    ("data.test_fraction=-0.1", "data.test_fraction", "expected [0, 1)", "-0.1"),
    ("schedule.factor=1", "schedule.factor", "expected (0, 1)", "1.0"),
    ("schedule.gamma=0", "schedule.gamma", "expected (0, 1]", "0.0"),
    ("loss.class_weights=[1,-2]", "loss.class_weights", "expected >= 0", "[1, -2]"),
    ("model.dropout=1", "model.dropout", "expected [0, 1)", "1.0"),
    ("train.seed=-1", "train.seed", "expected [0, 4.29497e+09]", "-1"),
])
def test_out_of_range_names_key_value_and_range(override, key, shown, value):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert str(err.value) == f"config key {key!r}: value {value} is out of range; {shown}"


@pytest.mark.parametrize("override", ["pretrain.hide_ratio=1.0", "finetune.label_fraction=0"])
def test_recipe_sections_are_checked(override):
    cls = PretrainExperimentConfig if override.startswith("pretrain") else \
        FinetuneExperimentConfig
    with pytest.raises(ConfigError, match=override.split("=")[0].replace(".", r"\.")):
        load_config(None, [override], cls=cls)


def test_bounds_and_none_are_accepted():
    cfg = load_config(None, ["data.val_fraction=0", "data.test_fraction=0", "train.grad_clip=null",
                             "train.epochs=1", "schedule.warmup_epochs=1", "optim.betas=[0,0.999]",
                             "schedule.min_lr=0.001", "finetune.label_fraction=1"],
                      cls=FinetuneExperimentConfig)
    assert cfg.train.grad_clip is None and cfg.data.val_fraction == 0.0


@pytest.mark.parametrize("overrides, shown", [
    (["data.val_fraction=0.5", "data.test_fraction=0.5"], "0.5 + 0.5 = 1 leaves no training"),
    (["train.epochs=2", "schedule.warmup_epochs=3"], "longer than the run (train.epochs=2)"),
    (["optim.lr=1e-4", "schedule.min_lr=1e-3"], "above the peak learning rate"),
])
def test_settings_that_depend_on_each_other(overrides, shown):
    with pytest.raises(ConfigError, match=shown.replace("(", r"\(").replace(")", r"\)")
                       .replace("+", r"\+")):
        load_config(None, overrides)
    load_config(None, [*overrides[:1]])  # each alone is fine


def test_upstream_split_ignores_the_fractions():
    assert load_config(None, ["data.split=upstream", "data.val_fraction=0.5",
                              "data.test_fraction=0.5"]).data.split == "upstream"


def test_yaml_file_errors_name_the_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("train:\n  epochs: 0\n")
    with pytest.raises(ConfigError, match=rf"{path}: config key 'train.epochs': value 0"):
        load_config(path)


@pytest.mark.parametrize("override", ["train.accumulation_steps=0",
                                      "schedule.type=step schedule.step_size=0"])
def test_former_zero_division_settings_exit_cleanly(override, capsys, one_thread):
    """These two crashed with ZeroDivisionError during the run."""
    rc = main(["train", "data.demo_samples=32", "logging.progress=false", *override.split(),
               "--output", "unused-run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "out of range; expected >= 1" in err[0]


def test_scheduler_refuses_a_zero_step_size():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="step_size must be >= 1"):
        create_scheduler(opt, "step", step_size=0)
