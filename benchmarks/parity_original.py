"""Parity with the original SITS-Former code: its checkpoints loaded here give its outputs.

``--orig PATH`` is the ``code/`` folder of a clone of https://github.com/linlei1214/SITS-Former;
its ``model`` package is imported from there. The script

1. builds the original ``BERT`` (10 bands, 5x5 patches, width 256, 3 layers, 8 heads: its
   defaults; ``--tiny`` for width 8, 1 layer, 2 heads, stem 2/4 filters), gives every weight,
   BatchNorm statistic and LayerNorm random values (fresh ones would hide a swapped key), and
   wraps it in ``BERTClassification`` and ``BERTPrediction``;
2. saves the three files the original's trainers write: ``checkpoint.bert.tar``
   (``torch.save(bert.state_dict())``), pre-training and fine-tuning ``checkpoint.tar``
   (``{"model_state_dict", "optimizer_state_dict"}``, plus ``epoch`` for fine-tuning);
3. loads them with :func:`sitsformer.models.load_original_checkpoint` (``weights_only=True``)
   and compares, on one batch laid out as the original's data loaders lay it out (reflectance
   / 10000, series of different lengths padded with zeros at the end, day of year 0 there):
   encoder features (every date, padded ones included, and the valid dates with token
   packing), logits, pre-training reconstructions, in fp32 (tolerance ``--tol``, 1e-5) and
   under bf16 autocast (``--bf16-tol``, against the fp32 original), with the dense conv3d
   stem and with ``nn.Conv3d`` itself;
4. compares one training step's function: both classifiers in train mode with every dropout
   at 0 (BatchNorm on batch statistics): the loss, the gradient of every weight and the
   BatchNorm running statistics after it (tolerance 1e-4: the stem's gradients are sums over
   every patch of the batch; the dense stem in float64, 1e-9: see :func:`compare_training`).

Prints every largest absolute difference and exits 1 when one is over its tolerance.
``--time`` adds a timing of the fp32 forward of ``sitsformer_original_exact`` (post-norm) against
``sitsformer_original`` (pre-norm) at the same sizes.

Usage::

    python benchmarks/parity_original.py --orig /work/orig_sitsformer/code
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sitsformer.models import create_sits_former, load_original_checkpoint

TINY = {"hidden": 8, "layers": 1, "heads": 2, "stem": (2, 4)}  # --tiny and the CI fixture


def import_original(path: str) -> Any:
    """The original's ``model`` package, imported from its ``code/`` folder."""
    code = Path(path)
    if not (code / "model" / "bert.py").is_file():
        raise SystemExit(f"--orig must be the code/ folder of the SITS-Former clone (with "
                         f"model/bert.py); found no {code / 'model' / 'bert.py'}")
    sys.path.insert(0, str(code))
    try:
        return importlib.import_module("model")
    finally:
        sys.path.remove(str(code))


def build_original(orig: Any, tiny: bool, bands: int = 10) -> Any:
    """The original ``BERT``: its defaults, or (``tiny``) the same classes at width 8.

    At the tiny size the original's own modules are built with smaller sizes (its
    ``BERTEmbedding`` fixes the stem at 32/64 filters and width 256): ``conv1``/``conv2``'s
    ``Conv3d`` and ``BatchNorm3d``, the ``linear`` projection and its ``PositionalEncoding``
    are replaced by the same classes at 2/4 filters and width 8 (:data:`TINY`). The forward is
    the original's.
    """
    if not tiny:
        return orig.BERT(num_features=bands, hidden=256, n_layers=3, attn_heads=8, dropout=0.1)
    from model.embedding.position import PositionalEncoding  # the original's class

    hidden, c1, c2 = TINY["hidden"], *TINY["stem"]
    bert = orig.BERT(num_features=bands, hidden=hidden, n_layers=TINY["layers"],
                     attn_heads=TINY["heads"], dropout=0.1)
    emb = bert.embedding
    emb.conv1[0] = nn.Conv3d(1, c1, kernel_size=(5, 3, 3))
    emb.conv1[2] = nn.BatchNorm3d(c1)
    emb.conv2[0] = nn.Conv3d(c1, c2, kernel_size=(5, 3, 3))
    emb.conv2[2] = nn.BatchNorm3d(c2)
    emb.linear = nn.Linear(c2 * 2, hidden)
    emb.position = PositionalEncoding(d_model=hidden, max_len=366)
    emb.embed_size = hidden
    return bert


def randomise(module: nn.Module, seed: int) -> None:
    """Random values in every weight and BatchNorm statistic (not the date table): matrices
    at the scale of their initialisation, vectors (biases, norm gains) 0.1 around 0 or 1."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            # matrices at their initialisation's scale (1 / sqrt(fan-in)), like a trained model
            scale = p[0].numel() ** -0.5 if p.dim() > 1 else 0.1
            base = 1.0 if name.endswith("weight") and p.dim() == 1 else 0.0
            p.copy_(base + scale * torch.randn(p.shape, generator=gen))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=gen))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))
            elif name.endswith("num_batches_tracked"):
                b.fill_(17)


def original_batch(b: int, t: int, bands: int, seed: int) -> dict[str, torch.Tensor]:
    """A batch laid out like the original's data loaders: ``ts / 10000`` padded with zeros at
    the end of every series, ``doy`` 0 there, ``bert_mask`` 1 at the valid dates."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(max(t // 3, 2), t + 1, (b,), generator=gen)
    lengths[0] = t  # one series without padding
    x = torch.zeros(b, t, bands, 5, 5)
    doy = torch.zeros(b, t, dtype=torch.long)
    mask = torch.zeros(b, t, dtype=torch.long)
    for i, n in enumerate(lengths.tolist()):
        raw = torch.randint(0, 6000, (n, bands, 5, 5), generator=gen).double()
        x[i, :n] = (raw / 10000.0).float()
        doy[i, :n] = torch.sort(torch.randperm(366, generator=gen)[:n] + 1).values
        mask[i, :n] = 1
    return {"x": x, "doy": doy, "mask": mask}


def save_like_original(folder: Path, bert: nn.Module, cls: nn.Module, pred: nn.Module
                       ) -> dict[str, Path]:
    """The files the original's trainers write, written the way they write them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"bert": folder / "pretrain" / "checkpoint.bert.tar",
             "pretrain": folder / "pretrain" / "checkpoint.tar",
             "finetune": folder / "finetune" / "checkpoint.tar"}
    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    # trainer/pretrain.py BERTTrainer.save
    optim = torch.optim.Adam(pred.parameters(), lr=1e-3)
    torch.save({"model_state_dict": pred.state_dict(),
                "optimizer_state_dict": optim.state_dict()}, paths["pretrain"])
    torch.save(bert.state_dict(), paths["bert"])
    # trainer/finetune.py BERTFineTuner.save
    optim = torch.optim.Adam(cls.parameters(), lr=2e-4, weight_decay=1e-4)
    torch.save({"epoch": 3, "model_state_dict": cls.state_dict(),
                "optimizer_state_dict": optim.state_dict()}, paths["finetune"])
    return paths


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().float() - b.detach().float()).abs().max())


def compare(orig_code: str, tiny: bool, tol: float, bf16_tol: float, seed: int = 0,
            batch: int = 16, t: int = 50, heads: int | None = None,
            quiet: bool = False) -> list[tuple[str, float, float]]:
    """Every compared output: ``(name, largest absolute difference, tolerance)``."""
    orig = import_original(orig_code)
    torch.manual_seed(seed)
    bert_c = build_original(orig, tiny)
    num_classes = 15
    cls = orig.BERTClassification(bert_c, num_classes)
    randomise(cls, seed)
    bert_p = build_original(orig, tiny)
    pred = orig.BERTPrediction(bert_p, 10)
    randomise(pred, seed + 1)
    for m in (cls, pred):
        m.eval()
    heads = heads or (TINY["heads"] if tiny else 8)
    data = original_batch(batch, t, 10, seed)
    x, doy, mask = data["x"], data["doy"], data["mask"]
    with torch.no_grad():
        ref_feat = bert_c(x, doy, mask)
        ref_logits = cls(x, doy, mask)
        ref_recon = pred(x, doy, mask)
    rows: list[tuple[str, float, float]] = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # the yardstick
        rows.append(("the ORIGINAL's own logits under bf16 autocast (for scale)",
                     max_diff(cls(x, doy, mask), ref_logits), float("inf")))
        rows.append(("the ORIGINAL's own reconstructions under bf16 autocast (for scale)",
                     max_diff(pred(x, doy, mask), ref_recon), float("inf")))
    valid = mask.bool()
    with tempfile.TemporaryDirectory() as tmp:
        paths = save_like_original(Path(tmp), bert_c, cls, pred)
        enc, _ = load_original_checkpoint(paths["bert"], num_heads=heads)
        clf, ck = load_original_checkpoint(paths["finetune"], num_heads=heads)
        pre, _ = load_original_checkpoint(paths["pretrain"], num_heads=heads)
    if not quiet:
        print(f"mapped {len(ck['original_keys'])} keys of the fine-tuning checkpoint; "
              f"parameters: original {sum(p.numel() for p in cls.parameters()):,}, "
              f"sitsformer {sum(p.numel() for p in clf.parameters()):,}")
    for model in (enc, clf, pre):
        model.eval()
    for stem in ("dense", "conv3d"):
        for m in (enc, clf, pre.encoder):
            m.embed.fast = stem == "dense"
        for packing in (False, True):
            tag = f"{stem} stem, {'packed' if packing else 'padded'}"
            for m in (enc, clf, pre.encoder):
                m.set_token_packing(packing)
            for precision in ("fp32", "bf16"):
                ctx = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16"
                       else contextlib.nullcontext())
                limit = tol if precision == "fp32" else bf16_tol
                with torch.no_grad(), ctx:
                    feat, _ = enc.forward_features(x, valid, doy)
                    feat = feat[:, :, 0]
                    logits = clf(x, valid, doy)
                    out = pre(x, valid, doy, hidden=torch.zeros_like(valid))
                name = f"{tag}, {precision}"
                if packing:  # padded dates are zero features there (not computed)
                    rows.append((f"encoder features, valid dates ({name})",
                                 max_diff(feat[valid], ref_feat[valid]), limit))
                else:
                    rows.append((f"encoder features, all dates ({name})",
                                 max_diff(feat, ref_feat), limit))
                rows.append((f"logits ({name})", max_diff(logits, ref_logits), limit))
                rows.append((f"reconstructions, valid dates ({name})",
                             max_diff(out["pred"][valid], ref_recon[valid]), limit))
                if not packing:
                    rows.append((f"reconstructions, all dates ({name})",
                                 max_diff(out["pred"], ref_recon), limit))
    rows += compare_training(cls, x, doy, mask, paths_heads=(orig_code, tiny, heads, seed))
    return rows


def compare_training(cls: nn.Module, x: torch.Tensor, doy: torch.Tensor, mask: torch.Tensor,
                     paths_heads: tuple[str, bool, int, int], tol: float = 1e-4
                     ) -> list[tuple[str, float, float]]:
    """One training step's function: both classifiers in train mode with every dropout at 0
    (BatchNorm on batch statistics), the padded batch: the loss, the cross-entropy gradient of
    every weight (ours named through the key map) and the BatchNorm running statistics after
    it, with the ``nn.Conv3d`` stem (absolute tolerance ``tol``) and with the dense stem.

    The dense stem runs in float64 on both sides (tolerance 1e-9): in fp32 its features differ
    from ``nn.Conv3d``'s by rounding (1e-5), and a ReLU whose input is that close to 0 then
    switches, which moves a gradient by a step (a ReLU network's gradient is not continuous):
    measured, up to 1 % of a weight's largest gradient, noise that says nothing of the
    function."""
    _, tiny, heads, seed = paths_heads
    for m in cls.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(m, nn.MultiheadAttention):
            m.dropout = 0.0
    y = torch.randint(0, cls.classification.linear.out_features, (x.shape[0],),
                      generator=torch.Generator().manual_seed(seed))
    start = {k: v.clone() for k, v in cls.state_dict().items()}
    rows: list[tuple[str, float, float]] = []
    for stem in ("conv3d", "dense"):
        cls.load_state_dict(start)  # the running statistics as saved, for both stems
        cls.zero_grad()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "checkpoint.tar"
            torch.save({"epoch": 0, "model_state_dict": cls.state_dict(),
                        "optimizer_state_dict": {}}, path)
            ours, ck = load_original_checkpoint(path, num_heads=heads, dropout=0.0,
                                                attn_dropout=0.0)
        ours.set_token_packing(False)
        ours.embed.fast = stem == "dense"
        dtype = torch.float64 if stem == "dense" else torch.float32
        cls.to(dtype)
        ours.to(dtype)
        cls.train()
        ours.train()
        loss_o = nn.functional.cross_entropy(cls(x.to(dtype), doy, mask), y)
        loss_s = nn.functional.cross_entropy(ours(x.to(dtype), mask.bool(), doy), y)
        loss_o.backward()
        loss_s.backward()
        mine = dict(ours.named_parameters())
        pairs = [(p.grad, mine[ck["original_keys"][k]].grad) for k, p in cls.named_parameters()]
        buffers = dict(ours.named_buffers())
        stats = max(max_diff(b, buffers[ck["original_keys"][k]])
                    for k, b in cls.named_buffers() if "running" in k)
        limit = 1e-9 if stem == "dense" else tol
        tag = f"training, {stem} stem, {'fp64' if stem == 'dense' else 'fp32'}"
        rows.append((f"{tag}: loss", max_diff(loss_o, loss_s), limit))
        rows.append((f"{tag}: gradient of every weight",
                     max(max_diff(a, b) for a, b in pairs), limit))
        rows.append((f"{tag}: BatchNorm running statistics", stats, limit))
    cls.float()
    cls.load_state_dict(start)
    cls.eval()
    return rows


def write_fixture(orig_code: str, folder: Path, seed: int = 0) -> None:
    """The CI fixture (tests/data/original_sitsformer): the three files the original's trainers
    write, at the tiny size, and ``reference.npz``: a fixed input (``ts`` as stored in the
    original's files, int16 reflectance x 10000, already padded the way its loaders pad;
    ``doy``, ``mask``) and the ORIGINAL code's outputs on it (eval mode, fp32): ``features``
    (its BERT), ``logits`` (BERTClassification), ``recon`` (BERTPrediction); and one training
    step of the classifier (train mode, every dropout 0): ``train_logits`` and, for labels
    ``y``, the cross-entropy gradient of every weight (``grad:<its key>``)."""
    import numpy as np

    orig = import_original(orig_code)
    torch.manual_seed(seed)
    bert_c = build_original(orig, True)
    cls = orig.BERTClassification(bert_c, 3)
    randomise(cls, seed)
    bert_p = build_original(orig, True)
    pred = orig.BERTPrediction(bert_p, 10)
    randomise(pred, seed + 1)
    cls.eval()
    pred.eval()
    gen = torch.Generator().manual_seed(seed)
    b, t = 3, 8
    lengths = [8, 5, 2]
    ts = torch.zeros(b, t, 10, 5, 5, dtype=torch.int16)
    doy = torch.zeros(b, t, dtype=torch.long)
    mask = torch.zeros(b, t, dtype=torch.long)
    for i, n in enumerate(lengths):
        ts[i, :n] = torch.randint(0, 6000, (n, 10, 5, 5), generator=gen).short()
        doy[i, :n] = torch.sort(torch.randperm(366, generator=gen)[:n] + 1).values
        mask[i, :n] = 1
    x = torch.from_numpy(ts.numpy() / 10000.0).float()  # as its FinetuneDataset + .float()
    with torch.no_grad():
        features, logits, recon = bert_c(x, doy, mask), cls(x, doy, mask), pred(x, doy, mask)
    save_like_original(folder, bert_c, cls, pred)
    # one training step's function: a copy in train mode, every dropout at 0
    import copy

    train = copy.deepcopy(cls)
    for m in train.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(m, nn.MultiheadAttention):
            m.dropout = 0.0
    train.train()
    y = torch.tensor([2, 0, 1])
    train_logits = train(x, doy, mask)
    nn.functional.cross_entropy(train_logits, y).backward()
    grads = {f"grad:{k}": p.grad.numpy() for k, p in train.named_parameters()}
    np.savez_compressed(folder / "reference.npz", ts=ts.numpy(), doy=doy.numpy(),
                        mask=mask.numpy().astype(np.int8), features=features.numpy(),
                        logits=logits.numpy(), recon=recon.numpy(), y=y.numpy(),
                        train_logits=train_logits.detach().numpy(), **grads)


def time_forward(batch: int, t: int, repeats: int) -> dict[str, float]:
    """Median seconds of an fp32 eval forward, post-norm (exact) against pre-norm."""
    data = original_batch(batch, t, 10, 0)
    out = {}
    models = {v: create_sits_former(v, num_classes=15).eval()
              for v in ("sitsformer_original", "sitsformer_original_exact")}
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.no_grad():
        for _ in range(repeats):
            for name, m in models.items():
                start = time.perf_counter()
                m(data["x"], data["mask"].bool(), data["doy"])
                times[name].append(time.perf_counter() - start)
    for name, ts in times.items():
        out[name] = sorted(ts)[len(ts) // 2]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orig", required=True, help="the code/ folder of the SITS-Former clone")
    parser.add_argument("--tiny", action="store_true", help="width 8, 1 layer (fast)")
    parser.add_argument("--tol", type=float, default=1e-5, help="fp32 tolerance")
    parser.add_argument("--bf16-tol", type=float, default=0.1,
                        help="bf16 autocast tolerance (against the fp32 original)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time", action="store_true", help="time post- against pre-norm")
    parser.add_argument("--write-fixture", metavar="DIR",
                        help="write the CI fixture (tiny original checkpoints and reference "
                        "outputs) to DIR and exit")
    args = parser.parse_args(argv)
    if args.write_fixture:
        write_fixture(args.orig, Path(args.write_fixture), args.seed)
        print(f"wrote {sorted(str(p) for p in Path(args.write_fixture).rglob('*') if p.is_file())}")
        return 0
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = compare(args.orig, args.tiny, args.tol, args.bf16_tol, args.seed, args.batch)
    failed = 0
    print(f"{'compared output':<68}{'max |diff|':>12}{'tol':>9}")
    for name, diff, limit in rows:
        bad = not diff <= limit
        failed += bad
        print(f"{name:<68}{diff:>12.2e}{limit:>9.0e}{'  OVER' if bad else ''}")
    if args.time:
        times = time_forward(64, 50, 7)
        for name, sec in times.items():
            print(f"fp32 eval forward, batch 64, T 50: {name}: {sec * 1000:.1f} ms")
    if failed:
        print(f"{failed} output(s) over tolerance")
        return 1
    print("all outputs within tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
