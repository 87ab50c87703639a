"""Lazy raster cubes: a folder of per-date GeoTIFFs/COGs or a local STAC collection as one
chunked ``(time, band, y, x)`` xarray/dask array, with its cloud layer, CRS and transform.

Nothing is read when a cube is opened: values are read chunk by chunk when a window of it is
computed. :func:`open_cube` reads

- a folder with today's naming rules (:class:`~sitsformer.data.GeoTiffTimeSeries`: dates in
  the file names, a sen2r ``SCL``-like cloud sub-folder, FORCE ``QAI``), values through
  ``rioxarray`` one chunk at a time, the cloud layer resampled onto the data grid per chunk
  exactly as :class:`GeoTiffTimeSeries` does;
- one raster holding every date (a GEE / openEO / xarray export, read by
  :class:`~sitsformer.data.stacked.StackedGeoTiff`: dates and bands from its band descriptions,
  a ``<stem>_dates.txt`` beside it or the ``dates``/``n_bands``/``layout`` options);
- a STAC catalog, collection or item collection on disk (``.json``; asset paths relative to
  the JSON), loaded with ``odc-stac`` (one asset per band, the ``scl`` asset, when there is
  one, as the cloud layer).

:func:`extract_samples` cuts the labelled pixels (or patches around them) of polygons or points
from the cube, reading only the blocks that hold labels; :func:`build_store_from_cube` writes
them to a Zarr sample store block by block, the blocks computed in parallel on a Dask cluster
(:func:`sitsformer.parallel.dask_cluster`) and appended in block order, so memory is set by
the block size and not by the raster.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any, Sequence

import dask
import dask.array as da
import numpy as np

from sitsformer.data.dataset import ArrayDataset, RasterPixelDataset, add_exclusion, dates_to_doy
from sitsformer.data.errors import DataError, DataWarning, GeoReferenceError

__all__ = ["Cube", "build_store_from_cube", "extract_samples", "open_cube"]

STAC_CLOUD_ASSETS = ("scl", "SCL", "cloud", "clm", "CLM")


class Cube:
    """A lazy raster time series with the raster-source surface (``read_window``).

    Attributes:
        data: ``xarray.DataArray`` ``(time, band, y, x)`` of the stored values (dask-backed).
        clear: ``xarray.DataArray`` ``(time, y, x)`` bool, True = clear (dask-backed; nodata and
            the cloud layer included).
        dates (datetime64[D] ``(T,)``), bands, height, width, crs (rasterio CRS), transform
        (Affine), nodata, scale (the factor values are divided by when read; None = as stored),
        chunks (block side), source (the path).
    """

    def __init__(self, data: Any, clear: Any, *, crs: Any, transform: Any, nodata: float | None,
                 scale: float | None, source: str, kind: str, reader: Any = None) -> None:
        self.data, self.clear = data, clear
        self.reader = reader  # a window reader giving the same values without the dask graph
        self.dates = np.asarray(data["time"].values).astype("datetime64[D]")
        self.bands = [str(b) for b in data["band"].values]
        _, _, self.height, self.width = (int(v) for v in data.shape)
        self.crs, self.transform, self.nodata, self.scale = crs, transform, nodata, scale
        self.source, self.kind = source, kind

    def __repr__(self) -> str:
        t, c, h, w = self.data.shape
        return (f"Cube({self.kind} {self.source!r}: T={t} C={c} {h}x{w}, chunks "
                f"{self.data.data.chunksize}, {self.crs})")

    @property
    def doy(self) -> np.ndarray:
        return dates_to_doy(self.dates)

    def read_window(self, row_off: int, col_off: int, height: int, width: int
                    ) -> dict[str, Any]:
        """The window as :meth:`GeoTiffTimeSeries.read_window` returns it (same values): only the
        chunks it touches are read (computed in this thread, also inside a Dask worker)."""
        if row_off < 0 or col_off < 0 or height < 1 or width < 1 or \
                row_off + height > self.height or col_off + width > self.width:
            raise DataError(f"{self.source}: window rows {row_off}..{row_off + height}, cols "
                            f"{col_off}..{col_off + width} outside the raster "
                            f"{self.height}x{self.width}")
        if self.reader is not None:
            # a folder cube: the same files read directly (slicing the whole-raster graph per
            # window costs more than the read itself)
            return self.reader.read_window(row_off, col_off, height, width)
        ys, xs = slice(row_off, row_off + height), slice(col_off, col_off + width)
        values, clear = dask.compute(self.data.data[:, :, ys, xs], self.clear.data[:, ys, xs],
                                     scheduler="synchronous")
        values = values.astype(np.float32)
        bad = ~np.isfinite(values)
        if self.nodata is not None and np.isfinite(self.nodata):
            bad |= values == np.float32(self.nodata)
        seq = np.where(bad, np.float32(0.0), values)
        if self.scale is not None:
            seq /= np.float32(self.scale)
        from rasterio.windows import Window
        from rasterio.windows import transform as window_transform

        return {"sequence": seq, "pixel_mask": np.asarray(clear, bool) & ~bad.any(axis=1),
                "dates": self.dates.copy(), "doy": dates_to_doy(self.dates),
                "transform": window_transform(Window(col_off, row_off, width, height),
                                              self.transform)}

    def meta(self) -> dict[str, Any]:
        epsg = self.crs.to_epsg() if self.crs is not None else None
        return {"source": self.source, "format": self.kind,
                "crs": f"EPSG:{epsg}" if epsg else (self.crs.to_wkt() if self.crs else None),
                "transform": list(self.transform)[:6], "scale": None, "scale_applied": self.scale,
                "nodata": self.nodata, "height": self.height, "width": self.width,
                "date_range": [str(self.dates.min()), str(self.dates.max())]}


def open_cube(path: str | Path, *, chunks: int = 256, scale: float | None = None,
              bands: Sequence[str] | None = None, cloud_asset: str | None = None,
              **options: Any) -> Cube:
    """Open a folder of per-date GeoTIFFs or a local STAC JSON as a lazy :class:`Cube`.

    Args:
        path: the folder (options of :class:`GeoTiffTimeSeries` apply: ``cloud_folder``,
            ``cloud_kind``, ``pattern``...), one raster holding every date (options of
            :class:`~sitsformer.data.stacked.StackedGeoTiff`: ``dates``, ``n_bands``,
            ``layout``, ``bands``) or a STAC catalog / collection / item collection ``.json``
            file.
        chunks: side of the square chunks (pixels); one chunk holds all dates and bands.
        scale: the factor the values are stored with (divided by it when read).
        bands: STAC: the band assets to load (default every asset but the cloud asset); a
            stacked raster: its band names.
        cloud_asset: STAC only: the SCL asset (default the first of ``scl``, ``SCL``...).

    Raises:
        DataError: not a folder of rasters nor a STAC file, or no items / bands found.
    """
    from sitsformer.data.geotiff import RASTER_SUFFIXES

    path = Path(path)
    if path.suffix.lower() == ".json":
        return _open_stac(path, chunks, scale, bands, cloud_asset, **options)
    if path.is_file() and path.suffix.lower() in RASTER_SUFFIXES:
        return _open_stacked(path, chunks, scale, bands=bands, **options)
    return _open_folder(path, chunks, scale, **options)


def _open_stacked(path: Path, chunks: int, scale: float | None, **options: Any) -> Cube:
    """One raster holding every date (:class:`~sitsformer.data.stacked.StackedGeoTiff`
    resolves its dates and bands) as a lazy cube; masked observations are its nodata."""
    import rioxarray
    import xarray as xr

    from sitsformer.data.stacked import StackedGeoTiff

    stack = StackedGeoTiff(path, **options)
    if stack.dates is None:
        raise DataError(f"{path}: a lazy cube needs acquisition dates; this stack is undated "
                        "(read it with open_source / StackedGeoTiff, or give dates=)")
    raw = rioxarray.open_rasterio(path, chunks={"band": -1, "y": chunks, "x": chunks},
                                  lock=False, masked=False, cache=False)
    t, c = stack.index.shape
    values = raw.data[stack.index.ravel()].reshape(t, c, stack.height, stack.width)
    data = xr.DataArray(values, dims=("time", "band", "y", "x"),
                        coords={"time": stack.dates.astype("datetime64[ns]"),
                                "band": stack.bands, "y": raw["y"], "x": raw["x"]})
    blocks = values.chunks
    clear = da.ones((t, stack.height, stack.width), dtype=bool,
                    chunks=(1, blocks[2], blocks[3]))
    clear_xr = xr.DataArray(clear, dims=("time", "y", "x"),
                            coords={"time": data["time"], "y": data["y"], "x": data["x"]})
    reader = StackedGeoTiff(path, scale=scale, **options)
    return Cube(data, clear_xr, crs=stack.crs, transform=stack.transform, nodata=stack.nodata,
                scale=scale, source=str(path), kind="geotiff-stack-cube", reader=reader)


def _open_folder(path: Path, chunks: int, scale: float | None, **options: Any) -> Cube:
    import rioxarray  # noqa: F401 - registers the .rio accessor
    import xarray as xr

    from sitsformer.data.geotiff import GeoTiffTimeSeries

    stack = GeoTiffTimeSeries(path, scale=None, **options)
    layers = [rioxarray.open_rasterio(f, chunks={"band": -1, "y": chunks, "x": chunks},
                                      lock=False, masked=False, cache=False)
              for f in stack.files]
    data = xr.concat(layers, dim="time", coords="minimal", compat="override", join="override")
    data = data.assign_coords(time=stack.dates.astype("datetime64[ns]"), band=stack.bands)
    data = data.drop_vars("spatial_ref", errors="ignore")
    h, w = stack.height, stack.width
    blocks = data.data.chunks
    if stack.cloud_files is None:
        clear = da.ones((len(stack.files), h, w), dtype=bool, chunks=(1, blocks[2], blocks[3]))
    else:
        def cloud_block(block_info: Any = None) -> np.ndarray:
            (t0, t1), (r0, r1), (c0, c1) = block_info[None]["array-location"]
            from rasterio.windows import Window
            from rasterio.windows import transform as window_transform

            out = np.ones((t1 - t0, r1 - r0, c1 - c0), bool)
            wt = window_transform(Window(c0, r0, c1 - c0, r1 - r0), stack.transform)
            for j, i in enumerate(range(t0, t1)):
                if stack.cloud_files[i] is not None:
                    out[j] = stack._cloud_window(stack.cloud_files[i], wt, r1 - r0, c1 - c0)
            return out

        clear = da.map_blocks(cloud_block, dtype=bool,
                              chunks=((1,) * len(stack.files), blocks[2], blocks[3]))
    clear_xr = xr.DataArray(clear, dims=("time", "y", "x"),
                            coords={"time": data["time"], "y": data["y"], "x": data["x"]})
    nodata = stack.nodata
    reader = GeoTiffTimeSeries(path, scale=scale, **options)
    return Cube(data, clear_xr, crs=stack.crs, transform=stack.transform, nodata=nodata,
                scale=scale, source=str(stack.folder), kind="geotiff-cube", reader=reader)


def _stac_items(path: Path) -> list[Any]:
    import pystac

    doc = json.loads(path.read_text())
    if doc.get("type") == "FeatureCollection":
        items = list(pystac.ItemCollection.from_file(str(path)))
    elif doc.get("type") == "Feature":
        items = [pystac.Item.from_file(str(path))]
    elif doc.get("type") in ("Catalog", "Collection"):
        items = list(pystac.Catalog.from_file(str(path)).get_items(recursive=True))
    else:
        raise DataError(f"{path}: not a STAC catalog, collection, item or item collection "
                        f"(type {doc.get('type')!r})")
    if not items:
        raise DataError(f"{path}: the STAC document holds no items")
    for item in items:  # asset paths relative to the JSON file
        for asset in item.assets.values():
            href = asset.href
            if "://" not in href and not Path(href).is_absolute():
                asset.href = str((path.parent / href).resolve())
    return items


def _open_stac(path: Path, chunks: int, scale: float | None, bands: Sequence[str] | None,
               cloud_asset: str | None, **options: Any) -> Cube:
    import odc.stac
    import xarray as xr
    from rasterio.crs import CRS

    from sitsformer.data.geotiff import SCL_CLEAR

    if options:
        raise DataError(f"{path}: options {sorted(options)} do not apply to a STAC cube "
                        "(it takes chunks, scale, bands, cloud_asset)")
    items = _stac_items(path)
    names = list(items[0].assets)
    cloud = cloud_asset or next((a for a in STAC_CLOUD_ASSETS if a in names), None)
    if cloud_asset and cloud_asset not in names:
        raise DataError(f"{path}: cloud asset {cloud_asset!r} not among the assets {names}")
    band_names = list(bands) if bands else [a for a in names if a != cloud]
    missing = [b for b in band_names if b not in names]
    if missing or not band_names:
        raise DataError(f"{path}: bands {missing or band_names} not among the assets {names}")
    ds = odc.stac.load(items, bands=band_names + ([cloud] if cloud else []),
                       chunks={"x": chunks, "y": chunks}, groupby="time")
    data = ds[band_names].to_array("band").transpose("time", "band", "y", "x")
    data = data.chunk({"band": -1})
    nodata = ds[band_names[0]].attrs.get("nodata")
    if cloud:
        scl = ds[cloud]
        scl_nodata = scl.attrs.get("nodata")
        clear = scl.isin(list(SCL_CLEAR))
        if scl_nodata is not None:
            clear = clear & (scl != scl_nodata)
    else:
        clear = xr.ones_like(ds[band_names[0]], dtype=bool)
    gb = ds.odc.geobox
    data = data.drop_vars("spatial_ref", errors="ignore")
    return Cube(data, clear.drop_vars("spatial_ref", errors="ignore"),
                crs=CRS.from_user_input(str(gb.crs)), transform=gb.affine,
                nodata=None if nodata is None else float(nodata), scale=scale, source=str(path),
                kind="stac-cube")


def _label_shapes(cube: Cube, labels: Path, label_column: str | None, meta: dict[str, Any]
                  ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from sitsformer.data.geotiff import read_label_features

    shapes, values = read_label_features(labels, cube.crs, label_column, meta)
    classes = sorted({v for v in values.tolist() if v is not None})
    index = {v: i for i, v in enumerate(classes)}
    keep = np.array([g is not None and v is not None for g, v in zip(shapes, values)], bool)
    cls = np.array([index[v] if k else -1 for v, k in zip(values.tolist(), keep)], np.int64)
    return shapes, cls, [str(c) for c in classes]


def _blocks_with_labels(cube: Cube, shapes: np.ndarray, block: int
                        ) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """``(window, feature ids)`` of the ``block`` x ``block`` windows that labels touch."""
    import shapely

    valid = np.array([g is not None for g in shapes], bool)
    ids = np.flatnonzero(valid)
    tree = shapely.STRtree(list(shapes[valid]))
    t = cube.transform
    out = []
    for r in range(0, cube.height, block):
        for c in range(0, cube.width, block):
            h, w = min(block, cube.height - r), min(block, cube.width - c)
            xs = [t.c + t.a * c, t.c + t.a * (c + w)]
            ys = [t.f + t.e * r, t.f + t.e * (r + h)]
            box = shapely.box(min(xs), min(ys), max(xs), max(ys))
            hit = tree.query(box, predicate="intersects")
            if hit.size:
                out.append(((r, c, h, w), ids[np.sort(hit)]))
    return out


def _block_samples(cube: Cube, window: tuple[int, int, int, int], shapes: list[Any],
                   cls: np.ndarray, ids: np.ndarray, patch_size: int) -> dict[str, Any]:
    """The labelled samples of one window: read the window plus a halo of ``patch_size // 2``,
    rasterise the labels there, cut the samples with :class:`RasterPixelDataset`."""
    from rasterio.features import rasterize
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    r0, c0, h, w = window
    half = patch_size // 2
    rs, cs = max(r0 - half, 0), max(c0 - half, 0)
    re_, ce = min(r0 + h + half, cube.height), min(c0 + w + half, cube.width)
    wt = window_transform(Window(c0, r0, w, h), cube.transform)
    local = rasterize(((g, j) for j, g in enumerate(shapes)), out_shape=(h, w), transform=wt,
                      fill=-1, dtype="int32").astype(np.int64)  # position in ``shapes``
    rows, cols = np.nonzero(local >= 0)
    if rows.size == 0:
        return {"n": 0, "no_clear": 0, "window": window}
    block = cube.read_window(rs, cs, re_ - rs, ce - cs)
    lab, grp = cls[local[rows, cols]], ids[local[rows, cols]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        ds = RasterPixelDataset(block["sequence"], block["pixel_mask"], cube.dates,
                                rows + (r0 - rs), cols + (c0 - cs), patch_size=patch_size,
                                labels=lab, groups=grp, bands=cube.bands)
    n = len(ds)
    p = patch_size
    t, c = block["sequence"].shape[:2]
    # Filled in place: a list of per-sample arrays stacked at the end held every patch twice
    # (3.3 GB peak for a block of 50,176 5 x 5 patches of 24 dates x 10 bands, 1.2 GB of them).
    sequence = np.empty((n, t, c, p, p), np.float32)
    pixel_mask = np.empty((n, t, p, p), bool)
    for i in range(n):
        sample = ds.raw_sample(i)
        sequence[i] = sample["sequence"]
        pixel_mask[i] = sample["pixel_mask"]
    del block
    return {
        "n": n, "no_clear": int(rows.size - n), "window": window,
        "sequence": sequence, "pixel_mask": pixel_mask,
        "label": ds.labels, "group": ds.groups,
        "coords": np.stack([ds.rows + rs, ds.cols + cs], axis=1),
    }


def _block_tasks(cube: Cube, labels: str | Path, label_column: str | None, block: int,
                 patch_size: int, meta: dict[str, Any], runner: Any
                 ) -> tuple[list[Any], list[str], int]:
    labels = Path(labels)
    if not labels.exists():
        raise DataError(f"{labels}: label file not found")
    shapes, cls, classes = _label_shapes(cube, labels, label_column, meta)
    blocks = _blocks_with_labels(cube, shapes, block)
    touched = set(int(i) for _, ids in blocks for i in ids)
    outside = [i for i in range(len(shapes)) if i not in touched]
    if outside:
        add_exclusion(meta, "label_polygons_outside_raster", len(outside),
                      [f"{labels.name} feature {i}" for i in outside])
    if not blocks:
        raise GeoReferenceError(f"{labels}: no label overlaps the raster {cube.source}")
    cube_f = runner.share(cube) if runner is not None else cube
    tasks = [dask.delayed(_block_samples, pure=False)(cube_f, win, list(shapes[ids]), cls[ids],
                                                      ids, patch_size) for win, ids in blocks]
    return tasks, classes, len(blocks)


def _in_block_order(runner: Any, tasks: list[Any], progress: bool, desc: str) -> Any:
    """Results in task order; computed on ``runner`` (at most its in-flight limit ahead)."""
    if runner is None:
        from sitsformer.parallel import BlockRunner

        runner = BlockRunner(None, "in-process", max_in_flight=1)
    ready: dict[int, Any] = {}
    nxt = 0
    for i, res in runner.iter_blocks(tasks, progress=progress, desc=desc):
        ready[i] = res
        while nxt in ready:
            yield ready.pop(nxt)
            nxt += 1


def extract_samples(cube: Cube, labels: str | Path, *, label_column: str | None = None,
                    patch_size: int = 1, block: int = 256, runner: Any = None,
                    progress: bool = False) -> ArrayDataset:
    """The labelled pixels (patches) of label polygons or points, reading only the blocks of
    ``block`` x ``block`` pixels (plus a halo of ``patch_size // 2``) that labels touch.

    The samples are those :func:`~sitsformer.data.read_geotiff_folder` gives for the same
    labels (same values, masks, labels, polygon ids as groups, pixel row/col as coords), in
    block order (row-major within a block) instead of raster row-major order.
    """
    meta = cube.meta()
    meta["exclusions"] = {}
    meta["labels"] = str(labels)
    tasks, classes, _ = _block_tasks(cube, labels, label_column, block, patch_size, meta, runner)
    parts = [r for r in _in_block_order(runner, tasks, progress, "samples") if r["n"]]
    no_clear = sum(r.get("no_clear", 0) for r in parts)
    if no_clear:
        add_exclusion(meta, "samples_without_clear_date", no_clear)
    if not parts:
        raise DataError(f"{labels}: no labelled pixel with a clear date in {cube.source}")
    cat = {k: np.concatenate([p[k] for p in parts]) for k in
           ("sequence", "pixel_mask", "label", "group", "coords")}
    meta["coords"] = "pixel row/col"
    meta["time_axis"] = "dates"
    return ArrayDataset(cat["sequence"], pixel_mask=cat["pixel_mask"],
                        mask=cat["pixel_mask"][:, :, patch_size // 2, patch_size // 2],
                        dates=cube.dates, labels=cat["label"], groups=cat["group"],
                        coords=cat["coords"], classes=classes, bands=cube.bands, meta=meta)


def build_store_from_cube(cube: Cube, labels: str | Path, out: str | Path, *,
                          label_column: str | None = None, patch_size: int = 1,
                          block: int = 256, chunk_size: int = 64, runner: Any = None,
                          overwrite: bool = False, progress: bool = True) -> Any:
    """Write the samples of :func:`extract_samples` to a Zarr sample store without holding
    them all: blocks are computed where ``runner`` says and appended in block order. Peak
    memory is a few blocks (``max_in_flight``), whatever the raster size.

    Returns:
        The written :class:`~sitsformer.data.SampleStore` (statistics over all samples).
    """
    import zarr

    from sitsformer.data.store import STORE_FORMAT, STORE_VERSION, SampleStore, _jsonable

    out = Path(out)
    if out.exists():
        if not overwrite:
            raise DataError(f"{out}: already exists (pass overwrite=True / --overwrite)")
        shutil.rmtree(out)
    meta = cube.meta()
    meta["exclusions"] = {}
    meta["labels"] = str(labels)
    tasks, classes, _ = _block_tasks(cube, labels, label_column, block, patch_size, meta, runner)
    t, c, p = len(cube.dates), len(cube.bands), patch_size
    g = zarr.open_group(str(out), mode="w")
    ck = max(1, int(chunk_size))
    arrays = {
        "sequence": g.create_array("sequence", shape=(0, t, c, p, p), dtype="float32",
                                   chunks=(ck, t, c, p, p)),
        "mask": g.create_array("mask", shape=(0, t), dtype="bool", chunks=(ck, t)),
        "doy": g.create_array("doy", shape=(0, t), dtype="int16", chunks=(ck, t)),
        "dates": g.create_array("dates", shape=(0, t), dtype="int64", chunks=(ck, t)),
        "pixel_mask": g.create_array("pixel_mask", shape=(0, t, p, p), dtype="bool",
                                     chunks=(ck, t, p, p)),
        "label": g.create_array("label", shape=(0,), dtype="int64", chunks=(4096,)),
        "group": g.create_array("group", shape=(0,), dtype="int64", chunks=(4096,)),
        "length": g.create_array("length", shape=(0,), dtype="int32", chunks=(4096,)),
        "coords": g.create_array("coords", shape=(0, 2), dtype="float64", chunks=(4096, 2)),
    }
    days = cube.dates.astype(np.int64)
    doy = dates_to_doy(cube.dates).astype(np.int16)
    total, sq, count, no_clear, n = np.zeros(c), np.zeros(c), 0, 0, 0
    for res in _in_block_order(runner, tasks, progress, f"writing {out.name}"):
        no_clear += res.get("no_clear", 0)
        m = res["n"]
        if not m:
            continue
        x, pm = res["sequence"], res["pixel_mask"]
        centre = pm[:, :, p // 2, p // 2]
        part = {"sequence": x, "mask": centre, "doy": np.broadcast_to(doy, (m, t)),
                "dates": np.broadcast_to(days, (m, t)), "pixel_mask": pm,
                "label": res["label"], "group": res["group"],
                "length": np.full(m, t, np.int32), "coords": res["coords"].astype(np.float64)}
        for k, a in arrays.items():
            a.append(np.ascontiguousarray(part[k]), axis=0)
        valid = centre[:, :, None, None] & pm  # (m, t, p, p): as build_store counts them
        for b in range(c):  # band by band: no float64 copy of the whole block's patches
            sel = x[:, :, b][valid]
            total[b] += sel.sum(dtype=np.float64)
            sq[b] += np.square(sel, dtype=np.float64).sum()
        count += int(valid.sum())
        n += m
    if not n:
        raise DataError(f"{labels}: no labelled pixel with a clear date in {cube.source}")
    if no_clear:
        add_exclusion(meta, "samples_without_clear_date", no_clear)
    mean = total / max(count, 1)
    std = np.maximum(np.sqrt(np.maximum(sq / max(count, 1) - mean ** 2, 0)), 1e-6)
    meta["coords"] = "pixel row/col"
    g.attrs.update(_jsonable({
        "format": STORE_FORMAT, "version": STORE_VERSION, "bands": cube.bands,
        "classes": classes, "crs": meta.get("crs"), "transform": meta.get("transform"),
        "scale": None, "time_axis": "dates", "date_range": meta.get("date_range"),
        "mean": mean.tolist(), "std": std.tolist(), "stats_on": "all samples",
        "generated": False, "source_meta": meta, "source_indices": list(range(n)),
    }))
    return SampleStore(out)
