"""SITSFormerTrainer: resume equality, accumulation, exclusions, NaN stop, signals, tracking."""

from __future__ import annotations

import copy
import os
import signal

import numpy as np
import pytest
import torch

from sitsformer.models import load_checkpoint, load_model
from sitsformer.training import (
    ClassificationTask,
    NonFiniteLossError,
    SITSFormerTrainer,
    create_criterion,
    create_optimizer,
    create_scheduler,
    read_metrics,
)


def make_trainer(tt, model, run_dir=None, epochs=4, steps_per_epoch=None, **kw):
    opt = create_optimizer(model, lr=3e-3, weight_decay=0.01)
    sched = create_scheduler(opt, "cosine", num_epochs=epochs, warmup_epochs=1, min_lr=1e-5,
                             steps_per_epoch=steps_per_epoch)
    kw.setdefault("tensorboard", False)
    kw.setdefault("plots", False)
    return SITSFormerTrainer(model, opt, sched, create_criterion(), device="cpu",
                             num_epochs=epochs, run_dir=run_dir, progress=False, **kw)


def test_resume_after_epoch_k_equals_uninterrupted_run(tt, demo_samples, tmp_path):
    train, val = tt.loaders(demo_samples)
    full = make_trainer(tt, tt.tiny_model(), tmp_path / "full", steps_per_epoch=len(train))
    torch.manual_seed(123)
    res_full = full.fit(train, val)

    part = make_trainer(tt, tt.tiny_model(), tmp_path / "part", steps_per_epoch=len(train))
    torch.manual_seed(123)
    part.fit(train, val, num_epochs=2)
    torch.manual_seed(999)  # whatever happens in between must not matter
    resumed = make_trainer(tt, tt.tiny_model(seed=5), tmp_path / "part",
                           steps_per_epoch=len(train))
    res = resumed.fit(train, val, resume_from=tmp_path / "part" / "last.pt")

    assert res["epochs"] == 4 and res["global_step"] == res_full["global_step"] == 4 * len(train)
    for k, v in tt.weights(full.model).items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    a, b = res_full["history"], res["history"]
    assert [r["val_loss"] for r in a] == [r["val_loss"] for r in b]
    assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]
    assert [r["epoch"] for r in read_metrics(tmp_path / "part")] == [1, 2, 3, 4]


def test_sigterm_saves_resumable_checkpoint_mid_epoch(tt, demo_samples, tmp_path):
    train, val = tt.loaders(demo_samples)
    full = make_trainer(tt, tt.tiny_model(), tmp_path / "full", epochs=3)
    torch.manual_seed(7)
    full.fit(train, val)

    def kill_at(trainer, event, info):
        if event == "step_end" and info["epoch"] == 2 and info["batch"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # a real signal, handled by the trainer

    run = tmp_path / "sig"
    first = make_trainer(tt, tt.tiny_model(), run, epochs=3, callbacks=[kill_at])
    torch.manual_seed(7)
    out = first.fit(train, val)
    assert out["status"] == "interrupted" and out["stop_signal"] == signal.SIGTERM
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["epoch_progress"]["batches"] == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored

    second = make_trainer(tt, tt.tiny_model(seed=3), run, epochs=3)
    res = second.fit(train, val, resume_from=run / "last.pt")
    assert res["status"] == "completed"
    for k, v in tt.weights(full.model).items():
        assert torch.equal(v, second.model.state_dict()[k]), k
    assert [r["train_loss"] for r in res["history"]] == \
        [r["train_loss"] for r in full.history]


def test_gradient_accumulation_equals_large_batch(tt, demo_samples):
    samples = demo_samples[:40]  # batches of 8: windows of 2 then a short window of 1 batch
    train8, _ = tt.loaders(samples, batch_size=8)
    train16, _ = tt.loaders(samples, batch_size=16)
    results = []
    for loader, accum in ((train8, 2), (train16, 1)):
        model = tt.tiny_model(dropout=0.0)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        trainer = SITSFormerTrainer(model, opt, None, create_criterion(), device="cpu",
                                    accumulation_steps=accum, grad_clip=None, progress=False)
        out = trainer.fit(loader, None, num_epochs=1)
        results.append((tt.weights(model), out["global_step"]))
    (w_acc, steps_acc), (w_big, steps_big) = results
    assert steps_acc == steps_big == 3  # 5 micro-batches -> 2 full windows + 1 short one
    for k in w_big:
        torch.testing.assert_close(w_acc[k], w_big[k], rtol=1e-5, atol=1e-6)


def test_samples_without_valid_dates_are_excluded(tt, demo_samples):
    model = tt.tiny_model(dropout=0.0)
    batch = tt.loaders(demo_samples, batch_size=8)[0]
    batch = next(iter(batch))
    task = ClassificationTask(create_criterion())
    loss_all, out_all = task.forward_loss(model, batch)
    cloudy = copy.copy(batch)
    cloudy["mask"] = batch["mask"].clone()
    cloudy["mask"][:3] = False  # three samples with no valid date
    loss, out = task.forward_loss(model, cloudy)
    assert out["excluded"] == 3 and out["count"] == 5 and out_all["excluded"] == 0
    rest = {k: v[3:] for k, v in batch.items()}
    loss_rest, _ = task.forward_loss(model, rest)
    assert torch.isfinite(loss) and float(loss.detach()) == pytest.approx(float(loss_rest.detach()), rel=1e-5)


def test_non_finite_loss_stops_and_keeps_best(tt, demo_samples, tmp_path):
    train, val = tt.loaders(demo_samples)
    trainer = make_trainer(tt, tt.tiny_model(), tmp_path, epochs=3)
    trainer.fit(train, val, num_epochs=1)
    best_before = (tmp_path / "best.pt").read_bytes()
    last_before = (tmp_path / "last.pt").read_bytes()

    def poisoned():
        for i, batch in enumerate(train):
            if i == 2:
                batch = dict(batch, sequence=batch["sequence"] * float("nan"))
            yield batch

    class Loader:
        sampler = train.sampler

        def __iter__(self):
            return poisoned()

        def __len__(self):
            return len(train)

    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 9, batch 2 of epoch 2"):
        trainer.fit(Loader(), val, num_epochs=3)
    assert (tmp_path / "best.pt").read_bytes() == best_before
    assert (tmp_path / "last.pt").read_bytes() == last_before


def test_early_stopping_and_checkpoint_files(tt, demo_samples, tmp_path):
    train, val = tt.loaders(demo_samples)
    model = tt.tiny_model()
    opt = create_optimizer(model, lr=0.0)  # nothing changes: no improvement after epoch 1
    trainer = SITSFormerTrainer(model, opt, device="cpu", run_dir=tmp_path, progress=False,
                                early_stopping_patience=2, monitor="val_oa", save_every=2,
                                tensorboard=True, plots=True)
    out = trainer.fit(train, val, num_epochs=10)
    assert out["status"] == "early_stopping" and out["epochs"] == 3 and out["best_epoch"] == 1
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["best.pt", "epoch_0002.pt", "last.pt"]
    ckpt = torch.load(tmp_path / "best.pt", weights_only=True)
    assert ckpt["format"] == "sitsformer-checkpoint/2" and ckpt["epoch"] == 1
    assert ckpt["metric_name"] == "val_oa" and ckpt["task"] == "classification"
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(rows) == 4 and "val_oa" in rows[0] and "lr" in rows[0]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("val/oa")] == [1, 2, 3]


def test_bf16_autocast_trains_close_to_fp32(tt, demo_samples):
    train, val = tt.loaders(demo_samples)
    losses = {}
    for precision in ("fp32", "bf16"):
        model = tt.tiny_model(dropout=0.0)
        trainer = make_trainer(tt, model, epochs=3, precision=precision)
        out = trainer.fit(train, val)
        losses[precision] = [r["train_loss"] for r in out["history"]]
    assert losses["bf16"][-1] < losses["bf16"][0]
    assert np.allclose(losses["bf16"], losses["fp32"], rtol=0.05)
    with pytest.raises(ValueError, match="fp16"):
        make_trainer(tt, tt.tiny_model(), precision="fp16")


def test_load_model_rebuilds_from_file_alone(tt, demo_samples, tmp_path):
    train, val = tt.loaders(demo_samples)
    trainer = make_trainer(tt, tt.tiny_model(), tmp_path, epochs=1,
                           data_meta={"bands": ["B2"], "scale": 10000.0})
    trainer.fit(train, val)
    model, ckpt = load_model(tmp_path / "last.pt")
    batch = next(iter(val))
    trainer.model.eval()
    expect = trainer.model(batch["sequence"], batch["mask"], doy=batch["doy"])
    got = model(batch["sequence"], batch["mask"], doy=batch["doy"])
    assert torch.equal(expect, got)
    assert ckpt["data_meta"] == {"bands": ["B2"], "scale": 10000.0}
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporary files


def test_checkpoint_interval_writes_less_and_ends_with_the_same_files(tt, demo_samples,
                                                                      tmp_path):
    """checkpoint_interval_s: between writes the improved epoch waits in memory; the final
    best.pt / last.pt equal those of a run that writes every epoch."""
    train, val = tt.loaders(demo_samples)
    every = make_trainer(tt, tt.tiny_model(), tmp_path / "every", epochs=4)
    torch.manual_seed(11)
    res_every = every.fit(train, val)

    seen = []  # the epoch in last.pt at the end of each epoch

    def look(trainer, event, info):
        if event == "epoch_end":
            seen.append(load_checkpoint(tmp_path / "lazy" / "last.pt")["epoch"])

    lazy = make_trainer(tt, tt.tiny_model(), tmp_path / "lazy", epochs=4,
                        checkpoint_interval_s=1e9, callbacks=[look])
    torch.manual_seed(11)
    res_lazy = lazy.fit(train, val)
    assert seen == [1, 1, 1, 4]  # the first epoch, then only the final one
    assert res_lazy["best_epoch"] == res_every["best_epoch"]
    for name in ("best.pt", "last.pt"):
        a = load_checkpoint(tmp_path / "every" / name)
        b = load_checkpoint(tmp_path / "lazy" / name)
        assert a["epoch"] == b["epoch"] and a["best_epoch"] == b["best_epoch"], name
        for k, v in a["model_state_dict"].items():
            assert torch.equal(v, b["model_state_dict"][k]), (name, k)


def test_checkpoint_interval_signal_writes_the_waiting_best(tt, demo_samples, tmp_path):
    """A stop by a signal writes last.pt and the improved epoch that was waiting in memory."""
    train, val = tt.loaders(demo_samples)

    def kill_at(trainer, event, info):
        if event == "step_end" and info["epoch"] == 3 and info["batch"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    run = tmp_path / "sig"
    trainer = make_trainer(tt, tt.tiny_model(), run, epochs=4, checkpoint_interval_s=1e9,
                           callbacks=[kill_at])
    torch.manual_seed(5)
    out = trainer.fit(train, val)
    assert out["status"] == "interrupted"
    best = load_checkpoint(run / "best.pt")
    assert best["epoch"] == trainer.best_epoch  # the waiting epoch, not epoch 1's write
    assert load_checkpoint(run / "last.pt")["epoch_progress"]["batches"] == 2


def test_resume_mid_epoch_from_a_store_equals_the_uninterrupted_run(tt, tmp_path):
    """A store's loader (chunk-aligned batches, ``__getitems__``) resumes exactly mid-epoch."""
    from sitsformer.data import ChunkBatchSampler, DataModule, DemoDataset, build_store

    demo = DemoDataset(n_samples=60, img_size=1, num_classes=4, min_dates=8, max_dates=12,
                       seed=1)
    build_store(demo, tmp_path / "s.zarr", chunk_size=8, progress=False)
    dm = DataModule(source=str(tmp_path / "s.zarr"), split="random", batch_size=8,
                    seed=2).setup()
    train, val = dm.train_loader(), dm.val_loader()
    assert isinstance(train.batch_sampler, ChunkBatchSampler)
    full = make_trainer(tt, tt.tiny_model(), tmp_path / "full", epochs=3)
    torch.manual_seed(7)
    full.fit(train, val)
    assert train.batch_sampler.epoch == 3  # the trainer sets the batch sampler's epoch

    def kill_at(trainer, event, info):
        if event == "step_end" and info["epoch"] == 2 and info["batch"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    run = tmp_path / "sig"
    first = make_trainer(tt, tt.tiny_model(), run, epochs=3, callbacks=[kill_at])
    torch.manual_seed(7)
    assert first.fit(train, val)["status"] == "interrupted"
    second = make_trainer(tt, tt.tiny_model(seed=3), run, epochs=3)
    res = second.fit(dm.train_loader(), val, resume_from=run / "last.pt")
    assert res["status"] == "completed"
    for k, v in tt.weights(full.model).items():
        assert torch.equal(v, second.model.state_dict()[k]), k
    assert [r["train_loss"] for r in res["history"]] == [r["train_loss"] for r in full.history]
