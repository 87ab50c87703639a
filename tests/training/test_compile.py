"""train.compile: the training steps through torch.compile give the eager run's weights, and the
checkpoint is the plain module's (no compiler prefixes)."""

from __future__ import annotations

import torch
import yaml

from sitsformer.cli import main
from sitsformer.models import load_checkpoint


def test_compiled_training_matches_eager_and_writes_a_plain_checkpoint(tmp_path):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": {"variant": "sitsformer_pixel", "embed_dim": 16, "num_heads": 2,
                  "num_layers": 1, "dropout": 0.0},
        "data": {"source": "demo", "split": "group", "demo_samples": 48, "demo_classes": 3,
                 "batch_size": 16},
        "optim": {"lr": 3e-3},
        "train": {"epochs": 1, "threads": 1, "grad_clip": None},
        "logging": {"run_dir": str(tmp_path / "runs"), "tensorboard": False, "progress": False,
                    "plots": False},
    }))
    assert main(["train", "--config", str(cfg), "logging.name=eager"]) == 0
    # aot_eager: the compiler's graph capture and autograd, without generating C++ (CI has no
    # guarantee of a compiler); "inductor" is what a GPU user sets.
    assert main(["train", "--config", str(cfg), "logging.name=compiled",
                 "train.compile=aot_eager"]) == 0
    runs = tmp_path / "runs"
    a = load_checkpoint(runs / "eager" / "last.pt")["model_state_dict"]
    b = load_checkpoint(runs / "compiled" / "last.pt")["model_state_dict"]
    assert list(b) == list(a)  # no "_orig_mod." prefixes
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=2e-5, rtol=1e-4, msg=name)
    assert yaml.safe_load((runs / "compiled" / "config.yaml").read_text())["train"][
        "compile"] == "aot_eager"
