"""Zarr sample store: round trips from several sources, metadata, many DataLoader workers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset

from sitsformer.data import (DataError, DemoDataset, SampleStore, build_store, collate,
                             group_split, open_source)


def _same(a, b):
    assert set(a) == set(b), (set(a), set(b))
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


def test_demo_round_trip_variable_length(tmp_path):
    demo = DemoDataset(n_samples=50, img_size=3, min_dates=5, max_dates=12, seed=2)
    store = build_store(demo, tmp_path / "demo.zarr", chunk_size=16, progress=False)
    assert isinstance(open_source(tmp_path / "demo.zarr"), SampleStore)
    assert len(store) == 50 and store.classes == demo.classes and store.bands == demo.bands
    assert store.attrs["generated"] is True
    for i in (0, 17, 49):
        _same(store[i], demo[i])
    batch = store.__getitems__([3, 1, 3])
    _same(batch[0], demo[3])
    _same(batch[1], demo[1])
    with pytest.raises(DataError, match="already exists"):
        build_store(demo, tmp_path / "demo.zarr", progress=False)


def test_store_carries_geo_metadata_and_train_statistics(tmp_path, shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        roi = open_source(shared_data / "s2_sen2rts_roi/raw/inst/extdata/sen2r/sampleroi/NDVI",
                          cloud_folder=shared_data / "s2_sen2rts_roi/raw/inst/extdata/sen2r/"
                          "sampleroi/SCL", scale=10000)
    train = np.arange(0, len(roi), 2)
    store = build_store(roi, tmp_path / "roi.zarr", train_indices=train, progress=False)
    assert store.meta["crs"] == "EPSG:32632"
    assert store.meta["transform"] == [10.0, 0.0, 734880.0, 0.0, -10.0, 4973170.0]
    assert store.meta["date_range"] == ["2020-01-04", "2020-10-30"]
    np.testing.assert_array_equal(store.coords, roi.coords)
    vals = np.concatenate([roi[i]["sequence"][roi[i]["pixel_mask"][:, None] &
                                              roi[i]["mask"][:, None, None, None]]
                           for i in train])
    np.testing.assert_allclose(store.mean, [vals.mean()], rtol=1e-5)
    np.testing.assert_allclose(store.std, [vals.std()], rtol=1e-4)
    assert store.attrs["stats_on"] == f"{len(train)} training samples"
    _same(store[7], roi[7])


def test_store_with_two_workers_and_subset(tmp_path):
    demo = DemoDataset(n_samples=64, seed=5)
    store = build_store(demo, tmp_path / "s.zarr", chunk_size=8, progress=False)
    tr, _ = group_split(store, 0.25, seed=0)
    loader = DataLoader(Subset(store, tr), batch_size=16, num_workers=2, collate_fn=collate)
    seen = torch.cat([b["index"] for b in loader])
    assert sorted(seen.tolist()) == sorted(tr.tolist())
    ref = collate([demo[int(i)] for i in tr[:16]])
    first = next(iter(loader))
    for k in ref:
        assert torch.equal(first[k], ref[k]), k


def test_chunk_batch_sampler_covers_split_and_reads_few_chunks(tmp_path):
    from sitsformer.data import ChunkBatchSampler

    store = build_store(DemoDataset(n_samples=100, seed=1), tmp_path / "c.zarr", chunk_size=10,
                        progress=False)
    idx = np.arange(3, 97)
    sampler = ChunkBatchSampler(store, 16, indices=idx, chunks_per_group=2, seed=4)
    assert sampler.chunk_size == 10 and len(sampler) == 6
    batches = list(sampler)
    flat = np.concatenate(batches)
    np.testing.assert_array_equal(np.sort(flat), idx)  # every index exactly once
    assert max(len(set(np.asarray(b) // 10)) for b in batches) <= 4  # 2 * chunks_per_group
    assert [list(b) for b in ChunkBatchSampler(store, 16, indices=idx, chunks_per_group=2,
                                               seed=4)] == batches
    sampler.set_epoch(1)
    assert list(sampler) != batches
    loader = DataLoader(store, batch_sampler=sampler, collate_fn=collate)
    assert sorted(torch.cat([b["index"] for b in loader]).tolist()) == idx.tolist()
