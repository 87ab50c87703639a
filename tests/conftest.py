"""Shared test fixtures. Real data is read from ``../shared/data`` beside the clone (never copied)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SITSFORMER_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to the real example datasets; skips with a clear reason when they are absent."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):  # CI has shared/ beside the clone: a missing folder is a failure
            pytest.fail(f"real example data not found at {SHARED_DATA}")
        pytest.skip(f"real example data not found at {SHARED_DATA} (set SITSFORMER_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread (no oversubscription on a shared 2-core CPU)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _bf16_cpu_warning_given(monkeypatch):
    """The once-per-process warning that bf16 is emulated on this CPU (AVX2 machines: CI's may
    be one) counts as given, so the bf16 tests do not depend on which ran first;
    tests/training/test_hardware.py resets it and asserts it."""
    import sitsformer._hardware as hw

    monkeypatch.setattr(hw, "_warned", True)
