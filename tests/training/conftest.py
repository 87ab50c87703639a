"""Fixtures for the training tests: tiny models and loaders on GENERATED demo data.

Helpers are reached through the ``tt`` fixture (the tests folder is not a package).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sitsformer.data import SampleDataset, make_demo_data, make_loader
from sitsformer.models import create_sits_former


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: deterministic sums and no oversubscription on a shared 2-core box."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def scaled(sample: dict) -> dict:
    sample["sequence"] = np.asarray(sample["sequence"], dtype=np.float32) / 10000.0
    return sample


@pytest.fixture(scope="session")
def demo_samples() -> list[dict]:
    return make_demo_data(n_samples=48, img_size=1, num_classes=4, min_dates=8, max_dates=12,
                          seed=1).samples


def tiny_model(dropout: float = 0.1, seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = dict(embed_dim=16, num_heads=2, num_layers=1, mlp_ratio=2.0, num_classes=4,
               dropout=dropout)
    cfg.update(kw)
    return create_sits_former("sitsformer_pixel", **cfg)


def loaders(samples: list[dict], batch_size: int = 8, seed: int = 0):
    ds = SampleDataset(samples, scaled)
    return make_loader(ds, batch_size, seed=seed), make_loader(ds, 16, train=False)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture
def tt() -> SimpleNamespace:
    """Helpers: ``tt.tiny_model(...)``, ``tt.loaders(samples, ...)``, ``tt.weights(model)``."""
    return SimpleNamespace(tiny_model=tiny_model, loaders=loaders, weights=weights, scaled=scaled)
