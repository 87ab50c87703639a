"""Folders in the original SITS-Former layout (one .npz per sample: ts, doy, class_label),
written here the way its data preparation writes them, read back exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sitsformer.cli import main
from sitsformer.data import DataError, collate, open_source
from sitsformer.data.original_npz import OriginalNpzFolder
from sitsformer.data.sources import detect_source


def write_folder(folder, n, seed, labelled, label_shape=(1,), lengths=None):
    """``n`` files as the original reads them: ts (T, 10, 5, 5) reflectance x 10000 of varying
    T, doy (T,) increasing, class_label (label_shape) when labelled. Returns what was written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    written = {}
    for i in range(n):
        t = int(lengths[i]) if lengths is not None else int(rng.integers(3, 12))
        arrays = {"ts": rng.integers(0, 9000, (t, 10, 5, 5)).astype(np.int16),
                  "doy": np.sort(rng.choice(np.arange(1, 367), t, replace=False)).astype(np.int64)}
        if labelled:
            arrays["class_label"] = np.full(label_shape, i % 4, np.int64)
        name = f"{i:04d}.npz"
        np.savez(folder / name, **arrays)
        written[name] = arrays
    return written


def test_pretraining_folder_reads_back_exactly(tmp_path):
    written = write_folder(tmp_path / "unlabelled", 7, 0, labelled=False)
    assert detect_source(tmp_path / "unlabelled") == "original_npz"
    ds = open_source(tmp_path / "unlabelled")
    assert isinstance(ds, OriginalNpzFolder) and len(ds) == 7 and ds.labels is None
    assert ds.meta["scale"] == 10000 and ds.meta["time_axis"] == "dates" and ds.split is None
    assert ds.bands == [f"band{i}" for i in range(10)]
    for i, name in enumerate(sorted(written)):
        s = ds[i]
        np.testing.assert_array_equal(s["sequence"], written[name]["ts"].astype(np.float32))
        np.testing.assert_array_equal(s["doy"], written[name]["doy"])
        assert s["mask"].all() and s["sequence"].dtype == np.float32 and "label" not in s


@pytest.mark.parametrize("label_shape", [(), (1,)])
def test_finetuning_layout_splits_and_labels(tmp_path, label_shape):
    parts = {"TRAIN": 6, "VALIDATE": 3, "TEST": 4}
    written = {}
    for k, (name, n) in enumerate(parts.items()):
        files = write_folder(tmp_path / "ft" / name, n, k, True, label_shape)
        written.update({f"{name}/{f}": a for f, a in files.items()})
    ds = open_source(tmp_path / "ft", num_classes=15)
    assert len(ds) == 13 and ds.classes == [str(i) for i in range(15)]
    assert list(ds.split) == ["train"] * 6 + ["val"] * 3 + ["test"] * 4
    for i, key in enumerate(sorted(written, key=lambda k: (list(parts).index(k.split("/")[0]),
                                                            k))):
        s = ds[i]
        np.testing.assert_array_equal(s["sequence"], written[key]["ts"].astype(np.float32))
        np.testing.assert_array_equal(s["doy"], written[key]["doy"])
        assert int(s["label"]) == int(written[key]["class_label"].reshape(-1)[0])


def test_batches_are_the_originals_layout(tmp_path):
    """The original pads at the end with zero patches, doy 0 and bert_mask 0; collate too."""
    written = write_folder(tmp_path / "u", 3, 1, labelled=False, lengths=[4, 9, 2])
    ds = open_source(tmp_path / "u")
    batch = collate([ds[i] for i in range(3)])
    for i, name in enumerate(sorted(written)):
        ts, doy = written[name]["ts"], written[name]["doy"]
        t = len(doy)
        padded = np.pad(ts / 10000.0, ((0, 9 - t), (0, 0), (0, 0), (0, 0)))  # as its loader
        got = batch["sequence"][i].double() / 10000.0
        np.testing.assert_allclose(got.numpy(), padded, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(batch["doy"][i].numpy(), np.pad(doy, (0, 9 - t)))
        assert batch["mask"][i].tolist() == [True] * t + [False] * (9 - t)


def test_padding_rows_in_a_file_are_invalid(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    ts = np.ones((5, 10, 5, 5), np.int16)
    np.savez(folder / "a.npz", ts=ts, doy=np.array([3, 40, 90, 0, 0]))
    s = open_source(folder)[0]
    assert s["mask"].tolist() == [True, True, True, False, False]


def test_given_mean_and_std_are_applied_like_the_original(tmp_path):
    written = write_folder(tmp_path / "m", 2, 2, labelled=False)
    mean, std = np.arange(10) * 100.0, np.arange(1, 11) * 50.0
    ds = open_source(tmp_path / "m", mean=mean, std=std)
    assert ds.meta["scale"] is None
    ts = written["0000.npz"]["ts"]
    shape = ts.shape  # the original's FinetuneDataset normalisation, verbatim in numpy
    ref = ((ts.reshape(shape[0], shape[1], -1) - mean[:, None]) / std[:, None]).reshape(shape)
    np.testing.assert_allclose(ds[0]["sequence"], ref.astype(np.float32), rtol=1e-6)


def test_errors_name_the_file(tmp_path):
    folder = tmp_path / "bad"
    write_folder(folder, 2, 3, labelled=True)
    np.savez(folder / "0005.npz", ts=np.zeros((3, 10, 5, 5)), doy=np.arange(1, 4))
    with pytest.raises(DataError, match=r"0005\.npz.*class_label"):
        OriginalNpzFolder(folder, labelled=True)
    ds = OriginalNpzFolder(folder)  # unlabelled: the file is read on access
    (folder / "0001.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"0001\.npz"):
        ds[1]
    np.savez(folder / "0000.npz", ts=np.zeros((3, 10, 4, 4)), doy=np.arange(1, 4))
    with pytest.raises(DataError, match=r"0000\.npz.*'ts' must be"):
        ds[0]


def test_data_inspect_describes_it(tmp_path, capsys):
    for k, name in enumerate(("TRAIN", "VALIDATE", "TEST")):
        write_folder(tmp_path / "ft" / name, 3, k, True)
    assert main(["data", "inspect", str(tmp_path / "ft"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "original SITS-Former" in info["format"]
    assert "fine-tuning (TRAIN 3, VALIDATE 3, TEST 3 files)" in info["format"]
    assert (info["samples"], info["C"], info["H"]) == (9, 10, 5)
    assert info["scale"]["given"] == 10000 and info["date_range"].startswith("day of year")
