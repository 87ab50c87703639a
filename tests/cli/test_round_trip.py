"""The whole pipeline through the real CLI: ``train`` on a generated GeoTIFF folder, then
``evaluate`` and ``predict`` from the written checkpoint alone.

The map must equal the model applied in Python to the same pixels, prepared with the
checkpoint's input spec; and a checkpoint trained on one time axis (dates, or time-step index)
must refuse input on the other, with a message that says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from sitsformer.cli import main
from sitsformer.data import DataWarning, InputSpec, collate, open_source
from sitsformer.evaluation import ClassificationMetrics
from sitsformer.models import load_checkpoint, load_model

BANDS = ["B2", "B3", "B4"]
H = W = 12
T = 10
TINY = ["model.variant=sitsformer_pixel", "model.embed_dim=16", "model.num_heads=2",
        "model.num_layers=1", "model.dropout=0.0", "data.batch_size=32", "data.scale=10000",
        "data.split=stratified", "data.val_fraction=0.2", "data.test_fraction=0.2",
        "train.epochs=2", "train.threads=1", "logging.tensorboard=false", "logging.plots=false",
        "optim.lr=3e-3"]


def make_folder(root: Path, seed: int = 0) -> tuple[Path, Path]:
    """Per-date int16 reflectance x 10000 GeoTIFFs (sen2r names: dates in the file names),
    two classes with different seasonal curves, some nodata; a label raster (0 = no label)."""
    rng = np.random.default_rng(seed)
    data = root / "data"
    data.mkdir(parents=True)
    labels = np.where(np.arange(W)[None, :] < W // 2, 1, 2).repeat(H, 0).astype(np.uint8)
    labels[0, :3] = 0
    dates = np.datetime64("2021-03-01") + np.arange(T) * np.timedelta64(12, "D")
    season = np.sin(np.linspace(0, np.pi, T))
    for i, d in enumerate(dates):
        amp = np.where(labels == 1, 3000 * season[i], 3000 * season[::-1][i])
        values = (800 + amp[None] * np.array([0.3, 0.6, 1.0])[:, None, None]
                  + rng.normal(0, 150, (3, H, W))).astype(np.int16)
        if i == 3:
            values[:, 5, 5] = -32768  # a missing observation
        name = f"S2A2A_{str(d).replace('-', '')}_022_roi_BOA_10.tif"
        with rasterio.open(data / name, "w", driver="GTiff", height=H, width=W, count=3,
                           dtype="int16", crs="EPSG:32632", nodata=-32768,
                           transform=from_origin(600000, 5000000, 10, 10)) as dst:
            dst.write(values)
            dst.descriptions = tuple(BANDS)
    label_path = root / "labels.tif"
    with rasterio.open(label_path, "w", driver="GTiff", height=H, width=W, count=1,
                       dtype="uint8", crs="EPSG:32632", nodata=255,
                       transform=from_origin(600000, 5000000, 10, 10)) as dst:
        dst.write(labels, 1)
    return data, label_path


def make_undated_npz(path: Path, n: int = 60, patch: int | None = None, seed: int = 1) -> Path:
    """Labelled series in the shared .npz layout without any dates (a time-step index axis)."""
    rng = np.random.default_rng(seed)
    shape = (n, T, 3) if patch is None else (n, T, 3, patch, patch)
    np.savez(path, x=rng.integers(300, 4000, shape).astype(np.int16),
             y=np.arange(n) % 2, classes=np.array(["1", "2"]), bands=np.array(BANDS))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("round_trip")
    data, labels = make_folder(root)
    run = root / "run"
    rc = main(["train", f"data.source={data}", f"data.options.labels={labels}",
               "data.options.patch_size=3", *TINY, "--output", str(run), "--quiet"])
    assert rc == 0
    return root, data, labels, run


def test_train_evaluate_predict_round_trip(trained, capsys):
    root, data, labels, run = trained
    ckpt = load_checkpoint(run / "best.pt")
    spec = InputSpec.from_checkpoint(ckpt)
    assert spec.bands == BANDS and spec.classes == ["1", "2"] and spec.time_axis == "dates"
    assert spec.scale == 10000.0 and spec.sample_size == 3 and spec.max_t == T
    assert ckpt["model_config"]["img_size"] == 3 and ckpt["model_config"]["bands"] == BANDS

    # evaluate from the checkpoint alone: exactly the model's scores on the same samples (all
    # of them: the default on the training source would be its recorded test split)
    report = root / "report"
    with pytest.warns(DataWarning, match="samples scored were in the model's training split"):
        assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(data),
                     "-o", f"labels={labels}", "-o", "patch_size=3", "--output", str(report),
                     "--split", "all", "--quiet"]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    model, _ = load_model(run / "best.pt")
    ds = open_source(str(data), labels=str(labels), patch_size=3)
    prepare = spec.transform()
    batch = collate([prepare(ds[i]) for i in range(len(ds))])
    with torch.no_grad():
        logits = model(batch["sequence"], batch["mask"], doy=batch["doy"],
                       pixel_mask=batch["pixel_mask"], dates=batch["dates"])
    ref = ClassificationMetrics(2, class_names=spec.classes)
    ref.update(logits, batch["label"])
    assert metrics["confusion_matrix"] == ref.compute()["confusion_matrix"]
    assert metrics["counts"]["scored"] == len(ds)
    # the same report again is refused without --overwrite
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(data),
                 "-o", f"labels={labels}", "-o", "patch_size=3", "--output", str(report)]) == 1
    assert "--overwrite" in capsys.readouterr().err

    # predict (a separate process, as a user runs it): every labelled pixel of the map is the
    # class and confidence of the Python forward above
    out = root / "map.tif"
    done = subprocess.run([sys.executable, "-m", "sitsformer", "predict", "--checkpoint",
                           str(run / "best.pt"), "--input", str(data), "--output", str(out),
                           "--window", "5", "--quiet"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    with rasterio.open(out) as cls_ds, rasterio.open(root / "map_confidence.tif") as conf_ds:
        class_map, confidence = cls_ds.read(1), conf_ds.read(1)
        assert cls_ds.crs.to_epsg() == 32632
    prob = logits.softmax(-1)
    rows, cols = ds.coords[:, 0].astype(int), ds.coords[:, 1].astype(int)
    np.testing.assert_array_equal(class_map[rows, cols], prob.argmax(-1).numpy())
    np.testing.assert_allclose(confidence[rows, cols], prob.max(-1).values.numpy(), atol=1e-5)


def test_time_axis_mismatch_is_refused_both_ways(trained, tmp_path, capsys):
    root, data, labels, run = trained
    # a model trained without dates (time-step index) refuses a dated raster ...
    npz = make_undated_npz(tmp_path / "undated.npz")
    undated_run = tmp_path / "undated_run"
    with pytest.warns(DataWarning, match="acquisition dates are unknown"):
        assert main(["train", f"data.source={npz}", *TINY, "--output", str(undated_run),
                     "--quiet"]) == 0
    assert load_checkpoint(undated_run / "best.pt")["input_spec"]["time_axis"] == "t_index"
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(undated_run / "best.pt"), "--input", str(data),
                 "--output", str(tmp_path / "map.tif"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "time-step positions" in err and "t_index" in err
    assert not (tmp_path / "map.tif").exists()
    # ... and a model trained on dates refuses undated series
    undated_patches = make_undated_npz(tmp_path / "undated_patches.npz", patch=3)
    with pytest.warns(DataWarning, match="acquisition dates are unknown"):
        assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data",
                     str(undated_patches), "--output", str(tmp_path / "rep"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "trained with acquisition dates" in err and "has no dates" in err


def test_format_1_checkpoints_are_still_read(trained, tmp_path):
    """A checkpoint of the first format (everything in ``data_meta``) gives the same spec."""
    _, _, _, run = trained
    ckpt = torch.load(run / "best.pt", weights_only=True)
    spec = InputSpec.from_dict(ckpt.pop("input_spec"))
    ckpt["format"] = "sitsformer-checkpoint/1"
    ckpt["data_meta"] = {"bands": spec.bands, "classes": spec.classes, "scale": spec.scale,
                         "normalization": {"mean": spec.mean, "std": spec.std},
                         "dates": "day of year from the acquisition dates"}
    torch.save(ckpt, tmp_path / "old.pt")
    old = InputSpec.from_checkpoint(load_checkpoint(tmp_path / "old.pt"))
    # format 1 had no class codes, scale source, medians or valid range
    assert old.to_dict() == {**spec.to_dict(), "max_t": ckpt["model_config"]["max_seq_len"],
                             "class_values": None, "scale_source": None, "median": None,
                             "valid_range": None}
