"""``predict --input-scale`` is the factor the input values are stored with, and ``predict``
warns (naming the bands) when the input's medians are far from the training statistics."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import rasterio
from inference_helpers import SEN2R_ROI, write_checkpoint

from sitsformer.cli import main
from sitsformer.data import DataWarning, InputSpec
from sitsformer.inference import open_raster_source
from sitsformer.inference.predict import input_medians


@pytest.fixture(scope="module")
def float_copy(shared_data, tmp_path_factory):
    """The sen2r ROI with NDVI as float 0..1 (stored x 10000 upstream); same SCL layer."""
    src = shared_data / SEN2R_ROI
    out = tmp_path_factory.mktemp("float_roi")
    (out / "NDVI").mkdir()
    shutil.copytree(src / "SCL", out / "SCL")
    for f in sorted((src / "NDVI").glob("*.tif")):
        with rasterio.open(f) as ds:
            data, profile = ds.read(1), ds.profile
        valid = data != profile["nodata"]
        profile.update(dtype="float32")
        with rasterio.open(out / "NDVI" / f.name, "w", **profile) as dst:
            dst.write(np.where(valid, data / 10000.0, profile["nodata"]).astype("float32"), 1)
    return out


def _map(path):
    with rasterio.open(path) as ds:
        return ds.read(1)


def test_input_scale_means_the_storage_factor(shared_data, slovenia_model, float_copy,
                                              tmp_path, capsys):
    roi = shared_data / SEN2R_ROI
    spec0 = InputSpec(bands=["NDVI"], scale=10000.0)
    median = input_medians(open_raster_source(roi, scale=10000), spec0, scaled=True)
    ckpt = write_checkpoint(tmp_path / "m.pt", slovenia_model, bands=["NDVI"], scale=10000.0,
                            time_axis="dates", median=median.tolist())
    common = ["predict", "--checkpoint", str(ckpt), "--window", "16", "--quiet"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # no statistics warning in these three
        assert main([*common, "--input", str(roi), "--output", str(tmp_path / "a.tif")]) == 0
        assert main([*common, "--input", str(roi), "--input-scale", "10000",
                     "--output", str(tmp_path / "b.tif")]) == 0
        assert main([*common, "--input", str(float_copy), "--input-scale", "1",
                     "--output", str(tmp_path / "c.tif")]) == 0
    ref = _map(tmp_path / "a.tif")
    assert (ref != 255).sum() > 50
    np.testing.assert_array_equal(_map(tmp_path / "b.tif"), ref)
    np.testing.assert_array_equal(_map(tmp_path / "c.tif"), ref)
    # float input without --input-scale: its values (0..1) imply scale 1, training was 10000:
    # refused, naming what was expected and what was found (issue 26: it mapped one class)
    assert main([*common, "--input", str(float_copy),
                 "--output", str(tmp_path / "d.tif")]) == 1
    err = capsys.readouterr().err
    assert (f"error: {float_copy / 'NDVI'}: the input's values are not on the training scale: expected "
            "values stored with scale 10000 (training: given), found inferred: values 0.0653 .. "
            "0.9049 (1st..99th percentile) imply float reflectance 0..1, i.e. scale 1") in err
    assert "Pass --input-scale 1" in err and "or --force" in err
    assert not (tmp_path / "d.tif").exists()
    # --force maps it anyway, with the warning naming the band and the scale its values imply
    with pytest.warns(DataWarning, match=r"more than 5x from the training statistics for NDVI "
                      r"\(training 0\.\d+, input [0-9.e-]+\) \(its values imply scale 1: .*"
                      r"mapped anyway, --force\).*--input-scale"):
        assert main([*common, "--input", str(float_copy), "--force",
                     "--output", str(tmp_path / "d.tif")]) == 0
    assert (tmp_path / "d.tif").exists()


def test_data_inspect_and_predict_agree_on_the_scale(shared_data, slovenia_model, float_copy,
                                                     tmp_path, capsys):
    """One inference (sitsformer.data.values.guess_scale): data inspect on the folder prints
    the scale predict's refusal names, for the float copy (1) and the original (10000)."""
    import json
    import re

    roi = shared_data / SEN2R_ROI
    spec0 = InputSpec(bands=["NDVI"], scale=10000.0)
    median = input_medians(open_raster_source(roi, scale=10000), spec0, scaled=True)
    for trained, folder, expected in ((10000.0, float_copy, 1.0), (1.0, roi, 10000.0)):
        ckpt = write_checkpoint(tmp_path / f"m{trained:g}.pt", slovenia_model, bands=["NDVI"],
                                scale=trained, time_axis="dates",
                                median=median.tolist())
        assert main(["predict", "--checkpoint", str(ckpt), "--window", "16", "--quiet",
                     "--input", str(folder), "--output", str(tmp_path / "x.tif")]) == 1
        err = capsys.readouterr().err
        found = float(re.search(r"i\.e\. scale (\S+);", err).group(1))
        assert main(["data", "inspect", str(folder / "NDVI"), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["scale"]["inferred"] == found == expected
