"""``sitsformer train --resume``: the config is compared with the checkpoint's (issue 13)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from sitsformer.cli import main
from sitsformer.models import load_checkpoint
from sitsformer.training import create_scheduler
from sitsformer.training.config import load_config
from sitsformer.training.run import ResumeConfigError, check_resume

TINY = ["model.embed_dim=16", "model.num_layers=1", "data.demo_samples=64", "data.batch_size=16",
        "train.threads=1", "logging.progress=false", "logging.tensorboard=false",
        "logging.plots=false"]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A finished 2-epoch run (cosine schedule, 1 warm-up epoch)."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("base") / "run"
    assert main(["train", *TINY, "train.epochs=2", "--output", str(out)]) == 0
    return out


@pytest.fixture
def run_copy(base_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(base_run, dst)
    return dst


def lrs(run):
    return [json.loads(line)["lr"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def cosine_curve(epochs: int, updates: int, lr: float = 1e-3) -> list[float]:
    """The learning rate at the end of each epoch of an ``epochs``-epoch run with the default
    schedule (cosine, 1 warm-up epoch, min_lr 1e-6, stepped per update)."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = create_scheduler(opt, "cosine", num_epochs=epochs, warmup_epochs=1.0, min_lr=1e-6,
                             steps_per_epoch=updates)
    out = []
    for _ in range(epochs):
        for _ in range(updates):
            opt.step()
            sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out


def one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize("override, shown", [
    ("model.embed_dim=32", "model.embed_dim: 16 in the checkpoint, 32 now"),
    ("data.seed=1", "data.seed: 0 in the checkpoint, 1 now"),
    ("data.demo_samples=80", "data.demo_samples: 64 in the checkpoint, 80 now"),
])
def test_model_or_data_change_is_refused_with_the_keys(run_copy, capsys, override, shown):
    before = (run_copy / "last.pt").read_bytes()
    rc = main(["train", *TINY, "train.epochs=3", "--resume", str(run_copy / "last.pt"),
               override, "--allow-changes"])  # even with the flag
    line = one_error_line(capsys)
    assert rc == 1 and shown in line and "model and the data must stay" in line
    assert (run_copy / "last.pt").read_bytes() == before
    assert not (run_copy / "resume_changes.json").exists()


def test_longer_run_continues_on_the_schedule_of_the_new_length(run_copy, base_run):
    """2 epochs, then resumed with train.epochs=4 (written after --resume): epochs 1-2 keep the
    2-epoch curve, epochs 3-4 follow the 4-epoch curve (not the 2-epoch minimum)."""
    updates = load_checkpoint(base_run / "last.pt")["global_step"] // 2
    rc = main(["train", *TINY, "train.epochs=2", "--resume", str(run_copy / "last.pt"),
               "train.epochs=4"])
    assert rc == 0
    got = lrs(run_copy)
    old, new = cosine_curve(2, updates), cosine_curve(4, updates)
    assert got[:2] == pytest.approx(old[:2], rel=1e-12)
    assert got[2:] == pytest.approx(new[2:], rel=1e-12)
    assert got[2] > 100 * got[1]  # the run trains again instead of idling at min_lr
    rec = json.loads((run_copy / "resume_changes.json").read_text())
    assert rec[0]["changes"]["train.epochs"] == {"checkpoint": 2, "now": 4, "kind": "extends"}
    assert rec[0]["epoch"] == 2


def test_other_changes_need_the_flag_and_are_recorded(run_copy, base_run, capsys):
    last = str(run_copy / "last.pt")
    rc = main(["train", *TINY, "train.epochs=4", "optim.lr=0.01", "--resume", last])
    line = one_error_line(capsys)
    assert rc == 1 and "optim.lr: 0.001 in the checkpoint, 0.01 now" in line
    assert "--allow-changes" in line
    rc = main(["train", *TINY, "--resume", last, "train.epochs=4", "optim.lr=0.01",
               "--allow-changes"])
    assert rc == 0
    assert "optim.lr changed from 0.001 to 0.01" in capsys.readouterr().out
    updates = load_checkpoint(base_run / "last.pt")["global_step"] // 2
    assert lrs(run_copy)[2:] == pytest.approx(cosine_curve(4, updates, lr=0.01)[2:], rel=1e-12)
    changes = json.loads((run_copy / "resume_changes.json").read_text())[0]["changes"]
    assert changes["optim.lr"] == {"checkpoint": 0.001, "now": 0.01,
                                   "kind": "needs --allow-changes"}
    assert load_checkpoint(run_copy / "last.pt")["config"]["optim"]["lr"] == 0.01


def test_fewer_epochs_than_done_is_refused(run_copy, capsys):
    rc = main(["train", *TINY, "train.epochs=1", "--resume", str(run_copy / "last.pt")])
    line = one_error_line(capsys)
    assert rc == 1 and "has completed 2 epoch(s), more than the 1 asked for" in line


def test_overrides_after_any_option(tmp_path, capsys):
    out = tmp_path / "r"
    rc = main(["train", *TINY[:-1], "--json", "logging.plots=false", "--output", str(out),
               "train.epochs=1"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["epochs"] == 1
    with pytest.raises(SystemExit) as stop:  # an unknown option is still refused
        main(["train", *TINY, "--output", str(out), "--bogus"])
    assert stop.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_check_resume_kinds():
    cfg = load_config(None, ["train.epochs=2"])
    ckpt = {"config": cfg.to_dict()}
    assert check_resume(cfg, ckpt, "x.pt") == {}
    now = load_config(None, ["train.epochs=2", "logging.name=other", "train.threads=2"])
    kinds = {k: c["kind"] for k, c in check_resume(now, ckpt, "x.pt").items()}
    assert kinds == {"logging.name": "no effect", "train.threads": "no effect"}
    with pytest.raises(ResumeConfigError, match=r"schedule.min_lr: 1e-06 in the checkpoint"):
        check_resume(load_config(None, ["train.epochs=2", "schedule.min_lr=0"]), ckpt, "x.pt")
    assert check_resume(load_config(None, ["train.epochs=2"]), {"config": {}}, "x.pt") == {}
