"""A sample store under real torchrun processes (gloo on CPU): each rank reads its own part of
the epoch (no sample twice, the same number of batches on every rank), and `sitsformer train`
from a store runs, stops and resumes with 2 processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from _helpers import free_port

RANK_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch.distributed as dist
    from sitsformer.data import SampleStore
    from sitsformer.data.loaders import ChunkBatchSampler

    dist.init_process_group("gloo")
    store = SampleStore(sys.argv[1])
    train = list(range(0, len(store), 1))[:150]  # a split that is not a multiple of anything
    out = {}
    for epoch in (1, 2):
        sampler = ChunkBatchSampler(store, 8, indices=train, chunks_per_group=2, seed=3)
        sampler.set_epoch(epoch)
        out[epoch] = [[int(i) for i in b] for b in sampler]
    with open(f"{sys.argv[2]}/rank{dist.get_rank()}.json", "w") as f:
        json.dump({"rank": dist.get_rank(), "world": dist.get_world_size(), "epochs": out}, f)
    dist.destroy_process_group()
""")


def _torchrun(nproc: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes=1",
            f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1", f"--master_port={free_port()}"]


def _run(cmd: list[str], cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def store(shared_data, tmp_path_factory):
    from sitsformer.cli import main

    out = tmp_path_factory.mktemp("dstore") / "rondonia.zarr"
    src = shared_data / "landsat8_rondonia" / "landsat8_rondonia.npz"
    assert main(["data", "build", str(src), "--output", str(out), "--chunk-size", "16",
                 "--quiet"]) == 0
    return out


@pytest.mark.slow
def test_each_rank_reads_its_own_part_of_the_epoch(store, tmp_path):
    script = tmp_path / "ranks.py"
    script.write_text(RANK_SCRIPT)
    _run([*_torchrun(2), str(script), str(store), str(tmp_path)], tmp_path)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    for epoch in ("1", "2"):
        seen = [[i for b in r["epochs"][epoch] for i in b] for r in ranks]
        assert len(seen[0]) == len(seen[1]) == 150 // 2  # even parts: same steps on each rank
        assert not set(seen[0]) & set(seen[1])  # no sample twice in an epoch
        assert len(set(seen[0])) == 75 and set(seen[0]) | set(seen[1]) <= set(range(150))
        assert len(ranks[0]["epochs"][epoch]) == len(ranks[1]["epochs"][epoch]) == 10
    assert ranks[0]["epochs"]["1"] != ranks[0]["epochs"]["2"]  # a new order every epoch


@pytest.mark.slow
def test_train_from_a_store_with_two_processes_stops_and_resumes(store, tmp_path):
    args = ["-m", "sitsformer.cli", "train", f"data.source={store}", "data.split=random",
            "data.batch_size=16", "model.variant=sitsformer_pixel", "model.embed_dim=16",
            "model.num_heads=2", "model.num_layers=1", "train.threads=1",
            "schedule.type=constant", "logging.tensorboard=false", "logging.plots=false",
            "logging.progress=false", "logging.name=run", f"logging.run_dir={tmp_path}"]
    _run([*_torchrun(2), *args, "train.epochs=1"], tmp_path)
    first = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert first["epoch"] == 1
    _run([*_torchrun(2), *args, "train.epochs=2", "--resume", str(tmp_path / "run" / "last.pt")],
         tmp_path)
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert last["epoch"] == 2 and last["global_step"] == 2 * first["global_step"] > 0
    meta = json.loads((tmp_path / "run" / "data_meta.json").read_text())
    n_train = meta["split_sizes"]["train"]
    # data.batch_size is the global batch: 8 samples per rank and step, each rank its half
    assert first["global_step"] == -(-(n_train // 2) // 8)
