"""Lazy cubes (GeoTIFF folder, local STAC), windowed sample extraction, the cube store build."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from sitsformer.cli import main
from sitsformer.data import (GeoTiffTimeSeries, SampleStore, build_store_from_cube,
                             extract_samples, open_cube, read_geotiff_folder, write_demo_raster,
                             write_demo_stac)
from sitsformer.parallel import dask_cluster


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """GENERATED 40 x 50 scene, 6 dates, 4 bands, SCL clouds, label polygons, also as STAC."""
    return write_demo_stac(tmp_path_factory.mktemp("cube") / "s", height=40, width=50)


def _by_coords(ds):
    """Samples of a dataset as arrays ordered by (row, col)."""
    order = np.lexsort((ds.coords[:, 1], ds.coords[:, 0]))
    samples = [ds.raw_sample(int(i)) for i in order]
    return {k: np.stack([np.asarray(s[k]) for s in samples])
            for k in ("sequence", "mask", "pixel_mask", "label", "doy")}, ds.coords[order]


@pytest.mark.parametrize("kind", ["folder", "stac"])
def test_the_cube_is_lazy_and_reads_what_the_window_reader_reads(scene, kind):
    cube = open_cube(scene["folder"] if kind == "folder" else scene["stac"], chunks=16,
                     scale=10000)
    assert cube.data.dims == ("time", "band", "y", "x")
    assert cube.data.shape == (6, 4, 40, 50) and cube.data.data.chunksize == (1, 4, 16, 16)
    assert cube.bands == ["B2", "B3", "B4", "B5"] and cube.crs.to_epsg() == 32633
    assert hasattr(cube.data.data, "dask")  # nothing read yet: a graph of chunk reads
    ref = GeoTiffTimeSeries(scene["folder"], scale=10000)
    assert cube.transform == ref.transform
    np.testing.assert_array_equal(cube.dates, ref.dates)
    reader, cube.reader = cube.reader, None  # the dask cube itself, not the direct reader
    for win in [(0, 0, 40, 50), (7, 13, 9, 21), (39, 49, 1, 1)]:
        a, b = cube.read_window(*win), ref.read_window(*win)
        np.testing.assert_array_equal(a["sequence"], b["sequence"])
        np.testing.assert_array_equal(a["pixel_mask"], b["pixel_mask"])
        assert a["transform"] == b["transform"]
    assert not ref.read_window(0, 0, 40, 50)["pixel_mask"].all()  # the SCL clouds are there
    if reader is not None:
        np.testing.assert_array_equal(reader.read_window(7, 13, 9, 21)["sequence"],
                                      cube.read_window(7, 13, 9, 21)["sequence"])


def test_extraction_reads_only_labelled_blocks_and_equals_the_raster_reader(scene, tmp_path):
    cube = open_cube(scene["folder"], chunks=16, scale=10000)
    ds = extract_samples(cube, scene["labels"], patch_size=3, block=16)
    ref = read_geotiff_folder(scene["folder"], labels=scene["labels"], patch_size=3,
                              scale=10000)
    assert ds.classes == ref.classes and len(ds) == len(ref)
    a, ca = _by_coords(ds)
    b, cb = _by_coords(ref)
    np.testing.assert_array_equal(ca, cb)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # labels only in the top-left 16 x 16 block: only that block (plus its halo) is read
    import shapely
    import pyogrio.raw

    t = cube.transform
    box = shapely.box(t.c + 20, t.f - 100, t.c + 100, t.f - 20)  # rows/cols 2..9
    path = tmp_path / "one.gpkg"
    pyogrio.raw.write(path, np.asarray([shapely.to_wkb(box)], dtype=object),
                      field_data=[np.asarray(["maize"], dtype=object)], fields=["class"],
                      geometry_type="Polygon", crs="EPSG:32633", driver="GPKG")
    reads = []
    original = type(cube).read_window
    type(cube).read_window = lambda self, *w: reads.append(w) or original(self, *w)
    try:
        one = extract_samples(cube, path, patch_size=3, block=16)
    finally:
        type(cube).read_window = original
    assert reads == [(0, 0, 17, 17)] and len(one) == 64
    assert set(map(tuple, one.coords.tolist())) == {(r, c) for r in range(2, 10)
                                                   for c in range(2, 10)}


@pytest.mark.slow
def test_store_from_the_cube_on_a_cluster_equals_the_in_process_store(scene, tmp_path):
    cube = open_cube(scene["folder"], chunks=16, scale=10000)
    local = build_store_from_cube(cube, scene["labels"], tmp_path / "a.zarr", patch_size=3,
                                  block=16, progress=False)
    with dask_cluster(workers=2) as runner:
        dist = build_store_from_cube(cube, scene["labels"], tmp_path / "b.zarr", patch_size=3,
                                     block=16, runner=runner, progress=False)
    assert len(local) == len(dist) > 0
    for i in range(0, len(local), 37):
        a, b = local.raw_sample(i), dist.raw_sample(i)
        for k in ("sequence", "mask", "pixel_mask", "label", "dates"):
            np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_allclose(local.mean, dist.mean)
    # the statistics are those of the in-memory store of the same samples
    from sitsformer.data import build_store

    ref = build_store(extract_samples(cube, scene["labels"], patch_size=3, block=16),
                      tmp_path / "c.zarr", progress=False)
    np.testing.assert_allclose(local.mean, ref.mean, rtol=1e-9)
    np.testing.assert_allclose(local.std, ref.std, rtol=1e-6)


def test_data_build_cli_from_a_stac_collection(scene, tmp_path, capsys):
    out = tmp_path / "s.zarr"
    argv = ["data", "build", str(scene["stac"]), "--output", str(out), "--block", "32",
            "-o", f"labels={scene['labels']}", "-o", "patch_size=3", "-o", "scale=10000",
            "--quiet"]
    assert main(argv) == 0
    store = SampleStore(out)
    ref = read_geotiff_folder(scene["folder"], labels=scene["labels"], patch_size=3,
                              scale=10000)
    assert f"wrote {len(ref)} samples" in capsys.readouterr().out
    assert store.classes == ref.classes and len(store) == len(ref)
    assert main(argv) == 1 and "already exists" in capsys.readouterr().err
    no_labels = [a for a in argv if not a.startswith("labels=")]
    no_labels.remove("-o")
    assert main(no_labels + ["--overwrite"]) == 1
    assert "-o labels=FILE" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_reads_a_stac_collection_like_the_folder(scene, tmp_path):
    import torch

    from sitsformer.data import InputSpec
    from sitsformer.inference import open_raster_source, predict_raster
    from sitsformer.models import create_sits_former

    torch.manual_seed(0)
    model = create_sits_former(dict(img_size=3, patch_size=3, in_channels=4, num_classes=4,
                                    embed_dim=16, num_layers=1, num_heads=2, mlp_ratio=2.0,
                                    dropout=0.0, max_seq_len=16))
    spec = InputSpec(bands=scene["bands"], time_axis="dates")
    a = predict_raster(model, open_raster_source(scene["stac"], scale=10000), tmp_path / "a.tif",
                       window=16, progress=False, spec=spec)
    b = predict_raster(model, open_raster_source(scene["folder"], scale=10000),
                       tmp_path / "b.tif", window=16, progress=False, spec=spec)
    with rasterio.open(a.class_map) as x, rasterio.open(b.class_map) as y:
        np.testing.assert_array_equal(x.read(), y.read())
        assert x.transform == y.transform


def test_a_stacked_raster_is_a_cube_with_the_folder_samples(scene, tmp_path):
    """The scene written as one band-major stack (``B2_20200101``..., clouds as nodata) opens as
    a lazy cube; its labelled samples are the folder's (same clear observations and labels)."""
    folder = GeoTiffTimeSeries(scene["folder"])
    full = folder.read_window(0, 0, folder.height, folder.width)
    x = np.where(full["pixel_mask"][:, None], full["sequence"], -9999).astype(np.int16)
    t, c = x.shape[:2]
    path = tmp_path / "stack.tif"
    with rasterio.open(path, "w", driver="GTiff", width=50, height=40, count=t * c,
                       dtype="int16", nodata=-9999, crs=folder.crs,
                       transform=folder.transform) as out:
        out.write(x.transpose(1, 0, 2, 3).reshape(t * c, 40, 50))  # band-major
        for i in range(t * c):
            b, d = divmod(i, t)
            out.set_band_description(i + 1, f"{folder.bands[b]}_{folder.dates[d]}")
    cube = open_cube(path, chunks=16, scale=10000)
    assert cube.data.shape == (t, c, 40, 50) and cube.bands == folder.bands
    np.testing.assert_array_equal(cube.dates, folder.dates)
    reader, cube.reader = cube.reader, None  # the dask graph equals the direct reader
    for win in [(0, 0, 40, 50), (7, 13, 9, 21)]:
        a, b = cube.read_window(*win), reader.read_window(*win)
        np.testing.assert_array_equal(a["sequence"], b["sequence"])
        np.testing.assert_array_equal(a["pixel_mask"], b["pixel_mask"])
    cube.reader = reader
    ds = extract_samples(cube, scene["labels"], patch_size=3, block=16)
    ref = extract_samples(open_cube(scene["folder"], chunks=16, scale=10000), scene["labels"],
                          patch_size=3, block=16)
    a, ca = _by_coords(ds)
    b, cb = _by_coords(ref)
    np.testing.assert_array_equal(ca, cb)
    for k in ("mask", "pixel_mask", "label", "doy"):
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    clear = np.broadcast_to(a["pixel_mask"][:, :, None], a["sequence"].shape)
    np.testing.assert_array_equal(a["sequence"][clear], b["sequence"][clear])


def test_data_build_of_a_labelled_raster_is_windowed_by_default(scene, tmp_path, capsys):
    """A GeoTIFF folder with label polygons is built block by block without any option, and the
    store holds the samples and statistics of the whole-raster build (--in-memory)."""
    base = ["data", "build", str(scene["folder"]), "-o", f"labels={scene['labels']}",
            "-o", "patch_size=3", "-o", "scale=10000", "--quiet"]
    assert main(base + ["--output", str(tmp_path / "w.zarr")]) == 0
    assert "read block by block from the cube, 256 px blocks" in capsys.readouterr().out
    assert main(base + ["--output", str(tmp_path / "m.zarr"), "--in-memory"]) == 0
    assert "block by block" not in capsys.readouterr().out
    w, m = SampleStore(tmp_path / "w.zarr"), SampleStore(tmp_path / "m.zarr")
    assert w.classes == m.classes and len(w) == len(m) > 0
    a, ca = _by_coords(w)
    b, cb = _by_coords(m)
    np.testing.assert_array_equal(ca, cb)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    np.testing.assert_allclose(w.mean, m.mean, rtol=1e-9)
    np.testing.assert_allclose(w.std, m.std, rtol=1e-6)
    assert main(base + ["--output", str(tmp_path / "x.zarr"), "--in-memory", "--block", "32"]) == 2
    assert "cannot be combined with --workers, --scheduler or --block" in capsys.readouterr().err
