"""The TempCNN and L-TAE baselines through the real CLI, one run per model:
``python -m sitsformer train --config demo model.variant=<arch>`` on a generated GeoTIFF folder,
then ``evaluate``, ``predict`` and ``export`` (ONNX) from the written checkpoint alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import torch
from test_round_trip import H, W, make_folder

from sitsformer.cli import main
from sitsformer.data import InputSpec, collate, open_source
from sitsformer.models import LTAE, TempCNN, load_checkpoint, load_model
from sitsformer.models.export import export_input_names

TRAIN = ["data.options.patch_size=1", "data.split=stratified", "data.val_fraction=0.2",
         "data.test_fraction=0.2", "data.scale=10000", "data.batch_size=32", "train.epochs=2",
         "train.threads=1", "logging.tensorboard=false", "logging.plots=false",
         "optim.lr=3e-3"]


def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "sitsformer", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.parametrize("arch,cls", [("tempcnn", TempCNN), ("ltae", LTAE)])
def test_baseline_train_evaluate_predict_export(arch, cls, tmp_path, one_thread):
    data, labels = make_folder(tmp_path)
    run = tmp_path / "run"
    _cli("train", "--config", "demo", f"model.variant={arch}", f"data.source={data}",
         f"data.options.labels={labels}", *TRAIN, "--output", str(run), "--quiet")

    # the checkpoint names the architecture; the demo recipe's transformer settings
    # (embed_dim 64, 2 layers, dropout 0.1) were ignored, the published sizes kept
    ckpt = load_checkpoint(run / "best.pt")
    config = ckpt["model_config"]
    assert config["arch"] == arch and config["in_channels"] == 3 and config["num_classes"] == 2
    assert config["embed_dim"] == 256 and config["dropout"] == 0.1  # the defaults, unused
    assert config["baseline_dropout"] == 0.2
    assert config["max_seq_len"] == 10  # the data's longest series: TempCNN's date grid
    model, _ = load_model(run / "best.pt")
    assert isinstance(model, cls) and not model.training

    # evaluate on the run's recorded test split: the same OA as the run's test_metrics.json
    report = tmp_path / "report"
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(data),
                 "-o", f"labels={labels}", "-o", "patch_size=1", "--output", str(report),
                 "--quiet"]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    tested = json.loads((run / "test_metrics.json").read_text())
    assert metrics["counts"]["scored"] == tested["test_num_samples"]
    assert metrics["oa"] == pytest.approx(tested["test_oa"], abs=1e-9)

    # predict: a 12 x 12 map whose labelled pixels are the Python forward's classes
    out = tmp_path / "map.tif"
    _cli("predict", "--checkpoint", str(run / "best.pt"), "--input", str(data), "--output",
         str(out), "--window", "5", "--quiet")
    spec = InputSpec.from_checkpoint(ckpt)
    ds = open_source(str(data), labels=str(labels), patch_size=1)
    prepare = spec.transform()
    batch = collate([prepare(ds[i]) for i in range(len(ds))])
    with torch.no_grad():
        logits = model(batch["sequence"], batch["mask"], doy=batch["doy"],
                       pixel_mask=batch["pixel_mask"])
    with rasterio.open(out) as cls_ds:
        class_map = cls_ds.read(1)
    assert class_map.shape == (H, W)
    rows, cols = ds.coords[:, 0].astype(int), ds.coords[:, 1].astype(int)
    assert set(np.unique(class_map[rows, cols])) <= {0, 1}
    np.testing.assert_array_equal(class_map[rows, cols], logits.argmax(-1).numpy())

    # export: the ONNX model gives the torch logits on a padded batch
    ort = pytest.importorskip("onnxruntime", reason="the optional 'onnx' extra (onnxruntime) "
                              "is not installed")
    onnx_path = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(run / "best.pt"), "--format", "onnx",
                 "--output", str(onnx_path)]) == 0
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == export_input_names(model)
    x, masks, doy = batch["sequence"][:6], batch["mask"][:6].clone(), batch["doy"][:6]
    masks[0, 4:] = False
    masks[1, ::2] = False
    with torch.no_grad():
        ref = model(x, masks, doy=doy).numpy()
    got = session.run(["logits"], {"sequences": x.numpy(), "masks": masks.numpy(),
                                   "doy": doy.long().numpy()})[0]
    assert got.shape == (6, 2)
    assert np.abs(got - ref).max() <= 1e-4


@pytest.mark.parametrize("arch", ["tempcnn", "ltae"])
def test_victoria_recipe_trains_a_baseline(arch, shared_data, tmp_path, one_thread):
    """What ``sitsformer benchmark`` runs for a baseline: the shipped ``victoria_pixel`` recipe
    with ``model.variant=<arch>`` (here 3 short epochs). The recipe's transformer settings
    (embed_dim 128, 3 layers, 4 heads, dropout 0) are ignored: the stored model config holds
    their defaults and the baseline its published sizes."""
    source = shared_data / "s2_victoria_igarss2019" / "s2_victoria_igarss2019.npz"
    run = tmp_path / "run"
    assert main(["train", "--config", "victoria_pixel", f"model.variant={arch}",
                 f"data.source={source}", "train.epochs=3", "schedule.warmup_epochs=1",
                 "train.min_steps=1", "train.threads=1", "logging.tensorboard=false",
                 "logging.plots=false", "--output", str(run), "--quiet"]) == 0
    config = load_checkpoint(run / "last.pt")["model_config"]
    assert config["arch"] == arch and config["in_channels"] == 10 and config["num_classes"] == 8
    assert (config["embed_dim"], config["num_layers"], config["num_heads"],
            config["dropout"]) == (256, 8, 8, 0.1)  # SITSFormerConfig defaults: unused
    assert (config["baseline_dropout"], config["tempcnn_filters"], config["ltae_heads"]) == (
        0.2, 64, 16)
    assert config["max_seq_len"] == 73
    tested = json.loads((run / "test_metrics.json").read_text())
    assert tested["test_oa"] > 1 / 8 + 0.1  # well above chance after 3 epochs
