"""Tiny models trained once per session on real data, and checkpoints of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from sitsformer.data import InputSpec
from sitsformer.inference.sources import ArrayRasterSource
from sitsformer.models import create_sits_former, save_checkpoint

SLOVENIA_CODES = [1, 2, 3, 4, 8]  # LULC codes present in the patch (0 = no data)
SEN2R_ROI = "s2_sen2rts_roi/raw/inst/extdata/sen2r/sampleroi"


def tiny_config(img_size: int = 1, in_channels: int = 1, num_classes: int = 5) -> dict:
    return dict(img_size=img_size, patch_size=img_size, in_channels=in_channels,
                num_classes=num_classes, embed_dim=32, num_layers=1, num_heads=4,
                mlp_ratio=2.0, dropout=0.0, max_seq_len=72)


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


def train_slovenia_model(source, labels, names, steps: int = 80):
    torch.manual_seed(0)
    x = torch.from_numpy(source.x)  # (T, 1, H, W)
    pm = torch.from_numpy(source.pixel_mask)  # (T, H, W)
    cols = np.arange(labels.shape[1])[None, :].repeat(labels.shape[0], 0)
    train = (labels >= 0) & (cols < 50) & source.pixel_mask.any(0)
    r, c = np.nonzero(train)
    seq = x[:, :, r, c].permute(2, 0, 1)  # (N, T, C)
    mask = pm[:, r, c].T  # (N, T)
    d = source.dates
    doy = torch.from_numpy((d - d.astype("datetime64[Y]")).astype(np.int64) + 1)
    y = torch.from_numpy(labels[r, c])
    model = create_sits_former(tiny_config(num_classes=len(names)))
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    g = torch.Generator().manual_seed(0)
    weights = (1.0 / torch.bincount(y).float())[y]  # class-balanced sampling
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    model.train()
    for _ in range(steps):
        idx = torch.multinomial(weights, 128, replacement=True, generator=g)
        logits = model(seq[idx], mask[idx], doy=doy.expand(128, -1))
        loss = F.cross_entropy(logits, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    torch.set_num_threads(before)
    return model


def write_checkpoint(path: Path, model, **spec) -> Path:
    """A checkpoint of ``model`` whose input spec has the given fields."""
    return save_checkpoint(path, {
        "model_config": model.config.to_dict(),
        "model_state_dict": model.state_dict(),
        "epoch": 1, "global_step": 60,
        "input_spec": InputSpec(**spec).to_dict(),
    })


EOPATCH = "s2_slovenia_eopatch/raw/example_data/TestEOPatch"


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
