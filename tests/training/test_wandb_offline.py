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
