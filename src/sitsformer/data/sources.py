"""``open_source``: one entry point that recognises the kind of source and reads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sitsformer.data.dataset import SITSDataset
from sitsformer.data.errors import DataError, SourceNotRecognizedError

SOURCE_KINDS = ("csv", "geotiff", "eopatch", "pastis", "store", "npz", "original_npz")


def detect_source(path: str | Path) -> str:
    """The kind of source at ``path``: one of :data:`SOURCE_KINDS`.

    Raises:
        SourceNotRecognizedError: naming the path and what was looked for.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    if p.is_file():
        suffix = p.suffix.lower()
        if suffix == ".csv":
            return "csv"
        if suffix == ".npz":
            return "npz"
        from sitsformer.data.geotiff import RASTER_SUFFIXES

        if suffix in RASTER_SUFFIXES:  # one raster holding every date
            return "geotiff"
        raise SourceNotRecognizedError(f"{p}: unsupported file type {suffix!r} (expected .csv, "
                                       f".npz, a raster stack {RASTER_SUFFIXES} or a folder)")
    if (p / "zarr.json").exists() or (p / ".zgroup").exists():
        return "store"
    if (p / "timestamps.json").exists():
        return "eopatch"
    if (p / "metadata.geojson").exists() and any(p.glob("DATA_*")):
        return "pastis"
    if any(p.glob("*.csv")):
        return "csv"
    from sitsformer.data.original_npz import is_original_folder

    if is_original_folder(p):
        return "original_npz"
    from sitsformer.data.geotiff import RASTER_SUFFIXES, split_data_cloud_folders

    data_dir, _ = split_data_cloud_folders(p)
    if any(f.suffix.lower() in RASTER_SUFFIXES for f in data_dir.iterdir()):
        return "geotiff"
    raise SourceNotRecognizedError(
        f"{p}: not a recognised source (looked for a Zarr store, timestamps.json (EOPatch), "
        f"metadata.geojson + DATA_* (PASTIS), *.csv tables, per-date GeoTIFFs, .npz files "
        f"with 'ts' and 'doy' (the original SITS-Former layout))")


def open_source(path: str | Path, kind: str | None = None, **options: Any) -> SITSDataset:
    """Open any supported source as a dataset of contract samples.

    Args:
        path: a CSV pixel table (file or folder of train/test CSVs), a folder of per-date
            GeoTIFFs or one raster holding every date, an EOPatch folder, a PASTIS folder, a
            Zarr sample store, an ``.npz`` in the shared-data schema, or a folder of
            per-sample ``.npz`` files in the original SITS-Former layout (``ts``, ``doy``,
            ``class_label``; pre-training folder or ``TRAIN/VALIDATE/TEST``).
        kind: force the kind (see :func:`detect_source`) instead of detecting it.
        **options: passed to the reader (:func:`~sitsformer.data.csv_table.read_csv_table`,
            :func:`~sitsformer.data.geotiff.read_geotiff_folder`,
            :func:`~sitsformer.data.arrays.read_eopatch`,
            :class:`~sitsformer.data.arrays.PastisDataset`,
            :class:`~sitsformer.data.store.SampleStore`,
            :func:`~sitsformer.data.arrays.read_npz`,
            :class:`~sitsformer.data.original_npz.OriginalNpzFolder`).
    """
    kind = kind or detect_source(path)
    if kind == "csv":
        from sitsformer.data.csv_table import read_csv_table

        return read_csv_table(path, **options)
    if kind == "geotiff":
        from sitsformer.data.geotiff import read_geotiff_folder

        return read_geotiff_folder(path, **options)
    if kind == "eopatch":
        from sitsformer.data.arrays import read_eopatch

        return read_eopatch(path, **options)
    if kind == "pastis":
        from sitsformer.data.arrays import PastisDataset

        return PastisDataset(path, **options)
    if kind == "store":
        from sitsformer.data.store import SampleStore

        return SampleStore(path, **options)
    if kind == "npz":
        from sitsformer.data.arrays import read_npz

        return read_npz(path, **options)
    if kind == "original_npz":
        from sitsformer.data.original_npz import read_original_folder

        return read_original_folder(path, **options)
    raise DataError(f"unknown source kind {kind!r}; expected one of {SOURCE_KINDS}")
