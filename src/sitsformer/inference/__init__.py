"""Map inference: sliding-window prediction over raster time series, GeoTIFF map export."""

from sitsformer.inference.predict import (
    CLASS_NODATA,
    CONFIDENCE_NODATA,
    PredictionResult,
    companion_paths,
    predict_raster,
)
from sitsformer.inference.prepare import InputMismatchError, check_compatible, input_transform
from sitsformer.inference.sources import ArrayRasterSource, RasterSource, open_raster_source

__all__ = [
    "CLASS_NODATA",
    "CONFIDENCE_NODATA",
    "ArrayRasterSource",
    "InputMismatchError",
    "PredictionResult",
    "RasterSource",
    "check_compatible",
    "companion_paths",
    "input_transform",
    "open_raster_source",
    "predict_raster",
]
