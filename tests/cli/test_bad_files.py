"""Bad checkpoints, bad GeoTIFFs, a full disk and a read-only run folder: one clear line and a
non-zero exit through the CLI, never a traceback (issue 13); tutorial-style checkpoints load."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from sitsformer.cli import main
from sitsformer.data import InputSpec
from sitsformer.models import (
    CheckpointError,
    create_sits_former,
    import_checkpoint,
    load_checkpoint,
    load_model,
    save_checkpoint,
)

SEN2R = "s2_sen2rts_roi/raw/inst/extdata/sen2r/sampleroi"
EOPATCH = "s2_slovenia_eopatch/raw/example_data/TestEOPatch"
TINY = ["model.embed_dim=16", "model.num_layers=1", "data.demo_samples=64", "data.batch_size=16",
        "train.threads=1", "logging.progress=false", "logging.tensorboard=false",
        "logging.plots=false", "train.epochs=2"]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def tiny_pixel_model(in_channels: int = 1, num_classes: int = 3):
    return create_sits_former(dict(img_size=1, patch_size=1, in_channels=in_channels,
                                   num_classes=num_classes, embed_dim=16, num_layers=1,
                                   num_heads=2, max_seq_len=72))


@pytest.fixture(scope="module")
def bad_checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.pt").write_bytes(b"")
    m = tiny_pixel_model()
    good = save_checkpoint(d / "good.pt", {"model_config": m.config.to_dict(),
                                           "model_state_dict": m.state_dict(), "epoch": 1,
                                           "global_step": 1})
    data = good.read_bytes()
    (d / "truncated.pt").write_bytes(data[: len(data) // 2])

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {d / 'RAN'}",))

    torch.save({"format": "sitsformer-checkpoint/2", "model_state_dict": Payload()},
               d / "payload.pt")
    return d


def one_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    return err[0]


COMMANDS = {
    "evaluate": lambda p, t, s: ["evaluate", "--checkpoint", p, "--data", str(s / EOPATCH),
                                 "--output", str(t / "ev"), "--quiet"],
    "predict": lambda p, t, s: ["predict", "--checkpoint", p, "--input", str(s / SEN2R),
                                "--output", str(t / "m.tif"), "--quiet"],
    "train --resume": lambda p, t, s: ["train", *TINY, "--resume", p],
    "finetune --pretrained": lambda p, t, s: ["finetune", *TINY, "--pretrained", p,
                                              "--output", str(t / "ft")],
}
REASONS = {"empty.pt": "the file is empty (0 bytes)",
           "truncated.pt": "the file is truncated or corrupt",
           "payload.pt": "refused: the file holds Python objects, not plain data "
                         "(it asks for posix.system)"}


@pytest.mark.parametrize("name", sorted(REASONS))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_bad_checkpoint_is_one_clear_line(name, command, bad_checkpoints, shared_data, tmp_path,
                                          capsys):
    path = str(bad_checkpoints / name)
    rc = main(COMMANDS[command](path, tmp_path, shared_data))
    line = one_line(capsys)
    assert rc == 1 and line.startswith(f"error: {path}: ") and REASONS[name] in line
    assert "weights_only" not in line and "Traceback" not in line
    assert not (bad_checkpoints / "RAN").exists()  # the payload never ran


def test_bad_checkpoint_in_a_fresh_process(bad_checkpoints, shared_data, tmp_path):
    done = subprocess.run([sys.executable, "-m", "sitsformer", *COMMANDS["evaluate"](
        str(bad_checkpoints / "payload.pt"), tmp_path, shared_data)],
        capture_output=True, text=True, timeout=300, env={**os.environ})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {bad_checkpoints / 'payload.pt'}: {REASONS['payload.pt']}; loading them could "
        "run code, and sitsformer checkpoints never contain any"]


@pytest.fixture
def ndvi_checkpoint(tmp_path):
    m = tiny_pixel_model()
    return save_checkpoint(tmp_path / "ndvi.pt", {
        "model_config": m.config.to_dict(), "model_state_dict": m.state_dict(), "epoch": 1,
        "global_step": 1, "input_spec": InputSpec(bands=["NDVI"], scale=10000.0).to_dict()})


@pytest.mark.parametrize("kind, reason", [
    ("truncated", "truncated GeoTIFF: band 1 data end at byte"),
    ("garbage", "unreadable raster (180 bytes; not recognized as being in a supported file "
                "format.); the file is corrupt, truncated or not a GeoTIFF"),
])
def test_bad_geotiff_is_reported_as_corrupt(kind, reason, shared_data, ndvi_checkpoint,
                                            tmp_path, capsys):
    folder = tmp_path / "roi"
    shutil.copytree(shared_data / SEN2R, folder)
    bad = sorted((folder / "NDVI").iterdir())[3]
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if kind == "truncated" else b"not a tiff" * 18)
    rc = main(["predict", "--checkpoint", str(ndvi_checkpoint), "--input", str(folder),
               "--output", str(tmp_path / "map.tif"), "--quiet"])
    line = one_line(capsys)
    assert rc == 1 and line.startswith(f"error: {bad}: ") and reason in line
    assert "grid" not in line and not (tmp_path / "map.tif").exists()


# ----------------------------------------------------------------- tutorial-style checkpoints
def tutorial_save_checkpoint(model, optimizer, scheduler, epoch, loss, accuracy, filepath,
                             model_config):
    """What the public tutorial's ``save_checkpoint`` writes (same keys, same calls)."""
    checkpoint = {
        'epoch': epoch,
        'model_state_dict': model.state_dict(),
        'optimizer_state_dict': optimizer.state_dict(),
        'scheduler_state_dict': scheduler.state_dict() if scheduler else None,
        'loss': loss,
        'accuracy': accuracy,
        'model_config': model_config,
        'timestamp': torch.tensor(time.time()),
    }
    torch.save(checkpoint, filepath)


def test_tutorial_checkpoint_loads_and_converts(tmp_path):
    model_config = {'img_size': 8, 'patch_size': 4, 'in_channels': 13, 'num_classes': 10,
                    'embed_dim': 32, 'num_layers': 1, 'num_heads': 4, 'dropout': 0.1}
    model = create_sits_former(model_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
    path = tmp_path / "checkpoint_epoch_3.pth"
    tutorial_save_checkpoint(model, optimizer, scheduler, 3, 0.5, 80.0, str(path), model_config)
    with pytest.warns(UserWarning, match="tutorial-style checkpoint"):
        restored, ckpt = load_model(path)
    x, mask = torch.randn(2, 5, 13, 8, 8), torch.ones(2, 5, dtype=torch.bool)
    doy = torch.arange(1, 6).expand(2, -1)  # the date index, given (no 'no doy' warning)
    model.eval()
    torch.testing.assert_close(restored(x, mask, doy=doy), model(x, mask, doy=doy), rtol=0,
                               atol=0)
    assert ckpt["epoch"] == 3 and ckpt["accuracy"] == 80.0
    spec = InputSpec(bands=[f"B{i}" for i in range(13)], scale=10000.0)
    out = import_checkpoint(path, tmp_path / "imported.pt", input_spec=spec)
    raw = torch.load(out, weights_only=True)
    assert raw["format"] == "sitsformer-checkpoint/2" and raw["input_spec"] == spec.to_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a converted file needs no import any more
        again, _ = load_model(out)
    torch.testing.assert_close(again(x, mask, doy=doy), model(x, mask, doy=doy), rtol=0,
                               atol=0)


def test_tutorial_weights_without_config_say_what_to_do(tmp_path):
    model = tiny_pixel_model()
    torch.save({'epoch': 1, 'model_state_dict': model.state_dict()}, tmp_path / "best.pth")
    with pytest.raises(CheckpointError, match="no 'model_config' dict"):
        load_checkpoint(tmp_path / "best.pth")


# ----------------------------------------------------------------- full disk, read-only folder
def mount_tmpfs(folder: Path, size: str) -> None:
    folder.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")


@pytest.fixture
def small_fs(tmp_path):
    folder = tmp_path / "fs"
    yield folder
    subprocess.run(["umount", str(folder)], capture_output=True)


def test_full_disk_is_one_line_and_keeps_the_checkpoints(small_fs, capsys):
    """A real full disk: a 400 KiB tmpfs holds a few epochs' checkpoints, not all ten."""
    mount_tmpfs(small_fs, "400k")
    out = small_fs / "run"
    rc = main(["train", *TINY, "train.epochs=10", "train.save_every=1", "--output", str(out)])
    line = one_line(capsys)
    assert rc == 1 and "No space left on device (the disk is full)" in line
    assert f"cannot write {out}/" in line and "intact" in line
    last = load_checkpoint(out / "last.pt")  # the last complete checkpoint still reads
    assert 1 <= last["epoch"] < 10
    kept = sorted(p.name for p in out.glob("epoch_*.pt"))
    assert kept == [f"epoch_{e:04d}.pt" for e in range(1, len(kept) + 1)]
    for p in out.glob("*.pt"):
        load_checkpoint(p)
    assert not list(out.glob(".*.tmp"))
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert len(rows) in (last["epoch"], last["epoch"] - 1)  # whole lines only


def test_read_only_run_folder_is_one_line(small_fs, capsys):
    mount_tmpfs(small_fs, "4m")
    out = small_fs / "run"
    assert main(["train", *TINY, "--output", str(out)]) == 0
    before = (out / "last.pt").read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    capsys.readouterr()
    rc = main(["train", *TINY, "train.epochs=3", "--resume", str(out / "last.pt")])
    line = one_line(capsys)
    assert rc == 1 and f"cannot write {out}/" in line and "Read-only file system" in line
    assert (out / "last.pt").read_bytes() == before
