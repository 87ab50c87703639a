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


class _PerSample:
    """A store seen sample by sample (no ``iter_chunks``): the reference path."""

    def __init__(self, store):
        self.store = store
        self.raw_sample, self.__getitem__ = store.raw_sample, store.__getitem__

    def __len__(self):
        return len(self.store)

    def __getitem__(self, i):
        return self.store[i]


def _demo_store(tmp_path, n=120, chunk_size=16, seed=2):
    demo = DemoDataset(n_samples=n, img_size=3, min_dates=5, max_dates=12, seed=seed)
    return demo, build_store(demo, tmp_path / "d.zarr", chunk_size=chunk_size, progress=False)


def test_statistics_and_scan_from_chunks_equal_the_per_sample_path(tmp_path):
    import zarr

    from sitsformer.data import DataModule
    from sitsformer.data.transforms import Scale, collect_values, compute_normalization

    _, store = _demo_store(tmp_path)
    g = zarr.open_group(str(tmp_path / "d.zarr"), mode="r+")
    g["sequence"][5, 0, 1, 0, 0] = 1e9  # out-of-range observations: counted and left out
    g["sequence"][77, 2, 0, 1, 1] = -5e8
    store = SampleStore(tmp_path / "d.zarr")
    idx = np.arange(3, 110, 2)[::-1]  # unsorted, as a split may be
    ref = _PerSample(store)
    np.testing.assert_allclose(np.sort(collect_values(store, idx), 0),
                               np.sort(collect_values(ref, idx), 0))
    for kw in ({}, {"transform": Scale(1e-4), "valid_range": (0.0, 1.5)}):
        for a, b in zip(compute_normalization(store, idx, **kw),
                        compute_normalization(ref, idx, **kw)):
            np.testing.assert_allclose(a, b, rtol=1e-10)
    fast = DataModule(source=str(tmp_path / "d.zarr"), split="random").read()
    slow = DataModule(source=str(tmp_path / "d.zarr"), split="random").read()
    slow.samples = _PerSample(slow.samples)
    fast.prepare(), slow.prepare()
    for k in ("scale", "valid_range", "median", "max_t"):
        assert getattr(fast.spec, k) == getattr(slow.spec, k), k
    np.testing.assert_allclose(fast.spec.mean, slow.spec.mean, rtol=1e-6)
    np.testing.assert_allclose(fast.spec.std, slow.spec.std, rtol=1e-6)
    assert fast.meta["exclusions"] == slow.meta["exclusions"]
    assert fast.meta["exclusions"]["out_of_range_observations"]["count"] == 2
    # the run's training fingerprints, read chunk by chunk, are those of sample by sample
    from sitsformer.data.module import content_fingerprints

    assert (content_fingerprints(store, idx, fast.spec)
            == content_fingerprints(ref, idx, fast.spec))


def _epoch(loader):
    out = {}
    for b in loader:
        for j, i in enumerate(b["index"].tolist()):
            assert i not in out, f"sample {i} twice in an epoch"
            valid = b["mask"][j].bool()
            out[i] = (b["label"][j].item(), b["sequence"][j][valid].numpy().round(5).tobytes())
    return out


def test_store_loader_reads_chunks_and_equals_the_in_memory_epoch(tmp_path):
    from sitsformer.data import ChunkBatchSampler, InputSpec, PreparedDataset, make_loader

    demo, store = _demo_store(tmp_path, n=100, chunk_size=8)
    spec = InputSpec(bands=store.bands, classes=store.classes, scale=10000.0,
                     mean=[0.1] * 10, std=[0.2] * 10, time_axis="dates")
    idx = np.arange(2, 97)
    from_store = make_loader(PreparedDataset(store, idx, spec), 16, seed=3)
    from_memory = make_loader(PreparedDataset(demo, idx, spec), 16, seed=3)
    assert isinstance(from_store.batch_sampler, ChunkBatchSampler)
    a, b = _epoch(from_store), _epoch(from_memory)
    assert sorted(a) == idx.tolist() and a == b  # the same samples, the same values
    order = [bt["index"].tolist() for bt in from_store]
    assert max(len({i // 8 for i in bt}) for bt in order) <= 8  # 2 * chunks_per_group
    # a fixed seed gives the same batches, in workers too; another epoch another order
    again = make_loader(PreparedDataset(store, idx, spec), 16, seed=3, num_workers=2)
    assert [bt["index"].tolist() for bt in again] == order
    again.batch_sampler.set_epoch(1)
    assert [bt["index"].tolist() for bt in again] != order
    ev = make_loader(PreparedDataset(store, idx, spec), 32, train=False)
    assert [i for bt in ev for i in bt["index"].tolist()] == idx.tolist()


def test_chunk_sampler_gives_each_rank_its_own_chunks(tmp_path):
    from sitsformer.data import ChunkBatchSampler

    idx = np.arange(0, 1001)
    parts = []
    for rank in range(3):
        s = ChunkBatchSampler(2000, 32, indices=idx, chunk_size=50, seed=1, num_replicas=3,
                              rank=rank)
        s.set_epoch(4)
        parts.append(np.concatenate(list(s)))
        assert len(s) == len(list(s)) == -(-333 // 32)
    flat = np.concatenate(parts)
    assert len(flat) == len(set(flat.tolist())) == 999  # 1001 // 3 each, none twice
    shared = set.intersection(*[set((p // 50).tolist()) for p in parts])
    chunks = [set((p // 50).tolist()) for p in parts]
    # 21 chunks; only the window (4 chunks) at each of the 2 cuts is shared by two ranks
    assert not shared and sum(len(c) for c in chunks) <= 21 + 2 * 4
    ev = [np.concatenate(list(ChunkBatchSampler(2000, 32, indices=idx, chunk_size=50,
                                                shuffle=False, even=False, num_replicas=3,
                                                rank=r))) for r in range(3)]
    np.testing.assert_array_equal(np.concatenate(ev), idx)  # evaluation: every sample once


def test_damaged_chunk_names_the_store_and_the_chunk(tmp_path):
    from sitsformer.data import InputSpec, PreparedDataset, make_loader

    _, store = _demo_store(tmp_path, n=64, chunk_size=16)
    files = sorted((tmp_path / "d.zarr" / "sequence" / "c").glob("2/**/*"))
    chunk = [f for f in files if f.is_file()][0]
    chunk.write_bytes(chunk.read_bytes()[:20])  # truncated
    spec = InputSpec(bands=store.bands, classes=store.classes, time_axis="dates")
    loader = make_loader(PreparedDataset(SampleStore(tmp_path / "d.zarr"), np.arange(64), spec),
                         16, train=False)
    with pytest.raises(DataError, match=r"d\.zarr: array 'sequence', chunk\(s\) \[2\]"):
        list(loader)
