"""bf16 on a CPU without native bf16 instructions is emulated (9x slower than fp32 for the
pixel recipe's step, measured on an AVX2 EPYC): asking for it warns once, naming the setting."""

from __future__ import annotations

import warnings

import pytest
import torch

import sitsformer._hardware as hw
from sitsformer.models import create_model
from sitsformer.training.trainer import SITSFormerTrainer


def test_flags_decide_native_bf16(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n\nprocessor\t: 1\n")
    assert hw.cpu_flags(str(info)) == {"fpu", "sse2", "avx2", "fma"}
    assert hw.cpu_bf16_native({"avx2", "fma"}) is False
    assert hw.cpu_bf16_native({"avx512f", "avx512_bf16"}) is True
    assert hw.cpu_bf16_native({"amx_bf16"}) is True
    assert hw.cpu_bf16_native({"fp", "asimd", "bf16"}) is True  # aarch64 'Features'
    assert hw.cpu_flags(str(tmp_path / "missing")) is None


def _trainer(precision):
    model = create_model("sitsformer_pixel", num_classes=3, in_channels=2, embed_dim=16,
                         num_layers=1, num_heads=2, max_seq_len=8)
    return SITSFormerTrainer(model, torch.optim.AdamW(model.parameters()), device="cpu",
                   precision=precision)


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_without_it_warns_once(monkeypatch, native):
    monkeypatch.setattr(hw, "_warned", False)
    monkeypatch.setattr(hw, "cpu_bf16_native", lambda flags=None: native)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _trainer("fp32")
        _trainer("bf16")
        _trainer("bf16")
    ours = [w for w in caught if "native bf16" in str(w.message)]
    if native:
        assert ours == []
    else:
        assert len(ours) == 1 and ours[0].category is RuntimeWarning
        assert str(ours[0].message).startswith(
            "train.precision=bf16 on a CPU without native bf16 instructions")
        assert "use fp32 on this machine" in str(ours[0].message)
