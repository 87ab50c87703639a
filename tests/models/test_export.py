"""Export and compile keep masking: ``sitsformer export`` (ONNX, torch.export program) and
``torch.compile(fullgraph=True)`` with no graph break, all equal to eager PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sitsformer.cli import main
from sitsformer.models import create_sits_former
from sitsformer.models.export import example_inputs, export_input_names
from sitsformer.models import save_checkpoint

CASES = {
    "patch": ("sitsformer_tiny", {}),
    "conv3d": ("sitsformer_original", dict(embed_dim=32, num_layers=1, num_heads=4)),
    "days_since": ("sitsformer_pixel", dict(embed_dim=32, num_layers=1, num_heads=4,
                                            date_encoding="days_since",
                                            reference_date="2020-09-01")),
}


def build(case: str):
    name, kw = CASES[case]
    torch.manual_seed(0)
    return create_sits_former(name, num_classes=4, dropout=0.0, **kw).eval()


def padded_batch(model, b: int = 4, t: int = 11, seed: int = 1):
    """Several samples: sample 0 with most dates padded, sample 1 with every third date masked,
    the last one (of 3 or more) without any valid date; values at padded dates are large
    garbage that must not matter."""
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, cfg.in_channels, cfg.img_size, cfg.img_size, generator=g)
    masks = torch.ones(b, t, dtype=torch.bool)
    masks[0, 2:] = False
    masks[1, 1::3] = False
    if b >= 3:
        masks[-1] = False
    x[~masks] = 1e3
    doy = torch.sort(torch.randint(1, 366, (b, t), generator=g), dim=1).values
    doy[~masks] = 0
    if cfg.date_encoding == "days_since":
        doy = doy + model._reference_day
    return x, masks, doy


def eager(model, x, masks, dates):
    with torch.no_grad():
        if model.config.date_encoding == "days_since":
            return model(x, masks, dates=dates)
        return model(x, masks, dates)


def write_checkpoint(model, path):
    save_checkpoint(path, {"model_config": model.config.to_dict(),
                           "model_state_dict": model.state_dict(), "epoch": 1, "global_step": 1})
    return path


@pytest.mark.parametrize("case", ["patch", "days_since"])  # conv3d: the ONNX test
def test_cli_exported_program_matches_eager_on_a_padded_batch(case, tmp_path, one_thread):
    model = build(case)
    ckpt = write_checkpoint(model, tmp_path / "best.pt")
    out = tmp_path / "model.pt2"
    assert main(["export", "--checkpoint", str(ckpt), "--format", "exported-program",
                 "--output", str(out)]) == 0
    program = torch.export.load(str(out)).module()
    for b, t in [(4, 11), (3, 5)]:  # dynamic batch and number of dates
        x, masks, dates = padded_batch(model, b, t)
        ref = eager(model, x, masks, dates)
        with torch.no_grad():
            got = program(x, masks, dates)
        assert got.shape == (b, 4)
        assert (got - ref).abs().max() <= 1e-4
    # The mask is a real input: the same values with every date valid give other logits.
    x, masks, dates = padded_batch(model)
    with torch.no_grad():
        all_valid = program(x, torch.ones_like(masks), dates)
    assert (all_valid[0] - eager(model, x, masks, dates)[0]).abs().max() > 1e-2


def test_cli_onnx_matches_eager_on_a_padded_batch(tmp_path, one_thread, capsys):
    ort = pytest.importorskip("onnxruntime", reason="the optional 'onnx' extra (onnxruntime) "
                              "is not installed")
    model = build("conv3d")
    ckpt = write_checkpoint(model, tmp_path / "best.pt")
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--format", "onnx",
                 "--output", str(out)]) == 0
    # the long export is announced before it starts, with what is exported
    n_params = sum(p.numel() for p in model.parameters())
    captured = capsys.readouterr()
    assert captured.err.splitlines()[0] == (
        f"exporting {ckpt} (sitsformer, {n_params:,} parameters) as onnx: tracing with "
        "torch.export, then converting to ONNX (tens of seconds on a few CPU cores) ...")
    assert captured.out.startswith(f"wrote onnx model to {out} in ")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == export_input_names(model) == ["sequences", "masks", "doy"]
    for b, t in [(4, 11), (2, 7)]:
        x, masks, dates = padded_batch(model, b, t)
        got = session.run(["logits"], {"sequences": x.numpy(), "masks": masks.numpy(),
                                       "doy": dates.numpy()})[0]
        ref = eager(model, x, masks, dates).numpy()
        assert got.shape == (b, 4)
        assert np.abs(got - ref).max() <= 1e-4
    # Changing values at padded dates changes nothing; unmasking them does.
    x, masks, dates = padded_batch(model)
    x2 = torch.where(masks[..., None, None, None], x, torch.randn_like(x))
    feed = {"sequences": x.numpy(), "masks": masks.numpy(), "doy": dates.numpy()}
    a = session.run(["logits"], feed)[0]
    b_ = session.run(["logits"], {**feed, "sequences": x2.numpy()})[0]
    c = session.run(["logits"], {**feed, "masks": np.ones_like(feed["masks"])})[0]
    assert np.abs(a - b_).max() <= 1e-5
    assert np.abs(a[0] - c[0]).max() > 1e-2


def test_cli_export_errors_name_the_problem(tmp_path, capsys):
    assert main(["export", "--checkpoint", str(tmp_path / "missing.pt"), "--format",
                 "exported-program", "--output", str(tmp_path / "m.pt2")]) == 1
    assert "missing.pt not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "--checkpoint", "x.pt", "--format", "tflite", "--output", "m"])


def test_export_traced_with_all_valid_dates_still_masks(one_thread):
    """An example batch without padding must not bake "no mask" into the graph."""
    model = build("patch")
    x, _, dates = padded_batch(model, 2, 6)
    program = torch.export.export(
        model, (x, torch.ones(2, 6, dtype=torch.bool), dates),
        dynamic_shapes=({0: torch.export.Dim("b", max=64), 1: torch.export.Dim("t", max=64)},) * 3,
    ).module()
    x, masks, dates = padded_batch(model)
    with torch.no_grad():
        got = program(x, masks, dates)
    assert (got - eager(model, x, masks, dates)).abs().max() <= 1e-5


def test_example_inputs_need_two_samples_and_dates():
    with pytest.raises(ValueError, match="batch >= 2 and num_dates >= 2"):
        example_inputs(build("patch"), batch=1)


# Training mode of the patch stem: test_compiled_training_step_gradients_equal_eager.
@pytest.mark.parametrize("case, train", [("patch", False), ("conv3d", True), ("days_since", False)])
def test_compile_has_no_graph_break(case, train, one_thread):
    import torch._dynamo

    model = build(case).train(train)
    if train:  # dropout and the learned pieces are part of the training graph too
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.1
    x, masks, dates = padded_batch(model)
    kw = {"dates": dates} if case == "days_since" else {"doy": dates}
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(x, masks, **kw)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


def test_compiled_fullgraph_equals_eager_for_changing_batch_and_dates(one_thread):
    import torch._dynamo

    model = build("conv3d")
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, dynamic=True, backend="eager")
    for b, t in [(4, 11), (3, 6)]:
        x, masks, dates = padded_batch(model, b, t)
        with torch.no_grad():
            got = compiled(x, masks, dates)
        assert (got - eager(model, x, masks, dates)).abs().max() <= 1e-5


def test_compiled_training_step_gradients_equal_eager(one_thread):
    import torch._dynamo

    model = build("patch").train()
    x, masks, dates = padded_batch(model)
    masks[-1, 0] = True  # every sample valid so that every parameter gets a gradient
    y = torch.tensor([0, 1, 2, 3])
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    grads = []
    for fn in (model, compiled):
        model.zero_grad()
        torch.nn.functional.cross_entropy(fn(x, masks, dates), y).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        assert (a - b).abs().max() <= 1e-5


def test_cli_export_does_not_replace_a_file_without_overwrite(tmp_path, capsys, one_thread):
    """Issue 32: no command overwrites a file it did not create unless --overwrite says so."""
    ckpt = write_checkpoint(build("patch"), tmp_path / "best.pt")
    out = tmp_path / "model.pt2"
    out.write_text("mine")
    cmd = ["export", "--checkpoint", str(ckpt), "--format", "exported-program", "--output",
           str(out)]
    assert main(cmd) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: output exists: {out} (pass --overwrite to replace it)")
    assert out.read_text() == "mine"
    assert main([*cmd, "--overwrite"]) == 0 and out.stat().st_size > 100
