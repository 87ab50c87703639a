"""Checkpoints of the original SITS-Former code load exactly and compute its function.

The fixture (tests/fixtures/original_sitsformer, see its README) was written once by the
original code at a tiny size, with its outputs on a fixed input: no original code is needed here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sitsformer.models import (
    CheckpointError,
    OriginalCheckpointError,
    build_finetune_model,
    create_sits_former,
    load_checkpoint,
    load_model,
    load_original_checkpoint,
)
from sitsformer.models.original import detect_original, original_to_checkpoint

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "original_sitsformer"
BERT = FIXTURE / "pretrain" / "checkpoint.bert.tar"
PRETRAIN = FIXTURE / "pretrain" / "checkpoint.tar"
FINETUNE = FIXTURE / "finetune" / "checkpoint.tar"
TOL = 1e-5


@pytest.fixture(scope="module")
def ref():
    z = np.load(FIXTURE / "reference.npz")
    x = torch.from_numpy(z["ts"] / 10000.0).float()  # the original's scaling
    return {"x": x, "doy": torch.from_numpy(z["doy"]).long(),
            "mask": torch.from_numpy(z["mask"]).bool(),
            **{k: torch.from_numpy(z[k]) for k in ("features", "logits", "recon")}}


def _raw(path):
    obj = torch.load(path, map_location="cpu", weights_only=True)
    return obj if "model_state_dict" not in obj else obj["model_state_dict"]


@pytest.mark.parametrize("path,kind", [(BERT, "encoder"), (PRETRAIN, "pretrain"),
                                       (FINETUNE, "classifier")])
def test_every_key_maps(path, kind):
    obj = torch.load(path, map_location="cpu", weights_only=True)
    assert detect_original(obj) == kind
    _, ckpt = load_original_checkpoint(path, num_heads=2)
    assert set(ckpt["original_keys"]) == set(_raw(path))  # none unused
    assert len(set(ckpt["original_keys"].values())) == len(_raw(path))  # none merged


@pytest.mark.parametrize("packing", [False, True])
@pytest.mark.parametrize("fast_stem", [True, False])
def test_outputs_equal_the_original(ref, packing, fast_stem):
    enc, _ = load_original_checkpoint(BERT, num_heads=2)
    clf, _ = load_original_checkpoint(FINETUNE, num_heads=2)
    pre, _ = load_original_checkpoint(PRETRAIN, num_heads=2)
    valid = ref["mask"]
    for m in (enc, clf, pre.encoder):
        m.set_token_packing(packing)
        m.embed.fast = fast_stem
    with torch.no_grad():
        feats = enc.forward_features(ref["x"], valid, ref["doy"])[0][:, :, 0]
        logits = clf(ref["x"], valid, ref["doy"])
        recon = pre(ref["x"], valid, ref["doy"], hidden=torch.zeros_like(valid))["pred"]
    rows = slice(None) if not packing else valid  # packed: padded dates are not computed
    assert (feats[rows] - ref["features"][rows]).abs().max() <= TOL
    assert (recon[rows] - ref["recon"][rows]).abs().max() <= TOL
    assert (logits - ref["logits"]).abs().max() <= TOL


def test_bf16_autocast_stays_close(ref):
    clf, _ = load_original_checkpoint(FINETUNE, num_heads=2)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = clf(ref["x"], ref["mask"], ref["doy"])
    assert (logits.float() - ref["logits"]).abs().max() <= 0.1


def test_load_checkpoint_converts_and_load_model_runs(ref):
    ckpt = load_checkpoint(FINETUNE)  # what evaluate / predict read
    assert ckpt["model_config"]["norm"] == "post" and ckpt["input_spec"]["scale"] == 10000
    # 8 heads is the default (the original's); the fixture has 2
    conv = original_to_checkpoint(torch.load(FINETUNE, weights_only=True), num_heads=2)
    model, _ = load_model(FINETUNE)
    assert model.config.num_classes == 3 and model.config.num_heads == 8
    model2 = create_sits_former(conv["model_config"])
    model2.load_state_dict(conv["model_state_dict"])
    model2.eval()
    with torch.no_grad():
        assert (model2(ref["x"], ref["mask"], ref["doy"]) - ref["logits"]).abs().max() <= TOL


def test_finetune_from_the_original_encoder():
    model, report = build_finetune_model(BERT, num_classes=5)
    assert report["missing"] == ["head.bias", "head.weight"] and not report["dropped"]
    assert len(report["loaded"]) == len(_raw(BERT))
    assert model.config.num_classes == 5 and model.config.stem_norm


def test_unknown_and_missing_keys_are_named(tmp_path):
    state = dict(torch.load(BERT, weights_only=True))
    state["embedding.extra.weight"] = torch.zeros(2)
    bad = tmp_path / "checkpoint.bert.tar"
    torch.save(state, bad)
    with pytest.raises(OriginalCheckpointError, match="embedding.extra.weight"):
        load_original_checkpoint(bad, num_heads=2)
    with pytest.raises(CheckpointError, match="embedding.extra.weight"):
        load_checkpoint(bad)
    state.pop("embedding.extra.weight")
    state.pop("transformer_encoder.layers.0.norm2.bias")
    torch.save(state, bad)
    with pytest.raises(OriginalCheckpointError, match=r"blocks\.0\.norm_mlp\.bias"):
        load_original_checkpoint(bad, num_heads=2)


def test_module_prefix_of_data_parallel_is_read(tmp_path, ref):
    obj = torch.load(FINETUNE, weights_only=True)
    obj["model_state_dict"] = {f"module.{k}": v for k, v in obj["model_state_dict"].items()}
    path = tmp_path / "checkpoint.tar"
    torch.save(obj, path)
    clf, _ = load_original_checkpoint(path, num_heads=2)
    with torch.no_grad():
        assert (clf(ref["x"], ref["mask"], ref["doy"]) - ref["logits"]).abs().max() <= TOL


def test_evaluate_an_original_classifier_on_its_folders(tmp_path):
    """evaluate reads the original's fine-tuning checkpoint and its TRAIN/VALIDATE/TEST layout;
    --split test is the TEST folder (the checkpoint records no split)."""
    import warnings

    from sitsformer.evaluation.evaluate import evaluate_checkpoint

    data = _original_folders(tmp_path / "data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate_checkpoint(FINETUNE, str(data), str(tmp_path / "rep"),
                                  progress=False, split="test")
    assert res["counts"]["scored"] == 3


def test_encoders_saved_before_the_layout_settings_still_load():
    """A pre-training checkpoint whose config has no norm/activation/stem_norm/stem_channels
    (written before they existed) loads as the pre-norm model it was."""
    from sitsformer.models import load_pretrained_encoder

    old = create_sits_former("sitsformer_tiny", num_classes=3)
    config = old.config.to_dict()
    for key in ("norm", "activation", "stem_norm", "stem_channels"):
        config.pop(key)
    ckpt = {"model_config": config, "model_state_dict": old.state_dict()}
    new = create_sits_former("sitsformer_tiny", num_classes=5)
    report = load_pretrained_encoder(new, ckpt)
    assert report["missing"] == ["head.bias", "head.weight"]


def test_finetune_from_the_originals_pretraining_checkpoint():
    """Its pre-training checkpoint.tar as --pretrained: the encoder loads, the reconstruction
    head and the (zero) mask token are left out."""
    model, report = build_finetune_model(PRETRAIN, num_classes=4)
    assert sorted(report["dropped"]) == ["decoder.bias", "decoder.weight", "mask_token"]
    assert report["missing"] == ["head.bias", "head.weight"]
    assert model.config.norm == "post"


@pytest.mark.parametrize("fast_stem", [True, False])
def test_a_training_step_equals_the_originals(fast_stem):
    """Train mode, every dropout 0 (BatchNorm on batch statistics), the padded batch: the
    logits and the cross-entropy gradient of every weight are the original's."""
    z = np.load(FIXTURE / "reference.npz")
    clf, ckpt = load_original_checkpoint(FINETUNE, num_heads=2, dropout=0.0, attn_dropout=0.0)
    clf.set_token_packing(False)
    clf.embed.fast = fast_stem
    clf.train()
    x = torch.from_numpy(z["ts"] / 10000.0).float()
    logits = clf(x, torch.from_numpy(z["mask"]).bool(), torch.from_numpy(z["doy"]).long())
    torch.nn.functional.cross_entropy(logits, torch.from_numpy(z["y"])).backward()
    assert (logits.detach() - torch.from_numpy(z["train_logits"])).abs().max() <= TOL
    params = dict(clf.named_parameters())
    for key, ours in ckpt["original_keys"].items():
        if f"grad:{key}" in z.files:
            ref = torch.from_numpy(z[f"grad:{key}"])
            assert (params[ours].grad - ref).abs().max() <= TOL, key


def _original_folders(root, seed=0):
    rng = np.random.default_rng(seed)
    for name, n in (("TRAIN", 6), ("VALIDATE", 3), ("TEST", 3)):
        (root / name).mkdir(parents=True)
        for i in range(n):
            t = int(rng.integers(2, 8))
            np.savez(root / name / f"{i}.npz",
                     ts=rng.integers(0, 6000, (t, 10, 5, 5)).astype(np.int16),
                     doy=np.sort(rng.choice(np.arange(1, 366), t, replace=False)),
                     class_label=np.array([i % 3]))
    return root


def test_cli_finetune_from_checkpoint_bert_tar(tmp_path, capsys):
    """`sitsformer finetune --pretrained checkpoint.bert.tar` on the original's folders, the
    way docs/from_the_original.md writes the command (the fixture's width 8 takes the default
    8 heads)."""
    import json

    import yaml

    from sitsformer.cli import main

    data = _original_folders(tmp_path / "data")
    config = {"data": {"source": str(data), "split": "upstream", "scale": 10000.0,
                       "normalize": False, "batch_size": 4, "options": {"num_classes": 3}},
              "optim": {"type": "adam", "lr": 2.0e-4, "weight_decay": 1.0e-4},
              "schedule": {"type": "constant", "warmup_epochs": 0},
              "train": {"epochs": 1, "grad_clip": None, "monitor": "val_macro_f1"},
              "logging": {"run_dir": str(tmp_path / "runs"), "tensorboard": False,
                          "plots": False, "progress": False}}
    (tmp_path / "finetune.yaml").write_text(yaml.safe_dump(config))
    code = main(["finetune", "--config", str(tmp_path / "finetune.yaml"), "--pretrained",
                 str(BERT), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    result = json.loads(out[out.index("{"):])
    assert len(result["pretrained"]["loaded"]) == len(_raw(BERT))
    assert result["data"]["split_sizes"]["test"] == 3
