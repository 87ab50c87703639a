"""Map inference on real rasters: sen2r GeoTIFF folder (60 cloudy dates) and the Slovenia patch."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from inference_helpers import SEN2R_ROI, tiny_config, write_checkpoint

from sitsformer.data import InputSpec, collate
from sitsformer.data.dataset import RasterPixelDataset
from sitsformer.evaluation import ClassificationMetrics
from sitsformer.inference import InputMismatchError, predict_raster
from sitsformer.inference.sources import ArrayRasterSource, open_raster_source
from sitsformer.models import create_sits_former


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.crs, ds.transform, ds.nodata


@pytest.fixture(scope="module")
def roi(shared_data):
    return open_raster_source(shared_data / SEN2R_ROI, scale=10000)


def test_geotiff_map_is_window_independent_and_georeferenced(roi, slovenia_model, tmp_path):
    full = roi.read_window(0, 0, roi.height, roi.width)
    assert full["pixel_mask"].mean() < 0.5  # real clouds: most pixel-dates are not clear
    no_clear = ~full["pixel_mask"].any(0)
    a = predict_raster(slovenia_model, roi, tmp_path / "a.tif", window=(4, 13), batch_size=7,
                       probabilities=True, progress=False)
    b = predict_raster(slovenia_model, roi, tmp_path / "b.tif", window=64, progress=False)
    cls_a, crs, transform, nodata = _read(a.class_map)
    cls_b = _read(b.class_map)[0]
    np.testing.assert_array_equal(cls_a, cls_b)
    assert crs == roi.crs and transform == roi.transform and nodata == 255
    assert ((cls_a[0] == 255) == no_clear).all()
    assert a.num_nodata == int(no_clear.sum()) and a.num_pixels == 7 * 25
    conf = _read(a.confidence)[0][0]
    prob = _read(a.probabilities)[0]
    assert (conf[no_clear] == -1).all() and (prob[:, no_clear] == -1).all()
    ok = ~no_clear
    np.testing.assert_allclose(prob[:, ok].sum(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(prob[:, ok].argmax(0), cls_a[0][ok])
    np.testing.assert_allclose(prob[:, ok].max(0), conf[ok], rtol=0, atol=0)
    assert sum(a.class_counts.values()) == a.num_predicted


def test_pixels_without_clear_date_are_nodata(slovenia_model, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 0.9, (6, 1, 5, 7)).astype(np.float32)
    pm = rng.uniform(size=(6, 5, 7)) < 0.5
    pm[:, 2, 3] = False  # cloudy at every date
    x[:, 0, 4, 6] = np.nan  # missing at every date
    src = ArrayRasterSource(x, pm, np.datetime64("2020-03-01") + np.arange(6) * 10, ["NDVI"],
                            "EPSG:32633", rasterio.transform.from_origin(500000, 5e6, 10, 10))
    res = predict_raster(slovenia_model, src, tmp_path / "m.tif", window=2, progress=False)
    cls, crs, transform, _ = _read(res.class_map)
    expected = ~(pm & np.isfinite(x[:, 0])).any(0)
    assert expected[2, 3] and expected[4, 6]
    np.testing.assert_array_equal(cls[0] == 255, expected)
    assert res.num_nodata == int(expected.sum())
    assert crs.to_epsg() == 32633 and transform == src.transform


def test_patch_model_pixel_equals_sample(roi, tmp_path):
    """A pixel gets the same class (and probabilities) in the map as when its patch is cut
    as a training sample by the data layer, edges included."""
    torch.manual_seed(1)
    model = create_sits_former(tiny_config(img_size=3, num_classes=4)).eval()
    res = predict_raster(model, roi, tmp_path / "m.tif", window=(4, 13), probabilities=True,
                         progress=False)
    cls, prob = _read(res.class_map)[0][0], _read(res.probabilities)[0]
    full = roi.read_window(0, 0, roi.height, roi.width)
    rows, cols = np.nonzero(full["pixel_mask"].any(0))
    ds = RasterPixelDataset(full["sequence"], full["pixel_mask"], roi.dates, rows, cols,
                            patch_size=3)
    batch = collate([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        logits = model(batch["sequence"], batch["mask"], doy=batch["doy"],
                       pixel_mask=batch["pixel_mask"], dates=batch["dates"])
    np.testing.assert_array_equal(logits.argmax(-1).numpy(), cls[rows, cols])
    np.testing.assert_allclose(logits.softmax(-1).numpy().T, prob[:, rows, cols], atol=1e-5)
    assert {0, 6}.issubset(set(rows.tolist()))  # both raster edges are among the pixels


def test_bf16_agrees_with_fp32(roi, slovenia_model, tmp_path):
    a = predict_raster(slovenia_model, roi, tmp_path / "a.tif", progress=False)
    b = predict_raster(slovenia_model, roi, tmp_path / "b.tif", precision="bf16", progress=False)
    ca, cb = _read(a.class_map)[0], _read(b.class_map)[0]
    assert ((ca == 255) == (cb == 255)).all()
    assert (ca == cb).mean() >= 0.9


def test_slovenia_map_accuracy(slovenia, slovenia_model, slovenia_map, capsys):
    source, labels, names = slovenia
    cls = slovenia_map[0][None]
    test = (labels >= 0) & (np.arange(100)[None, :] >= 50) & (cls[0] != 255)
    m = ClassificationMetrics(len(names), class_names=names)
    m.update(torch.from_numpy(cls[0][test].astype(np.int64)), torch.from_numpy(labels[test]))
    out = m.compute()
    with capsys.disabled():
        print(f"\nSlovenia held-out half: {out['num_samples']} px, OA {out['oa']:.3f}, "
              f"kappa {out['kappa']:.3f}, macro-F1 {out['macro_f1']:.3f}, "
              f"forest share {(labels[test] == 1).mean():.3f}")
    # map pixels equal the same model applied to pixel samples
    r, c = np.nonzero(test)
    d = source.dates
    doy = torch.from_numpy((d - d.astype("datetime64[Y]")).astype(np.int64) + 1)
    with torch.no_grad():
        logits = slovenia_model(torch.from_numpy(source.x[:, :, r, c]).permute(2, 0, 1),
                                torch.from_numpy(source.pixel_mask[:, r, c]).T,
                                doy=doy.expand(len(r), -1))
    np.testing.assert_array_equal(logits.argmax(-1).numpy(), cls[0][r, c])
    assert out["kappa"] >= 0.2  # clearly better than chance (kappa 0 = majority/chance map)


def test_bad_input_is_refused(roi, slovenia_model, tmp_path):
    out = tmp_path / "m.tif"
    small = ArrayRasterSource(np.full((4, 1, 3, 3), 0.5, np.float32),
                              dates=np.datetime64("2020-01-01") + np.arange(4))
    predict_raster(slovenia_model, small, out, progress=False)
    with pytest.raises(FileExistsError, match="overwrite"):
        predict_raster(slovenia_model, small, out, progress=False)
    predict_raster(slovenia_model, small, out, progress=False, overwrite=True)
    with pytest.raises(InputMismatchError, match="band mismatch"):
        predict_raster(slovenia_model, roi, tmp_path / "x.tif", progress=False,
                       spec=InputSpec(bands=["B04"]))
    with pytest.raises(InputMismatchError, match="t_index"):
        predict_raster(slovenia_model, roi, tmp_path / "x.tif", progress=False,
                       spec=InputSpec(bands=list(roi.bands), time_axis="t_index"))
    two = ArrayRasterSource(np.zeros((5, 2, 4, 4), np.float32),
                            dates=np.arange(5).astype("datetime64[D]"))
    with pytest.raises(InputMismatchError, match="expects 1 bands"):
        predict_raster(slovenia_model, two, tmp_path / "x.tif", progress=False)
    undated = ArrayRasterSource(np.zeros((5, 1, 4, 4), np.float32))
    with pytest.raises(InputMismatchError, match="no dates"):
        predict_raster(slovenia_model, undated, tmp_path / "x.tif", progress=False,
                       spec=InputSpec(bands=["band0"], time_axis="dates"))
    patch = create_sits_former(tiny_config(img_size=3))
    with pytest.raises(ValueError, match="overlap must be at least"):
        predict_raster(patch, roi, tmp_path / "x.tif", overlap=0, progress=False)
    assert not (tmp_path / "x.tif").exists()
    assert not list(tmp_path.glob(".*partial"))


class _RecordingSource(ArrayRasterSource):
    """An in-memory source that remembers the largest window it was asked for."""

    largest = 0

    def read_window(self, row_off, col_off, h, w):
        self.largest = max(self.largest, h * w)
        return super().read_window(row_off, col_off, h, w)


def test_memory_is_bounded_by_the_window(tmp_path):
    torch.manual_seed(0)
    model = create_sits_former(tiny_config(img_size=3, num_classes=3)).eval()
    x = np.random.default_rng(0).uniform(size=(4, 1, 40, 30)).astype(np.float32)
    src = _RecordingSource(x, dates=np.datetime64("2021-05-01") + np.arange(4) * 5)
    predict_raster(model, src, tmp_path / "m.tif", window=8, progress=False)
    assert src.largest == (8 + 2) ** 2  # one window plus its 1-pixel halo, never the raster


def test_rasters_on_different_grids_are_refused(tmp_path, slovenia_model, capsys):
    from rasterio.transform import from_origin

    from sitsformer.cli import main

    folder = tmp_path / "stack"
    folder.mkdir()
    for day, crs in (("20200101", "EPSG:32632"), ("20200111", "EPSG:32633")):
        with rasterio.open(folder / f"S2A_{day}_NDVI.tif", "w", driver="GTiff", height=4,
                           width=4, count=1, dtype="int16", crs=crs,
                           transform=from_origin(700000, 5e6, 10, 10)) as ds:
            ds.write(np.full((1, 4, 4), 5000, np.int16))
    ckpt = tmp_path / "m.pt"
    write_checkpoint(ckpt, slovenia_model, bands=["NDVI"], scale=10000.0)
    rc = main(["predict", "--checkpoint", str(ckpt), "--input", str(folder), "--output",
               str(tmp_path / "map.tif"), "--quiet"])
    assert rc == 1 and "EPSG:32633" in capsys.readouterr().err
    assert not (tmp_path / "map.tif").exists()
