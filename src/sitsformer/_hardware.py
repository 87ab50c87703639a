"""What the CPU can do natively, for settings whose speed depends on it.

bf16 autocast on a CPU is fast only where the instructions exist (AVX-512 BF16, AMX: recent
Xeon and EPYC). On an AVX2-only CPU PyTorch emulates bf16 matmuls: measured on a 2-core AVX2
EPYC, a training step of the ``victoria_pixel`` recipe took 2,872 ms in bf16 against 321 ms in
fp32 (``docs/training.md``, "Mixed precision"). A user who asks for bf16 there is told so,
once per process.
"""

from __future__ import annotations

import warnings
from typing import Any

_warned = False


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str] | None:
    """The CPU's feature flags from ``/proc/cpuinfo`` (Linux), or None where there is none."""
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):  # x86 / aarch64
                    return set(value.split())
    except OSError:
        return None
    return None


def cpu_bf16_native(flags: set[str] | None = None) -> bool:
    """Whether this CPU has native bf16 instructions: ``avx512_bf16`` or ``amx_bf16`` (x86),
    ``bf16`` (aarch64) among its flags; without flags (not Linux), whether PyTorch's vector
    capability is AVX-512 or newer."""
    flags = cpu_flags() if flags is None else flags
    if flags is not None:
        return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    import torch

    return torch.backends.cpu.get_cpu_capability().upper().startswith(("AVX512", "AMX"))


def warn_emulated_bf16(device: Any, what: str) -> bool:
    """Warn (once per process) when bf16 is asked for on a CPU without native bf16: ``what``
    names the setting (``train.precision=bf16``, ``predict --precision bf16``). Returns True
    when it warned."""
    global _warned
    import torch

    if torch.device(device).type != "cpu" or cpu_bf16_native() or _warned:
        return False
    _warned = True
    warnings.warn(
        f"{what} on a CPU without native bf16 instructions (no avx512_bf16 / amx_bf16; "
        f"PyTorch's CPU capability: {torch.backends.cpu.get_cpu_capability()}): bf16 is "
        "emulated there and runs several times slower than fp32 (9x for a pixel-model "
        "training step measured on an AVX2 CPU); use fp32 on this machine",
        RuntimeWarning, stacklevel=3)
    return True
