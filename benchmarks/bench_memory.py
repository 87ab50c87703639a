"""Saved-for-backward bytes per sample, with and without block checkpointing, and the plan
``train.memory_budget_gb`` picks.

The tutorial's scene model (``sitsformer_base``: 224 px, patch 16, 13 bands, width 256, 8 layers,
T = 20) by default. Bytes are measured with ``torch.autograd.graph.saved_tensors_hooks`` on
probe batches (every date valid; :mod:`sitsformer.training.memory`), so the numbers are the
same on CPU and GPU up to kernel choices. On CUDA the script also runs real training steps at
``--batch`` and prints ``torch.cuda.max_memory_allocated`` with and without checkpointing.

Usage::

    python benchmarks/bench_memory.py                              # CPU: bytes + plans
    python benchmarks/bench_memory.py --device cuda --batch 32     # + measured peaks
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from sitsformer.models import create_sits_former
from sitsformer.training.memory import GIB, measure_saved, plan_memory, probe_batch

MIB = 2**20


def cuda_peak(model, batch: int, t: int, precision: str, checkpointing: bool) -> float:
    device = torch.device("cuda")
    model.set_grad_checkpointing(checkpointing)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    data = probe_batch(model, batch, t, device)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    for i in range(2):  # the second step has AdamW's moments allocated
        if i == 1:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        with torch.autocast("cuda", dtype=dtype, enabled=precision != "fp32"):
            loss = F.cross_entropy(model(data["sequence"], data["mask"], doy=data["doy"]).float(),
                                   data["label"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    del opt
    return torch.cuda.max_memory_allocated() / MIB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", default="sitsformer_base")
    parser.add_argument("--seq-len", type=int, default=20)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--budgets", default="8,24", help="GiB budgets to plan for")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = create_sits_former(args.variant, num_classes=10).to(device)
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.variant}: {params / 1e6:.2f} M parameters, T {args.seq_len}, device {device}; "
          f"model state (weights + grads + AdamW) {16 * params / MIB:.0f} MiB", flush=True)
    for precision in args.precisions.split(","):
        plain, _ = measure_saved(model, args.seq_len, precision, False, device)
        ckpt, _ = measure_saved(model, args.seq_len, precision, True, device)
        print(f"{precision}: saved for backward per sample: {plain / MIB:.1f} MiB without "
              f"checkpointing, {ckpt / MIB:.1f} MiB with ({plain / ckpt:.1f}x less); batch "
              f"{args.batch}: {args.batch * plain / GIB:.2f} / {args.batch * ckpt / GIB:.2f} GiB",
              flush=True)
        for budget in [float(b) for b in args.budgets.split(",") if b]:
            plan = plan_memory(model, args.batch, budget, args.seq_len, precision, device)
            print(f"  budget {budget:g} GiB, batch {args.batch}: micro-batch {plan.micro_batch} x "
                  f"{plan.accumulation}, checkpointing {plan.checkpointing}, estimate "
                  f"{plan.estimated_bytes / GIB:.2f} GiB", flush=True)
            if device.type == "cuda" and precision != "fp32":
                peak = cuda_peak(model, plan.micro_batch, args.seq_len, precision,
                                 plan.checkpointing)
                torch.cuda.empty_cache()
                print(f"    that plan's step, measured: {peak / 1024:.2f} GiB "
                      f"({'within' if peak * MIB <= budget * GIB else 'OVER'} the {budget:g} GiB)",
                      flush=True)
        if device.type == "cuda" and precision != "fp32":
            for c in (False, True):
                try:
                    peak = cuda_peak(model, args.batch, args.seq_len, precision, c)
                    print(f"  CUDA max_memory_allocated, batch {args.batch}, checkpointing {c}: "
                          f"{peak:.0f} MiB", flush=True)
                except torch.cuda.OutOfMemoryError:
                    print(f"  CUDA batch {args.batch}, checkpointing {c}: out of memory")
                torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
