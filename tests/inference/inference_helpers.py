"""Helpers of the inference tests (a module name of its own: every test folder's conftest.py
is imported as ``conftest``, so helpers imported from there can resolve to another folder's)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from sitsformer.data import InputSpec
from sitsformer.models import create_sits_former, save_checkpoint

SLOVENIA_CODES = [1, 2, 3, 4, 8]  # LULC codes present in the patch (0 = no data)
SEN2R_ROI = "s2_sen2rts_roi/raw/inst/extdata/sen2r/sampleroi"


def tiny_config(img_size: int = 1, in_channels: int = 1, num_classes: int = 5) -> dict:
    return dict(img_size=img_size, patch_size=img_size, in_channels=in_channels,
                num_classes=num_classes, embed_dim=32, num_layers=1, num_heads=4,
                mlp_ratio=2.0, dropout=0.0, max_seq_len=72)


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


def worker_malloc_state():
    """(MALLOC_TRIM_THRESHOLD_, tuned?, tuned? again) in the process that runs it (a worker)."""
    from sitsformer.parallel import tune_worker_malloc

    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), tune_worker_malloc(), tune_worker_malloc()


def devices_of_worker():
    """The block device this worker picks for cuda with 1, 2 and 4 GPUs, and for cpu."""
    from sitsformer.inference.blocks import block_device

    return [str(block_device("cuda", gpus=g)) for g in (1, 2, 4)] + [str(block_device("cpu"))]
