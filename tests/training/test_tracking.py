"""Tracking: per-update scalars, test metrics in TensorBoard and W&B, resumed runs continue
the same logs (TensorBoard purge, same W&B run id); curves.png is redrawn at most every
plot_interval_s seconds and always when the run ends."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sitsformer.cli import main
from sitsformer.models import load_checkpoint
from sitsformer.training import (
    RunLogger,
    SITSFormerTrainer,
    create_criterion,
    create_optimizer,
    create_scheduler,
)


def scalars(run_dir, tag):
    """(step, value) of a TensorBoard tag; per-update tags live in ``tensorboard/steps``."""
    folder = run_dir / "tensorboard" / ("steps" if tag.startswith("step/") else "")
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def trainer_for(tt, run_dir, epochs, steps_per_epoch, callbacks=(), **kw):
    model = tt.tiny_model()
    opt = create_optimizer(model, lr=3e-3, weight_decay=0.01)
    sched = create_scheduler(opt, "cosine", num_epochs=epochs, warmup_epochs=1, min_lr=1e-5,
                             steps_per_epoch=steps_per_epoch)
    kw.setdefault("tensorboard", True)
    return SITSFormerTrainer(model, opt, sched, create_criterion(), device="cpu",
                             num_epochs=epochs, run_dir=run_dir, progress=False, plots=False,
                             accumulation_steps=2, callbacks=callbacks, **kw)


def test_step_scalars_one_per_update_with_the_trainers_loss_and_lr(tt, demo_samples, tmp_path):
    train, val = tt.loaders(demo_samples)  # 48 samples, batch 8: 6 batches = 3 updates/epoch
    updates_per_epoch = 3
    seen = []
    trainer = trainer_for(tt, tmp_path, 2, updates_per_epoch,
                          callbacks=[lambda tr, ev, info: ev == "step_end" and seen.append(info)])
    out = trainer.fit(train, val)
    assert out["global_step"] == 2 * updates_per_epoch == len(seen)
    loss = scalars(tmp_path, "step/train_loss")
    lr = scalars(tmp_path, "step/lr")
    assert [s for s, _ in loss] == [s for s, _ in lr] == list(range(1, 7))
    assert [s for s, _ in loss] == [i["global_step"] for i in seen]
    # TensorBoard stores float32.
    assert [v for _, v in loss] == pytest.approx([i["loss"] for i in seen], rel=1e-6)
    assert [v for _, v in lr] == pytest.approx([i["lr"] for i in seen], rel=1e-6)
    assert len({round(v, 8) for _, v in lr}) == 6  # per-step warm-up/cosine: all different
    # Updates have equal sample counts here, so their mean is the epoch's training loss.
    for epoch, record in enumerate(out["history"]):
        per_update = [v for _, v in loss[3 * epoch:3 * epoch + 3]]
        assert sum(per_update) / 3 == pytest.approx(record["train_loss"], rel=1e-5)
    # The epoch record's lr is the rate of the next epoch's first update.
    assert out["history"][0]["lr"] == pytest.approx(lr[3][1], rel=1e-6)
    # Per-epoch scalars are still there, at the epoch.
    assert [s for s, _ in scalars(tmp_path, "train/loss")] == [1, 2]


def test_resumed_run_drops_step_scalars_written_after_the_checkpoint(tt, demo_samples,
                                                                     tmp_path):
    train, val = tt.loaders(demo_samples)
    trainer = trainer_for(tt, tmp_path, 3, 3, save_every=1)
    trainer.fit(train, val)
    first = dict(scalars(tmp_path, "step/train_loss"))
    assert sorted(first) == list(range(1, 10))
    # As if the run had died after epoch 1's checkpoint and was resumed from it.
    again = trainer_for(tt, tmp_path, 3, 3)
    torch.manual_seed(0)
    again.fit(train, val, resume_from=tmp_path / "epoch_0001.pt")
    steps = [s for s, _ in scalars(tmp_path, "step/train_loss")]
    assert steps == list(range(1, 10))  # once each, no duplicates from the first run
    assert [s for s, _ in scalars(tmp_path, "val/loss")] == [1, 2, 3]


def test_cli_train_writes_test_metrics_to_tensorboard(tmp_path):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": {"variant": "sitsformer_pixel", "embed_dim": 16, "num_heads": 2,
                  "num_layers": 1},
        "data": {"source": "demo", "split": "group", "demo_samples": 48, "demo_classes": 4,
                 "batch_size": 16},
        "train": {"epochs": 2, "threads": 1},
        "logging": {"run_dir": str(tmp_path / "runs"), "name": "exp", "tensorboard": True,
                    "progress": False, "plots": False},
    }))
    assert main(["train", "--config", str(cfg)]) == 0
    run = tmp_path / "runs" / "exp"
    test = json.loads((run / "test_metrics.json").read_text())
    for key in ("test_loss", "test_oa"):
        [(step, value)] = scalars(run, key.replace("_", "/", 1))
        assert step == test["epoch"]
        assert value == pytest.approx(test[key], rel=1e-6)
    updates = load_checkpoint(run / "last.pt")["global_step"]
    assert len(scalars(run, "step/train_loss")) == updates


def test_wandb_offline_resume_continues_the_same_run(tt, demo_samples, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the optional 'wandb' extra is not installed")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    train, val = tt.loaders(demo_samples)
    summaries = []

    def last_step(tr, event, info):
        if event == "epoch_end":
            summaries.append(dict(tr._logger.wandb_run.summary))

    first = trainer_for(tt, tmp_path, 2, 3, tensorboard=False, wandb=True,
                        callbacks=[last_step])
    first.fit(train, val, num_epochs=1)
    run_id = first.wandb_run_id
    assert run_id and (tmp_path / "wandb_run_id.txt").read_text().strip() == run_id
    assert load_checkpoint(tmp_path / "last.pt")["wandb_run_id"] == run_id
    # W&B commits a row when the next one starts: by the epoch's end the updates are in.
    assert summaries[0]["global_step"] in (2, 3) and "step/train_loss" in summaries[0]

    resumed = trainer_for(tt, tmp_path, 2, 3, tensorboard=False, wandb=True,
                          callbacks=[last_step])
    resumed.fit(train, val, resume_from=tmp_path / "last.pt")
    assert resumed.wandb_run_id == run_id
    resumed.log_test({"test_oa": 0.5, "test_loss": 1.25}, epoch=2)
    # Offline, each start (fit, resumed fit) writes its own folder holding run-<id>.wandb, the
    # same id every time; the test metrics go into the resumed fit's run (no third folder).
    logs = sorted((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(logs) == 2 and {p.name for p in logs} == {f"run-{run_id}.wandb"}

    # A new run in a fresh folder gets a new id.
    other = trainer_for(tt, tmp_path / "other", 1, 3, tensorboard=False, wandb=True)
    other.fit(train, val)
    assert other.wandb_run_id not in (None, run_id)

def _records(n: int) -> list[dict]:
    return [{"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.5 + 0.01 * e, "val_loss": 1.2 / e,
             "val_oa": 0.4 + 0.02 * e, "lr": 1e-3 / e} for e in range(1, n + 1)]


def test_throttled_curves_end_equal_to_redrawing_every_epoch(tmp_path):
    every = RunLogger(tmp_path / "every", tensorboard=False, plot_interval_s=0)
    rare = RunLogger(tmp_path / "rare", tensorboard=False, plot_interval_s=1e9)
    png_every, png_rare = tmp_path / "every" / "curves.png", tmp_path / "rare" / "curves.png"
    drawn_every = []
    for i, record in enumerate(_records(4)):
        every.log_epoch(dict(record))
        rare.log_epoch(dict(record))
        drawn_every.append(png_every.read_bytes())
        if i == 0:
            first = png_rare.read_bytes()
            assert first == drawn_every[0]  # the first epoch is drawn at once
        else:
            assert png_rare.read_bytes() == first  # not redrawn within the interval
    assert len(set(drawn_every)) == 4  # interval 0: a new picture after every epoch
    every.close()
    rare.close()
    # closing draws what was logged since the last redraw: the same picture as redrawing always
    assert png_rare.read_bytes() == png_every.read_bytes() == drawn_every[-1]
    assert (tmp_path / "rare" / "metrics.csv").read_text().count("\n") == 5


def test_close_without_new_records_keeps_the_picture(tmp_path):
    logger = RunLogger(tmp_path, tensorboard=False, plot_interval_s=1e9)
    logger.log_epoch(_records(1)[0])
    (tmp_path / "curves.png").write_bytes(b"kept")
    logger.close()  # nothing new since the last draw: nothing redrawn
    assert (tmp_path / "curves.png").read_bytes() == b"kept"


def test_test_metrics_name_the_epoch_of_the_checkpoint_tested(tmp_path):
    """train.test_checkpoint=last: the test report and TensorBoard's test/* carry the last
    epoch, not the epoch best.pt was written at."""
    run = tmp_path / "run"
    assert main(["train", "data.source=demo", "data.split=stratified", "data.demo_samples=48",
                 "data.demo_classes=4", "data.batch_size=16", "data.val_fraction=0.25",
                 "model.variant=sitsformer_pixel",
                 "model.embed_dim=16", "model.num_heads=2", "model.num_layers=1",
                 "optim.lr=1e-12", "schedule.type=constant", "schedule.min_lr=0",
                 "train.epochs=3", "train.threads=1",
                 "train.monitor=val_oa", "train.test_checkpoint=last", "logging.plots=false",
                 "--output", str(run), "--quiet"]) == 0
    test = json.loads((run / "test_metrics.json").read_text())
    assert load_checkpoint(run / "best.pt")["epoch"] == 1  # lr ~0: nothing improves on epoch 1
    assert test["checkpoint"] == str(run / "last.pt")
    assert test["epoch"] == load_checkpoint(run / "last.pt")["epoch"] == 3
    [(step, _)] = scalars(run, "test/oa")
    assert step == 3
