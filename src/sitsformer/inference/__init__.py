"""Map inference: sliding-window prediction over raster time series, GeoTIFF map export.

Inputs are prepared and checked with the checkpoint's :class:`~sitsformer.data.InputSpec`
(``InputSpec.from_checkpoint``), the same preparation training used.
"""

from sitsformer.data.errors import InputMismatchError
from sitsformer.inference.predict import (
    CLASS_NODATA,
    CONFIDENCE_NODATA,
    PredictionResult,
    companion_paths,
    predict_raster,
)
from sitsformer.inference.outputs import build_vrt
from sitsformer.inference.sources import ArrayRasterSource, RasterSource, open_raster_source

__all__ = [
    "CLASS_NODATA",
    "CONFIDENCE_NODATA",
    "ArrayRasterSource",
    "InputMismatchError",
    "PredictionResult",
    "RasterSource",
    "build_vrt",
    "companion_paths",
    "open_raster_source",
    "predict_raster",
]
