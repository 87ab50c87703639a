"""Fit a training run into a memory budget: activation checkpointing and micro-batching.

The bytes a training step keeps are, to first order: the model state (fp32 weights, their
gradients and AdamW's two moments: 16 bytes per parameter) plus the tensors autograd saves for
backward, which grow linearly with the batch. The saved bytes are *measured*, not guessed: a
probe forward + loss (random inputs of the model's shape, every date valid, in the run's
precision) runs under :func:`torch.autograd.graph.saved_tensors_hooks`, which sees every tensor
saved for backward; unique storages are summed, parameters left out. Two probe sizes give the
bytes per sample (the slope) and the batch-independent part (low-precision weight copies).

:func:`plan_memory` then picks, in this order, the first plan that fits the budget:

1. no checkpointing, the whole batch;
2. block checkpointing (:meth:`SITSFormer.set_grad_checkpointing`), the whole batch;
3. micro-batches of ``batch / k`` with gradient accumulation over ``k`` (``k`` dividing the
   batch, so the effective batch and the gradients are unchanged), without and then with
   checkpointing, for growing ``k``.

Checkpointing keeps each block's input (not seen by the hooks: counted from its shape) and
recomputes one block at a time in backward, so a checkpointed plan also reserves one block's
saved bytes. A ``headroom`` fraction (default 25 %) of the saved bytes is added for the
temporaries of forward and backward, which are not saved tensors.

On a CUDA device the plan does not estimate: it measures. Two probe training steps (forward,
loss, backward) run under ``torch.cuda.max_memory_allocated``, which sees everything the
saved-tensor count misses (the input batch, gradients of the activations, kernel workspaces,
one block's recomputation); their slope and intercept, plus the weights and AdamW's moments,
give the plan's bytes, with a 10 % margin. Measured on an H200 for the tutorial model at batch
32 in bf16, the saved-tensor estimate said 5.55 GiB with checkpointing where the step took
11.1 GiB (benchmarks/bench_memory.py).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

GIB = 2**30


@dataclass(frozen=True)
class MemoryPlan:
    """The chosen way to run a batch: ``micro_batch`` samples per forward, ``accumulation``
    forwards per update (``micro_batch * accumulation`` = the batch), block checkpointing on or
    off, and the estimate behind the choice (bytes)."""

    batch: int
    micro_batch: int
    accumulation: int
    checkpointing: bool
    budget_bytes: int
    state_bytes: int  # weights + gradients + AdamW moments
    fixed_saved_bytes: int  # saved for backward whatever the batch
    saved_bytes_per_sample: int  # saved for backward per sample (with this checkpointing)
    estimated_bytes: int  # the whole estimate for one micro-batch

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def probe_batch(model: nn.Module, size: int, seq_len: int, device: torch.device | str = "cpu"
                ) -> dict[str, torch.Tensor]:
    """Random inputs of the model's shape, every date valid (the most a sample can save)."""
    c = model.config
    g = torch.Generator().manual_seed(0)
    seq = torch.randn(size, seq_len, c.in_channels, c.img_size, c.img_size, generator=g)
    doy = torch.arange(1, seq_len + 1).mul(7).remainder(366).add(1).expand(size, seq_len)
    return {"sequence": seq.to(device), "mask": torch.ones(size, seq_len, dtype=torch.bool,
                                                         device=device),
            "doy": doy.to(device), "label": torch.zeros(size, dtype=torch.long, device=device)}


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def saved_bytes(model: nn.Module, batch: dict[str, torch.Tensor], precision: str = "fp32",
                checkpointing: bool | None = None) -> int:
    """Bytes saved for backward by one training forward + cross-entropy on ``batch``
    (unique storages, parameters excluded; with checkpointing, plus the kept block inputs)."""
    device = batch["sequence"].device
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in params and t.device.type != "meta":
            seen[ptr] = storage.nbytes()
        return t

    old = model.grad_checkpointing
    if checkpointing is not None:
        model.set_grad_checkpointing(checkpointing)
    was_training = model.training
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with _autocast(device, precision):
                logits = model(batch["sequence"], batch["mask"], doy=batch["doy"])
                loss = F.cross_entropy(logits.float(), batch["label"])
        del loss, logits
        total = sum(seen.values())
        if model.grad_checkpointing:
            # Each checkpointed block keeps its input (the fp32 residual stream) outside the
            # hooks' sight: (B, T, N, D) per block, the valid dates only when tokens are packed.
            c = model.config
            b, t = batch["mask"].shape
            total += len(model.blocks) * b * t * model.num_tokens * c.embed_dim * 4
    finally:
        model.set_grad_checkpointing(old)
        model.train(was_training)
    return total


def measure_saved(model: nn.Module, seq_len: int, precision: str = "fp32",
                  checkpointing: bool = False, device: torch.device | str = "cpu",
                  sizes: tuple[int, int] = (1, 2)) -> tuple[int, int]:
    """``(bytes per sample, batch-independent bytes)`` saved for backward, from probe batches of
    ``sizes`` samples."""
    a, b = sizes
    sa = saved_bytes(model, probe_batch(model, a, seq_len, device), precision, checkpointing)
    sb = saved_bytes(model, probe_batch(model, b, seq_len, device), precision, checkpointing)
    per_sample = max(0, (sb - sa) // (b - a))
    return per_sample, max(0, sa - a * per_sample)


def measure_peak(model: nn.Module, seq_len: int, precision: str = "fp32",
                 checkpointing: bool = False, device: torch.device | str = "cuda",
                 sizes: tuple[int, int] = (2, 4)) -> tuple[int, int]:
    """``(bytes per sample, batch-independent bytes)`` of a training step's peak CUDA memory
    above the model's weights (probe steps of ``sizes`` samples: inputs, activations,
    gradients, temporaries; the optimiser's moments are not included)."""
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"measure_peak needs a CUDA device, got {device}")
    old, was_training = model.grad_checkpointing, model.training
    model.set_grad_checkpointing(checkpointing)
    model.train()
    peaks = []
    try:
        for size in sizes:
            model.zero_grad(set_to_none=True)
            torch.cuda.synchronize(device)
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            batch = probe_batch(model, size, seq_len, device)
            with _autocast(device, precision):
                logits = model(batch["sequence"], batch["mask"], doy=batch["doy"])
                loss = F.cross_entropy(logits.float(), batch["label"])
            loss.backward()
            torch.cuda.synchronize(device)
            peaks.append(torch.cuda.max_memory_allocated(device) - base)
            del batch, logits, loss
    finally:
        model.zero_grad(set_to_none=True)
        model.set_grad_checkpointing(old)
        model.train(was_training)
    a, b = sizes
    per_sample = max(0, (peaks[1] - peaks[0]) // (b - a))
    return per_sample, max(0, peaks[0] - a * per_sample)


def plan_memory(model: nn.Module, batch: int, budget_gb: float, seq_len: int,
                precision: str = "fp32", device: torch.device | str = "cpu",
                headroom: float = 0.25) -> MemoryPlan:
    """The first plan (see the module doc) whose estimate fits ``budget_gb`` GiB.

    Raises ``ValueError`` naming the budget and the smallest estimate when nothing fits
    (one sample per micro-batch with checkpointing)."""
    if budget_gb <= 0:
        raise ValueError(f"train.memory_budget_gb must be > 0, got {budget_gb}")
    budget = int(budget_gb * GIB)
    probe = copy.deepcopy(model).to(device)
    params = sum(p.numel() for p in model.parameters())
    state = 16 * params
    measured = torch.device(device).type == "cuda"
    measure = measure_peak if measured else measure_saved
    plain = measure(probe, seq_len, precision, False, device)
    ckpt = measure(probe, seq_len, precision, True, device)
    layers = max(1, len(getattr(model, "blocks", [])))
    block_share = max(0, plain[0] - ckpt[0]) / layers  # one block's saved bytes per sample

    def estimate(micro: int, checkpointing: bool) -> int:
        per, fixed = ckpt if checkpointing else plain
        if measured:  # peak above the weights, measured: + weights and AdamW's two moments
            return int((12 * params + fixed + micro * per) * 1.1)
        saved = fixed + micro * per + (micro * block_share if checkpointing else 0)
        return int(state + saved * (1 + headroom))

    divisors = [k for k in range(1, batch + 1) if batch % k == 0]
    tried = []
    order = [(1, False), (1, True)] + [(k, c) for k in divisors[1:] for c in (False, True)]
    for k, checkpointing in order:
        micro = batch // k
        need = estimate(micro, checkpointing)
        tried.append(need)
        if need <= budget:
            per, fixed = ckpt if checkpointing else plain
            return MemoryPlan(batch=batch, micro_batch=micro, accumulation=k,
                              checkpointing=checkpointing, budget_bytes=budget,
                              state_bytes=state, fixed_saved_bytes=fixed,
                              saved_bytes_per_sample=per, estimated_bytes=need)
    raise ValueError(
        f"train.memory_budget_gb={budget_gb}: even one sample per micro-batch with "
        f"checkpointing needs about {min(tried) / GIB:.2f} GiB (model state "
        f"{state / GIB:.2f} GiB); raise the budget or use a smaller model / shorter series"
    )
