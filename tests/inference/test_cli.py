"""``sitsformer predict`` and ``sitsformer evaluate`` on real data, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import torch
from inference_helpers import EOPATCH, SEN2R_ROI, tiny_config, write_checkpoint

from sitsformer.cli import main
from sitsformer.evaluation import ClassificationMetrics
from sitsformer.inference import predict_raster
from sitsformer.models import create_sits_former


def test_evaluate_cli_matches_the_map(shared_data, slovenia, slovenia_map,
                                      slovenia_checkpoint, tmp_path, capsys):
    """The report's scores equal the scores of the predicted map against the label raster."""
    out = tmp_path / "report"
    rc = main(["evaluate", "--checkpoint", str(slovenia_checkpoint), "--data",
               str(shared_data / EOPATCH), "--output", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((out / "metrics.json").read_text())
    for name in ("report.md", "confusion_matrix.png", "per_class.png"):
        assert (out / name).stat().st_size > 0
    _, labels, names = slovenia
    cls = slovenia_map[0]
    keep = (labels >= 0) & (cls != 255)
    m = ClassificationMetrics(len(names), class_names=[c["name"] for c in report["per_class"]])
    m.update(torch.from_numpy(cls[keep].astype(np.int64)), torch.from_numpy(labels[keep]))
    expected = m.compute()
    assert report["confusion_matrix"] == expected["confusion_matrix"]
    assert report["oa"] == expected["oa"] and report["kappa"] == expected["kappa"]
    assert report["info"]["checkpoint"] == str(slovenia_checkpoint)
    md = (out / "report.md").read_text()
    assert f"| overall accuracy | {expected['oa']:.4f} |" in md
    assert "excluded by the reader" in md  # unlabelled / cloudy pixels are reported


def test_predict_cli_subprocess(shared_data, slovenia_model, tmp_path):
    ckpt = write_checkpoint(tmp_path / "m.pt", slovenia_model,
                            bands=["NDVI"], scale=10000.0, time_axis="dates")
    out = tmp_path / "map.tif"
    cmd = [sys.executable, "-m", "sitsformer.cli", "predict", "--checkpoint", str(ckpt),
           "--input", str(shared_data / SEN2R_ROI), "--output", str(out), "--window", "16",
           "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "7x25 pixels" in done.stdout
    # the raw NDVI is stored x 10000; the checkpoint's scale=10000 gives the same map as a
    # reader that rescales by 1e-4 itself
    from sitsformer.inference import open_raster_source

    ref = predict_raster(slovenia_model, open_raster_source(shared_data / SEN2R_ROI, scale=10000),
                         tmp_path / "ref.tif", progress=False)
    with rasterio.open(out) as a, rasterio.open(ref.class_map) as b:
        np.testing.assert_array_equal(a.read(), b.read())
        assert a.crs == b.crs and a.transform == b.transform
    assert main(cmd[3:]) == 1  # the output exists: refused without --overwrite


def test_cli_errors_are_clear(shared_data, tmp_path, capsys):
    model = create_sits_former(tiny_config(in_channels=3))
    ckpt = write_checkpoint(tmp_path / "m.pt", model, bands=["B02", "B03", "B04"])
    rc = main(["predict", "--checkpoint", str(ckpt), "--input", str(shared_data / SEN2R_ROI),
               "--output", str(tmp_path / "x.tif"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "expects 3 bands" in err and "NDVI" in err
    rc = main(["evaluate", "--checkpoint", str(tmp_path / "missing.pt"), "--data",
               str(shared_data / EOPATCH)])
    assert rc == 1 and "checkpoint not found" in capsys.readouterr().err
    assert not (tmp_path / "x.tif").exists()


@pytest.mark.parametrize("mode", ["edge", "reflect"])
def test_edge_modes_only_change_border_pixels(shared_data, tmp_path, mode):
    from sitsformer.inference import open_raster_source

    src = open_raster_source(shared_data / SEN2R_ROI, scale=10000)
    torch.manual_seed(2)
    model = create_sits_former(tiny_config(img_size=3, num_classes=4)).eval()
    a = predict_raster(model, src, tmp_path / "a.tif", probabilities=True, progress=False)
    b = predict_raster(model, src, tmp_path / "b.tif", probabilities=True, progress=False,
                       edge_mode=mode)
    with rasterio.open(a.probabilities) as fa, rasterio.open(b.probabilities) as fb:
        pa, pb = fa.read(), fb.read()
    inner = (slice(None), slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(pa[inner], pb[inner], atol=1e-6)
    assert not np.allclose(pa[:, 0], pb[:, 0])  # the first row differs: its halo was filled


def test_predict_refuses_a_map_another_process_writes(shared_data, tmp_path, capsys):
    """Issue 32: one writer per map; the second is refused naming the holder's pid and host."""
    import os
    import socket

    from sitsformer.parallel.locks import output_lock

    model = create_sits_former(tiny_config(in_channels=1))
    ckpt = write_checkpoint(tmp_path / "m.pt", model, bands=["NDVI"], scale=10000.0,
                            time_axis="dates")
    out = tmp_path / "map.tif"
    with output_lock(out, folder=False, what="map output"):
        rc = main(["predict", "--checkpoint", str(ckpt), "--input", str(shared_data / SEN2R_ROI),
                   "--output", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and f"error: map output {out} is in use by another sitsformer process (pid " \
        f"{os.getpid()} on host {socket.gethostname()}" in err
    assert not out.exists()
    assert main(["predict", "--checkpoint", str(ckpt), "--input", str(shared_data / SEN2R_ROI),
                 "--output", str(out), "--quiet"]) == 0
