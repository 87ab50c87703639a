"""Data: the sample contract, collate, readers, stores, transforms, splits, demo data.

Entry points: :func:`open_source` (any supported source -> a :class:`SITSDataset`),
:class:`InputSpec` (what a model's inputs are and the one input preparation),
:class:`DataModule` (reading, splits, label budgets, statistics and loaders of a run),
:class:`GeoTiffTimeSeries` (windowed raster reads for maps), :func:`build_store` /
:class:`SampleStore` (chunked Zarr store), the transforms, the splits and
:class:`DemoDataset` (GENERATED demo data).

Every name is imported from its module on first use, so ``import sitsformer.data`` (and
``sitsformer.data.errors``, which the map commands need) loads neither torch (``collate``)
nor pandas, rasterio or zarr until a name that needs them is used.
"""

from __future__ import annotations

from sitsformer._lazy import lazy_exports

_LAZY = {
    "sitsformer.data.sample": ["IGNORE_INDEX", "SampleError", "check_sample", "collate"],
    "sitsformer.data.synthetic": ["DEMO_CLASSES", "S2_BANDS", "DemoData", "make_demo_data",
                                  "write_demo_raster", "write_demo_stac"],
    "sitsformer.data.cube": ["Cube", "build_store_from_cube", "extract_samples", "open_cube"],
    "sitsformer.data.arrays": ["PastisDataset", "read_eopatch", "read_npz"],
    "sitsformer.data.csv_table": ["read_csv_table"],
    "sitsformer.data.dataset": ["ArrayDataset", "RasterPixelDataset", "SITSDataset",
                                "dates_to_doy", "exclusion_report", "shared_data_dir"],
    "sitsformer.data.demo": ["DemoDataset"],
    "sitsformer.data.errors": ["BandCountError", "CorruptFileError", "DataError", "DataWarning", "DateParseError",
                               "GeoReferenceError", "InputMismatchError", "LabelError",
                               "NoClearDateError", "SourceNotRecognizedError"],
    "sitsformer.data.loaders": ["ChunkBatchSampler", "EpochSampler", "SampleDataset",
                                "make_loader"],
    "sitsformer.data.module": ["SPLITS", "DataModule", "PreparedDataset", "label_subset",
                               "read_split_file", "sample_ids", "split_indices"],
    "sitsformer.data.values": ["band_ranges", "infer_scale", "valid_range", "value_kind"],
    "sitsformer.data.spec": ["InputSpec", "TIME_AXES"],
    "sitsformer.data.geotiff": ["GeoTiffTimeSeries", "open_stack", "parse_file_date",
                                "read_geotiff_folder"],
    "sitsformer.data.stacked": ["StackedGeoTiff", "read_dates_file"],
    "sitsformer.data.sources": ["detect_source", "open_source"],
    "sitsformer.data.splits": ["class_weights", "group_split", "kfold_split", "random_split",
                               "spatial_block_split", "stratified_split"],
    "sitsformer.data.store": ["SampleStore", "build_store"],
    "sitsformer.data.transforms": ["Compose", "DateCrop", "DropCloudyDates", "MaskOutOfRange",
                                   "Normalize",
                                   "RandomDateSubsample", "RandomFlipRotate", "Scale",
                                   "compute_normalization"],
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY, globals())
