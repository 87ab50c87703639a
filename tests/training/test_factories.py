"""create_optimizer / create_scheduler / create_criterion: exact values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import ReduceLROnPlateau

from sitsformer.training import (
    compute_class_weights,
    create_criterion,
    create_optimizer,
    create_scheduler,
)


def _lrs(sched, opt, n):
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_optimizer_from_parameters_decays_everything(tt):
    model = tt.tiny_model()
    opt = create_optimizer(model.parameters(), optimizer_type="adamw", lr=1e-4,
                           weight_decay=1e-2, betas=(0.9, 0.999))
    assert isinstance(opt, torch.optim.AdamW)
    assert len(opt.param_groups) == 1
    assert opt.param_groups[0]["weight_decay"] == 1e-2
    assert opt.param_groups[0]["betas"] == (0.9, 0.999)


def test_optimizer_from_model_skips_norms_biases_and_named_params(tt):
    model = tt.tiny_model(num_layers=2)
    opt = create_optimizer(model, optimizer_type="adamw", lr=1e-3, weight_decay=0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    free = {names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert decayed and free and not decayed & free
    assert all(p.ndim >= 2 for n, p in model.named_parameters() if n in decayed)
    assert "norm.weight" in free and "head.bias" in free and "head.weight" in decayed
    assert len(decayed) + len(free) == len(list(model.parameters()))


def test_layer_decay_scales_learning_rates_by_depth(tt):
    model = tt.tiny_model(num_layers=2)  # depths 0 (embed), 1, 2 (blocks), 3 (norm + head)
    opt = create_optimizer(model, lr=1.0, weight_decay=0.0, layer_decay=0.5)
    names = {id(p): n for n, p in model.named_parameters()}
    for g in opt.param_groups:
        for p in g["params"]:
            depth = model.layer_id(names[id(p)])
            assert g["lr"] == pytest.approx(0.5 ** (3 - depth))
    with pytest.raises(ValueError, match="layer_decay"):
        create_optimizer(model.parameters(), layer_decay=0.5)


@pytest.mark.parametrize("kind,cls", [("adam", torch.optim.Adam), ("sgd", torch.optim.SGD)])
def test_other_optimizers(kind, cls, tt):
    assert isinstance(create_optimizer(tt.tiny_model(), optimizer_type=kind, lr=0.1), cls)
    with pytest.raises(ValueError, match="optimizer_type"):
        create_optimizer(tt.tiny_model(), optimizer_type="lion")


def test_cosine_per_epoch_matches_formula(tt):
    opt = create_optimizer(tt.tiny_model().parameters(), lr=1e-4)
    sched = create_scheduler(opt, scheduler_type="cosine", num_epochs=10, warmup_epochs=2,
                             min_lr=1e-6)
    lrs = _lrs(sched, opt, 12)
    assert lrs[0] == pytest.approx(1e-4 / 3) and lrs[1] == pytest.approx(2e-4 / 3)
    assert lrs[2] == pytest.approx(1e-4)  # warm-up done: the peak
    for e in range(2, 10):
        expect = 1e-6 + (1e-4 - 1e-6) * 0.5 * (1 + math.cos(math.pi * (e - 2) / 8))
        assert lrs[e] == pytest.approx(expect)
    assert lrs[10] == pytest.approx(1e-6) and lrs[11] == pytest.approx(1e-6)
    assert sched.interval == "epoch"


def test_per_step_schedule_equals_per_epoch_at_epoch_boundaries(tt):
    opt_e = create_optimizer(tt.tiny_model().parameters(), lr=1e-3)
    opt_s = create_optimizer(tt.tiny_model().parameters(), lr=1e-3)
    se = create_scheduler(opt_e, "cosine", num_epochs=6, warmup_epochs=0, min_lr=1e-5)
    ss = create_scheduler(opt_s, "cosine", num_epochs=6, warmup_epochs=0, min_lr=1e-5,
                          steps_per_epoch=4)
    assert ss.interval == "step"
    per_epoch = _lrs(se, opt_e, 6)
    per_step = _lrs(ss, opt_s, 24)
    assert per_step[::4] == pytest.approx(per_epoch)
    assert all(a >= b for a, b in zip(per_step, per_step[1:]))  # smooth, monotone


def test_step_scheduler_from_the_tutorial(tt):
    opt = create_optimizer(tt.tiny_model().parameters(), lr=1.0)
    sched = create_scheduler(opt, scheduler_type="step", step_size=30, gamma=0.1)
    lrs = _lrs(sched, opt, 61)
    assert lrs[29] == 1.0 and lrs[30] == pytest.approx(0.1) and lrs[60] == pytest.approx(0.01)


def test_plateau_scheduler_steps_with_the_metric(tt):
    opt = create_optimizer(tt.tiny_model().parameters(), lr=1.0)
    sched = create_scheduler(opt, "plateau", patience=1, factor=0.5)
    assert isinstance(sched, ReduceLROnPlateau)
    for loss in (1.0, 1.0, 1.0):
        sched.step(loss)
    assert opt.param_groups[0]["lr"] == 0.5


def test_class_weights_and_weighted_loss(tt):
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    w = compute_class_weights(labels, 4)
    assert w.tolist() == pytest.approx([6 / 12, 6 / 4, 6 / 8, 0.0])
    crit = create_criterion(class_weights="balanced", weight_source=labels, num_classes=4)
    logits = torch.randn(6, 4)
    assert crit(logits, labels) == pytest.approx(float(F.cross_entropy(logits, labels, weight=w)))
    ds = [{"label": int(v)} for v in labels]
    assert compute_class_weights(ds, 4).tolist() == pytest.approx(w.tolist())


def test_label_smoothing_focal_and_ignore_index(tt):
    logits, target = torch.randn(8, 5), torch.randint(0, 5, (8,))
    ls = create_criterion(label_smoothing=0.1)
    assert ls(logits, target) == pytest.approx(float(F.cross_entropy(logits, target,
                                                                     label_smoothing=0.1)))
    focal0 = create_criterion("focal", focal_gamma=0.0)
    assert focal0(logits, target) == pytest.approx(float(F.cross_entropy(logits, target)),
                                                   rel=1e-5)
    focal2 = create_criterion("focal", focal_gamma=2.0)
    assert float(focal2(logits, target)) < float(focal0(logits, target))
    ignored = target.clone()
    ignored[:4] = -100
    for crit in (create_criterion(), focal0):
        assert crit(logits, ignored) == pytest.approx(
            float(F.cross_entropy(logits[4:], target[4:])), rel=1e-5)
        x = logits.clone().requires_grad_()
        loss = crit(x, torch.full_like(target, -100))  # nothing to learn: exactly 0, no NaN
        loss.backward()
        assert float(loss.detach()) == 0.0 and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="loss_type"):
        create_criterion("hinge")
