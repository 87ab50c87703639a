"""A frozen rank: the others stop after the process-group timeout, naming the ranks, instead of
waiting PyTorch's default 30 minutes (real torchrun, two gloo processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from sitsformer.training.distributed import DEFAULT_TIMEOUT_S, dist_timeout_s
from _helpers import free_port

WORKER = textwrap.dedent("""
    import os, sys, time
    from sitsformer.training import distributed as d
    d.setup_distributed(timeout_s=float(sys.argv[2]) if sys.argv[2] != "env" else None)
    if d.get_rank() == 1:
        time.sleep(240)             # frozen (a hung data loader, a stuck filesystem ...)
        sys.exit(0)
    try:
        if sys.argv[1] == "barrier":
            d.barrier()
        else:
            d.all_reduce_sum([1.0])
    except d.DistributedTimeout as err:
        print(f"TIMEOUT: {err}", flush=True)
        os._exit(3)
    print("no timeout", flush=True)
""")


def _torchrun(op: str, timeout: str, tmp_path, env_timeout: str | None = None):
    script = tmp_path / "frozen.py"
    script.write_text(WORKER)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if env_timeout:
        env["SITSFORMER_DIST_TIMEOUT"] = env_timeout
    # the frozen rank sleeps 240 s: finishing well before proves the others did not wait for it
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes=1",
                           "--nproc_per_node=2", "--master_addr=127.0.0.1",
                           f"--master_port={free_port()}", str(script), op, timeout],
                          capture_output=True, text=True, env=env, timeout=150)


def test_timeout_setting_and_its_errors(monkeypatch):
    monkeypatch.delenv("SITSFORMER_DIST_TIMEOUT", raising=False)
    assert dist_timeout_s() == DEFAULT_TIMEOUT_S == 600
    assert dist_timeout_s(12) == 12.0
    monkeypatch.setenv("SITSFORMER_DIST_TIMEOUT", "45")
    assert dist_timeout_s() == 45.0 and dist_timeout_s(5) == 5.0  # the argument wins
    monkeypatch.setenv("SITSFORMER_DIST_TIMEOUT", "soon")
    with pytest.raises(ValueError, match=r"SITSFORMER_DIST_TIMEOUT: expected a number.*'soon'"):
        dist_timeout_s()
    with pytest.raises(ValueError, match=r"timeout_s: .*found -1"):
        dist_timeout_s(-1)


@pytest.mark.slow
def test_frozen_rank_is_named_by_the_barrier(tmp_path):
    r = _torchrun("barrier", "3", tmp_path)
    assert r.returncode != 0
    line = next(x for x in r.stdout.splitlines() if x.startswith("TIMEOUT:"))
    assert "rank 0 of 2: barrier did not complete within 3 s" in line
    assert "rank(s) 1 did not arrive" in line


@pytest.mark.slow
def test_collective_times_out_from_the_environment_setting(tmp_path):
    r = _torchrun("all_reduce", "env", tmp_path, env_timeout="3")
    assert r.returncode != 0
    line = next(x for x in r.stdout.splitlines() if x.startswith("TIMEOUT:"))
    assert "rank 0 of 2: all_reduce did not complete within 3 s" in line
    assert "SITSFORMER_DIST_TIMEOUT" in line
