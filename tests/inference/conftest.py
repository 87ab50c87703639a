"""Tiny models trained once per session on real data, and checkpoints of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from inference_helpers import (  # noqa: F401  (re-exported for the tests)
    EOPATCH,
    SEN2R_ROI,
    SLOVENIA_CODES,
    tiny_config,
    train_slovenia_model,
    write_checkpoint,
)

from sitsformer.data import InputSpec
from sitsformer.inference.sources import ArrayRasterSource


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on the shared 2-core machine this is several times faster than 2."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def slovenia(shared_data: Path):
    """``(source, class_index_map, class_names)``; class index -1 where there is no label."""
    source, codes, names = ArrayRasterSource.from_slovenia_npz(
        shared_data / "s2_slovenia_eopatch" / "s2_slovenia_eopatch.npz")
    lut = np.full(max(SLOVENIA_CODES) + 1, -1, np.int64)
    lut[SLOVENIA_CODES] = np.arange(len(SLOVENIA_CODES))
    return source, lut[codes], [names[c].replace("_", " ") for c in SLOVENIA_CODES]


@pytest.fixture(scope="session")
def slovenia_model(slovenia):
    """A pixel model trained for a few seconds on the left half (columns < 50) of the patch."""
    return train_slovenia_model(*slovenia)




@pytest.fixture(scope="session")
def slovenia_checkpoint(tmp_path_factory, shared_data, slovenia_model) -> Path:
    """Checkpoint of the Slovenia model; class names as the data layer's EOPatch reader names
    the codes 1, 2, 3, 4, 8 (so ``sitsformer evaluate`` on the raw EOPatch matches them)."""
    from sitsformer.data import read_eopatch

    names = read_eopatch(shared_data / EOPATCH).classes
    assert len(names) == 5
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "slovenia.pt", slovenia_model,
                            bands=["NDVI"], classes=names, time_axis="dates", scale=None)


@pytest.fixture(scope="session")
def slovenia_map(tmp_path_factory, slovenia, slovenia_model):
    """The class map of the whole Slovenia patch (``(H, W)`` uint8, 255 = nodata) and the
    :class:`PredictionResult`."""
    import rasterio

    from sitsformer.inference import predict_raster

    source, _, names = slovenia
    res = predict_raster(slovenia_model, source, tmp_path_factory.mktemp("map") / "slo.tif",
                         window=40, spec=InputSpec(classes=names, bands=["NDVI"],
                                                   time_axis="dates"), progress=False)
    with rasterio.open(res.class_map) as ds:
        assert ds.crs.to_epsg() == 32633 and ds.transform == source.transform
        return ds.read(1), res
