"""The benchmark scripts' own timing helpers (the benchmarks themselves are scripts, not tests)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paired_times_alternates_and_reverses_the_order():
    bench = _load("bench_vs_original")
    calls: list[str] = []
    times = bench.paired_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                               pairs=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert [len(v) for v in times.values()] == [3, 3]


def test_pair_ratio_is_the_median_of_per_round_ratios():
    bench = _load("bench_vs_original")
    assert bench.pair_ratio([2.0, 4.0, 6.0], [1.0, 1.0, 2.0]) == 3.0
    assert bench.throughput([0.5, 2.0, 1.0], batch=64) == 64.0
    with pytest.raises(ValueError, match="equally long"):
        bench.pair_ratio([1.0], [1.0, 2.0])


def test_missing_original_code_is_a_clear_error(tmp_path):
    bench = _load("bench_vs_original")
    with pytest.raises(SystemExit, match="model/bert.py"):
        bench.load_original(tmp_path, num_classes=8)


def test_gpu_check_python_steps_run_tiny_on_cpu(tmp_path, capsys, one_thread):
    # benchmarks/gpu_check.sh has only one GPU run in a session's budget: its Python steps
    # must not fail on an import or a typo. (torchrun runs `sitsformer train` under torchrun
    # in a subprocess: left to `bash benchmarks/gpu_check.sh --cpu-smoke`.)
    check = _load("gpu_check")
    steps = ["info", "sync", "throughput", "fp16", "predict-compare", "predict-speed"]
    assert check.main([*steps, "--cpu-smoke", "--work", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for step in steps:
        assert f"\n{step}: " in "\n" + out, step
    assert "pixels/s" in out and "projected" in out and "samples/s" in out
