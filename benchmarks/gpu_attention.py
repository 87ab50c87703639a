"""Which attention kernel suits the factorised model's two shapes, forward + backward, bf16.

Temporal attention: (B*N, heads, T, d) = (6272, 8, 20, 32) with a key mask; spatial attention:
(B*T, heads, N, d) = (640, 8, 196, 32), with and without a key mask (the tutorial model at batch
32). Each SDPA backend that accepts the call is timed, and an explicit softmax(QK^T)V in
batched matmuls. Then, optionally (--compile), the tutorial model's training step under
torch.compile against eager.

Usage: python benchmarks/gpu_attention.py [--compile] [--cpu-smoke]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev, reps=10):
    fn()
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    _sync(dev)
    return (time.perf_counter() - t0) / reps


def explicit(q, k, v, mask):
    s = (q @ k.transpose(-1, -2)).float() * (1.0 / math.sqrt(q.shape[-1]))
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return (s.softmax(-1).to(v.dtype)) @ v


def shapes(dev, smoke):
    if smoke:
        return {"temporal": (64, 8, 20, 32, True), "spatial": (16, 8, 36, 32, True),
                "spatial no mask": (16, 8, 36, 32, False)}
    return {"temporal": (6272, 8, 20, 32, True), "spatial": (640, 8, 196, 32, True),
            "spatial no mask": (640, 8, 196, 32, False)}


def attention(dev, smoke):
    dt = torch.bfloat16
    for name, (b, h, l, d, masked) in shapes(dev, smoke).items():
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(b, h, l, d, generator=g).to(dev, dt).requires_grad_()
                   for _ in range(3))
        mask = None
        if masked:
            valid = torch.rand(b, l, generator=g) > 0.3
            valid[:, 0] = True
            mask = valid[:, None, None, :].to(dev)
        grad = torch.randn(b, h, l, d, generator=g).to(dev, dt)
        res = []
        for label, backend in (("default", None), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                               ("efficient", SDPBackend.EFFICIENT_ATTENTION),
                               ("flash", SDPBackend.FLASH_ATTENTION),
                               ("math", SDPBackend.MATH), ("explicit", "explicit")):
            def run():
                if backend == "explicit":
                    out = explicit(q, k, v, mask)
                elif backend is None:
                    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                else:
                    with sdpa_kernel([backend]):
                        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                out.backward(grad)
            try:
                res.append(f"{label} {timed(run, dev) * 1e3:.2f}")
            except RuntimeError as err:
                res.append(f"{label} n/a ({str(err).splitlines()[0][:40]})")
        print(f"attention {name} {(b, h, l, d)}: ms fwd+bwd: " + ", ".join(res), flush=True)


def compiled(dev, smoke):
    from gpu_profile import tutorial_setup

    for mode in ("eager", "compile"):
        model, (seq, mask, doy, label) = tutorial_setup(dev, smoke)
        b = seq.shape[0]
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        fwd = torch.compile(model) if mode == "compile" else model

        def step():
            with torch.autocast(dev.type, dtype=torch.bfloat16):
                loss = F.cross_entropy(fwd(seq, mask, doy=doy).float(), label)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        t0 = time.perf_counter()
        step()
        _sync(dev)
        first = time.perf_counter() - t0
        s = timed(step, dev, 2 if smoke else 8)
        print(f"compile: tutorial bf16 batch {b} {mode}: {s * 1e3:.1f} ms/step "
              f"({b / s:.1f} samples/s), first step {first:.1f} s", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu-smoke", action="store_true")
    ap.add_argument("--compile", action="store_true")
    a = ap.parse_args()
    dev = torch.device("cpu" if a.cpu_smoke else "cuda")
    attention(dev, a.cpu_smoke)
    if a.compile:
        try:
            compiled(dev, a.cpu_smoke)
        except Exception as err:  # report and go on: the attention numbers are printed
            print(f"compile: failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}")


if __name__ == "__main__":
    main()
