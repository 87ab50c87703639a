"""Map products refuse nonsense (issue 32): probabilities outside [0, 1] are refused naming the
file, band and range found; predict's compact uint8 probabilities (round(254 p), scale 1/254 in
the file) are a probability raster; a raster without a CRS is named in a warning."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from maps_helpers import TRANSFORM, probabilities, read, regions, write_raster

from sitsformer.cli import main
from sitsformer.data.errors import DataWarning


@pytest.mark.parametrize("command", ["smooth", "uncertainty"])
def test_probabilities_outside_0_1_are_refused(tmp_path, capsys, command):
    p = probabilities(regions(40, 40))
    p[1, 5:8, 30:33] = 7.0
    p[1, 20, 3] = -3.0
    path = write_raster(tmp_path / "p.tif", p, -1.0)
    out = tmp_path / ("s.tif" if command == "smooth" else "u")
    rc = main([command, "--input", str(path), "--output", str(out), "--block", "64", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert err.strip() == (f"error: {path}: band 2 holds values from -3 to 7 in rows 0..39, "
                           "cols 0..39; expected probabilities in [0, 1] (nodata -1)")
    assert not list(tmp_path.glob("s*.tif")) and not list(tmp_path.glob("u/*.tif"))


def test_predicts_uint8_probabilities_smooth_like_float(tmp_path, capsys):
    p = probabilities(regions(40, 40), noise=0.1)
    p[:, 0, :4] = -1.0  # nodata
    q = np.where(p < 0, 255, np.round(254 * p)).astype(np.uint8)
    path = write_raster(tmp_path / "q.tif", q, 255, "uint8")
    with rasterio.open(path, "r+") as ds:
        ds.scales = [1 / 254] * 3
    ref = write_raster(tmp_path / "f.tif", np.where(p < 0, -1.0, q / 254).astype(np.float32),
                       -1.0)
    for src, out in ((path, "a.tif"), (ref, "b.tif")):
        assert main(["smooth", "--input", str(src), "--output", str(tmp_path / out),
                     "--window", "5", "--quiet"]) == 0, capsys.readouterr().err
    np.testing.assert_allclose(read(tmp_path / "a.tif"), read(tmp_path / "b.tif"), atol=1e-6)
    assert (read(tmp_path / "a_class.tif") == read(tmp_path / "b_class.tif")).all()
    assert (read(tmp_path / "a_class.tif")[0, 0, :4] == 255).all()
    # an integer raster without a stored scale is not taken for probabilities
    raw = write_raster(tmp_path / "raw.tif", q, 255, "uint8")
    rc = main(["smooth", "--input", str(raw), "--output", str(tmp_path / "c.tif"), "--quiet"])
    assert rc == 1 and "found dtype uint8 without a scale" in capsys.readouterr().err


def _no_crs(path, data, nodata, dtype):
    data = data if data.ndim == 3 else data[None]
    with rasterio.open(path, "w", driver="GTiff", height=data.shape[1], width=data.shape[2],
                       count=data.shape[0], dtype=dtype, nodata=nodata,
                       transform=TRANSFORM) as ds:
        ds.write(data.astype(dtype))
    return path


def test_a_raster_without_crs_is_named_in_a_warning(tmp_path, capsys):
    truth = regions(40, 40)
    probs = _no_crs(tmp_path / "p.tif", probabilities(truth), -1.0, "float32")
    cls = _no_crs(tmp_path / "c.tif", truth, 255, "uint8")
    with pytest.warns(DataWarning, match=f"{probs} has no CRS: the smoothed rasters"):
        assert main(["smooth", "--input", str(probs), "--output", str(tmp_path / "s.tif"),
                     "--quiet"]) == 0
    with pytest.warns(DataWarning, match=f"{cls} has no CRS: the sample points are written"):
        assert main(["sample-design", "--input", str(cls), "--output",
                     str(tmp_path / "d.gpkg"), "--min-per-class", "10", "--quiet"]) == 0
    import pandas as pd

    from sitsformer.maps import read_points, write_points
    table, _, _ = read_points(tmp_path / "d.gpkg")
    pts = write_points(tmp_path / "l.gpkg", pd.DataFrame({
        "point_id": table["point_id"], "stratum": table["stratum"], "row": table["row"],
        "col": table["col"], "reference": table["stratum"]}), TRANSFORM, None)
    with pytest.warns(DataWarning, match=f"{cls} has no CRS: class areas are reported in its "
                                          "map units"):
        assert main(["assess", "--map", str(cls), "--points", str(pts), "--output",
                     str(tmp_path / "a"), "--quiet"]) == 0, capsys.readouterr().err
