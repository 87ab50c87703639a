"""Pre-training through the trainer: reconstruction task, baseline, resume, fine-tuning hand-off."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import assert_close

from sitsformer.data import SampleDataset, make_demo_data, make_loader
from sitsformer.models import build_finetune_model, create_sits_former, load_checkpoint
from sitsformer.models.pretrain import SITSFormerForPretraining
from sitsformer.training.finetune import FreezeEncoder
from sitsformer.training.optim import create_optimizer
from sitsformer.training.pretrain import (
    ReconstructionTask,
    date_positions,
    evaluate_reconstruction,
)
from sitsformer.training.trainer import SITSFormerTrainer

ENC = dict(img_size=1, patch_size=1, in_channels=10, num_classes=2, embed_dim=16, num_layers=1,
           num_heads=2, mlp_ratio=2.0, dropout=0.0, max_seq_len=40)


pytestmark = pytest.mark.usefixtures("one_thread")


def _unlabelled(n=24, seed=0):
    demo = make_demo_data(n_samples=n, img_size=1, min_dates=8, max_dates=12, seed=seed)
    out = []
    for s in demo.samples:
        s = {k: v for k, v in s.items() if k != "label"}  # no labels: self-supervised
        s["sequence"] = s["sequence"] / 10000.0
        out.append(s)
    return out, demo


def _pretrain_trainer(tmp_path, name="run", precision="fp32", seed=0):
    torch.manual_seed(seed)
    model = SITSFormerForPretraining(create_sits_former(ENC), target="center")
    opt = create_optimizer(model, "adamw", lr=3e-3)
    return SITSFormerTrainer(model, opt, task=ReconstructionTask(seed=1), device="cpu",
                             precision=precision, run_dir=tmp_path / name, progress=False,
                             tensorboard=False, plots=False, handle_signals=False,
                             data_meta={"bands": ["B2"] * 0}), model


def test_pretraining_runs_in_the_trainer_resumes_exactly_and_reports_baseline(tmp_path):
    samples, _ = _unlabelled()
    train = make_loader(SampleDataset(samples[:16]), batch_size=8, seed=0)
    val = make_loader(SampleDataset(samples[16:]), batch_size=8, train=False)

    trainer, model = _pretrain_trainer(tmp_path, "full")
    result = trainer.fit(train, val, num_epochs=2)
    rec = result["history"][-1]
    for key in ("val_loss", "val_mse", "val_mae", "val_baseline_mse", "val_skill"):
        assert np.isfinite(rec[key]), key
    assert rec["val_loss"] == pytest.approx(rec["val_mse"], rel=1e-5)
    assert rec["val_skill"] == pytest.approx(1 - rec["val_mse"] / rec["val_baseline_mse"])
    ckpt = load_checkpoint(tmp_path / "full" / "last.pt")
    assert ckpt["task"] == "pretrain"
    assert ckpt["model_config"]["target"] == "center" and "encoder" in ckpt["model_config"]
    assert "mask_token" in ckpt["model_state_dict"]

    half, _ = _pretrain_trainer(tmp_path, "half")
    half.fit(train, val, num_epochs=1)
    resumed, model2 = _pretrain_trainer(tmp_path, "half", seed=123)
    resumed.fit(train, val, num_epochs=2, resume_from=tmp_path / "half" / "last.pt")
    for (name, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), name

    # validation hides the same dates on every pass: evaluating twice gives the same numbers
    assert trainer.evaluate(val) == trainer.evaluate(val)


def test_bf16_pretraining_loss_close_to_fp32(tmp_path):
    samples, _ = _unlabelled(8)
    batch = next(iter(make_loader(SampleDataset(samples), batch_size=8, train=False)))
    t32, model = _pretrain_trainer(tmp_path, "a")
    model.eval()
    task = ReconstructionTask(seed=0)
    task.make_metrics()
    loss32, _ = task.forward_loss(model, batch)
    task.make_metrics()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss16, out = task.forward_loss(model, batch)
    assert torch.isfinite(loss16) and loss16.dtype == torch.float32
    assert float(loss16.detach()) == pytest.approx(float(loss32.detach()), rel=0.05)


def test_baseline_is_exact_on_linear_series_and_uses_dates():
    t = 10
    dates = np.datetime64("2021-03-01") + np.cumsum(np.random.default_rng(0).integers(3, 15, t))
    days = dates.astype(np.int64).astype(np.float32)
    samples = []
    for i in range(6):
        seq = (np.linspace(0.1, 1.0, 10)[None, :] * (days[:, None] - days[0]) / 100.0 + i)
        samples.append({"sequence": seq.astype(np.float32), "mask": np.ones(t, bool),
                        "doy": (dates - dates.astype("datetime64[Y]")).astype(np.int64) + 1,
                        "dates": dates})
    loader = make_loader(SampleDataset(samples), batch_size=3, train=False)
    batch = next(iter(loader))
    assert torch.equal(date_positions(batch), batch["dates"])
    model = SITSFormerForPretraining(create_sits_former(ENC), target="center").eval()
    task = ReconstructionTask(seed=0)
    task.make_metrics()
    _, out = task.forward_loss(model, batch)
    hidden = out["weight"][..., 0]
    visible = batch["mask"] & ~hidden
    idx = torch.arange(t).expand(3, t)
    first = torch.where(visible, idx, t).amin(1, keepdim=True)
    last = torch.where(visible, idx, -1).amax(1, keepdim=True)
    inside = hidden & (idx > first) & (idx < last)
    assert inside.any()
    # between two visible dates the interpolation in time (not in date index) is exact
    assert_close(out["baseline"][inside], out["target"][inside])
    before = hidden & (idx < first)
    for b, i in zip(*torch.nonzero(before, as_tuple=True)):
        assert torch.equal(out["baseline"][b, i], out["target"][b, first[b, 0]])
    metrics = evaluate_reconstruction(model, loader, seed=0)
    assert metrics["positions"] == 6 * 3 * 10  # round(0.3 * 10) hidden dates x 10 bands
    # a season crossing New Year: doy is not increasing, dates are not given -> date index
    no_dates = {k: v for k, v in batch.items() if k != "dates"}
    no_dates["doy"] = torch.tensor([[350, 360, 5, 20, 40, 50, 60, 70, 80, 90]]).repeat(3, 1)
    assert date_positions(no_dates) is None


def test_finetune_from_pretraining_checkpoint_freezes_then_trains(tmp_path):
    samples, demo = _unlabelled(24)
    trainer, _ = _pretrain_trainer(tmp_path, "pre")
    trainer.fit(make_loader(SampleDataset(samples), batch_size=8), num_epochs=1)

    model, report = build_finetune_model(tmp_path / "pre" / "last.pt", num_classes=8)
    assert report["missing"] == ["head.bias", "head.weight"]
    labelled = [dict(s, label=d["label"]) for s, d in zip(samples, demo.samples)]
    loader = make_loader(SampleDataset(labelled), batch_size=8)
    freeze = FreezeEncoder(1)
    opt = create_optimizer(model, "adamw", lr=1e-2, layer_decay=0.75)  # before freezing
    freeze.apply(model, 0)
    snapshots = []
    ft = SITSFormerTrainer(model, opt, device="cpu", progress=False, handle_signals=False,
                           callbacks=[freeze, lambda tr, ev, info: snapshots.append(
                               {n: p.detach().clone() for n, p in model.named_parameters()})
                               if ev == "epoch_end" else None])
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    ft.fit(loader, num_epochs=2)
    after1, after2 = snapshots
    for name in start:
        if name.startswith("head."):
            assert not torch.equal(after1[name], start[name]), name
        else:
            assert torch.equal(after1[name], start[name]), f"{name} moved while frozen"
    name = "blocks.0.attn_t.qkv.weight"
    assert not torch.equal(after2[name], after1[name])


QUICK = ["model.embed_dim=16", "model.num_layers=1", "model.num_heads=2", "train.epochs=1",
         "logging.tensorboard=false", "logging.plots=false", "logging.progress=false",
         "train.threads=1"]


def test_cli_pretrain_on_unlabelled_geotiffs_then_finetune_is_checked(tmp_path, shared_data,
                                                                     monkeypatch, capsys):
    roi = shared_data / "s2_sen2rts_roi" / "raw" / "inst" / "extdata" / "sen2r" / "sampleroi"
    (tmp_path / "pre.yaml").write_text(
        "data:\n"
        f"  source: {roi / 'NDVI'}\n"
        f"  options: {{cloud_folder: {roi / 'SCL'}}}\n"
        "  batch_size: 32\n"
        "pretrain:\n  target: center\n  hide_ratio: 0.3\n"
        "logging:\n  run_dir: runs\n  name: pre\n")
    from sitsformer.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["pretrain", "--config", "pre.yaml", *QUICK]) == 0
    out = capsys.readouterr().out
    assert "interpolation baseline" in out
    assert "no group ids" in out  # the split fallback is said, not silent
    ckpt = load_checkpoint(tmp_path / "runs" / "pre" / "best.pt")
    assert ckpt["task"] == "pretrain" and "mask_token" in ckpt["model_state_dict"]
    assert ckpt["model_config"]["encoder"]["bands"] == ["NDVI"]
    assert ckpt["data_meta"]["split_sizes"]["train"] > 100  # 175 unlabelled pixels
    # the demo data has 10 bands, the encoder 1: a clear error, exit code 1
    assert main(["finetune", "--pretrained", "runs/pre/best.pt", "data.demo_samples=40",
                 *QUICK]) == 1
    err = capsys.readouterr().err
    assert "band set mismatch" in err and "NDVI" in err


def test_cli_pretrain_then_finetune_on_demo(tmp_path, monkeypatch, capsys):
    from sitsformer.cli import main

    monkeypatch.chdir(tmp_path)
    common = ["data.demo_samples=64", "data.batch_size=16", "data.split=stratified", *QUICK]
    assert main(["pretrain", "logging.run_dir=runs", "logging.name=pre",
                 "pretrain.target=center", *common]) == 0
    assert main(["finetune", "--pretrained", "runs/pre/best.pt", "logging.run_dir=runs",
                 "logging.name=ft", "finetune.freeze_epochs=1", "optim.layer_decay=0.8",
                 "finetune.label_fraction=0.5", *common]) == 0
    assert "new head ['head.bias', 'head.weight']" in capsys.readouterr().out
    ckpt = load_checkpoint(tmp_path / "runs" / "ft" / "best.pt")
    assert ckpt["task"] == "classification"
    meta, spec = ckpt["data_meta"], ckpt["input_spec"]
    pre = load_checkpoint(tmp_path / "runs" / "pre" / "best.pt")["input_spec"]
    # inputs prepared as in pre-training
    assert (spec["scale"], spec["mean"], spec["std"]) == (pre["scale"], pre["mean"], pre["std"])
    assert pre["classes"] is None and len(spec["classes"]) == ckpt["model_config"]["num_classes"]
    assert meta["split_sizes"]["train"] == pytest.approx(meta["train_pool_size"] / 2, abs=8)
    # an unknown key is an error naming it
    assert main(["finetune", "finetune.freez_epochs=1"]) == 1
    assert "finetune.freez_epochs" in capsys.readouterr().err


def test_eopatch_cloudy_dates_are_never_targets_nor_inputs(shared_data):
    # the Slovenia EOPatch (bench_pretrain --set slovenia): a cloudy date (mask/CLM = 1) is an
    # invalid date, so pre-training never hides it, never scores it and never reads its value
    from sitsformer.data import DataModule

    folder = shared_data / "s2_slovenia_eopatch/raw/example_data/TestEOPatch"
    dm = DataModule(source=str(folder), options={"label": None}, split="random",
                    val_fraction=0.0, test_fraction=0.0, batch_size=64, labelled=False).setup()
    batch = next(iter(dm.train_loader()))
    clm = np.load(folder / "mask/CLM.npy")[..., 0].astype(bool)  # (T, H, W)
    rows, cols = np.divmod(batch["index"].numpy(), 100)  # every pixel, row-major (101 x 100)
    cloudy = torch.from_numpy(clm[:, rows, cols].T)  # (B, T)
    assert cloudy.any() and not (batch["mask"].bool() & cloudy).any()

    torch.manual_seed(0)
    enc = create_sits_former({**ENC, "in_channels": 1, "max_seq_len": 68})
    model = SITSFormerForPretraining(enc, target="center", hide_ratio=0.75).eval()
    task = ReconstructionTask(seed=0)
    _, out = task.forward_loss(model, batch)
    counted = out["weight"][..., 0]  # (B, T) positions the loss and metrics score
    assert counted.any() and not (counted & cloudy).any()
    # garbage at the cloudy dates changes nothing the model predicts for the counted dates
    noisy = dict(batch, sequence=torch.where(cloudy[:, :, None, None, None],
                                             batch["sequence"] + 100.0, batch["sequence"]))
    task2 = ReconstructionTask(seed=0)
    _, out2 = task2.forward_loss(model, noisy)
    assert torch.equal(out2["weight"], out["weight"])
    assert_close(out2["pred"][counted], out["pred"][counted], atol=1e-5)
