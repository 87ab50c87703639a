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


@pytest.mark.slow
def test_bench_pretrain_slovenia_smoke_without_gis_and_resumes(tmp_path, shared_data):
    # the lead runs `bench_pretrain.py --set slovenia` on a bare GPU machine: none of the GIS
    # or cluster libraries may be needed (the module blocker of test_architecture), every
    # step runs (split, both pre-trainings, rows, reconstruction), and a rerun with the same
    # --out skips the finished rows
    import json
    import subprocess
    import sys

    from test_architecture import BLOCKER

    out = tmp_path / "bench"
    code = BLOCKER + f"""
import runpy
sys.argv = ["bench_pretrain.py", "--set", "slovenia", "--cpu-smoke", "--fractions", "0.05",
            "--out", {str(out)!r}, "--data-root", {str(shared_data)!r}]
try:
    runpy.run_path({str(BENCH / "bench_pretrain.py")!r}, run_name="__main__")
except SystemExit as e:
    assert e.code in (0, None), e.code
print(sorted({{m.partition(".")[0] for m in sys.modules}} & set(BLOCKED)))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    result = json.loads((out / "bench_pretrain_slovenia.json").read_text())
    assert [r["arm"] for r in result["rows"]] == ["pretrained", "scratch"]
    assert result["rows"][0]["labels"] == result["rows"][1]["labels"]
    assert result["rows"][0]["updates"] == result["rows"][1]["updates"] >= 4
    recon = result["results"]["recon"]["holdout"]
    assert recon["hide_0.75"]["hidden_dates"] > 0 and recon["pixels"] > 0
    split = result["split"]
    assert split["every_pixel"]["train"] + split["every_pixel"]["test"] == 101 * 100
    assert (out / "summary.md").is_file() and (out / "rows.csv").is_file()
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming: 5 result(s)" in again.stdout
    assert "updates in" not in again.stdout  # nothing re-run
