"""The cheap-RNG dropout: same contract as nn.Dropout, exact expectation, seeded."""

from __future__ import annotations

import torch
from torch import nn

from sitsformer.layers import Dropout
from sitsformer.layers.dropout import dropout, keep_mask, rounded_drop_probability


def test_identity_in_eval_and_at_zero() -> None:
    x = torch.randn(64, 32)
    drop = Dropout(0.3).eval()
    assert drop(x) is x
    assert Dropout(0.0).train()(x) is x
    assert isinstance(drop, nn.Dropout) and drop.state_dict() == {}


def test_keep_rate_scale_and_gradient() -> None:
    torch.manual_seed(0)
    x = torch.full((200_000,), 2.0, requires_grad=True)
    y = dropout(x, 0.1)
    p = rounded_drop_probability(0.1)
    assert p == 3277 / 32768
    kept = y != 0
    # kept values are scaled so that E[y] = x exactly; the keep rate is 1 - p (binomial, 6 sigma)
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 2.0 / (1 - p)))
    assert abs(kept.float().mean().item() - (1 - p)) < 6 * (p * (1 - p) / x.numel()) ** 0.5
    (grad,) = torch.autograd.grad(y.sum(), [x])
    torch.testing.assert_close(grad, kept.float() / (1 - p))  # same mask in backward


def test_seeded_and_lanes_uniform() -> None:
    torch.manual_seed(5)
    a = keep_mask((1000, 7), 0.5, torch.device("cpu"))
    torch.manual_seed(5)
    b = keep_mask((1000, 7), 0.5, torch.device("cpu"))
    assert a.shape == (1000, 7) and torch.equal(a, b)
    # every one of the four 16-bit lanes of a random word is used: each keeps about half
    torch.manual_seed(0)
    lanes = keep_mask((400_000,), 0.5, torch.device("cpu")).view(-1, 4).float().mean(0)
    assert torch.all((lanes - 0.5).abs() < 0.01), lanes


def test_bf16_input_keeps_dtype() -> None:
    torch.manual_seed(0)
    x = torch.ones(1000, dtype=torch.bfloat16)
    y = Dropout(0.5).train()(x)
    assert y.dtype == torch.bfloat16
    assert set(y.unique().tolist()) <= {0.0, 2.0}
