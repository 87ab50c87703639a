"""Export a classifier (a SITS-Former, or the TempCNN / L-TAE baselines: the same inputs) as a
``torch.export`` program or an ONNX model.

Both formats keep the date mask: it is a real input of the exported graph, so padded dates
are ignored exactly as in eager PyTorch, for any batch size and any number of dates up to the
model's ``max_seq_len`` (both axes are dynamic).

Inputs of the exported model, in this order:

* ``sequences``: float32 ``(B, T, C, H, W)``, prepared as for the eager model (values / scale,
  then the checkpoint's normalisation); a pixel model (``img_size == 1``) takes ``H = W = 1``.
* ``masks``: bool ``(B, T)``, True = a valid date.
* ``doy``: int64 ``(B, T)``, day of year 1..366 (anything, e.g. 0, at padded dates) -- or, for a
  model with ``date_encoding="days_since"``, ``dates``: int64 ``(B, T)`` days since 1970-01-01.

Output: ``logits`` float32 ``(B, num_classes)``. :func:`export_input_names` gives the names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


EXPORT_FORMATS = ("onnx", "exported-program")


class _ExportModule(nn.Module):
    """The classifier with the exported inputs as positional arguments."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.uses_dates = model.config.date_encoding == "days_since"

    def forward(self, sequences: torch.Tensor, masks: torch.Tensor,
                dates: torch.Tensor) -> torch.Tensor:
        if self.uses_dates:
            return self.model(sequences, masks, dates=dates)
        return self.model(sequences, masks, doy=dates)


def export_input_names(model: nn.Module) -> list[str]:
    """Names of the exported model's inputs: ``sequences``, ``masks`` and ``doy`` (``dates``
    for ``date_encoding="days_since"``)."""
    date = "dates" if model.config.date_encoding == "days_since" else "doy"
    return ["sequences", "masks", date]


def example_inputs(model: nn.Module, batch: int = 2, num_dates: int | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A padded example batch for tracing: random values, the last dates of sample 0 masked.

    ``batch`` and ``num_dates`` must be at least 2 (size-1 axes would be fixed in the graph).
    """
    cfg = model.config
    t = num_dates or min(cfg.max_seq_len, 8)
    if batch < 2 or t < 2:
        raise ValueError(f"example inputs need batch >= 2 and num_dates >= 2 so that both axes "
                         f"stay dynamic; got batch={batch}, num_dates={t}")
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(0)
    sequences = torch.randn(batch, t, cfg.in_channels, cfg.img_size, cfg.img_size, generator=g)
    masks = torch.ones(batch, t, dtype=torch.bool)
    masks[0, t // 2:] = False
    doy = torch.linspace(1, 366, t).round().long().expand(batch, t).contiguous()
    if cfg.date_encoding == "days_since":
        doy = doy + model._reference_day
    return sequences.to(device), masks.to(device), doy.to(device)


def _dynamic_shapes(model: nn.Module) -> tuple[dict[int, Any], ...]:
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    dates = torch.export.Dim("dates", min=1, max=model.config.max_seq_len)
    axes = {0: batch, 1: dates}
    return (axes, axes, axes)


def export_program(model: nn.Module) -> torch.export.ExportedProgram:
    """``torch.export`` the model in eval mode with a dynamic batch and number of dates.

    Call the result as ``program.module()(sequences, masks, doy)``.
    """
    model = model.eval()
    return torch.export.export(_ExportModule(model), example_inputs(model),
                               dynamic_shapes=_dynamic_shapes(model))


def export_model(model: nn.Module, path: str | Path, format: str) -> Path:
    """Write ``model`` to ``path`` as ``"exported-program"`` (``torch.export.save``; load with
    ``torch.export.load(path).module()``) or ``"onnx"`` (one self-contained ``.onnx`` file;
    needs the ``onnx`` extra). Returns the path written."""
    if format not in EXPORT_FORMATS:
        raise ValueError(f"export format must be one of {EXPORT_FORMATS}, got {format!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    program = export_program(model)
    if format == "exported-program":
        torch.export.save(program, str(path))
        return path
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"ONNX export needs the 'onnx' extra (pip install 'sitsformer[onnx]'); "
            f"missing: {err.name}"
        ) from err
    onnx_program = torch.onnx.export(
        program, input_names=export_input_names(model), output_names=["logits"],
        dynamo=True, external_data=False, verbose=False,
    )
    onnx_program.save(str(path), external_data=False)
    return path
