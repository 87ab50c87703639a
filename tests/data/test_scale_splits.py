"""Scale inferred from the values (explicit wins), robust statistics, out-of-range masking,
and the splits (file, k-fold, spatial) with the split ids a run records."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from sitsformer.data import DataError, DataModule, DataWarning, InputSpec, compute_normalization
from sitsformer.data.transforms import Scale
from sitsformer.training.config import ConfigError, load_config

N, T = 60, 5
BANDS = ["B4", "B8"]


def _table(path, values, lon=None, extra=None):
    """A named-column table ``label,id,lon,lat,<band>_<date>...`` from values (N, T, C)."""
    n, t, c = values.shape
    dates = [f"2020{m:02d}01" for m in range(1, t + 1)]
    cols = ["label", "id", "lon", "lat"] + [f"{b}_{d}" for d in dates for b in BANDS[:c]]
    cols += list(extra or {})
    lon = np.arange(n) % 10 if lon is None else lon
    lines = [",".join(cols)]
    for i in range(n):
        row = [i % 3, f"s{i}", float(lon[i]), float(i // 10)]
        row += [repr(float(v)) for v in values[i].reshape(-1)]
        row += [extra[k][i] for k in (extra or {})]
        lines.append(",".join(str(v) for v in row))
    path.write_text("\n".join(lines) + "\n")
    return path


def _values(kind, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "int10000":
        return rng.integers(100, 6000, (N, T, 2)).astype(float)
    if kind == "float01":
        return rng.uniform(0.02, 0.6, (N, T, 2))
    return rng.uniform(-0.4, 0.9, (N, T, 2))  # an index


@pytest.mark.parametrize("kind,expected,implies", [
    ("int10000", 10000.0, "integer reflectance"), ("float01", 1.0, "float reflectance 0..1"),
    ("index", 1.0, "an index in -1..1")])
def test_scale_is_inferred_from_the_values_and_recorded(tmp_path, kind, expected, implies):
    src = _table(tmp_path / "t.csv", _values(kind))
    dm = DataModule(str(src), split="random", val_fraction=0.0).setup()
    assert dm.spec.scale == expected and implies in dm.spec.scale_source
    assert dm.run_info()["scale"] == expected
    # the model sees value / scale: standardised inputs are the same whatever the storage
    sample = dm.datasets["train"][0]["sequence"]
    assert np.abs(np.asarray(sample)).max() < 10
    given = DataModule(str(src), split="random", val_fraction=0.0, scale=500.0).setup()
    assert given.spec.scale == 500.0 and given.spec.scale_source == "given (data.scale)"


def test_bands_implying_different_scales_are_refused(tmp_path):
    v = _values("int10000")
    v[:, :, 1] = _values("index")[:, :, 1]
    src = _table(tmp_path / "t.csv", v)
    with pytest.raises(DataError, match=r"B8 imply scale 1.*B4 imply scale 10000|B4 imply scale "
                       r"10000.*B8 imply scale 1"):
        DataModule(str(src), split="random").setup()
    assert DataModule(str(src), split="random", scale=1.0).setup().spec.scale == 1.0


def test_one_corrupt_value_does_not_move_other_samples(tmp_path):
    clean = _values("int10000")
    corrupt, missing = clean.copy(), clean.copy()
    corrupt[0, 2, 1] = 1e30
    missing[0, 2, :] = np.nan  # the same observation, missing
    dms = {}
    for name, v in (("corrupt", corrupt), ("missing", missing), ("clean", clean)):
        src = _table(tmp_path / f"{name}.csv", v)
        dms[name] = DataModule(str(src), split="random", val_fraction=0.0).setup()
    c, m = dms["corrupt"], dms["missing"]
    assert c.spec.scale == 10000.0
    assert c.meta["exclusions"]["out_of_range_observations"]["count"] == 1
    assert c.meta["exclusions"]["out_of_range_observations"]["examples"] == ["s0"]
    for split in ("train", "test"):
        for i in range(len(c.datasets[split])):
            a, b = c.datasets[split][i], m.datasets[split][i]
            if int(a["index"]) == 0:  # the corrupt observation is masked, its value zeroed
                assert not a["mask"][2] and np.isfinite(a["sequence"]).all()
                continue
            np.testing.assert_allclose(a["sequence"], b["sequence"], atol=1e-6, rtol=0)
    # and the statistics stay those of the clean data (within a few percent)
    np.testing.assert_allclose(c.spec.std, dms["clean"].spec.std, rtol=0.05)
    # without the valid range, the same value flattens the band (what the fix prevents)
    idx = c.splits["train"]
    _, std = compute_normalization(c.samples, idx, transform=Scale(1e-4))
    if 0 in idx:
        assert std[1] > 1e20


def test_spec_reads_older_dicts_and_compares_medians():
    old = {"bands": ["B4", "B8"], "classes": ["a"], "scale": 10000.0, "mean": [0.1, 0.3],
           "std": [0.05, 0.1], "time_axis": "dates", "max_t": 10, "sample_size": 1,
           "class_values": None}
    spec = InputSpec.from_dict(old)
    assert spec.median is None and spec.far_medians([5.0, 5.0]) == []
    spec = InputSpec.from_dict({**old, "median": [0.1, 0.3]})
    assert spec.far_medians([0.12, 0.25]) == []
    assert spec.far_medians([0.12, 3000.0]) == [("B8", 0.3, 3000.0)]


def test_split_file_kfold_and_spatial(tmp_path):
    src = _table(tmp_path / "t.csv", _values("int10000"))
    # a split file: sample id -> train/val/test
    side = ["test" if i % 4 == 0 else "val" if i % 4 == 1 else "train" for i in range(N)]
    (tmp_path / "split.csv").write_text("id,split\n" + "\n".join(
        f"s{i},{s}" for i, s in enumerate(side)) + "\n")
    dm = DataModule(str(src), split="file", split_file=str(tmp_path / "split.csv")).read()
    for name in ("train", "val", "test"):
        assert dm.splits[name].tolist() == [i for i in range(N) if side[i] == name]
    (tmp_path / "bad.json").write_text(json.dumps({f"s{i}": "train" for i in range(N - 1)}))
    with pytest.raises(DataError, match=r"1 sample id\(s\) of the data are not in the file "
                       r"\(e.g. \['s59'\]\)"):
        DataModule(str(src), split="file", split_file=str(tmp_path / "bad.json")).read()
    # k-fold: the test parts of the folds are disjoint and cover every sample once
    tests = [DataModule(str(src), split="kfold", folds=4, fold=k).read().splits["test"]
             for k in range(4)]
    assert sorted(np.concatenate(tests).tolist()) == list(range(N))
    dm = DataModule(str(src), split="kfold", folds=4, fold=1).read()
    assert not set(dm.splits["train"]) & set(dm.splits["test"])
    # spatial blocks from lon/lat: no block on two sides
    dm = DataModule(str(src), split="spatial", block_size=2.0, val_fraction=0.0).read()
    block = lambda i: (dm.coords[i] // 2.0).tolist()  # noqa: E731
    train_blocks = {tuple(block(i)) for i in dm.splits["train"]}
    test_blocks = {tuple(block(i)) for i in dm.splits["test"]}
    assert train_blocks and test_blocks and not train_blocks & test_blocks
    with pytest.raises(ValueError, match="needs data.block_size"):
        DataModule(str(src), split="spatial").read()
    # the run records which samples were on each side
    info = dm.run_info()
    assert info["split_ids"]["test"] == [f"s{i}" for i in dm.splits["test"]]
    assert info["split_settings"]["block_size"] == 2.0 and len(info["split_hashes"]) == 3


def test_config_error_lists_every_split_and_scale_values():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["data.split=polygon"])
    from sitsformer.data import SPLITS

    for name in SPLITS:
        assert repr(name) in str(err.value)
    assert "found 'polygon'" in str(err.value)
    with pytest.raises(ConfigError, match="'data.scale': expected 'auto', null or a positive"):
        load_config(None, ["data.scale=guess"])
    assert load_config(None, []).data.scale == "auto"
    assert load_config(None, ["data.scale=1"]).data.scale == 1.0


def test_docs_list_every_split():
    from pathlib import Path

    from sitsformer.data import SPLITS

    text = (Path(__file__).parents[2] / "docs" / "data_preparation.md").read_text()
    section = text.split("## Splits", 1)[1].split("\n## ", 1)[0]
    for name in SPLITS:
        assert f"| `{name}` |" in section, name



def test_a_val_fraction_the_split_cannot_meet_is_said():
    """48 demo samples in a handful of fields: whole fields leave nothing for a 25 % val carve
    by group; the stratified split meets it."""
    with pytest.warns(DataWarning, match=r"data.val_fraction=0.25 but the 'group' split of 48 "
                                         r"samples left no validation sample \(\d+ groups"):
        dm = DataModule("demo", split="group", val_fraction=0.25, demo_samples=48,
                        demo_classes=4).setup()
    assert len(dm.splits["val"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        dm = DataModule("demo", split="stratified", val_fraction=0.25, demo_samples=48,
                        demo_classes=4).setup()
    assert len(dm.splits["val"]) > 0
