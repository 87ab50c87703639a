"""Worker of the real two-process metric-reduction test (kept light: no sklearn import)."""

from __future__ import annotations

import torch

from sitsformer.evaluation.metrics import ClassificationMetrics


def rank_main(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(30, 4, generator=g)
    y = torch.randint(0, 4, (30,), generator=g)
    y[::7] = -100
    m = ClassificationMetrics(4)
    part = slice(0, 13) if rank == 0 else slice(13, 30)  # unequal shards
    m.update(logits[part], y[part])
    res = m.compute()
    torch.save(res["confusion_matrix"], f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()
