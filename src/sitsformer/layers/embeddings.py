"""Per-date spatial embeddings: turn one image ``(C, H, W)`` into ``N`` tokens of width ``D``."""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class PatchEmbed(nn.Module):
    """ViT patch embedding: a strided convolution, one token per ``patch_size`` square.

    Input ``(B, C, H, W)``, output ``(B, N, D)`` with ``N = (H / p) * (W / p)``.
    With ``patch_size == img_size == 1`` this is a linear layer over the bands of one pixel.
    """

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(self.proj(x), "b d h w -> b (h w) d")


class Conv3dEmbed(nn.Module):
    """SITS-Former's spectral-spatial stem, applied to every patch of every date.

    Each ``(C, p, p)`` patch is treated as a one-channel volume over (band, row, column) and
    passed through two 3-D convolutions (32 then 64 filters, kernel ``(5, 3, 3)``, ReLU), then
    flattened and projected to ``embed_dim``. With 10 bands and a 5x5 patch this is exactly the
    original model's embedding (the volume shrinks to 64 x 2 x 1 x 1 = 128 features). Fewer bands
    or smaller patches are zero-padded just enough for both convolutions to fit.

    The convolutions run as matrix multiplies: over a tiny volume as one dense linear map built
    from the kernel (:func:`conv3d_dense_weight`; 250 -> 1728 -> 128 for the original model),
    otherwise as im2col + matmul (:func:`conv3d_as_matmul`). Same numbers as ``nn.Conv3d`` (same
    parameters, same state-dict keys) but much faster on CPU, above all in bf16 where oneDNN's
    3-D convolution backward is slow for these tiny volumes. Set ``fast = False`` to run the
    ``nn.Conv3d`` modules themselves (the reference).

    ``norm=True`` adds the original code's ``BatchNorm3d`` after each ReLU (modules
    ``norms.0``, ``norms.1``; on the fast path the same statistics, update rule and numbers as
    the modules: ``tests/layers/test_fast_stem.py``). ``channels`` sets the filter counts.
    """

    def __init__(
        self,
        in_channels: int,
        embed_dim: int,
        patch_size: int,
        channels: tuple[int, int] = (32, 64),
        kernel: tuple[int, int, int] = (5, 3, 3),
        norm: bool = False,
    ):
        super().__init__()
        self.patch_size = patch_size
        # Padding per conv so that two valid convolutions leave at least one cell on every axis.
        pad_d = max(0, math.ceil((2 * (kernel[0] - 1) + 1 - in_channels) / 4))
        pad_s = max(0, math.ceil((2 * (kernel[1] - 1) + 1 - patch_size) / 4))
        padding = (pad_d, pad_s, pad_s)
        self.conv = nn.Sequential(
            nn.Conv3d(1, channels[0], kernel, padding=padding),
            nn.ReLU(inplace=True),
            nn.Conv3d(channels[0], channels[1], kernel, padding=padding),
            nn.ReLU(inplace=True),
        )
        out = [
            in_channels + 4 * pad_d - 2 * (kernel[0] - 1),
            patch_size + 4 * pad_s - 2 * (kernel[1] - 1),
        ]
        # The original code's stem: BatchNorm3d after each ReLU (keys norms.0.*, norms.1.*).
        self.norms = (nn.ModuleList([nn.BatchNorm3d(channels[0]), nn.BatchNorm3d(channels[1])])
                      if norm else None)
        self.num_features = channels[1] * out[0] * out[1] * out[1]
        self.proj = nn.Linear(self.num_features, embed_dim)
        self.fast = True  # matmuls instead of nn.Conv3d (same numbers)
        # The volumes' sizes are fixed by the configuration, so the dense maps' gather indices
        # are built here once (non-persistent buffers: they follow .to(device), stay out of the
        # state dict, and forward has no Python-side index building for torch.compile/export).
        size = (in_channels, patch_size, patch_size)
        self._dense_sizes: list[tuple[int, int, int]] = []
        for i, conv in enumerate((self.conv[0], self.conv[2])):
            cheap = _dense_is_cheap(conv.weight, size, conv.padding)
            index = (_dense_index.__wrapped__(size, conv.kernel_size, conv.padding,
                                              torch.device("cpu")) if cheap else None)
            self.register_buffer(f"dense_index_{i}", index, persistent=False)
            self._dense_sizes.append(size)
            size = _out_size(size, conv.kernel_size, conv.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        b, _, h, w = x.shape
        if not self.fast:
            patches = rearrange(x, "b c (gh p1) (gw p2) -> (b gh gw) 1 c p1 p2", p1=p, p2=p)
            hid = patches
            for i, conv in enumerate((self.conv[0], self.conv[2])):
                hid = F.relu(conv(hid))
                if self.norms is not None:
                    hid = self.norms[i](hid)
            feats = hid.flatten(1)  # (B * N, num_features)
            return rearrange(self.proj(feats), "(b n) d -> b n d", b=b)
        vol = rearrange(x, "b c (gh p1) (gw p2) -> (b gh gw) c p1 p2 1", p1=p, p2=p)
        if torch.is_autocast_enabled(x.device.type):
            # Cast once up front so that im2col copies are made in the low precision.
            vol = vol.to(torch.get_autocast_dtype(x.device.type))
        hid = vol  # (M, D, H, W, C) channels-last volumes
        for i, conv in enumerate((self.conv[0], self.conv[2])):
            last = i == 1
            in_size = tuple(hid.shape[1:4])
            index = getattr(self, f"dense_index_{i}")
            if index is not None and in_size == self._dense_sizes[i]:
                # A convolution over a tiny volume is a small dense linear map: one well-shaped
                # matrix multiply (a few times the convolution's FLOPs, still far faster than
                # the convolution kernels or im2col on CPU, above all in bf16).
                weight, bias = conv3d_dense_weight(conv.weight, conv.bias, in_size, conv.padding,
                                                   channels_last_out=not last, index=index)
                out = F.relu(F.linear(hid.flatten(1), weight, bias))
                if not last:
                    out = out.view(hid.shape[0], *_out_size(in_size, conv.kernel_size,
                                                             conv.padding), -1)
                    out = self._norm(i, out, channels_last=True)
                else:
                    out = self._norm(i, out.view(out.shape[0], conv.out_channels, -1),
                                     channels_last=False).flatten(1)
            else:
                out = self._norm(i, F.relu(conv3d_as_matmul(hid, conv.weight, conv.bias,
                                                            conv.padding)), channels_last=True)
                if last:
                    out = rearrange(out, "m d h w c -> m (c d h w)")
            hid = out
        feats = hid  # (M, num_features) in nn.Conv3d's flatten order
        return rearrange(self.proj(feats), "(b n) d -> b n d", b=b)

    def _norm(self, i: int, x: torch.Tensor, channels_last: bool) -> torch.Tensor:
        """The ``i``-th BatchNorm3d (when the stem has them) on ``x``: channels last
        ``(M, ..., C)`` or ``(M, C, L)``; the module's own statistics and update rule."""
        if self.norms is None:
            return x
        bn = self.norms[i]
        flat = x.reshape(-1, x.shape[-1]) if channels_last else x  # (N, C) or (M, C, L)
        if not bn.training and bn.running_mean is not None:  # an affine map: exact as it is
            out = F.batch_norm(flat, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                               False, 0.0, bn.eps)
        else:
            out = _batch_statistics_norm(bn, flat, (0,) if channels_last else (0, 2))
        return out.view(x.shape)


def _batch_statistics_norm(bn: nn.BatchNorm3d, x: torch.Tensor, dims: tuple[int, ...]
                           ) -> torch.Tensor:
    """``bn`` in training on ``x`` with channels on axis 1 (or the last axis of a 2-D ``x``):
    batch mean and (biased) variance over ``dims`` in two passes (fp32 for 16-bit ``x``), running
    statistics
    updated as ``nn.BatchNorm3d`` updates them (unbiased variance, ``momentum``).

    PyTorch's own CPU kernel on this channels-last layout accumulates the variance in one pass
    and loses about 3 digits on these volumes (measured: 5e-3 against fp64 where the
    ``(N, C, D, H, W)`` kernel and this one are within 3e-6)."""
    xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    mean = xf.mean(dims, keepdim=True)
    centred = xf - mean
    var = centred.square().mean(dims, keepdim=True)
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        shape = [1] * x.dim()
        shape[1] = x.shape[1]
        out = torch.addcmul(bn.bias.view(shape), centred, scale * bn.weight.view(shape))
    else:
        out = centred * scale
    if bn.training and bn.track_running_stats and bn.running_mean is not None:
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            momentum = (bn.momentum if bn.momentum is not None
                        else 1.0 / float(bn.num_batches_tracked))
            n = x.numel() // x.shape[1]
            bn.running_mean.mul_(1 - momentum).add_(mean.flatten(), alpha=momentum)
            bn.running_var.mul_(1 - momentum).add_(var.flatten() * n / max(n - 1, 1),
                                                   alpha=momentum)
    return out.to(x.dtype)


def conv3d_as_matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                     padding: tuple[int, ...] | str) -> torch.Tensor:
    """A stride-1 3-D convolution on channels-last volumes, as im2col + one matrix multiply.

    Equal to ``F.conv3d`` (up to float rounding) for stride 1, no dilation, one group; faster
    on CPU for small volumes and few channels, where the convolution kernels are inefficient.

    Args:
        x: ``(M, D, H, W, C_in)`` channels-last volumes.
        weight: ``(C_out, C_in, kD, kH, kW)``, ``nn.Conv3d`` layout.
        bias: ``(C_out,)`` or None.
        padding: zeros added on both sides of ``(D, H, W)``, as ``nn.Conv3d``'s ``padding``.

    Returns:
        ``(M, D', H', W', C_out)`` channels-last.
    """
    if isinstance(padding, str):
        raise ValueError(f"conv3d_as_matmul needs numeric padding, got {padding!r}")
    kd, kh, kw = weight.shape[2:]
    pd, ph, pw = padding
    if pd or ph or pw:
        x = F.pad(x, (0, 0, pw, pw, ph, ph, pd, pd))
    # (M, D', H', W', C_in, kD, kH, kW): the unfolded axes land last, in the weight's order.
    cols = x.unfold(1, kd, 1).unfold(2, kh, 1).unfold(3, kw, 1)
    m, do, ho, wo = cols.shape[:4]
    cols = rearrange(cols, "m d h w c i j k -> (m d h w) (c i j k)")
    out = F.linear(cols, weight.flatten(1), bias)
    return rearrange(out, "(m d h w) c -> m d h w c", m=m, d=do, h=ho, w=wo)


_DENSE_MAX_RATIO = 6.0


def _out_size(in_size: tuple[int, ...], kernel: tuple[int, ...],
              padding: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(n + 2 * p - k + 1 for n, k, p in zip(in_size, kernel, padding))


def _dense_is_cheap(weight: torch.Tensor, in_size: tuple[int, ...],
                    padding: tuple[int, ...] | str) -> bool:
    """True when the convolution as a dense matrix costs at most ``_DENSE_MAX_RATIO`` times its
    own FLOPs (on CPU, a well-shaped matmul is ~10x more efficient than these convolutions)."""
    if isinstance(padding, str):
        return False
    c_out, c_in, *kernel = weight.shape
    out_size = _out_size(in_size, tuple(kernel), padding)
    dense = math.prod(in_size) * c_in * math.prod(out_size) * c_out
    conv = math.prod(out_size) * c_out * c_in * math.prod(kernel)
    return dense <= _DENSE_MAX_RATIO * conv


@lru_cache(maxsize=32)
def _dense_index(in_size: tuple[int, int, int], kernel: tuple[int, int, int],
                 padding: tuple[int, int, int], device: torch.device) -> torch.Tensor:
    """``(prod(out_size), prod(in_size))`` long: for output cell o and input cell i, the flat
    kernel offset that connects them, or ``prod(kernel)`` (a zero slot) when none does."""
    out_size = _out_size(in_size, kernel, padding)
    n_kernel = math.prod(kernel)
    index = torch.full((math.prod(out_size), math.prod(in_size)), n_kernel, dtype=torch.long)
    grids = torch.meshgrid(*(torch.arange(n) for n in out_size), indexing="ij")
    out_flat = torch.arange(math.prod(out_size))
    for flat_k, offset in enumerate(torch.cartesian_prod(*(torch.arange(k) for k in kernel))):
        pos = [g.flatten() + int(o) - p for g, o, p in zip(grids, offset, padding)]
        inside = torch.stack([(q >= 0) & (q < n) for q, n in zip(pos, in_size)]).all(0)
        in_flat = (pos[0] * in_size[1] + pos[1]) * in_size[2] + pos[2]
        index[out_flat[inside], in_flat[inside]] = flat_k
    return index.to(device)


def conv3d_dense_weight(weight: torch.Tensor, bias: torch.Tensor | None,
                        in_size: tuple[int, ...], padding: tuple[int, ...],
                        channels_last_out: bool = False, index: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A stride-1 3-D convolution over a fixed-size volume as one ``nn.Linear``-style map.

    Args:
        weight: ``(C_out, C_in, kD, kH, kW)``, ``nn.Conv3d`` layout.
        bias: ``(C_out,)`` or None.
        in_size: ``(D, H, W)`` of the input volume.
        padding: zeros on both sides of each axis.
        channels_last_out: order the outputs ``(d' h' w' c)`` instead of ``(c d' h' w')``.
        index: the gather index for these sizes (:func:`_dense_index`), when already built.

    Returns:
        ``(W, b)`` with ``W (C_out * D' * H' * W', D * H * W * C_in)``: applied with
        ``F.linear`` to a channels-last volume flattened as ``(d h w c)``, it gives the
        convolution's output flattened as ``nn.Conv3d`` does, ``(c d' h' w')``. Differentiable
        with respect to ``weight`` and ``bias`` (a gather of the kernel).
    """
    c_out, c_in, *kernel = weight.shape
    if index is None:
        index = _dense_index(tuple(in_size), tuple(kernel), tuple(padding), weight.device)
    n_out, n_in = index.shape
    # (kernel offsets + one zero slot, C_out, C_in)
    table = rearrange(weight, "o i a b c -> (a b c) o i")
    table = torch.cat([table, table.new_zeros(1, c_out, c_in)])
    if channels_last_out:
        dense = rearrange(table[index], "po pi o i -> (po o) (pi i)")
        return dense, (bias.repeat(n_out) if bias is not None else None)
    dense = rearrange(table[index], "po pi o i -> (o po) (pi i)")
    return dense, (bias.repeat_interleave(n_out) if bias is not None else None)
