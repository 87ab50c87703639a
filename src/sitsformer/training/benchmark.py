"""``sitsformer benchmark``: the library's default recipe beside a random forest, honestly.

For each data set (the labelled real sets of the shared data folder, or a user's own source),
the split is made once (``data.seed`` is fixed, so every seed sees the very same train / val /
test samples) and then, for each seed, two models are trained and scored on the same test
samples:

* the library's recipe (a training config, by default the shipped ``victoria_pixel``
  recipe with the set's own source, split and options), through
  :func:`~sitsformer.training.run_experiment`, exactly as ``sitsformer train`` runs it;
* a scikit-learn random forest (500 trees by default) on every band x date value of the raw
  samples (the baseline most remote-sensing users already run), fitted on train + val.

The table gives mean +- standard deviation over the seeds of overall accuracy, Cohen's kappa and
macro-F1, the time per run, and the difference to the forest; it is printed and written as
JSON, Markdown, CSV and a PNG plot.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sitsformer.data import DataModule, shared_data_dir
from sitsformer.evaluation.metrics import metrics_from_confusion_matrix
from sitsformer.training.config import load_config
from sitsformer.training.experiment import run_experiment
from sitsformer.training.run import resolve_ensemble

__all__ = ["DEFAULT_SETS", "BenchmarkSet", "random_forest_scores", "run_benchmark",
           "summarize"]

DEFAULT_RECIPE = "victoria_pixel"
METRICS = ("oa", "kappa", "macro_f1")


@dataclass
class BenchmarkSet:
    """One data set of a benchmark: where it is, how it is read and split, and any recipe
    overrides it needs (e.g. fewer epochs on a large set)."""

    name: str
    source: str  # a path; relative paths are taken from the shared data folder
    split: str = "stratified"
    options: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)

    def resolved_source(self) -> Path:
        path = Path(self.source)
        return path if path.is_absolute() or path.exists() else shared_data_dir() / path


# The labelled real sets of the shared data folder (README there). The Victoria dates are
# unknown upstream: the recipe states its regular 5-day grid. Rondonia and Formosat-2 store
# NDVI/EVI as floats: the inferred scale (data.scale: auto) is 1 for them.
_VICTORIA = "s2_victoria_igarss2019/s2_victoria_igarss2019.npz"
_VICTORIA_OPTIONS = {"start_date": "2017-01-01", "interval_days": 5}
DEFAULT_SETS: dict[str, BenchmarkSet] = {s.name: s for s in [
    BenchmarkSet("victoria_upstream", _VICTORIA, "upstream", dict(_VICTORIA_OPTIONS)),
    BenchmarkSet("victoria_group", _VICTORIA, "group", dict(_VICTORIA_OPTIONS)),
    BenchmarkSet("rondonia", "landsat8_rondonia/landsat8_rondonia.npz", "stratified"),
    BenchmarkSet("formosat2_crop", "formosat2_ucr_crop/formosat2_ucr_crop.npz", "stratified",
                 overrides=["train.epochs=40"]),
    BenchmarkSet("slovenia_pixels", "s2_slovenia_eopatch/raw/example_data/TestEOPatch",
                 "stratified"),
]}


def recipe_without_data(config: str | Path | None) -> tuple[Path, dict[str, Any]]:
    """The recipe file a ``--config`` value names (default :data:`DEFAULT_RECIPE`) as a dict,
    without its data source, reader options and split: those come from each benchmark set."""
    import yaml

    from sitsformer.configs import resolve_config

    path = resolve_config(config if config is not None else DEFAULT_RECIPE)
    recipe = yaml.safe_load(path.read_text()) or {}
    for key in ("source", "options", "split"):
        recipe.get("data", {}).pop(key, None)
    return path, recipe


def _features(dm: DataModule) -> np.ndarray:
    """``(N, T * C * H * W)``: every raw value of every sample, dates padded with NaN; values
    of invalid observations (padding, clouds) are NaN too (the forest handles missing values)."""
    rows = []
    for i in range(len(dm.labels)):
        s = dm.samples[i]
        x = np.asarray(s["sequence"], np.float32)
        x = x.reshape(x.shape[0], x.shape[1], -1)  # (T, C, H*W)
        valid = np.asarray(s["mask"], bool)[:, None, None]
        if s.get("pixel_mask") is not None:
            valid = valid & np.asarray(s["pixel_mask"], bool).reshape(x.shape[0], 1, -1)
        rows.append(np.where(valid, x, np.nan))
    t_max = max(r.shape[0] for r in rows)
    out = np.full((len(rows), t_max, *rows[0].shape[1:]), np.nan, np.float32)
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
    return out.reshape(len(rows), -1)


def random_forest_scores(dm: DataModule, seed: int, trees: int = 500,
                         features: np.ndarray | None = None) -> dict[str, Any]:
    """A random forest on the split of ``dm`` (fitted on train + val, scored on test)."""
    try:
        from sklearn.ensemble import RandomForestClassifier
    except ImportError as err:  # pragma: no cover - the message is the point
        raise ImportError("the random-forest baseline needs scikit-learn: "
                          "pip install 'sitsformer[bench]'") from err
    x = _features(dm) if features is None else features
    fit = np.concatenate([dm.splits["train"], dm.splits["val"]])
    test = dm.splits["test"]
    t0 = time.perf_counter()
    rf = RandomForestClassifier(n_estimators=trees, n_jobs=-1, random_state=seed)
    rf.fit(x[fit], dm.labels[fit])
    pred = rf.predict(x[test])
    k = dm.num_classes
    cm = np.bincount(dm.labels[test] * k + pred, minlength=k * k).reshape(k, k)
    m = metrics_from_confusion_matrix(cm)
    return {"oa": m["oa"], "kappa": m["kappa"], "macro_f1": m["macro_f1"],
            "seconds": time.perf_counter() - t0, "n_fit": int(len(fit)), "n_test": int(len(test))}


ROWS_FILE = "benchmark_rows.jsonl"


def _fingerprint(recipe: dict[str, Any], overrides: Sequence[str], bset: BenchmarkSet,
                 trees: int) -> str:
    """What a set's rows depend on (recipe, overrides, the set, the forest's trees)."""
    text = json.dumps({"recipe": recipe, "overrides": list(overrides), "set": vars(bset),
                       "trees": trees}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows an earlier (interrupted) run appended; a last line cut off mid-write is
    dropped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def _append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """One (set, seed) pair's two rows as one write, flushed to disk."""
    with path.open("a") as fh:
        fh.write("".join(json.dumps(r, default=str) + "\n" for r in rows))
        fh.flush()
        os.fsync(fh.fileno())


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(values, np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per set and method: mean and std over seeds of each metric and of the run time, and the
    difference of the mean OA to the forest's."""
    out = []
    for name in dict.fromkeys(r["set"] for r in rows):
        rf_oa = None
        for method in dict.fromkeys(r["method"] for r in rows if r["set"] == name):
            sel = [r for r in rows if r["set"] == name and r["method"] == method]
            entry: dict[str, Any] = {"set": name, "method": method, "seeds": len(sel),
                                     "n_train": sel[0]["n_train"], "n_test": sel[0]["n_test"]}
            for key in (*METRICS, "seconds"):
                entry[key], entry[f"{key}_std"] = _mean_std([r[key] for r in sel])
            if method == "random_forest":
                rf_oa = entry["oa"]
            out.append(entry)
        for entry in out:
            if entry["set"] == name:
                entry["oa_vs_forest"] = None if rf_oa is None else entry["oa"] - rf_oa
    return out


def _markdown(summary: list[dict[str, Any]], seeds: Sequence[int]) -> str:
    lines = [f"# sitsformer benchmark (seeds {', '.join(map(str, seeds))}; identical splits)",
             "", "| set | method | train / test | OA | kappa | macro-F1 | s / run | OA - forest |",
             "|---|---|---|---|---|---|---|---|"]
    for e in summary:
        diff = "" if e["oa_vs_forest"] is None or e["method"] == "random_forest" else \
            f"{100 * e['oa_vs_forest']:+.1f} pt"
        lines.append(
            f"| {e['set']} | {e['method']} | {e['n_train']} / {e['n_test']} | "
            + " | ".join(f"{e[k]:.3f} +- {e[k + '_std']:.3f}" for k in METRICS)
            + f" | {e['seconds']:.1f} | {diff} |")
    return "\n".join(lines) + "\n"


def _plot(summary: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(e["set"] for e in summary))
    methods = list(dict.fromkeys(e["method"] for e in summary))
    width = 0.8 / len(methods)
    with matplotlib.rc_context({"figure.dpi": 100}):
        fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(sets)), 3.6))
        for j, method in enumerate(methods):
            es = [next((e for e in summary if e["set"] == s and e["method"] == method), None)
                  for s in sets]
            xs = np.arange(len(sets)) + (j - (len(methods) - 1) / 2) * width
            ax.bar(xs, [e["oa"] if e else np.nan for e in es], width,
                   yerr=[e["oa_std"] if e else 0 for e in es], capsize=3, label=method)
        ax.set_xticks(np.arange(len(sets)), sets, rotation=15)
        ax.set_ylabel("test overall accuracy (mean +- std)")
        ax.set_ylim(0, 1)
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)


def run_benchmark(sets: Sequence[BenchmarkSet], seeds: Sequence[int] = (0, 1, 2), *,
                  config: str | Path | None = None, overrides: Sequence[str] = (),
                  output: str | Path = "benchmark", trees: int = 500,
                  progress: bool = True, resume: bool = False) -> dict[str, Any]:
    """Run the benchmark (see the module doc) and write its files into ``output``.

    Args:
        sets: the data sets.
        seeds: training seeds (``train.seed``; the forest's ``random_state``); the split is
            the same for all of them.
        config: the recipe, a training config file (default: the shipped ``victoria_pixel``).
        overrides: dotted overrides applied to the recipe for every set (after the set's own).
        output: folder for ``benchmark.json|md|csv|png`` and the training runs.
        trees: trees of the random forest.
        progress: progress bars of the training runs.
        resume: continue an interrupted benchmark in ``output``: the (set, seed) pairs whose
            rows ``benchmark_rows.jsonl`` already holds (written after each pair, with a
            fingerprint of the recipe, overrides, set and trees) are kept, a training run cut
            short is continued from its ``last.pt``, the rest is run. Rows made with other
            settings are refused. Without it the rows file is started afresh.

    Returns:
        ``{"rows": [one dict per set, method and seed], "summary": [...], "files": {...}}``.
    """
    recipe_path, recipe = recipe_without_data(config)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / ROWS_FILE
    done = _read_rows(rows_path) if resume else []
    if not resume:
        rows_path.unlink(missing_ok=True)
    rows: list[dict[str, Any]] = []
    for bset in sets:
        key = _fingerprint(recipe, overrides, bset, trees)
        mine = [r for r in done if r["set"] == bset.name]
        other = sorted({r["fingerprint"] for r in mine} - {key})
        if other:
            raise ValueError(f"{rows_path}: the rows of set {bset.name!r} were made with other "
                             f"settings (recipe, overrides, set or trees: fingerprint "
                             f"{other[0]}, now {key}); pass --overwrite to start again")
        base = [f"data.source={bset.resolved_source()}", f"data.split={bset.split}",
                *[f"data.options.{k}={json.dumps(v)}" for k, v in bset.options.items()],
                *bset.overrides, *overrides, f"logging.run_dir={out / 'runs'}",
                f"logging.progress={str(progress).lower()}", "logging.tensorboard=false"]
        dm = DataModule.from_config(load_config(None, base, base=recipe).data).read()
        feats = _features(dm)
        sizes = {"n_train": int(len(dm.splits["train"])), "n_test": int(len(dm.splits["test"]))}
        for seed in seeds:
            kept = [r for r in mine if r["seed"] == seed]
            if {r["method"] for r in kept} == {"sitsformer", "random_forest"}:
                rows += sorted(kept, key=lambda r: r["method"] != "sitsformer")
                print(f"{bset.name} seed {seed}: kept from {rows_path}", flush=True)
                continue
            cfg = load_config(None, [*base, f"train.seed={seed}",
                                     f"logging.name={bset.name}_seed{seed}"], base=recipe)
            cfg = resolve_ensemble(cfg, n_train=sizes["n_train"])  # the split read above
            last = out / "runs" / f"{bset.name}_seed{seed}" / "last.pt"
            cut_short = resume and cfg.train.ensemble == 1 and last.is_file()
            t0 = time.perf_counter()
            res = run_experiment(cfg, resume=str(last) if cut_short else None)
            test = res["test"]
            if res["data"]["split_sizes"]["test"] != sizes["n_test"]:
                raise RuntimeError(f"{bset.name}: the training run's test split differs from "
                                   "the forest's; the benchmark needs identical splits")
            rows.append({"set": bset.name, "method": "sitsformer", "seed": seed, **sizes,
                         "oa": test["test_oa"], "kappa": test["test_kappa"],
                         "macro_f1": test["test_macro_f1"],
                         "seconds": time.perf_counter() - t0, "run_dir": res["run_dir"]})
            rf = random_forest_scores(dm, seed, trees, feats)
            rows.append({"set": bset.name, "method": "random_forest", "seed": seed, **sizes,
                         **{k: rf[k] for k in (*METRICS, "seconds")}})
            if cut_short:
                rows[-2]["resumed_from"] = str(last)
            for r in rows[-2:]:
                r["fingerprint"] = key
            _append_rows(rows_path, rows[-2:])
            print(f"{bset.name} seed {seed}: sitsformer OA {rows[-2]['oa']:.4f}, "
                  f"forest OA {rows[-1]['oa']:.4f}", flush=True)
    summary = summarize(rows)
    files = {"json": out / "benchmark.json", "markdown": out / "benchmark.md",
             "csv": out / "benchmark.csv", "plot": out / "benchmark.png"}
    files["json"].write_text(json.dumps({"recipe": str(recipe_path), "overrides": list(overrides),
                                         "seeds": list(seeds), "trees": trees,
                                         "sets": [vars(s) for s in sets], "rows": rows,
                                         "summary": summary}, indent=2, default=str))
    files["markdown"].write_text(_markdown(summary, seeds))
    with files["csv"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    _plot(summary, files["plot"])
    return {"rows": rows, "summary": summary, "files": {k: str(v) for k, v in files.items()}}
