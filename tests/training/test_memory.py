"""train.memory_budget_gb: the plan fits the measured saved bytes, and the plan's run (micro-
batches + accumulation, checkpointing) trains to the same weights as the plain run."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from sitsformer.cli import main
from sitsformer.models import SITSFormer, load_checkpoint
from sitsformer.training.memory import GIB, measure_saved, plan_memory, probe_batch, saved_bytes


def tiny() -> SITSFormer:
    return SITSFormer(img_size=8, patch_size=4, in_channels=3, num_classes=4, embed_dim=32,
                      num_layers=3, num_heads=4, dropout=0.0, max_seq_len=12)


def test_saved_bytes_grow_linearly_and_checkpointing_saves_less(one_thread):
    model = tiny()
    s1, s2, s4 = (saved_bytes(model, probe_batch(model, n, 10)) for n in (1, 2, 4))
    assert s4 - s2 == 2 * (s2 - s1) > 0  # the same bytes per sample at every size
    per, fixed = measure_saved(model, 10)
    assert per == s2 - s1 and fixed == s1 - per
    per_ckpt, _ = measure_saved(model, 10, checkpointing=True)
    assert 0 < per_ckpt < per / 2
    assert model.grad_checkpointing is False  # the probe leaves the model as it was


@pytest.mark.parametrize("want", ["plain", "checkpointing", "micro"])
def test_plan_fits_the_budget_with_measured_bytes(one_thread, want):
    model, batch, t = tiny(), 8, 10
    state = 16 * sum(p.numel() for p in model.parameters())
    per, fixed = measure_saved(model, t)
    per_c, fixed_c = measure_saved(model, t, checkpointing=True)
    budgets = {"plain": state + 2 * (fixed + batch * per),
               "checkpointing": state + 1.3 * (fixed + batch * per) * 0.5 + 1.3 * batch * per_c,
               "micro": state + 1.3 * (fixed + batch // 4 * per)}
    budget = budgets[want]
    plan = plan_memory(model, batch, budget / GIB, t)
    assert plan.micro_batch * plan.accumulation == batch
    chosen = (plan.checkpointing, plan.accumulation)
    if want == "plain":
        assert chosen == (False, 1)
    elif want == "checkpointing":
        assert chosen == (True, 1)
    else:
        assert plan.accumulation > 1
    # What one micro-batch of the plan really saves, measured, fits the budget.
    measured = saved_bytes(model, probe_batch(model, plan.micro_batch, t),
                           checkpointing=plan.checkpointing)
    assert state + measured <= plan.budget_bytes
    assert plan.estimated_bytes <= plan.budget_bytes


def test_a_budget_too_small_names_the_need(one_thread):
    with pytest.raises(ValueError, match=r"memory_budget_gb=1e-06.*needs about"):
        plan_memory(tiny(), 8, 1e-6, 10)


def test_cli_run_with_a_budget_trains_to_the_same_weights(tmp_path):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": {"variant": "sitsformer_pixel", "embed_dim": 16, "num_heads": 2,
                  "num_layers": 2, "dropout": 0.0},
        "data": {"source": "demo", "split": "group", "demo_samples": 48, "demo_classes": 4,
                 "batch_size": 16},
        "optim": {"lr": 3e-3},
        "train": {"epochs": 1, "threads": 1, "grad_clip": None},
        "logging": {"run_dir": str(tmp_path / "runs"), "tensorboard": False, "progress": False,
                    "plots": False},
    }))
    assert main(["train", "--config", str(cfg), "logging.name=plain"]) == 0
    # A budget with room for the model state and a few samples' activations only.
    assert main(["train", "--config", str(cfg), "logging.name=budget",
                 "train.memory_budget_gb=0.0006"]) == 0
    runs = tmp_path / "runs"
    plan = json.loads((runs / "budget" / "memory_plan.json").read_text())
    assert plan["batch"] == 16 and plan["accumulation"] > 1
    assert plan["micro_batch"] * plan["accumulation"] == 16
    saved = yaml.safe_load((runs / "budget" / "config.yaml").read_text())
    assert saved["data"]["batch_size"] == plan["micro_batch"]
    assert saved["train"]["accumulation_steps"] == plan["accumulation"]
    assert saved["train"]["memory_budget_gb"] is None
    a = load_checkpoint(runs / "plain" / "last.pt")["model_state_dict"]
    b = load_checkpoint(runs / "budget" / "last.pt")["model_state_dict"]
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=2e-5, rtol=1e-4, msg=name)


def test_measure_peak_needs_cuda():
    """The measured plan is for CUDA devices; on the CPU it refuses, naming the device."""
    from sitsformer.training.memory import measure_peak

    model = SITSFormer(img_size=1, patch_size=1, in_channels=4, num_classes=3)
    with pytest.raises(ValueError, match="needs a CUDA device, got cpu"):
        measure_peak(model, 4, device="cpu")
