"""Small helpers shared by test modules (import as ``from _helpers import ...``)."""

from __future__ import annotations

import socket

import torch


def assert_close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """``torch.allclose`` with a message (``torch.testing.assert_close`` imports sympy: slow)."""
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, rtol=rtol, atol=atol), f"max |a - b| = {(a - b).abs().max()}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a scheduler, a database, a rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
