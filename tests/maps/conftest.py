"""GENERATED probability rasters over known regions (fixed seeds) for the map-step tests."""

from __future__ import annotations

import pytest
from maps_helpers import (  # noqa: F401  (re-exported for the tests)
    CRS,
    TRANSFORM,
    probabilities,
    read,
    regions,
    write_raster,
)


@pytest.fixture
def noisy(tmp_path):
    """(probability raster path, truth, probabilities) with 15 % salt-and-pepper errors and a
    3x3 nodata corner."""
    truth = regions()
    p = probabilities(truth, noise=0.15, seed=1)
    p[:, :3, :3] = -1.0
    return write_raster(tmp_path / "map_probabilities.tif", p, -1.0), truth, p


@pytest.fixture(scope="module")
def scheduler():
    """A real dask.distributed scheduler with 2 worker processes on 127.0.0.1."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=40) as cluster:
        yield cluster.scheduler_address
