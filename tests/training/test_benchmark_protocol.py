"""The benchmark's protocol without training: the cross-validation folds partition the samples
(each tested exactly once per repeat), groups never straddle two folds, and the model list of
``--models`` is parsed as documented."""

from __future__ import annotations

import numpy as np
import pytest

from sitsformer.training.benchmark import (
    DEFAULT_MODELS,
    MODELS,
    ModelEntry,
    Protocol,
    cv_folds,
    parse_baselines,
    parse_models,
)


def _labels(n: int = 103, k: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, k, n)


@pytest.mark.parametrize("grouped", [False, True])
def test_folds_partition_the_samples_once_per_repeat(grouped):
    labels = _labels()
    groups = np.random.default_rng(1).integers(0, 30, len(labels)) if grouped else None
    folds = list(cv_folds(labels, groups, folds=5, repeats=2, seed=0))
    assert [(r, f) for r, f, _, _ in folds] == [(r, f) for r in range(2) for f in range(5)]
    for r in range(2):
        tests = [test for rr, _, _, test in folds if rr == r]
        counts = np.bincount(np.concatenate(tests), minlength=len(labels))
        assert (counts == 1).all()  # every sample tested exactly once in this repeat
    for _, _, train, test in folds:
        assert np.intersect1d(train, test).size == 0
        assert np.union1d(train, test).size == len(labels)
        if grouped:  # no group on both sides
            assert np.intersect1d(groups[train], groups[test]).size == 0
    # the two repeats differ, the same seed gives the same folds
    assert not all(np.array_equal(a[3], b[3]) for a, b in zip(folds[:5], folds[5:]))
    again = list(cv_folds(labels, groups, folds=5, repeats=2, seed=0))
    assert all(np.array_equal(a[3], b[3]) for a, b in zip(folds, again, strict=True))


def test_stratified_folds_keep_the_class_shares():
    labels = np.repeat(np.arange(4), 25)  # 25 per class, 5 folds: 5 per class and fold
    for _, _, _, test in cv_folds(labels, None, folds=5, repeats=1):
        assert np.bincount(labels[test]).tolist() == [5, 5, 5, 5]


def test_folds_refuse_too_few_groups_or_samples_per_class():
    labels = _labels(40)
    with pytest.raises(ValueError, match="expected at least 5 groups; found 3"):
        list(cv_folds(labels, np.arange(40) % 3, folds=5, repeats=1))
    with pytest.raises(ValueError, match="expected at least 5 samples per class; found 2"):
        list(cv_folds(np.array([0] * 20 + [1, 1]), None, folds=5, repeats=1))


def test_parse_models_and_baselines():
    assert parse_models(None) == [ModelEntry(n, MODELS[n]) for n in DEFAULT_MODELS]
    two = parse_models("sitsformer,small:model.embed_dim=32:model.num_layers=1")
    assert two == [ModelEntry("sitsformer", ()),
                   ModelEntry("small", ("model.embed_dim=32", "model.num_layers=1"))]
    assert parse_models("tempcnn,ltae") == [ModelEntry("tempcnn", ("model.variant=tempcnn",)),
                                            ModelEntry("ltae", ("model.variant=ltae",))]
    with pytest.raises(ValueError, match="unknown model 'svm'"):
        parse_models("sitsformer,svm")
    with pytest.raises(ValueError, match="expected NAME or NAME:KEY=VALUE"):
        parse_models("small:embed_dim")
    with pytest.raises(ValueError, match="distinct names"):
        parse_models("sitsformer,sitsformer")
    assert parse_models("") == [] and parse_models(" ") == []  # only the baselines
    assert parse_baselines(None) == ["random_forest", "lightgbm"]
    assert parse_baselines("") == [] and parse_baselines("lightgbm") == ["lightgbm"]
    with pytest.raises(ValueError, match="expected names among"):
        parse_baselines("svm")
    with pytest.raises(ValueError, match="expected auto, cv or fixed; found 'kfold'"):
        Protocol("kfold")


def test_own_data_is_split_by_its_groups_and_the_table_says_so(shared_data, tmp_path):
    """``--data`` (split ``auto``) on a source with polygon ids: grouped folds on a small set,
    the group split on a fixed one; the split line names what was used, and a given split
    that puts polygons on both sides (Victoria's upstream files) is said to."""
    from sitsformer.training.benchmark import BenchmarkSet, _set_runs, recipe_without_data

    _, recipe = recipe_without_data(None)
    path = shared_data / "s2_victoria_igarss2019/s2_victoria_igarss2019.npz"
    base = [f"data.source={path}"]
    own = BenchmarkSet("own", str(path))  # what `benchmark --data` makes
    dm, runs, info = _set_runs(own, recipe, base, Protocol(folds=3, repeats=1), tmp_path)
    assert info["protocol"] == "cv" and "grouped by 182 group ids" in info["split"]
    assert [r["unit"] for r in runs] == ["r0f0", "r0f1", "r0f2"]
    for r in runs:
        assert np.intersect1d(dm.groups[r["fit"]], dm.groups[r["test"]]).size == 0
    _, runs, info = _set_runs(own, recipe, base, Protocol("fixed", seeds=(0, 1)), tmp_path)
    assert info["split"].startswith("fixed: the 'group' split of 800 samples (data.seed 0, "
                                    "182 group ids: no group on both sides)")
    assert [(r["unit"], r["seed"]) for r in runs] == [("s0", 0), ("s1", 1)]
    # small, but its split is given: fixed; the upstream files share polygons
    up = BenchmarkSet("up", str(path), "upstream")
    _, _, info = _set_runs(up, recipe, base, Protocol(), tmp_path)
    assert info["protocol"] == "fixed" and "38 group(s) on both sides" in info["split"]
    # asked for stratified folds: said to ignore the groups
    strat = BenchmarkSet("strat", str(path), "stratified")
    _, _, info = _set_runs(strat, recipe, base, Protocol(folds=2, repeats=1), tmp_path)
    assert "stratified (RepeatedStratifiedKFold" in info["split"]
    assert "group ids are NOT used" in info["split"]
    # over the size threshold: fixed
    _, _, info = _set_runs(own, recipe, base, Protocol(max_samples=799), tmp_path)
    assert info["protocol"] == "fixed"


def test_skipped_baseline_is_reported(monkeypatch):
    """A baseline whose package is missing is a row of the table that says so."""
    import importlib.util

    from sitsformer.training import benchmark as bm

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "lightgbm" else real(name, *a))
    why = bm._baseline_missing("lightgbm")
    assert why == "skipped: lightgbm is not installed (pip install 'sitsformer[boosting]')"
    assert bm._baseline_missing("random_forest") is None
    correct = bm._pack(np.array([True, False, True, True]))
    rows = [{"set": "s", "method": m, "unit": f"r0f{f}", "protocol": "cv", "repeat": 0,
             "fold": f, "seed": 0, "n_train": 4, "n_test": 4, "oa": 0.75, "kappa": 0.5,
             "macro_f1": 0.7, "seconds": 1.0, "correct": correct}
            for f in (0, 1) for m in ("sitsformer", "random_forest")]
    info = {"s": {"split": "cv: test", "methods": ["sitsformer", "random_forest", "lightgbm"],
                  "baselines": ["random_forest", "lightgbm"], "skipped": {"lightgbm": why}}}
    summary = bm.summarize(rows, info)
    assert [(e["method"], e["status"]) for e in summary] == [
        ("sitsformer", "ok"), ("random_forest", "ok"), ("lightgbm", why)]
    vs = summary[0]["vs"]
    assert vs["lightgbm"] == {"runs": 0, "verdict": why}
    assert vs["random_forest"]["mean"] == 0 and vs["random_forest"]["mcnemar_p"] == 1.0
    md = bm._markdown(summary, info)
    assert f"| s | lightgbm | 0 | | {why} | | | |" in md
    assert f"| s | sitsformer | lightgbm | | | {why} | |" in md


def test_baseline_that_does_not_load_is_skipped(monkeypatch):
    """A LightGBM wheel without the system's libgomp.so.1 raises OSError on import: the
    baseline is reported as skipped instead of ending the benchmark."""
    import importlib

    from sitsformer.training import benchmark as bm

    real = importlib.import_module

    def fake(name, *a):
        if name == "lightgbm":
            raise OSError("libgomp.so.1: cannot open shared object file")
        return real(name, *a)

    monkeypatch.setattr(importlib, "import_module", fake)
    why = bm._baseline_missing("lightgbm")
    assert why.startswith("skipped: lightgbm does not load (OSError: libgomp.so.1")


def _row(set_name, method, unit, oa, correct, kind):
    from sitsformer.training import benchmark as bm

    return {"set": set_name, "method": method, "unit": unit, "protocol": "cv", "repeat": 0,
            "fold": int(unit[-1]), "seed": 0, "n_train": 8, "n_test": 4, "oa": oa,
            "kappa": 0.5, "macro_f1": 0.5, "seconds": 1.0, "kind": kind,
            "correct": bm._pack(np.array(correct, bool)), "fingerprint": method}


def test_merge_joins_parts_run_apart(tmp_path):
    """bench_accuracy_all.sh runs each model of a set in a process of its own: the merged
    table is the one a single benchmark would have made, paired over the folds every side
    finished; a part killed before writing its table still gives its rows and is named."""
    import json

    from sitsformer.training import benchmark as bm

    split = "cv: 1 x 3-fold"
    parts = {"sitsformer": (["sitsformer"], [], 3), "tempcnn": (["tempcnn"], [], 2),
             "baselines": (["random_forest"], ["random_forest"], 3)}
    for name, (methods, baselines, folds) in parts.items():
        d = tmp_path / name
        d.mkdir()
        kind = "baseline" if baselines else "model"
        oa = {"sitsformer": 1.0, "tempcnn": 0.75, "random_forest": 0.5}[methods[0]]
        correct = [True] * int(4 * oa) + [False] * (4 - int(4 * oa))
        for f in range(folds):
            bm._append_row(d / bm.ROWS_FILE, _row("s", methods[0], f"r0f{f}", oa, correct,
                                                  kind))
        if name != "tempcnn":  # tempcnn was killed before it wrote benchmark.json
            (d / "benchmark.json").write_text(json.dumps({
                "complete": True, "models": [], "baselines": baselines,
                "splits": {"s": {"protocol": "cv", "split": split, "methods": methods,
                                 "baselines": baselines, "skipped": {}}}}))
    res = bm.merge_benchmarks([tmp_path / n for n in parts], tmp_path / "merged")
    assert not res["complete"]
    by = {e["method"]: e for e in res["summary"]}
    assert list(by) == ["sitsformer", "tempcnn", "random_forest"]
    assert by["random_forest"]["kind"] == "baseline" and by["tempcnn"]["kind"] == "model"
    assert by["sitsformer"]["runs"] == 3 and by["tempcnn"]["runs"] == 2
    assert by["sitsformer"]["vs"]["random_forest"]["mean"] == pytest.approx(0.5)
    assert by["sitsformer"]["vs"]["tempcnn"]["runs"] == 2  # the folds both finished
    assert by["tempcnn"]["vs"]["random_forest"]["mean"] == pytest.approx(0.25)
    md = (tmp_path / "merged" / "benchmark.md").read_text()
    assert "tempcnn: no table written (killed?), 2 rows" in md and f"- s: {split}" in md


def test_units_run_only_the_matching_runs(shared_data, tmp_path, monkeypatch):
    """``--units`` keeps the runs whose unit matches a pattern (one process per seed or per
    repeat); a pattern matching none is an error that names the split."""
    from sitsformer.training import benchmark as bm

    path = shared_data / "landsat8_rondonia/landsat8_rondonia.npz"
    sets = [bm.BenchmarkSet("r", str(path))]
    done = []
    monkeypatch.setattr(bm, "baseline_predict",
                        lambda method, x, labels, fit, test, *a, **k: (
                            done.append(method), labels[test])[1])
    res = bm.run_benchmark(sets, models="", baselines="random_forest",
                           protocol=bm.Protocol(folds=2, repeats=2), output=tmp_path / "a",
                           units="r1f*", progress=False)
    assert [r["unit"] for r in res["rows"]] == ["r1f0", "r1f1"] and len(done) == 2
    with pytest.raises(ValueError, match="--units s3: no run of set 'r' matches"):
        bm.run_benchmark(sets, models="", baselines="random_forest",
                         protocol=bm.Protocol(folds=2, repeats=1), output=tmp_path / "b",
                         units="s3", progress=False)


def test_merge_accepts_parts_of_one_fixed_split_with_other_seeds(tmp_path):
    import json

    from sitsformer.training import benchmark as bm

    line = "fixed: the 'stratified' split of 10 samples (data.seed 0), 4 test samples"
    for seed in (0, 1):
        d = tmp_path / f"s{seed}"
        d.mkdir()
        row = {**_row("s", "sitsformer", f"s{seed}", 0.5, [True, True, False, False],
                      "model"), "protocol": "fixed", "repeat": None, "fold": None,
               "seed": seed}
        bm._append_row(d / bm.ROWS_FILE, row)
        (d / "benchmark.json").write_text(json.dumps({
            "complete": True, "splits": {"s": {"protocol": "fixed", "seeds": [seed],
                                               "split": f"{line}, training seeds {seed}",
                                               "methods": ["sitsformer"], "baselines": [],
                                               "skipped": {}}}}))
    res = bm.merge_benchmarks([tmp_path / "s0", tmp_path / "s1"], tmp_path / "m")
    assert res["splits"]["s"]["split"] == f"{line}, training seeds 0, 1"
    assert res["summary"][0]["runs"] == 2 and res["complete"]
