"""Does self-supervised pre-training help when labels are few? (real data, grouped splits)

Data: the Victoria Sentinel-2 pixel time series (800 pixels, 73 dates, 10 bands, 8 classes,
182 polygons) read from the raw CSV tables with ``sitsformer.data.open_source``.

1. Pre-train a SITS-Former encoder by masked-date reconstruction on every sample *without
   its label* (``--holdout F`` keeps a share F of the polygons out, to measure the
   reconstruction error against linear interpolation between the neighbouring visible dates).
2. Split the labelled pixels by polygon (train / val / test, no polygon on two sides), keep
   5 %, 10 %, 25 % and 100 % of the training labels (per class, same subset for both arms) and
   train (a) the pre-trained encoder with a fresh head and (b) the same model from scratch,
   with the same recipe and the same number of optimizer updates, for ``--seeds`` training
   seeds (the split and the label subsets are the same for every seed); the test checkpoint
   (``--test-checkpoint``: the best epoch on the validation loss, or the last one, with
   ``--ema`` the weight average) is evaluated on the test polygons. The table gives the mean
   +- std over the seeds and the gain of pre-training.

The unlabelled pre-training pool contains the test pixels (without labels): the usual
transductive setting of SITS pre-training, where every pixel of the area is available
unlabelled. Run ``python benchmarks/bench_pretrain.py`` (about 20-40 minutes with 3 seeds on a
shared 2-core CPU; ``--quick`` for a smoke run); prints OA, kappa and macro-F1 per label budget.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sitsformer.data import shared_data_dir
from sitsformer.training.config import (
    FinetuneExperimentConfig,
    PretrainExperimentConfig,
    load_config,
)
from sitsformer.training.finetune import run_finetuning
from sitsformer.training.pretrain import run_pretraining


def model_overrides(args: argparse.Namespace) -> list[str]:
    return ["model.variant=sitsformer_pixel", f"model.embed_dim={args.embed_dim}",
            f"model.num_layers={args.layers}", f"model.num_heads={args.heads}",
            "model.dropout=0.1"]


def common(args: argparse.Namespace, out: Path, name: str) -> list[str]:
    bands = ["data.options.bands=s2"] if not str(args.source).endswith(".npz") else []
    return [f"data.source={args.source}", *bands, "data.scale=10000",
            f"data.batch_size={args.batch}",
            "train.precision=fp32", f"train.threads={args.threads}", f"train.device={args.device}",
            f"logging.run_dir={out}", f"logging.name={name}", "logging.tensorboard=false",
            "logging.plots=false", "logging.progress=false", "schedule.type=cosine",
            "schedule.warmup_epochs=1"]


def pretrain(args: argparse.Namespace, out: Path) -> dict:
    overrides = [*common(args, out, "pretrain"), *model_overrides(args),
                 "data.split=group" if args.holdout else "data.split=random",
                 "data.val_fraction=0.0", f"data.test_fraction={args.holdout}",
                 f"train.epochs={args.pretrain_epochs}", f"optim.lr={args.pretrain_lr}",
                 *([f"train.min_steps={args.pretrain_updates}"] if args.pretrain_updates else []),
                 "optim.weight_decay=0.05", "pretrain.target=center",
                 f"pretrain.hide_ratio={args.hide_ratio}"]
    cfg = load_config(None, overrides, cls=PretrainExperimentConfig)
    t0 = time.perf_counter()
    res = run_pretraining(cfg)
    res["seconds"] = time.perf_counter() - t0
    return res


def train_pool_size(args: argparse.Namespace, out: Path) -> int:
    """Training pixels before the label budget (the same grouped split as fine-tuning)."""
    from sitsformer.data import DataModule

    cfg = load_config(None, [
        *common(args, out, "split"), "data.split=group", "data.val_fraction=0.15",
        "data.test_fraction=0.25"], cls=FinetuneExperimentConfig)
    return DataModule.from_config(cfg.data).read().train_pool_size


def finetune(args: argparse.Namespace, out: Path, fraction: float, ckpt: str | None,
             train_pool: int, seed: int = 0) -> dict:
    n_train = max(1, round(fraction * train_pool))
    steps = math.ceil(n_train / args.ft_batch)
    # the same number of updates for both arms; few labels -> many short epochs, capped
    # because every epoch also validates and writes checkpoints
    epochs = min(args.max_epochs, max(args.min_epochs, math.ceil(args.updates / steps)))
    name = f"{'pre' if ckpt else 'scratch'}_{int(round(fraction * 100)):03d}_seed{seed}"
    overrides = [*common(args, out, name), *model_overrides(args),
                 f"data.batch_size={args.ft_batch}",
                 "data.split=group", "data.val_fraction=0.15", "data.test_fraction=0.25",
                 f"train.epochs={epochs}", f"optim.lr={args.lr}", "optim.weight_decay=0.05",
                 f"finetune.label_fraction={fraction}", "train.monitor=val_loss",
                 f"train.seed={seed}", f"train.test_checkpoint={args.test_checkpoint}"]
    if args.ema:
        overrides.append(f"train.ema_decay={args.ema}")
    if ckpt:
        overrides += [f"optim.layer_decay={args.layer_decay}",
                      f"finetune.freeze_epochs={args.freeze_epochs}"]
    cfg = load_config(None, overrides, cls=FinetuneExperimentConfig)
    t0 = time.perf_counter()
    res = run_finetuning(cfg, ckpt)
    res["seconds"] = time.perf_counter() - t0
    res["epochs_run"] = epochs
    return res


def run_victoria(args: argparse.Namespace) -> int:
    if args.cpu_smoke:
        args.pretrain_epochs, args.updates, args.min_epochs, args.max_epochs = 2, 10, 1, 2
        args.fractions, args.seeds = "0.1,1.0", 1
    if args.finetune_updates:
        args.updates = args.finetune_updates
    args.source = args.source or str(Path(args.data_root) / "s2_victoria_igarss2019" / "raw")
    args.fractions = args.fractions or "0.05,0.1,0.25,1.0"
    torch.set_num_threads(args.threads)
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_pretrain_"))
    fractions = [float(f) for f in args.fractions.split(",")]
    print(f"source: {args.source}\nruns:   {out}\nmodel:  width {args.embed_dim}, "
          f"{args.layers} layers, {args.heads} heads; torch threads {args.threads}", flush=True)

    t_start = time.perf_counter()
    if args.pretrained:
        from sitsformer.models import load_checkpoint

        run = Path(args.pretrained).parent
        ck = load_checkpoint(args.pretrained)
        pre = {"best_checkpoint": args.pretrained, "data": ck["data_meta"],
               "test": json.loads((run / "test_metrics.json").read_text())
               if (run / "test_metrics.json").exists() else None}  # --holdout 0: no test
        print(f"\npre-training: reused {args.pretrained} (epoch {ck['epoch']}, "
              f"{pre['data']['split_sizes']['train']} unlabelled pixels)")
    else:
        pre = pretrain(args, out)
        print(f"\npre-training: {pre['epochs']} epochs on {pre['data']['split_sizes']['train']} "
              f"unlabelled pixels in {pre['seconds']:.0f} s "
              f"({pre['history'][-1]['samples_per_s']:.0f} samples/s in the last epoch)")
    t = pre.get("test")
    if t:
        print(f"held-out reconstruction ({pre['data']['split_sizes']['test']} pixels of unseen "
              f"polygons, {int(t['test_positions'])} hidden values, standardised units):")
        print(f"  model         MSE {t['test_mse']:.4f}  MAE {t['test_mae']:.4f}")
        print(f"  interpolation MSE {t['test_baseline_mse']:.4f}  MAE "
              f"{t['test_baseline_mae']:.4f}  (skill {t['test_skill']:+.3f})", flush=True)

    ckpt = pre["best_checkpoint"]
    pool = train_pool_size(args, out)
    rows = []
    for fraction in fractions:
        for arm, path in (("pretrained", ckpt), ("scratch", None)):
            for seed in range(args.seeds):
                res = finetune(args, out, fraction, path, pool, seed)
                test = res["test"]
                rows.append({"fraction": fraction, "arm": arm, "seed": seed,
                             "labels": res["data"]["split_sizes"]["train"],
                             "epochs": res["epochs_run"],
                             "best_epoch": res["trainer"].best_epoch,
                             "updates": res["trainer"].global_step,
                             "oa": test["test_oa"], "kappa": test["test_kappa"],
                             "macro_f1": test["test_macro_f1"], "seconds": res["seconds"]})
                r = rows[-1]
                print(f"  {fraction:>5.0%} {arm:<10} seed {seed} labels={r['labels']:>3} "
                      f"epochs={r['epochs']:>3} updates={r['updates']:>3} "
                      f"OA={r['oa']:.4f} kappa={r['kappa']:.4f} macroF1={r['macro_f1']:.4f} "
                      f"({r['seconds']:.0f} s)", flush=True)

    print(f"\nsplit sizes (pixels, grouped by polygon): {res['data']['split_sizes']} "
          f"of a {pool}-pixel training pool")

    def stat(fraction: float, arm: str, key: str) -> tuple[float, float]:
        v = np.array([r[key] for r in rows if r["fraction"] == fraction and r["arm"] == arm])
        return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0

    print(f"\nmean +- std over {args.seeds} seed(s)")
    print("| labels | pre-trained OA | macro-F1 | scratch OA | macro-F1 | gain (OA points) |")
    print("|---|---|---|---|---|---|")
    summary = []
    for fraction in fractions:
        n = next(r["labels"] for r in rows if r["fraction"] == fraction)
        (a, sa), (fa, _), (b, sb), (fb, _) = (stat(fraction, "pretrained", "oa"),
                                              stat(fraction, "pretrained", "macro_f1"),
                                              stat(fraction, "scratch", "oa"),
                                              stat(fraction, "scratch", "macro_f1"))
        summary.append({"fraction": fraction, "labels": n, "pretrained_oa": a,
                        "pretrained_oa_std": sa, "scratch_oa": b, "scratch_oa_std": sb,
                        "gain": a - b})
        print(f"| {fraction:.0%} ({n}) | {a:.3f} +- {sa:.3f} | {fa:.3f} | {b:.3f} +- {sb:.3f} "
              f"| {fb:.3f} | {100 * (a - b):+.1f} |")
    total = time.perf_counter() - t_start
    print(f"\ntotal {total:.0f} s")
    (out / "bench_pretrain.json").write_text(json.dumps(
        {"reconstruction": t, "rows": rows, "summary": summary, "seconds": total,
         "args": vars(args)}, indent=2))
    return 0


# ============================================================================ Slovenia
# The Slovenia EOPatch (../shared/data/s2_slovenia_eopatch): 101 x 100 pixels, 68 irregular
# Sentinel-2 NDVI dates (2015-07 .. 2017-12), ~40 % of the observations cloudy (mask/IS_VALID
# = IS_DATA & ~CLM: a cloudy date is an invalid date, so random_hiding never hides it and the
# reconstruction loss never targets it), per-pixel LULC labels (9,945 labelled pixels).
SLOVENIA = "s2_slovenia_eopatch/raw/example_data/TestEOPatch"
ARMS = ("pretrained", "scratch")


def slovenia_source(args: argparse.Namespace) -> str:
    return str(Path(args.data_root) / SLOVENIA)


def _write_json(path: Path, obj: Any) -> None:
    """Atomic: a killed run leaves the old file or none, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(path)


def block_split(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Spatially blocked split: square blocks of ``--block-size`` pixels, a share
    ``--test-share`` of the labelled pixels' blocks held out as test (assigned per majority
    class by the library's :func:`~sitsformer.data.splits.spatial_block_split`, so every
    common class has test blocks). Written as split files (``id,split``) for the labelled
    pixels (fine-tuning), for every pixel with the test blocks held out (the reconstruction
    run) and for every pixel as training (the pre-training that fine-tuning starts from)."""
    folder = out / "split"
    info_file = folder / "split.json"
    if info_file.exists():
        return json.loads(info_file.read_text())
    import warnings

    from sitsformer.data import open_source
    from sitsformer.data.module import sample_ids
    from sitsformer.data.splits import spatial_block_split

    src = slovenia_source(args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyogrio missing: default LULC names (said by the run)
        lab = open_source(src)
        every = open_source(src, label=None)
    bs = float(args.block_size)
    train, test = spatial_block_split(lab.coords, bs, args.test_share, 0.0, args.split_seed,
                                      labels=lab.labels)

    def block_keys(coords: np.ndarray) -> np.ndarray:
        b = np.floor(np.asarray(coords, np.float64) / bs).astype(np.int64)
        return b[:, 0] * 1_000_003 + b[:, 1]

    test_blocks = set(block_keys(lab.coords[test]).tolist())
    lab_side = np.isin(block_keys(lab.coords), list(test_blocks))
    assert set(np.flatnonzero(lab_side)) == set(test.tolist())  # whole blocks, one side each
    every_side = np.isin(block_keys(every.coords), list(test_blocks))
    folder.mkdir(parents=True, exist_ok=True)

    def write(name: str, ids: np.ndarray, is_test: np.ndarray) -> str:
        path = folder / name
        lines = ["id,split", *(f"{i},{'test' if t else 'train'}" for i, t in zip(ids, is_test))]
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    classes = list(lab.classes)
    info = {
        "block_size_px": args.block_size, "test_share": args.test_share,
        "split_seed": args.split_seed,
        "blocks": int(np.unique(block_keys(every.coords)).size),
        "test_blocks": len(test_blocks),
        "labelled": {"train": int((~lab_side).sum()), "test": int(lab_side.sum())},
        "every_pixel": {"train": int((~every_side).sum()), "test": int(every_side.sum())},
        "classes": classes,
        "train_per_class": np.bincount(lab.labels[~lab_side], minlength=len(classes)).tolist(),
        "test_per_class": np.bincount(lab.labels[lab_side], minlength=len(classes)).tolist(),
        "labelled_split": write("labelled.csv", sample_ids(lab), lab_side),
        "holdout_split": write("every_pixel_holdout.csv", sample_ids(every), every_side),
        "all_train_split": write("every_pixel_train.csv", sample_ids(every),
                                 np.zeros(len(every), bool)),
    }
    _write_json(info_file, info)
    return info


def slovenia_model(args: argparse.Namespace) -> list[str]:
    return ["model.variant=sitsformer_pixel", f"model.embed_dim={args.embed_dim}",
            f"model.num_layers={args.layers}", f"model.num_heads={args.heads}",
            "model.dropout=0.1"]


def slovenia_common(args: argparse.Namespace, out: Path, name: str) -> list[str]:
    return [f"data.source={slovenia_source(args)}", "data.scale=auto", "data.split=file",
            "data.val_fraction=0.0", "train.epochs=1", f"train.precision={args.precision}",
            f"train.threads={args.threads}", f"train.device={args.device}",
            f"logging.run_dir={out}", f"logging.name={name}", "logging.tensorboard=false",
            "logging.plots=false", "logging.progress=false", "schedule.type=cosine",
            "schedule.warmup_epochs=1", "optim.weight_decay=0.05"]


def _fresh_run(out: Path, name: str) -> None:
    """A row is redone from its start: remove what a killed attempt left."""
    import shutil

    if (out / name).exists():
        shutil.rmtree(out / name)


def slovenia_pretrain(args: argparse.Namespace, out: Path, which: str,
                      split: dict[str, Any]) -> dict[str, Any]:
    """``which="all"``: every pixel of the patch (labels ignored), the encoder fine-tuning
    starts from; ``"holdout"``: the same without the test blocks (reconstruction measured
    there, on series the model never saw)."""
    name = f"pretrain_{which}"
    _fresh_run(out, name)
    split_file = split["all_train_split" if which == "all" else "holdout_split"]
    overrides = [*slovenia_common(args, out, name), *slovenia_model(args),
                 "data.options.label=null", f"data.split_file={split_file}",
                 f"data.batch_size={args.batch}", f"train.min_steps={args.pretrain_updates}",
                 f"optim.lr={args.pretrain_lr}", "pretrain.target=center",
                 f"pretrain.hide_ratio={args.hide_ratio}", "pretrain.eval_seed=0",
                 f"data.date_shift_days={args.pretrain_date_shift}",
                 "train.test_checkpoint=last"]
    cfg = load_config(None, overrides, cls=PretrainExperimentConfig)
    t0 = time.perf_counter()
    res = run_pretraining(cfg)
    last = res["history"][-1] if res["history"] else {}
    assert Path(res["last_checkpoint"]) == out / name / "last.pt", res["last_checkpoint"]
    return {"which": which, "checkpoint": f"{name}/last.pt",  # under --out: movable
            "pixels": res["data"]["split_sizes"], "epochs": res["epochs"],
            "updates": res["global_step"], "final_train_loss": last.get("train_loss"),
            "samples_per_s": last.get("samples_per_s"), "test": res.get("test"),
            "input_spec": res["input_spec"], "seconds": time.perf_counter() - t0}


def slovenia_finetune(args: argparse.Namespace, out: Path, arm: str, fraction: float,
                      seed: int, split: dict[str, Any], ckpt: str | None) -> dict[str, Any]:
    """One (arm, fraction, seed) row: the label subset is drawn per class from the training
    blocks with ``data.seed = seed`` (the same subset for both arms of a seed), the same
    updates, learning rate and schedule for both arms; no validation split (it would hold more
    labels than the budget): the last checkpoint is scored on the test blocks."""
    name = row_name(arm, fraction, seed)
    _fresh_run(out, name)
    overrides = [*slovenia_common(args, out, name), *slovenia_model(args),
                 f"data.split_file={split['labelled_split']}", f"data.seed={seed}",
                 f"data.batch_size={args.ft_batch}", f"finetune.label_fraction={fraction}",
                 f"train.seed={seed}", f"train.min_steps={args.finetune_updates}",
                 f"optim.lr={args.lr}", "train.test_checkpoint=last",
                 "train.checkpoint_interval_s=30"]
    if ckpt:
        overrides += [f"optim.layer_decay={args.layer_decay}",
                      f"finetune.freeze_epochs={args.freeze_epochs}"]
    cfg = load_config(None, overrides, cls=FinetuneExperimentConfig)
    t0 = time.perf_counter()
    res = run_finetuning(cfg, ckpt)
    test = res["test"]
    return {"arm": arm, "fraction": fraction, "seed": seed,
            "labels": res["data"]["split_sizes"]["train"],
            "test_pixels": res["data"]["split_sizes"]["test"], "epochs": res["epochs"],
            "updates": res["global_step"], "oa": test["test_oa"], "kappa": test["test_kappa"],
            "macro_f1": test["test_macro_f1"], "seconds": time.perf_counter() - t0}


def row_name(arm: str, fraction: float, seed: int) -> str:
    return f"ft_{arm}_{fraction:.4f}_seed{seed}"


@torch.no_grad()
def reconstruction_errors(args: argparse.Namespace, ckpt_path: str, split_file: str,
                          ratios: list[float], seed: int = 0) -> dict[str, Any]:
    """Masked-date reconstruction on the held-out blocks, in data units (NDVI), per band:
    for each hide ratio, the same dates (valid, i.e. cloud-free) are hidden from the model
    and from linear interpolation in time (actual acquisition dates) between the neighbouring
    visible valid dates; the RMSE / MAE over the hidden dates, overall and by the length of
    the gap the interpolation bridges (days between the visible dates around a hidden one;
    'edge' = before the first or after the last visible date)."""
    from sitsformer.data import DataModule, InputSpec
    from sitsformer.models import load_checkpoint
    from sitsformer.models.pretrain import SITSFormerForPretraining, random_hiding
    from sitsformer.training.pretrain import date_positions

    device = torch.device(args.device)
    ck = load_checkpoint(ckpt_path)
    model = SITSFormerForPretraining.from_config(ck["model_config"])
    model.load_state_dict(ck["model_state_dict"])
    model.to(device).eval()
    spec = InputSpec.from_checkpoint(ck)
    dm = DataModule(source=slovenia_source(args), options={"label": None}, split="file",
                    split_file=split_file, val_fraction=0.0, labelled=False,
                    batch_size=512).read().prepare(spec)
    unit = np.asarray(spec.std if spec.std is not None else [1.0] * len(spec.bands))
    unit = unit * (spec.scale or 1.0)  # standardised error -> data units
    buckets = [("<=15 d", 0, 15), ("16-45 d", 16, 45), (">45 d", 46, 10 ** 9)]
    # a second yardstick that, like the model, uses the other pixels of the scene: every
    # pixel of the patch shares the acquisition dates, so a date's haze or undetected thin
    # cloud moves the whole patch; its mean over the training blocks' valid observations
    date_sum = date_n = ref_dates = None
    for batch in dm.train_loader():
        d = batch.get("dates")
        if d is None or not torch.equal(d, d[:1].expand_as(d)) or (
                ref_dates is not None and not torch.equal(d[:1], ref_dates)):
            date_sum = None
            break
        ref_dates = d[:1]
        m = batch["mask"].bool().double()[..., None]  # (B, T, 1)
        v = batch["sequence"].double()[:, :, :, 0, 0] if batch["sequence"].dim() == 5 else \
            batch["sequence"].double()
        date_sum = (0 if date_sum is None else date_sum) + (v * m).sum(0)
        date_n = (0 if date_n is None else date_n) + m.sum(0)
    date_mean = None
    if date_sum is not None:
        date_mean = (date_sum / date_n.clamp(min=1)).to(device)  # (T, C)
        ref_dates = ref_dates.to(device)
    result: dict[str, Any] = {"bands": list(spec.bands), "pixels": dm.split_sizes()["test"]}
    for ratio in ratios:
        gen = torch.Generator(device=device)
        gen.manual_seed(seed)
        c = len(spec.bands)
        acc = {k: np.zeros((3, c)) for k in ("all", *[b[0] for b in buckets], "edge")}
        abs_acc = np.zeros((3, c))
        count = {k: 0 for k in acc}
        for batch in dm.test_loader():
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            x, mask = batch["sequence"], batch["mask"].bool()
            hidden = random_hiding(mask, ratio, gen)
            kw = {k: batch[k] for k in ("doy", "pixel_mask", "dates") if k in batch}
            o = model(x, mask, hidden=hidden, **kw)
            pos = date_positions(batch)
            base = model.baseline(x, mask, o["hidden"], pos)
            w = o["weight"][..., 0]  # (B, T): hidden, valid
            em = (o["pred"] - o["target"]).double()  # (B, T, C)
            eb = (base - o["target"]).double()
            ed = None
            if date_mean is not None and pos is not None and torch.equal(
                    pos, ref_dates.expand_as(pos)):
                # date effect + pixel offset: the training blocks' mean on the hidden date plus
                # the pixel's mean departure from those means over its visible dates
                vis_f = (mask & ~o["hidden"]).double()[..., None]  # (B, T, 1)
                dev = (o["target"].double() - date_mean) * vis_f
                offset = dev.sum(1, keepdim=True) / vis_f.sum(1, keepdim=True).clamp(min=1)
                ed = date_mean + offset - o["target"].double()
            if ed is None:
                ed = torch.full_like(em, float("nan"))
            # the gap each hidden date sits in: days between the visible dates around it
            b, t = mask.shape
            vis = mask & ~o["hidden"]
            idx = torch.arange(t, device=device).expand(b, t)
            prev = torch.where(vis, idx, torch.full_like(idx, -1)).cummax(1).values
            nxt = torch.where(vis, idx, torch.full_like(idx, t)).flip(1).cummin(1).values.flip(1)
            p = (idx if pos is None else pos).double()
            inner = (prev >= 0) & (nxt < t)
            span = p.gather(1, nxt.clamp(max=t - 1)) - p.gather(1, prev.clamp(min=0))
            masks = {"all": w, "edge": w & ~inner}
            for label, lo, hi in buckets:
                masks[label] = w & inner & (span >= lo) & (span <= hi)
            for key, m in masks.items():
                sel = m[..., None].expand_as(em)
                acc[key][0] += (em ** 2 * sel).sum(dim=(0, 1)).cpu().numpy()
                acc[key][1] += (eb ** 2 * sel).sum(dim=(0, 1)).cpu().numpy()
                acc[key][2] += (ed ** 2 * sel).sum(dim=(0, 1)).cpu().numpy()
                count[key] += int(m.sum())
            sel = w[..., None].expand_as(em)
            abs_acc[0] += (em.abs() * sel).sum(dim=(0, 1)).cpu().numpy()
            abs_acc[1] += (eb.abs() * sel).sum(dim=(0, 1)).cpu().numpy()
            abs_acc[2] += (ed.abs() * sel).sum(dim=(0, 1)).cpu().numpy()
        entry: dict[str, Any] = {"hide_ratio": ratio, "hidden_dates": count["all"]}
        n = max(count["all"], 1)
        entry["model_mae"] = (abs_acc[0] / n * unit).tolist()
        entry["interp_mae"] = (abs_acc[1] / n * unit).tolist()
        entry["date_effect_mae"] = (abs_acc[2] / n * unit).tolist()
        for key in acc:
            k = max(count[key], 1)
            entry[key] = {"n": count[key],
                          "model_rmse": (np.sqrt(acc[key][0] / k) * unit).tolist(),
                          "interp_rmse": (np.sqrt(acc[key][1] / k) * unit).tolist(),
                          "date_effect_rmse": (np.sqrt(acc[key][2] / k) * unit).tolist()}
        result[f"hide_{ratio:g}"] = entry
    return result


def _job(job: tuple[str, dict[str, Any]], args: argparse.Namespace, out: Path
         ) -> dict[str, Any]:
    """One unit of work (a process of the pool, or inline with --jobs 1); its result is
    written to ``out/results/<name>.json``: a rerun with the same --out skips it."""
    import warnings

    warnings.filterwarnings("ignore", message=".*pyogrio is not installed.*")
    torch.set_num_threads(args.threads)
    kind, p = job
    if kind == "pretrain":
        res = slovenia_pretrain(args, out, p["which"], p["split"])
    elif kind == "finetune":
        res = slovenia_finetune(args, out, p["arm"], p["fraction"], p["seed"], p["split"],
                                p.get("ckpt"))
    elif kind == "recon":
        res = {which: reconstruction_errors(args, ck, p["split"]["holdout_split"],
                                            p["ratios"])
               for which, ck in p["ckpts"].items()}
    else:
        raise ValueError(kind)
    _write_json(out / "results" / f"{p['name']}.json", res)
    return res


def _mean_sd(values: list[float]) -> tuple[float, float]:
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def slovenia_report(args: argparse.Namespace, out: Path, split: dict[str, Any],
                    results: dict[str, Any], fractions: list[float], seconds: float) -> str:
    rows = [r for n, r in sorted(results.items()) if n.startswith("ft_")]
    lines = [f"Slovenia EOPatch, blocked split ({args.block_size}x{args.block_size} px blocks, "
             f"{split['test_blocks']} of {split['blocks']} held out: "
             f"{split['labelled']['test']} labelled test pixels, "
             f"{split['labelled']['train']} labelled train pixels); model width "
             f"{args.embed_dim}, {args.layers} layers; pre-training {args.pretrain_updates} "
             f"updates (batch {args.batch}, hide {args.hide_ratio:g}, date shift "
             f"+-{args.pretrain_date_shift} d), fine-tuning "
             f">= {args.finetune_updates} updates (batch {args.ft_batch}, lr {args.lr:g}, "
             f"cosine), device {args.device}", ""]
    for which in ("all", "holdout"):
        pre = results.get(f"pretrain_{which}")
        if pre:
            lines.append(f"pre-training ({which}): {pre['pixels']['train']} pixels, "
                         f"{pre['updates']} updates, {pre['epochs']} epochs, "
                         f"{pre['seconds']:.0f} s, final train loss "
                         f"{pre['final_train_loss']:.4f}")
    lines += ["", "| labels | n (train px) | pre-trained OA | macro-F1 | scratch OA | macro-F1 "
              "| gain (OA points) | seeds |", "|---|---|---|---|---|---|---|---|"]
    summary = []
    for f in fractions:
        sel = {a: [r for r in rows if abs(r["fraction"] - f) < 1e-9 and r["arm"] == a]
               for a in ARMS}
        (po, ps), (pf, pfs) = _mean_sd([r["oa"] for r in sel["pretrained"]]), _mean_sd(
            [r["macro_f1"] for r in sel["pretrained"]])
        (so, ss), (sf, sfs) = _mean_sd([r["oa"] for r in sel["scratch"]]), _mean_sd(
            [r["macro_f1"] for r in sel["scratch"]])
        labels = sorted({r["labels"] for a in ARMS for r in sel[a]})
        gain = 100 * (po - so)
        summary.append({"fraction": f, "labels": labels, "pretrained_oa": po,
                        "pretrained_oa_sd": ps, "pretrained_macro_f1": pf,
                        "pretrained_macro_f1_sd": pfs, "scratch_oa": so, "scratch_oa_sd": ss,
                        "scratch_macro_f1": sf, "scratch_macro_f1_sd": sfs,
                        "gain_oa_points": gain, "goal_met": bool(gain >= 3.0),
                        "seeds": [len(sel["pretrained"]), len(sel["scratch"])]})
        lines.append(f"| {f:.0%} | {'/'.join(map(str, labels))} | {po:.4f} +- {ps:.4f} | "
                     f"{pf:.4f} +- {pfs:.4f} | {so:.4f} +- {ss:.4f} | {sf:.4f} +- {sfs:.4f} | "
                     f"{gain:+.1f} | {len(sel['pretrained'])}/{len(sel['scratch'])} |")
    recon = results.get("recon")
    if recon:
        lines += ["", "masked-date reconstruction on the held-out blocks (RMSE in NDVI units "
                  "over hidden, cloud-free dates; 'holdout' = pre-trained without these blocks, "
                  "'all' = pre-trained on every pixel, these included, without labels; "
                  "date-effect = the training blocks' mean on the hidden date + the pixel's "
                  "mean offset from those means over its visible dates)", "",
                  "| model | hide | hidden dates | model RMSE | interp. RMSE | skill (1-MSE/MSE) "
                  "| date-effect RMSE | <=15 d gap model/interp | 16-45 d | >45 d | edge |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for which, rec in recon.items():
            for key, e in rec.items():
                if not key.startswith("hide_"):
                    continue
                m, i = e["all"]["model_rmse"][0], e["all"]["interp_rmse"][0]
                parts = [f"{e[b]['model_rmse'][0]:.4f}/{e[b]['interp_rmse'][0]:.4f} "
                         f"(n={e[b]['n']})" for b in ("<=15 d", "16-45 d", ">45 d", "edge")]
                de = e["all"].get("date_effect_rmse", [float("nan")])[0]
                lines.append(f"| {which} | {e['hide_ratio']:g} | {e['hidden_dates']} | {m:.4f} "
                             f"| {i:.4f} | {1 - (m / i) ** 2 if i > 0 else float('nan'):+.3f} "
                             f"| {de:.4f} | {' | '.join(parts)} |")
    lines += ["", f"total {seconds:.0f} s"]
    text = "\n".join(lines)
    (out / "summary.md").write_text(text + "\n")
    import csv

    with open(out / "rows.csv", "w", newline="") as fh:
        keys = ["arm", "fraction", "seed", "labels", "test_pixels", "epochs", "updates", "oa",
                "macro_f1", "kappa", "seconds"]
        w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    _write_json(out / "bench_pretrain_slovenia.json",
                {"split": split, "summary": summary, "rows": rows, "results": results,
                 "seconds": seconds, "args": vars(args)})
    return text


def run_slovenia(args: argparse.Namespace) -> int:
    if args.cpu_smoke:
        args.device, args.seeds = "cpu", 1
        args.fractions = args.fractions or "0.05,0.10"
        args.pretrain_updates, args.finetune_updates = 6, 4
        args.embed_dim, args.layers, args.heads, args.batch = 16, 1, 2, 128
    args.fractions = args.fractions or "0.01,0.05,0.10"
    fractions = [float(f) for f in args.fractions.split(",")]
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_pretrain_slovenia_"))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"source: {slovenia_source(args)}\nruns:   {out}\ndevice: {args.device}, jobs "
          f"{args.jobs}, torch threads {args.threads}", flush=True)
    split = block_split(args, out)
    for key in ("labelled_split", "holdout_split", "all_train_split"):  # a moved --out works
        split[key] = str(out / "split" / Path(split[key]).name)
    print(f"split: {split['blocks']} blocks of {args.block_size} px, {split['test_blocks']} "
          f"held out; labelled train/test {split['labelled']}; per class train "
          f"{split['train_per_class']} test {split['test_per_class']} ({split['classes']})",
          flush=True)
    done: dict[str, Any] = {}
    for f in (out / "results").glob("*.json") if (out / "results").is_dir() else []:
        done[f.stem] = json.loads(f.read_text())
    if done:
        print(f"resuming: {len(done)} result(s) already in {out / 'results'}", flush=True)
    ratios = sorted({0.3, args.hide_ratio})
    # the queue: pre-training first, scratch rows meanwhile, pre-trained rows when their
    # encoder is ready (ahead of the scratch rows left), the reconstruction last
    todo: dict[str, tuple[str, dict[str, Any]]] = {}
    for which in ("all", "holdout"):
        todo[f"pretrain_{which}"] = ("pretrain", {"which": which, "split": split})
    for arm in ("pretrained", "scratch"):
        for f in fractions:
            for seed in range(args.seeds):
                todo[row_name(arm, f, seed)] = ("finetune", {"arm": arm, "fraction": f,
                                                             "seed": seed, "split": split})
    todo["recon"] = ("recon", {"split": split, "ratios": ratios})
    for name, (_, p) in todo.items():
        p["name"] = name

    def ready(name: str) -> bool:
        kind, p = todo[name]
        if kind == "finetune" and p["arm"] == "pretrained":
            if "pretrain_all" not in done:
                return False
            p["ckpt"] = str(out / done["pretrain_all"]["checkpoint"])
        if kind == "recon":
            if not all(f"pretrain_{w}" in done for w in ("all", "holdout")):
                return False
            p["ckpts"] = {w: str(out / done[f"pretrain_{w}"]["checkpoint"])
                          for w in ("holdout", "all")}
        return True

    def order(names: list[str]) -> list[str]:
        # pre-training, then the rows seed by seed (both arms of a seed together, so a run
        # cut short leaves complete pairs), the reconstruction last
        rank = {"pretrain": 0, "finetune": 1, "recon": 2}

        def key(n: str) -> tuple:
            kind, p = todo[n]
            return (rank[kind], p.get("seed", 0), p.get("arm") != "pretrained",
                    list(todo).index(n))
        return sorted(names, key=key)

    def time_left(name: str | None = None) -> bool:
        if name is not None and todo[name][0] == "recon":
            return True  # a few seconds, and the numbers the table needs
        return args.max_seconds is None or time.perf_counter() - t0 < args.max_seconds

    def report_line(name: str, res: dict[str, Any]) -> str:
        if name.startswith("ft_"):
            return (f"  {res['fraction']:>5.0%} {res['arm']:<10} seed {res['seed']} "
                    f"labels={res['labels']:>4} updates={res['updates']:>5} "
                    f"OA={res['oa']:.4f} macroF1={res['macro_f1']:.4f} "
                    f"({res['seconds']:.0f} s)")
        if name.startswith("pretrain"):
            return (f"  {name}: {res['pixels']} pixels, {res['updates']} updates in "
                    f"{res['seconds']:.0f} s, final loss {res['final_train_loss']:.4f}")
        return f"  {name}: done"

    pending = [n for n in todo if n not in done]
    failed: dict[str, str] = {}
    if args.jobs <= 1:
        while pending:
            name = next((n for n in order(pending) if ready(n) and time_left(n)), None)
            if name is None:
                break
            pending.remove(name)
            try:
                done[name] = _job(todo[name], args, out)
                print(report_line(name, done[name]), flush=True)
            except Exception as err:  # noqa: BLE001 - a failed row is reported, the rest run
                failed[name] = f"{type(err).__name__}: {err}"
                print(f"  {name}: FAILED {failed[name]}", flush=True)
    else:
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            running: dict[Any, str] = {}
            while pending or running:
                for name in order(pending):
                    if len(running) >= args.jobs:
                        break
                    if ready(name) and time_left(name):
                        pending.remove(name)
                        running[pool.submit(_job, todo[name], args, out)] = name
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    name = running.pop(fut)
                    try:
                        done[name] = fut.result()
                        print(report_line(name, done[name]), flush=True)
                    except Exception as err:  # noqa: BLE001
                        failed[name] = f"{type(err).__name__}: {err}"
                        print(f"  {name}: FAILED {failed[name]}", flush=True)
    for name in pending:
        failed.setdefault(name, "not run: a job it needs failed or did not run"
                          if time_left(name) else f"not started: --max-seconds "
                          f"{args.max_seconds:g} reached (rerun with the same --out to finish)")
    text = slovenia_report(args, out, split, done, fractions, time.perf_counter() - t0)
    print("\n" + text)
    if failed:
        print(f"\n{len(failed)} job(s) failed or not run: {failed}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", choices=("victoria", "slovenia"), default="victoria",
                   help="victoria: 800 gap-filled pixels, grouped by polygon; slovenia: the "
                   "EOPatch, 10,100 pixels with real cloud gaps, spatially blocked split")
    p.add_argument("--data-root", default=None,
                   help="folder holding the shared datasets (default ../shared/data)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--source", default=None, help="victoria: the data (default: the raw CSVs)")
    p.add_argument("--out", default=None, help="run folder (default: a temporary one); "
                   "slovenia: rerunning with the same folder skips the finished rows")
    p.add_argument("--fractions", default=None,
                   help="label shares (victoria 0.05,0.1,0.25,1.0; slovenia 0.01,0.05,0.10)")
    p.add_argument("--embed-dim", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch", type=int, default=None,
                   help="pre-training batch (victoria 32, slovenia 256)")
    p.add_argument("--ft-batch", type=int, default=None,
                   help="fine-tuning batch size (victoria 16, slovenia 32)")
    p.add_argument("--pretrain-epochs", type=int, default=200, help="victoria")
    p.add_argument("--pretrain-updates", type=int, default=None,
                   help="optimizer updates of pre-training (slovenia default 2000; victoria: "
                   "at least this many, on top of --pretrain-epochs)")
    p.add_argument("--finetune-updates", type=int, default=None,
                   help="optimizer updates per fine-tuning, both arms (slovenia default 600; "
                   "victoria: --updates)")
    p.add_argument("--pretrained", default=None,
                   help="victoria: reuse the best.pt of an earlier pre-training run of this "
                   "script (its test_metrics.json gives the reconstruction numbers)")
    p.add_argument("--pretrain-lr", type=float, default=1e-3)
    p.add_argument("--hide-ratio", type=float, default=0.75,
                   help="share of the valid dates hidden per sample in pre-training")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--updates", type=int, default=400,
                   help="victoria: optimizer updates per fine-tuning")
    p.add_argument("--min-epochs", type=int, default=10, help="victoria")
    p.add_argument("--max-epochs", type=int, default=100, help="victoria")
    p.add_argument("--layer-decay", type=float, default=0.8,
                   help="layer-wise lr decay of the pre-trained arm")
    p.add_argument("--freeze-epochs", type=int, default=0)
    p.add_argument("--holdout", type=float, default=0.0,
                   help="victoria: share of polygons held out of pre-training to measure "
                   "reconstruction (default 0: pre-train on every sample, labels ignored)")
    p.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds 0..N-1 per arm")
    p.add_argument("--ema", type=float, default=None,
                   help="victoria: train.ema_decay of both arms (weight averaging)")
    p.add_argument("--test-checkpoint", choices=("best", "last"), default="best",
                   help="victoria: the checkpoint scored on the test split")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per process (1 avoids oversubscription on a shared "
                   "2-core machine)")
    p.add_argument("--jobs", type=int, default=1,
                   help="slovenia: processes running pre-trainings and rows in parallel")
    p.add_argument("--pretrain-date-shift", type=int, default=0,
                   help="slovenia: pre-training moves each series by up to +- this many days "
                   "(data.date_shift_days): every pixel shares the scene's dates, so without "
                   "it the pretext can be solved by remembering each date's scene-wide anomaly")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="slovenia: start no job after this many seconds (the running ones "
                   "finish, the table is written; rerun with the same --out to finish)")
    p.add_argument("--block-size", type=int, default=16, help="slovenia: block side, pixels")
    p.add_argument("--test-share", type=float, default=0.3,
                   help="slovenia: share of the labelled pixels in held-out blocks")
    p.add_argument("--split-seed", type=int, default=0, help="slovenia: block assignment")
    p.add_argument("--precision", default="fp32", help="slovenia: train.precision")
    p.add_argument("--cpu-smoke", "--quick", dest="cpu_smoke", action="store_true",
                   help="tiny settings on the CPU: a smoke run (imports, data, every step)")
    args = p.parse_args(argv)
    if args.data_root is None:
        try:
            args.data_root = str(shared_data_dir())
        except Exception:  # noqa: BLE001 - not beside a clone: the documented default
            args.data_root = "../shared/data"
    if args.cpu_smoke:
        args.device = "cpu"
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.set == "victoria":
        args.batch = args.batch or 32
        args.ft_batch = args.ft_batch or 16
        return run_victoria(args)
    args.batch = args.batch or 256
    args.ft_batch = args.ft_batch or 32
    args.pretrain_updates = args.pretrain_updates or 2000
    args.finetune_updates = args.finetune_updates or 600
    return run_slovenia(args)


if __name__ == "__main__":
    sys.exit(main())
