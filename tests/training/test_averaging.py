"""Weight averaging (train.ema_decay): the average equals the hand-computed one, checkpoints
hold it (the raw weights beside it), validation scores it, and resuming continues it exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sitsformer.models import load_checkpoint
from sitsformer.training import SITSFormerTrainer, create_criterion, create_optimizer
from sitsformer.training.averaging import WeightEMA


def test_ema_equals_hand_computed_average():
    lin = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0]]))
    ema = WeightEMA(lin, decay=0.5)
    expected = torch.tensor([[1.0, 2.0]])
    for n, w in enumerate([[3.0, 0.0], [5.0, -2.0], [-1.0, 4.0]], start=1):
        with torch.no_grad():
            lin.weight.copy_(torch.tensor([w]))
        d = min(0.5, (1 + n) / (10 + n))  # 2/11, 3/12, 4/13
        expected = d * expected + (1 - d) * torch.tensor([w])
        ema.update(lin)
        torch.testing.assert_close(ema.state_dict()["weight"], expected)
    assert ema.updates == 3
    with ema.applied(lin):
        torch.testing.assert_close(lin.weight.detach(), expected)
    assert torch.equal(lin.weight.detach(), torch.tensor([[-1.0, 4.0]]))  # restored


def test_ema_decay_must_be_a_fraction():
    with pytest.raises(ValueError, match="ema_decay must be in"):
        WeightEMA(nn.Linear(1, 1), 1.0)


def _trainer(tt, model, run_dir, epochs=3, **kw):
    opt = create_optimizer(model, lr=3e-3, weight_decay=0.01)
    return SITSFormerTrainer(model, opt, None, create_criterion(), device="cpu",
                             num_epochs=epochs, run_dir=run_dir, progress=False,
                             tensorboard=False, plots=False, ema_decay=0.9, **kw)


def test_trainer_saves_and_validates_the_average(tt, demo_samples, tmp_path):
    train, val = tt.loaders(demo_samples)
    model = tt.tiny_model(dropout=0.0)
    seen = [tt.weights(model)]

    def record(trainer, event, info):
        if event == "step_end":
            seen.append(tt.weights(trainer.model_without_ddp))

    trainer = _trainer(tt, model, tmp_path / "run", callbacks=[record])
    torch.manual_seed(0)
    res = trainer.fit(train, val)
    expected = dict(seen[0])
    for n, w in enumerate(seen[1:], start=1):
        d = min(0.9, (1 + n) / (10 + n))
        expected = {k: d * expected[k] + (1 - d) * w[k] for k in w}
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["ema_updates"] == res["global_step"] == len(seen) - 1
    for k, v in expected.items():
        torch.testing.assert_close(ckpt["model_state_dict"][k], v, rtol=1e-5, atol=1e-6)
        assert torch.equal(ckpt["train_model_state_dict"][k], seen[-1][k]), k
    # the last epoch's validation loss is that of the averaged weights
    check = tt.tiny_model(dropout=0.0)
    check.load_state_dict(ckpt["model_state_dict"])
    plain = SITSFormerTrainer(check, create_optimizer(check), None, create_criterion(),
                              device="cpu", progress=False, run_dir=None)
    assert plain.evaluate(val)["val_loss"] == pytest.approx(res["history"][-1]["val_loss"],
                                                            rel=1e-6)
    assert trainer.model_without_ddp.state_dict()["head.weight"].equal(seen[-1]["head.weight"])


def test_resume_continues_the_average_exactly(tt, demo_samples, tmp_path):
    train, val = tt.loaders(demo_samples)
    full = _trainer(tt, tt.tiny_model(), tmp_path / "full")
    torch.manual_seed(1)
    full.fit(train, val)
    part = _trainer(tt, tt.tiny_model(), tmp_path / "part")
    torch.manual_seed(1)
    part.fit(train, val, num_epochs=1)
    resumed = _trainer(tt, tt.tiny_model(seed=7), tmp_path / "part")
    resumed.fit(train, val, resume_from=tmp_path / "part" / "last.pt")
    a = load_checkpoint(tmp_path / "full" / "last.pt")
    b = load_checkpoint(tmp_path / "part" / "last.pt")
    for key in ("model_state_dict", "train_model_state_dict"):
        for k, v in a[key].items():
            assert torch.equal(v, b[key][k]), (key, k)
