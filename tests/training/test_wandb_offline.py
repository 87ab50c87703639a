"""Weights & Biases is an optional extra: when installed, offline mode logs with no account."""

from __future__ import annotations

import pytest

from sitsformer.training import RunLogger


def test_wandb_offline_run_records_the_epochs(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the optional 'wandb' extra is not installed")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = RunLogger(tmp_path, tensorboard=False, wandb=True, plots=False,
                       config={"optim": {"lr": 1e-3}})
    logger.log_epoch({"epoch": 1, "train_loss": 2.0, "lr": 1e-3})
    logger.log_epoch({"epoch": 2, "train_loss": 1.5, "lr": 5e-4})
    summary = dict(logger.wandb_run.summary)
    logger.close()
    # W&B commits a step when the next one is logged (or at finish): epoch 1 is in by now.
    assert summary["train_loss"] in (2.0, 1.5) and summary["lr"] in (1e-3, 5e-4)
    runs = list((tmp_path / "wandb").glob("offline-run-*/*.wandb"))
    assert len(runs) == 1 and runs[0].stat().st_size > 0


def test_wandb_missing_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError("No module named 'wandb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with pytest.raises(ImportError, match=r"needs the 'wandb' package \(pip install wandb\)"):
        RunLogger(tmp_path, tensorboard=False, wandb=True, plots=False)


@pytest.mark.parametrize("wandb_dir", [False, True])
def test_a_cli_run_with_its_test_metrics_is_one_wandb_run(tmp_path, monkeypatch, wandb_dir):
    """train + the test metrics logged after it: one offline run folder (one id), under the
    run folder, or under WANDB_DIR when that is set."""
    pytest.importorskip("wandb", reason="the optional 'wandb' extra is not installed")
    from sitsformer.cli import main

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    if wandb_dir:
        monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))
    else:
        monkeypatch.delenv("WANDB_DIR", raising=False)
    assert main(["demo", "--epochs", "1", "--output", str(tmp_path / "runs"),
                 "data.demo_samples=96", "model.embed_dim=16", "model.num_layers=1",
                 "train.threads=1", "logging.tensorboard=false", "logging.progress=false",
                 "logging.wandb=true"]) == 0
    runs = sorted(tmp_path.rglob("offline-run-*"))
    assert len(runs) == 1, runs
    run_dir = next((tmp_path / "runs").iterdir())
    want = (tmp_path / "elsewhere") if wandb_dir else run_dir
    assert runs[0].parent == want / "wandb"
    run_id = (run_dir / "wandb_run_id.txt").read_text().strip()
    assert runs[0].name.endswith(run_id)
