"""The one place that decides where blocks run."""

from __future__ import annotations

import dask
import numpy as np
import pytest

from sitsformer.maps import dask_cluster, threads_per_worker


def test_threads_do_not_oversubscribe():
    assert threads_per_worker(2, cores=16) == 8
    assert threads_per_worker(3, cores=16) == 5
    assert threads_per_worker(4, cores=2) == 1


def test_options_are_checked():
    with pytest.raises(ValueError, match="not both"), dask_cluster(2, "tcp://127.0.0.1:1"):
        pass
    with pytest.raises(ValueError, match=">= 0"), dask_cluster(-1):
        pass


def test_in_process_and_scheduler_give_every_block_once(scheduler):
    tasks = [dask.delayed(np.square)(i) for i in range(23)]
    for kw in ({}, {"scheduler": scheduler}):
        with dask_cluster(**kw, max_in_flight=3) as runner:
            got = dict(runner.iter_blocks(tasks, progress=False))
            assert got == {i: i * i for i in range(23)}
            assert runner.compute(dask.delayed(sum)([1, 2])) == (3,)
            assert ("scheduler" in runner.description) == bool(kw)
