"""Where a GPU training step and a GPU map forward spend their time (one short run).

Prints, for the tutorial scene model (224/16, 13 bands, 8 layers, T 20) at batch 32 in bf16:
the step time, the CUDA kernels that take the most time in one step (``torch.profiler``) and the
step time without the spatial attention mask (which only repeats the date mask, see
``Block.forward``); and for the original pixel model the forward-only rate at map-batch size
(8192, T 24, bf16) with the batch already on the GPU, against the time to bring that batch from
host memory (what ``predict`` did per batch).

Usage: python benchmarks/gpu_profile.py [--cpu-smoke]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from sitsformer.models import create_sits_former


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev: torch.device, reps: int) -> float:
    fn()
    _sync(dev)
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    _sync(dev)
    return (time.perf_counter() - start) / reps


def tutorial_setup(dev: torch.device, smoke: bool) -> tuple[torch.nn.Module, list[torch.Tensor]]:
    """The tutorial scene model (seed 0) and one random batch ``[seq, mask, doy, label]`` with
    T/2..T valid dates per sample, on ``dev`` (tiny with ``smoke``)."""
    b, t = (2, 4) if smoke else (32, 20)
    torch.manual_seed(0)
    kw = dict(img_size=32, num_layers=2) if smoke else {}
    model = create_sits_former("sitsformer_base", num_classes=10, **kw).to(dev)
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    seq = torch.rand(b, t, cfg.in_channels, cfg.img_size, cfg.img_size, generator=g)
    mask = torch.arange(t)[None] < torch.randint(t // 2, t + 1, (b,), generator=g)[:, None]
    doy = torch.sort(torch.randint(1, 366, (b, t), generator=g), 1).values
    label = torch.randint(0, 10, (b,), generator=g)
    return model, [x.to(dev) for x in (seq, mask, doy, label)]


def tutorial(dev: torch.device, smoke: bool) -> None:
    model, (seq, mask, doy, label) = tutorial_setup(dev, smoke)
    b = seq.shape[0]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(seq, mask, doy=doy).float(), label)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    reps = 2 if smoke else 8
    base = timed(step, dev, reps)
    print(f"profile: tutorial bf16 batch {b}: {base * 1e3:.1f} ms/step, "
          f"{b / base:.1f} samples/s, peak {torch.cuda.max_memory_allocated(dev) / 2**30:.2f} GiB"
          if dev.type == "cuda" else f"profile: tutorial step {base * 1e3:.1f} ms", flush=True)
    acts = [torch.profiler.ProfilerActivity.CPU]
    if dev.type == "cuda":
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=acts) as prof:
        step()
        _sync(dev)
    key = "cuda_time_total" if dev.type == "cuda" else "cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=18, max_name_column_width=60))
    # The spatial attention without its mask: every token of a date shares the date's validity
    # when no pixel mask is given, so the mask adds nothing but keeps the fused kernels away.
    from sitsformer.layers import attention as att

    orig = att.MaskedSelfAttention.attend
    for blk in model.blocks:
        if blk.attn_s is not None:
            blk.attn_s.attend = (lambda qkv, valid=None, _m=blk.attn_s: orig(_m, qkv, None))
    nomask = timed(step, dev, reps)
    print(f"profile: tutorial without the spatial mask: {nomask * 1e3:.1f} ms/step "
          f"({base / nomask:.2f}x)", flush=True)


def original_forward(dev: torch.device, smoke: bool) -> None:
    b, t = (64, 4) if smoke else (8192, 24)
    model = create_sits_former("sitsformer_original", num_classes=10).to(dev).eval()
    g = torch.Generator().manual_seed(0)
    seq = torch.rand(b, t, 10, 5, 5, generator=g)
    pm = torch.rand(b, t, 5, 5, generator=g) > 0.2
    mask = pm.any(-1).any(-1)
    doy = torch.arange(1, t + 1).expand(b, t)
    on = [x.to(dev) for x in (seq, pm, mask, doy)]

    @torch.no_grad()
    def fwd(with_pm: bool = True) -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            model(on[0], on[2], doy=on[3], pixel_mask=on[1] if with_pm else None)

    reps = 2 if smoke else 10
    f = timed(fwd, dev, reps)
    f2 = timed(lambda: fwd(False), dev, reps)
    copy = timed(lambda: [x.to(dev) for x in (seq, pm, mask, doy)], dev, reps)
    print(f"profile: original forward bf16 batch {b} T {t}: {b / f:,.0f} samples/s with pixel "
          f"mask, {b / f2:,.0f} without; host->device copy of the batch {copy * 1e3:.1f} ms "
          f"({b / copy:,.0f} samples/s if nothing else ran)", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu-smoke", action="store_true")
    args = ap.parse_args()
    dev = torch.device("cpu" if args.cpu_smoke else "cuda")
    original_forward(dev, args.cpu_smoke)
    tutorial(dev, args.cpu_smoke)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
