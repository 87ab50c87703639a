"""Small assertion helpers shared by test modules (import as ``from _helpers import ...``)."""

from __future__ import annotations

import torch


def assert_close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """``torch.allclose`` with a message (``torch.testing.assert_close`` imports sympy: slow)."""
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, rtol=rtol, atol=atol), f"max |a - b| = {(a - b).abs().max()}"
