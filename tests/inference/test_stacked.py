"""Rasters as users export them: one multi-band file holding every date (GEE ``Export.image``,
openEO / xarray stacks), read like the per-date folder it was made from, mapped through the CLI."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from inference_helpers import SEN2R_ROI, tiny_config, write_checkpoint

from sitsformer.cli import main
from sitsformer.data import DataError, open_source
from sitsformer.data.stacked import StackedGeoTiff
from sitsformer.inference import open_raster_source, predict_raster
from sitsformer.inference.sources import ArrayRasterSource
from sitsformer.models import create_sits_former

NODATA = -32768


def write_stack(path: Path, x: np.ndarray, like, layout: str = "date_major",
                names: list[str] | None = None, dtype: str = "int16") -> Path:
    """Write ``x`` ``(T, C, H, W)`` as one ``T x C``-band GeoTIFF in ``layout`` order, on the
    grid of ``like``, with band descriptions ``names`` (file band order) when given."""
    t, c, h, w = x.shape
    flat = x.reshape(t * c, h, w) if layout == "date_major" else \
        x.transpose(1, 0, 2, 3).reshape(t * c, h, w)
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=t * c, dtype=dtype,
                       nodata=NODATA if dtype == "int16" else None, crs=like.crs,
                       transform=like.transform) as ds:
        ds.write(flat.astype(dtype))
        for i, name in enumerate(names or []):
            ds.set_band_description(i + 1, name)
    return path


def stamp(d) -> str:
    return str(d).replace("-", "")


@pytest.fixture(scope="module")
def roi(shared_data):
    """The sen2r cube (60 dates of NDVI x 10000 with an SCL cloud layer) as the folder reads it,
    and its stored values with every not-clear observation set to nodata (a GEE-style export
    of the cloud-masked collection)."""
    src = open_raster_source(shared_data / SEN2R_ROI)
    full = src.read_window(0, 0, src.height, src.width)
    x = np.where(full["pixel_mask"][:, None], full["sequence"], NODATA).astype(np.int16)
    return src, x


def test_gee_stack_maps_like_the_per_date_folder(shared_data, roi, slovenia_model, tmp_path,
                                                 capsys):
    """Band descriptions ``NDVI_20200104``..., one band per date: the CLI map, confidence and
    probabilities from the stacked file equal those from the per-date folder, pixel for pixel."""
    src, x = roi
    stack = write_stack(tmp_path / "gee_export.tif", x, src,
                        names=[f"NDVI_{stamp(d)}" for d in src.dates])
    ckpt = write_checkpoint(tmp_path / "m.pt", slovenia_model, bands=["NDVI"], scale=10000.0,
                            time_axis="dates", max_t=60)
    outs = {}
    for name, inp in (("folder", shared_data / SEN2R_ROI), ("stack", stack)):
        outs[name] = tmp_path / f"{name}.tif"
        rc = main(["predict", "--checkpoint", str(ckpt), "--input", str(inp), "--output",
                   str(outs[name]), "--window", "16", "--probabilities", "--quiet"])
        assert rc == 0, capsys.readouterr().err
    for suffix in ("", "_confidence", "_probabilities"):
        with rasterio.open(tmp_path / f"folder{suffix}.tif") as a, \
                rasterio.open(tmp_path / f"stack{suffix}.tif") as b:
            va, vb = a.read(), b.read()
            assert a.crs == b.crs and a.transform == b.transform
        np.testing.assert_array_equal(va, vb)
    with rasterio.open(outs["stack"]) as ds:
        cls = ds.read(1)
    assert (cls != 255).sum() > 100 and len(np.unique(cls[cls != 255])) > 1  # a real map
    s = StackedGeoTiff(stack)
    assert s.bands == ["NDVI"] and s.dates_from == "band descriptions"
    np.testing.assert_array_equal(s.dates, src.dates)


def test_date_major_and_band_major_give_the_same_samples(roi, tmp_path):
    """Two bands per date (NDVI and a second band), no band descriptions, dates in a file:
    ``-o n_bands=2 -o layout=...`` read both orders into the same samples."""
    src, x = roi
    two = np.concatenate([x, np.where(x == NODATA, NODATA, x // 2)], axis=1)  # (60, 2, 7, 25)
    dates = tmp_path / "dates.txt"
    dates.write_text("date\n" + "\n".join(str(d) for d in src.dates) + "\n")
    samples = {}
    for layout in ("date_major", "band_major"):
        path = write_stack(tmp_path / f"{layout}.tif", two, src, layout=layout)
        ds = open_source(path, dates=str(dates), n_bands=2, layout=layout,
                         bands=["NDVI", "HALF"])
        assert len(ds) == 7 * 25 and ds.bands == ["NDVI", "HALF"]
        samples[layout] = [ds.raw_sample(i) for i in range(len(ds))]
        with pytest.raises(DataError, match="layout=date_major or layout=band_major"):
            StackedGeoTiff(path, dates=str(dates))  # the order is not in the file: refused
    for a, b in zip(samples["date_major"], samples["band_major"]):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))
    first = samples["date_major"][0]
    assert first["sequence"].shape[:2] == (60, 2)
    np.testing.assert_array_equal(np.asarray(first["dates"]), src.dates)


@pytest.mark.parametrize("layout", ["date_major", "band_major"])
def test_band_then_date_and_date_then_band_names(roi, tmp_path, layout):
    """``B4_20200104`` and ``20200104_B4`` descriptions give the same dates, bands and values;
    the layout follows from the order of the dates in the descriptions."""
    src, x = roi
    x = x[:12]
    two = np.concatenate([x, x], axis=1)
    order = [(t, c) for t in range(12) for c in range(2)] if layout == "date_major" else \
        [(t, c) for c in range(2) for t in range(12)]
    reads = []
    for style in ("band_date", "date_band"):
        names = [f"B{4 + c}_{stamp(src.dates[t])}" if style == "band_date" else
                 f"{stamp(src.dates[t])}_B{4 + c}" for t, c in order]
        path = write_stack(tmp_path / f"{style}.tif", two, src, layout, names)
        s = StackedGeoTiff(path)
        assert s.bands == ["B4", "B5"] and s.layout == layout
        np.testing.assert_array_equal(s.dates, src.dates[:12])
        reads.append(s.read_window(0, 0, s.height, s.width))
        # dates=false: the same file read as undated (for a t_index model), bands still named
        u = StackedGeoTiff(path, dates=False, n_bands=2)
        assert u.dates is None and u.bands == ["B4", "B5"] and u.layout == layout
        np.testing.assert_array_equal(u.read_window(0, 0, 7, 25)["sequence"],
                                      reads[-1]["sequence"])
    for k in ("sequence", "pixel_mask", "dates"):
        np.testing.assert_array_equal(reads[0][k], reads[1][k])
    np.testing.assert_array_equal(reads[0]["sequence"][:, 0], np.where(
        x[:, 0] == NODATA, 0, x[:, 0]))


@pytest.mark.filterwarnings("error:SITSFormer got no:UserWarning")
def test_undated_stack_is_mapped_by_a_t_index_model(shared_data, tmp_path, capsys):
    """A model trained on undated Formosat-2 series (``t_index``, 46 steps: ``doy`` = positions
    1..46, as the data layer gives undated samples) maps an undated 46-band stack of Formosat-2
    pixels through the CLI with ``-o n_bands=1``: no dates are invented, the classes are those
    of the model run on the same series."""
    z = np.load(shared_data / "formosat2_ucr_crop" / "formosat2_ucr_crop.npz")
    x, y = torch.from_numpy(z["x"][:2000]), torch.from_numpy(z["y"][:2000])
    torch.manual_seed(0)
    model = create_sits_former(tiny_config(num_classes=24) | {"max_seq_len": 46})
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    mask = torch.ones(128, 46, dtype=torch.bool)
    steps = torch.arange(1, 47)
    for step in range(30):
        idx = torch.randint(0, len(x), (128,), generator=torch.Generator().manual_seed(step))
        logits = model(x[idx], mask, doy=steps.expand(128, 46))
        loss = torch.nn.functional.cross_entropy(logits, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    ckpt = write_checkpoint(tmp_path / "formosat.pt", model, bands=["NDVI"],
                            classes=[str(c) for c in z["classes"]], time_axis="t_index",
                            max_t=46)
    pix = z["x"][5000:5000 + 8 * 10, :, 0].T.reshape(46, 1, 8, 10)  # 80 pixels as an 8x10 raster
    like = ArrayRasterSource(pix, transform=rasterio.transform.from_origin(0, 80, 1, 1),
                             crs="EPSG:3857")
    stack = write_stack(tmp_path / "undated.tif", pix, like, dtype="float32")
    out = tmp_path / "map.tif"
    args = ["predict", "--checkpoint", str(ckpt), "--input", str(stack), "--output", str(out),
            "--quiet"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "no dates" in err and "n_bands=" in err and "dates=" in err
    assert main(args + ["-o", "n_bands=1"]) == 0, capsys.readouterr().err
    s = StackedGeoTiff(stack, n_bands=1)
    assert s.dates is None and "dates" not in s.read_window(0, 0, 2, 2)
    with rasterio.open(out) as ds:
        cls = ds.read(1)
    with torch.no_grad():
        seq = torch.from_numpy(pix.reshape(46, 1, 80).transpose(2, 0, 1).copy())
        ref = model(seq, torch.ones(80, 46, dtype=torch.bool),
                    doy=steps.expand(80, 46)).argmax(-1).numpy()
    np.testing.assert_array_equal(cls.ravel(), ref)
    # a raster with another number of steps is refused (46 bands as 23 steps x 2 bands)
    model2 = create_sits_former(tiny_config(in_channels=2) | {"max_seq_len": 46})
    ck2 = write_checkpoint(tmp_path / "two.pt", model2, bands=["band0", "band1"],
                           time_axis="t_index", max_t=46)
    rc = main(["predict", "--checkpoint", str(ck2), "--input", str(stack), "--output",
               str(tmp_path / "m2.tif"), "-o", "n_bands=2", "-o", "layout=band_major",
               "--quiet"])
    assert rc == 1 and "23 time steps" in capsys.readouterr().err


def test_band_count_not_a_multiple_is_refused(roi, tmp_path):
    src, x = roi
    path = write_stack(tmp_path / "odd.tif", x[:7], src)  # 7 bands
    with pytest.raises(DataError) as err:
        StackedGeoTiff(path, n_bands=3, layout="date_major")
    msg = str(err.value)
    assert str(path) in msg and "7 bands" in msg and "n_bands=3" in msg
    dates = tmp_path / "odd_dates.txt"  # the sidecar: 3 dates for 7 bands
    dates.write_text("2020-01-01\n2020-01-11\n2020-01-21\n")
    with pytest.raises(DataError, match=r"7 bands is not a multiple of the 3 dates"):
        StackedGeoTiff(path)


def test_mixed_or_absent_dates_are_refused_naming_the_option(roi, tmp_path, capsys):
    src, x = roi
    names = [f"NDVI_{stamp(d)}" for d in src.dates[:6]]
    names[4] = "NDVI"
    mixed = write_stack(tmp_path / "mixed.tif", x[:6], src, names=names)
    with pytest.raises(DataError) as err:
        StackedGeoTiff(mixed)
    msg = str(err.value)
    assert str(mixed) in msg and "5 of 6 band descriptions hold a date" in msg
    assert "dates=" in msg and "n_bands=" in msg
    # with the dates given, the file is read
    dates = ",".join(str(d) for d in src.dates[:6])
    assert StackedGeoTiff(mixed, dates=dates).dates.shape == (6,)
    absent = write_stack(tmp_path / "absent.tif", x[11:17], src)
    rc = main(["data", "inspect", str(absent)])
    err_text = capsys.readouterr().err
    assert rc != 0 and "no dates" in err_text and "dates=" in err_text
    # a sidecar dates file beside it settles it
    (tmp_path / "absent_dates.csv").write_text("\n".join(f"{stamp(d)},x" for d in
                                                         src.dates[11:17]))
    s = StackedGeoTiff(absent)
    np.testing.assert_array_equal(s.dates, src.dates[11:17])
    assert s.dates_from.endswith("absent_dates.csv")
    assert main(["data", "inspect", str(absent)]) == 0
    out = capsys.readouterr().out
    assert "samples     175   T 6   C 1" in out and "geotiff-stack" in out


def test_predict_api_reads_a_stack_path(roi, slovenia_model, tmp_path):
    """``predict_raster`` takes the stacked file's path like a folder's."""
    src, x = roi
    stack = write_stack(tmp_path / "s.tif", x, src, names=[f"{stamp(d)}_NDVI" for d in src.dates])
    source = open_raster_source(stack, scale=10000)
    copy = pickle.loads(pickle.dumps(source))  # what a Dask worker gets
    np.testing.assert_array_equal(copy.read_window(1, 2, 3, 4)["sequence"],
                                  source.read_window(1, 2, 3, 4)["sequence"])
    a = predict_raster(slovenia_model, source, tmp_path / "a.tif", progress=False)
    b = predict_raster(slovenia_model, open_raster_source(src.folder.parent, scale=10000),
                       tmp_path / "b.tif", progress=False)
    with rasterio.open(a.class_map) as fa, rasterio.open(b.class_map) as fb:
        np.testing.assert_array_equal(fa.read(), fb.read())


def test_repeated_band_names_settle_the_layout(roi, tmp_path):
    """Descriptions without dates that repeat per date (``NDVI, HALF, NDVI, HALF, ...``) give
    the band names and the layout; the dates come from the option (a YAML list through -o)."""
    src, x = roi
    two = np.concatenate([x[:5], np.where(x[:5] == NODATA, NODATA, x[:5] // 2)], axis=1)
    for layout, names in (("date_major", ["NDVI", "HALF"] * 5),
                          ("band_major", ["NDVI"] * 5 + ["HALF"] * 5)):
        path = write_stack(tmp_path / f"{layout}.tif", two, src, layout, names)
        s = StackedGeoTiff(path, n_bands=2, dates=[str(d) for d in src.dates[:5]])
        assert s.layout == layout and s.bands == ["NDVI", "HALF"]
        np.testing.assert_array_equal(s.read_window(0, 0, 7, 25)["sequence"][:, 1],
                                      np.where(x[:5, 0] == NODATA, 0, x[:5, 0] // 2))
        with pytest.raises(DataError, match="but the band descriptions repeat in"):
            StackedGeoTiff(path, n_bands=2, layout="band_major" if layout == "date_major"
                           else "date_major", dates=[str(d) for d in src.dates[:5]]).bands


def test_per_band_tags_give_dates_and_bands(roi, tmp_path):
    """Per-band tags (``date=2020-01-04T10:00:00``, ``band=NDVI``), as some stack writers set
    them, read like ``NDVI_20200104`` descriptions; a plain band-name description works too."""
    src, x = roi
    ref = StackedGeoTiff(write_stack(tmp_path / "desc.tif", x[:8], src,
                                     names=[f"NDVI_{stamp(d)}" for d in src.dates[:8]]))
    for name, names in (("tags", None), ("plain", ["NDVI"] * 8)):
        path = write_stack(tmp_path / f"{name}.tif", x[:8], src, names=names)
        with rasterio.open(path, "r+") as ds:
            for i, d in enumerate(src.dates[:8]):
                ds.update_tags(i + 1, date=f"{d}T10:00:00Z", **({} if names else {"band": "NDVI"}))
        s = StackedGeoTiff(path)
        assert s.bands == ["NDVI"] and s.dates_from == "band tags"
        np.testing.assert_array_equal(s.dates, ref.dates)
        np.testing.assert_array_equal(s.read_window(0, 0, 7, 25)["sequence"],
                                      ref.read_window(0, 0, 7, 25)["sequence"])


def test_gee_sentinel2_index_names(roi, tmp_path):
    """``toBands()`` of a Sentinel-2 collection names bands ``<system:index>_<band>``
    (``20200104T103421_20200104T103418_T32TMR_B4``): the first date and the last token."""
    src, x = roi
    two = np.concatenate([x[:4], x[:4]], axis=1)
    names = [f"{stamp(d)}T103421_{stamp(d)}T103418_T32TMR_{b}" for d in src.dates[:4]
             for b in ("B4", "B8")]
    s = StackedGeoTiff(write_stack(tmp_path / "s2.tif", two, src, names=names))
    assert s.bands == ["B4", "B8"] and s.layout == "date_major"
    np.testing.assert_array_equal(s.dates, src.dates[:4])
