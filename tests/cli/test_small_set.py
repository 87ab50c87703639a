"""``train.small_set``: a training split of at most ``train.small_set_max_samples`` samples
trains with the rule's settings, except those given as overrides; through the real CLI, from
GeoTIFFs to a checkpoint that ``evaluate`` and ``predict`` read."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rasterio
import yaml
from test_round_trip import TINY, make_folder

from sitsformer.cli import main
from sitsformer.models import load_checkpoint
from sitsformer.training.config import ConfigError, load_config, with_small_set

# model.embed_dim is also in TINY (16), so the override keeps it; the other two apply
RULE = "train.small_set={model.embed_dim: 8, model.mlp_ratio: 2.0, train.min_steps: 12}"


@pytest.mark.parametrize("limit", [1000, 5])
def test_small_set_settings_apply_up_to_the_limit(tmp_path, limit, capsys):
    data, labels = make_folder(tmp_path)
    run = tmp_path / "run"
    assert main(["train", f"data.source={data}", f"data.options.labels={labels}",
                 "data.options.patch_size=1", *TINY, RULE,
                 f"train.small_set_max_samples={limit}", "--output", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    ckpt = load_checkpoint(run / "best.pt")
    n_train = ckpt["data_meta"]["split_sizes"]["train"]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    epochs = (run / "metrics.jsonl").read_text().splitlines()
    assert ckpt["model_config"]["embed_dim"] == 16  # given on the command line: kept
    if limit == 1000:
        assert n_train <= 1000
        assert (f"a training split of {n_train} samples (at most train.small_set_max_samples="
                f"1000) trains with the small-set settings: model.mlp_ratio=2.0, "
                f"train.min_steps=12") in out
        assert ckpt["model_config"]["mlp_ratio"] == 2.0
        # the rule is cleared in config.yaml, which states the settings the model was trained with
        assert saved["train"]["small_set"] == {} and saved["train"]["small_set_max_samples"] is None
        assert saved["model"]["mlp_ratio"] == 2.0 and saved["train"]["min_steps"] == 12
        assert len(epochs) == math.ceil(12 / math.ceil(n_train / 32)) > 2
    else:
        assert n_train > 5 and "small-set settings" not in out
        assert ckpt["model_config"]["mlp_ratio"] == 4.0
        assert saved["train"]["small_set"] == {"model.mlp_ratio": 2.0, "train.min_steps": 12}
        assert saved["train"]["small_set_max_samples"] == 5
        assert len(epochs) == 2

    # the checkpoint is an ordinary one: evaluate scores the recorded test split as the run did
    report = tmp_path / "report"
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(data),
                 "-o", f"labels={labels}", "-o", "patch_size=1", "--output", str(report),
                 "--quiet"]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    test = json.loads((run / "test_metrics.json").read_text())
    assert metrics["counts"]["scored"] == ckpt["data_meta"]["split_sizes"]["test"]
    assert metrics["oa"] == pytest.approx(test["test_oa"])
    out_map = tmp_path / "map.tif"
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--input", str(data),
                 "--output", str(out_map), "--quiet"]) == 0
    with rasterio.open(out_map) as src, rasterio.open(labels) as lab:
        classes = src.read(1)
        assert classes.shape == lab.shape
    assert set(np.unique(classes)) <= {0, 1}  # class indices of the legend "1", "2"


def test_small_set_is_checked_when_the_config_is_read():
    """An unknown key or a bad value in the rule is an error at load time that names the rule
    and the key, before any data is read."""
    with pytest.raises(ConfigError, match=r"'train.small_set': unknown config key 'model.widht'"):
        load_config(None, ["train.small_set={model.widht: 64}", "train.small_set_max_samples=9"])
    with pytest.raises(ConfigError, match=r"'train.small_set': config key 'model.embed_dim': "
                                          r"value 0 is out of range"):
        load_config(None, ["train.small_set={model.embed_dim: 0}"])
    with pytest.raises(ConfigError, match="'train.small_set_max_samples': value 0"):
        load_config(None, ["train.small_set_max_samples=0"])


def test_small_set_settings_nested_or_dotted_and_the_recipe_left_alone():
    """Nested sections and dotted keys mean the same; an override drops the rule's key for
    this config only (the recipe dict passed as ``base`` is not changed)."""
    base = {"train": {"small_set_max_samples": 100,
                      "small_set": {"model.embed_dim": 64, "train.min_steps": 600}}}
    cfg = load_config(None, ["model.embed_dim=96"], base=base)
    assert cfg.train.small_set == {"train.min_steps": 600}
    assert base["train"]["small_set"] == {"model.embed_dim": 64, "train.min_steps": 600}
    dotted = with_small_set(load_config(None, [], base=base))
    nested = with_small_set(load_config(None, [
        "train.small_set={model: {embed_dim: 64}, train: {min_steps: 600}}",
        "train.small_set_max_samples=100"]))
    assert dotted == nested
    assert (dotted.model.embed_dim, dotted.train.min_steps) == (64, 600)
    assert dotted.train.small_set == {} and dotted.train.small_set_max_samples is None
    assert with_small_set(dotted) == dotted


def test_shipped_recipe_up_to_and_above_its_limit(capsys):
    """The shipped recipe's rule applies to a split of exactly ``small_set_max_samples`` and
    not to one more; above it the model is the recipe's own (the ensemble rule still acts)."""
    from sitsformer.configs import shipped_configs
    from sitsformer.training.run import resolve_size_rules

    cfg = load_config(shipped_configs()["victoria_pixel"])
    limit = cfg.train.small_set_max_samples
    small = resolve_size_rules(cfg, n_train=limit)
    assert f"a training split of {limit} samples" in capsys.readouterr().out
    rule = cfg.train.small_set
    assert (small.model.embed_dim, small.model.temporal_conv, small.train.min_steps) == (
        rule["model.embed_dim"], rule["model.temporal_conv"], rule["train.min_steps"])
    large = resolve_size_rules(cfg, n_train=limit + 1)
    assert large.model == cfg.model and large.train.min_steps == cfg.train.min_steps
    assert large.train.small_set == rule and large.train.ensemble == 1
    assert "small-set settings" not in capsys.readouterr().out
