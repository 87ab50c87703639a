"""``sitsformer benchmark``: deep models beside the classic baselines on identical splits.

For each data set (the labelled real sets of the shared data folder, or a user's own source)
every deep model (:data:`MODELS`: the library's recipe, by default the shipped
``victoria_pixel`` config, plus each model's overrides) and every baseline (:data:`BASELINES`:
a scikit-learn random forest and a LightGBM gradient-boosting model on every band x date value
of the raw samples, fitted on train + val) is trained and scored on the very same test samples
of every run. The runs follow one of two protocols:

* ``cv``, on sets of at most ``max_samples`` samples (default :data:`CV_MAX_SAMPLES`):
  ``repeats`` x ``folds``-fold stratified cross-validation (scikit-learn's
  ``RepeatedStratifiedKFold``, or ``StratifiedGroupKFold`` when the source has group ids,
  e.g. polygons, so that no group is on both sides); every sample is tested exactly once per
  repeat. Repeat ``r`` trains with seed ``r``; the fold of a run is a split file
  (``splits/<set>/r<r>f<f>.csv``) that the training run reads (``data.split=file``).
* ``fixed``, on larger sets and on sets whose split is given (``upstream``, ``file``,
  ``spatial``): the set's split, made once, with several training seeds.

For every model and baseline pair the table gives the mean paired difference of OA over the
runs with a 95 % interval (Nadeau-Bengio corrected for cross-validation folds), a verdict
(ahead / behind / not distinguishable) and McNemar's exact p on the test predictions of the
first repeat (cv: every sample once) or first seed (fixed); see
:mod:`sitsformer.evaluation.significance`. Each finished row (set, method, run) is appended to
``benchmark_rows.jsonl`` at once: ``resume`` continues an interrupted benchmark, and a
benchmark stopped by Ctrl-C or SIGTERM writes the table of the rows already finished.
"""

from __future__ import annotations

import base64
import csv
import fnmatch
import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sitsformer.data import DataModule, shared_data_dir
from sitsformer.evaluation.metrics import metrics_from_confusion_matrix
from sitsformer.training.config import load_config
from sitsformer.training.experiment import run_experiment
from sitsformer.training.run import resolve_size_rules

__all__ = ["BASELINES", "CV_MAX_SAMPLES", "DEFAULT_MODELS", "DEFAULT_SETS", "MODELS",
           "BenchmarkInterrupted", "BenchmarkSet", "ModelEntry", "Protocol", "baseline_scores",
           "cv_folds", "lightgbm_scores", "merge_benchmarks", "parse_models", "random_forest_scores",
           "run_benchmark", "summarize"]

DEFAULT_RECIPE = "victoria_pixel"
METRICS = ("oa", "kappa", "macro_f1")

# The deep models: a name and the recipe overrides that make it. Extend here (e.g.
# "tempcnn": ("model.variant=tempcnn",), "ltae": ("model.variant=ltae",)) and in
# DEFAULT_MODELS to benchmark them by default.
MODELS: dict[str, tuple[str, ...]] = {
    "sitsformer": (),  # the recipe as shipped
    "tempcnn": ("model.variant=tempcnn",),  # Pelletier et al. 2019, the same training recipe
    "ltae": ("model.variant=ltae",),  # Garnot & Landrieu 2020, the same training recipe
}
DEFAULT_MODELS: tuple[str, ...] = ("sitsformer", "tempcnn", "ltae")
BASELINES: tuple[str, ...] = ("random_forest", "lightgbm")
CV_MAX_SAMPLES = 3000  # sets up to this size are cross-validated
GIVEN_SPLITS = ("upstream", "file", "spatial")  # kept as they are: a fixed split


@dataclass
class BenchmarkSet:
    """One data set of a benchmark: where it is, how it is read and split, and any recipe
    overrides it needs (e.g. fewer epochs on a large set). ``split="auto"``: by groups when
    the source has group ids, else stratified."""

    name: str
    source: str  # a path; relative paths are taken from the shared data folder
    split: str = "auto"
    options: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)

    def resolved_source(self) -> Path:
        path = Path(self.source)
        return path if path.is_absolute() or path.exists() else shared_data_dir() / path


@dataclass(frozen=True)
class ModelEntry:
    """A deep model of the benchmark: a name and its recipe overrides."""

    name: str
    overrides: tuple[str, ...] = ()


@dataclass
class Protocol:
    """How the runs of a set are made (see the module doc).

    Args:
        kind: ``auto`` (``cv`` up to ``max_samples`` samples unless the set's split is given,
            else ``fixed``), ``cv`` or ``fixed``.
        folds, repeats: the cross-validation.
        max_samples: the largest set ``auto`` cross-validates.
        seeds: the training seeds of the ``fixed`` protocol.
    """

    kind: str = "auto"
    folds: int = 5
    repeats: int = 2
    max_samples: int = CV_MAX_SAMPLES
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self) -> None:
        self.seeds = tuple(int(s) for s in self.seeds)
        if self.kind not in ("auto", "cv", "fixed"):
            raise ValueError(f"protocol: expected auto, cv or fixed; found {self.kind!r}")
        if self.folds < 2 or self.repeats < 1 or not self.seeds:
            raise ValueError(f"protocol: expected folds >= 2, repeats >= 1 and at least one "
                             f"seed; found folds={self.folds}, repeats={self.repeats}, "
                             f"seeds={list(self.seeds)}")


# The labelled real sets of the shared data folder (README there). The Victoria dates are
# unknown upstream: its sets state a regular 5-day grid (the recipe is data-agnostic).
# Rondonia and Formosat-2 store NDVI/EVI as floats: the inferred scale (data.scale: auto) is 1.
_VICTORIA = "s2_victoria_igarss2019/s2_victoria_igarss2019.npz"
VICTORIA_OPTIONS = {"start_date": "2017-01-01", "interval_days": 5}
DEFAULT_SETS: dict[str, BenchmarkSet] = {s.name: s for s in [
    BenchmarkSet("victoria_upstream", _VICTORIA, "upstream", dict(VICTORIA_OPTIONS)),
    BenchmarkSet("victoria_group", _VICTORIA, "group", dict(VICTORIA_OPTIONS)),
    BenchmarkSet("rondonia", "landsat8_rondonia/landsat8_rondonia.npz"),
    BenchmarkSet("formosat2_crop", "formosat2_ucr_crop/formosat2_ucr_crop.npz",
                 overrides=["train.epochs=40"]),
    BenchmarkSet("slovenia_pixels", "s2_slovenia_eopatch/raw/example_data/TestEOPatch"),
]}


class BenchmarkInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped the benchmark; ``result`` holds the table of the rows
    finished before (written to the output folder)."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result or {}


def parse_models(spec: str | Sequence[str] | None) -> list[ModelEntry]:
    """The deep models of ``--models``: comma-separated ``NAME`` (one of :data:`MODELS`) or
    ``NAME:KEY=VALUE[:KEY=VALUE...]`` (a known name plus overrides, or a new name made of the
    recipe plus overrides). None: :data:`DEFAULT_MODELS`; ``""``: none (only the baselines,
    e.g. in a process of their own whose rows :func:`merge_benchmarks` joins)."""
    if isinstance(spec, str) and not spec.strip():
        return []
    items = list(DEFAULT_MODELS) if spec is None else (
        [s for s in spec.split(",") if s.strip()] if isinstance(spec, str) else list(spec))
    out: list[ModelEntry] = []
    for item in items:
        name, *extra = [p.strip() for p in item.split(":")]
        bad = [e for e in extra if "=" not in e]
        if not name or bad:
            raise ValueError(f"--models: expected NAME or NAME:KEY=VALUE[:KEY=VALUE...]; found "
                             f"{item!r}")
        if name not in MODELS and not extra:
            raise ValueError(f"--models: unknown model {name!r} (known: {list(MODELS)}; a new "
                             f"name needs overrides, e.g. {name}:model.embed_dim=64)")
        if name in (m.name for m in out) or name in BASELINES:
            raise ValueError(f"--models: expected distinct names, not a baseline's; found "
                             f"{name!r} twice or as a baseline")
        out.append(ModelEntry(name, (*MODELS.get(name, ()), *extra)))
    if not out:
        raise ValueError(f"--models: expected at least one model (or '' for none); found "
                         f"{spec!r}")
    return out


def parse_baselines(spec: str | Sequence[str] | None) -> list[str]:
    """``--baselines``: comma-separated names of :data:`BASELINES` (None: all; "" none)."""
    if spec is None:
        return list(BASELINES)
    names = [s.strip() for s in spec.split(",") if s.strip()] if isinstance(spec, str) \
        else list(spec)
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValueError(f"--baselines: expected names among {list(BASELINES)}; found "
                         f"{unknown}")
    return list(dict.fromkeys(names))


def recipe_without_data(config: str | Path | None) -> tuple[Path, dict[str, Any]]:
    """The recipe file a ``--config`` value names (default :data:`DEFAULT_RECIPE`) as a dict,
    without its data source, reader options and split: those come from each benchmark set."""
    import yaml

    from sitsformer.configs import resolve_config

    path = resolve_config(config if config is not None else DEFAULT_RECIPE)
    recipe = yaml.safe_load(path.read_text()) or {}
    for key in ("source", "options", "split", "split_file"):
        recipe.get("data", {}).pop(key, None)
    return path, recipe


def _features(dm: DataModule) -> np.ndarray:
    """``(N, T * C * H * W)``: every raw value of every sample, dates padded with NaN; values
    of invalid observations (padding, clouds) are NaN too (both baselines handle missing
    values)."""
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


def _scores(labels: np.ndarray, pred: np.ndarray, k: int) -> dict[str, Any]:
    """OA, kappa and macro-F1 of ``pred`` (``-1``: no prediction, counted wrong) and the
    per-sample correctness."""
    ok = pred >= 0
    cm = np.bincount(labels[ok] * k + pred[ok], minlength=k * k).reshape(k, k)
    m = metrics_from_confusion_matrix(cm)
    correct = pred == labels
    return {"oa": float(correct.mean()), "kappa": m["kappa"], "macro_f1": m["macro_f1"],
            "correct": correct}


def _baseline_missing(method: str) -> str | None:
    """Why ``method`` cannot run here (its package is not installed, or does not load: a
    LightGBM wheel needs the system's ``libgomp.so.1``), or None."""
    import importlib
    import importlib.util

    package, extra = {"random_forest": ("sklearn", "bench"),
                      "lightgbm": ("lightgbm", "boosting")}[method]
    try:
        if importlib.util.find_spec(package) is None:
            return (f"skipped: {package} is not installed (pip install "
                    f"'sitsformer[{extra}]')")
        importlib.import_module(package)
    except (ImportError, OSError) as err:
        return f"skipped: {package} does not load ({type(err).__name__}: {err})"
    return None


def baseline_predict(method: str, x: np.ndarray, labels: np.ndarray, fit: np.ndarray,
                     test: np.ndarray, seed: int, trees: int = 500, rounds: int = 300
                     ) -> np.ndarray:
    """Fit baseline ``method`` (:data:`BASELINES`) on ``x[fit]`` and predict ``x[test]``."""
    if method == "random_forest":
        try:
            from sklearn.ensemble import RandomForestClassifier
        except ImportError as err:  # pragma: no cover - the message is the point
            raise ImportError("the random-forest baseline needs scikit-learn: "
                              "pip install 'sitsformer[bench]'") from err
        model: Any = RandomForestClassifier(n_estimators=trees, n_jobs=-1, random_state=seed)
    elif method == "lightgbm":
        try:
            from lightgbm import LGBMClassifier
        except ImportError as err:  # pragma: no cover - the message is the point
            raise ImportError("the gradient-boosting baseline needs LightGBM: "
                              "pip install 'sitsformer[boosting]'") from err
        model = LGBMClassifier(n_estimators=rounds, learning_rate=0.05, random_state=seed,
                               n_jobs=min(4, os.cpu_count() or 1), deterministic=True,
                               force_row_wise=True, verbose=-1)
    else:
        raise ValueError(f"baseline: expected one of {list(BASELINES)}; found {method!r}")
    model.fit(x[fit], labels[fit])
    return np.asarray(model.predict(x[test]), np.int64)


def baseline_scores(method: str, dm: DataModule, seed: int, trees: int = 500,
                    rounds: int = 300, features: np.ndarray | None = None) -> dict[str, Any]:
    """Baseline ``method`` (:data:`BASELINES`) on the split of ``dm``: fitted on train + val,
    scored on test."""
    x = _features(dm) if features is None else features
    fit = np.concatenate([dm.splits["train"], dm.splits["val"]])
    test = dm.splits["test"]
    t0 = time.perf_counter()
    pred = baseline_predict(method, x, dm.labels, fit, test, seed, trees, rounds=rounds)
    s = _scores(dm.labels[test], pred, dm.num_classes)
    return {**{k: s[k] for k in METRICS}, "seconds": time.perf_counter() - t0,
            "n_fit": len(fit), "n_test": len(test)}


def random_forest_scores(dm: DataModule, seed: int, trees: int = 500,
                         features: np.ndarray | None = None) -> dict[str, Any]:
    """A random forest on the split of ``dm`` (:func:`baseline_scores`)."""
    return baseline_scores("random_forest", dm, seed, trees=trees, features=features)


def lightgbm_scores(dm: DataModule, seed: int, rounds: int = 300,
                    features: np.ndarray | None = None) -> dict[str, Any]:
    """A LightGBM model on the split of ``dm`` (:func:`baseline_scores`)."""
    return baseline_scores("lightgbm", dm, seed, rounds=rounds, features=features)


def cv_folds(labels: np.ndarray, groups: np.ndarray | None, folds: int, repeats: int,
             seed: int = 0) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """``(repeat, fold, train, test)`` of a repeated stratified k-fold cross-validation:
    scikit-learn's ``RepeatedStratifiedKFold``, or, with ``groups``, ``StratifiedGroupKFold``
    (shuffled with seed ``seed + repeat``) so that no group is in two folds. The test parts of
    one repeat partition the samples."""
    from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedGroupKFold

    labels = np.asarray(labels)
    if groups is None:
        counts = np.bincount(labels - labels.min())
        if counts[counts > 0].min() < folds:
            raise ValueError(f"{folds}-fold stratified cross-validation: expected at least "
                             f"{folds} samples per class; found {int(counts[counts > 0].min())}")
        rskf = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
        for i, (train, test) in enumerate(rskf.split(np.zeros(len(labels)), labels)):
            yield i // folds, i % folds, np.sort(train), np.sort(test)
        return
    groups = np.asarray(groups)
    n_groups = len(np.unique(groups))
    if n_groups < folds:
        raise ValueError(f"{folds}-fold grouped cross-validation: expected at least {folds} "
                         f"groups; found {n_groups}")
    for r in range(repeats):
        sgkf = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed + r)
        for f, (train, test) in enumerate(sgkf.split(np.zeros(len(labels)), labels, groups)):
            yield r, f, np.sort(train), np.sort(test)


ROWS_FILE = "benchmark_rows.jsonl"


def _pack(correct: np.ndarray) -> str:
    return base64.b64encode(np.packbits(np.asarray(correct, bool)).tobytes()).decode()


def _unpack(text: str, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(base64.b64decode(text), np.uint8))[:n].astype(bool)


def _fingerprint(**parts: Any) -> str:
    """What a row depends on (recipe, overrides, the set, the protocol, the method)."""
    text = json.dumps(parts, sort_keys=True, default=str)
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


def _append_row(path: Path, row: dict[str, Any]) -> None:
    """One finished row as one write, flushed to disk."""
    with path.open("a") as fh:
        fh.write(json.dumps(row, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(values, np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def summarize(rows: list[dict[str, Any]], sets: dict[str, dict[str, Any]] | None = None
              ) -> list[dict[str, Any]]:
    """Per set and method: mean and std over the runs of each metric and of the run time; per
    deep model, against each baseline (and the first model against the other deep models):
    the paired OA difference with its 95 % interval and
    verdict (:func:`~sitsformer.evaluation.significance.paired_difference`, Nadeau-Bengio
    corrected for cross-validation) and McNemar's p on the first repeat's (or seed's) pooled
    test predictions (:func:`~sitsformer.evaluation.significance.mcnemar`).

    ``sets``: per set name, ``{"protocol": kind, "split": line, "methods": [...],
    "baselines": [...], "skipped": {method: reason}}`` (what :func:`run_benchmark` records);
    without it, every method of the rows is listed and those named in :data:`BASELINES` are
    the baselines.
    """
    from sitsformer.evaluation.significance import mcnemar, paired_difference

    out = []
    names = list(dict.fromkeys([*(sets or {}), *(r["set"] for r in rows)]))
    for name in names:
        info = (sets or {}).get(name, {})
        mine = [r for r in rows if r["set"] == name]
        methods = info.get("methods") or list(dict.fromkeys(r["method"] for r in mine))
        baselines = [m for m in methods if m in info.get("baselines", BASELINES)]
        skipped = info.get("skipped", {})
        by_method = {m: {r["unit"]: r for r in mine if r["method"] == m} for m in methods}
        for method in methods:
            sel = list(by_method[method].values())
            entry: dict[str, Any] = {
                "set": name, "method": method,
                "kind": "baseline" if method in baselines else "model",
                "protocol": info.get("split", ""), "runs": len(sel),
                "status": skipped.get(method, "ok" if sel else "not run")}
            if sel:
                entry["n_train"] = float(np.mean([r["n_train"] for r in sel]))
                entry["n_test"] = float(np.mean([r["n_test"] for r in sel]))
                for key in (*METRICS, "seconds"):
                    entry[key], entry[f"{key}_std"] = _mean_std([r[key] for r in sel])
            entry["vs"] = {}
            # every model against the baselines; the first model (the recipe under test)
            # also against the other deep models (TempCNN, L-TAE are the field's baselines)
            models = [m for m in methods if m not in baselines]
            against = [*baselines, *(models[1:] if models and method == models[0] else [])]
            for base in against:
                if entry["kind"] != "model":
                    break
                pair = [u for u in by_method[method] if u in by_method[base]]
                if not pair:
                    entry["vs"][base] = {"runs": 0, "verdict": skipped.get(base, "no runs")}
                    continue
                a = [by_method[method][u] for u in pair]
                b = [by_method[base][u] for u in pair]
                cv = a[0].get("protocol") == "cv"
                diff = paired_difference(
                    [r["oa"] for r in a], [r["oa"] for r in b],
                    n_train=float(np.mean([r["n_train"] for r in a])) if cv else None,
                    n_test=float(np.mean([r["n_test"] for r in a])) if cv else None)
                first = min(r["repeat"] if cv else r["seed"] for r in a)
                firsts = [u for u, r in zip(pair, a, strict=True)
                          if (r["repeat"] if cv else r["seed"]) == first]
                mc = mcnemar(
                    np.concatenate([_unpack(by_method[method][u]["correct"],
                                            by_method[method][u]["n_test"]) for u in firsts]),
                    np.concatenate([_unpack(by_method[base][u]["correct"],
                                            by_method[base][u]["n_test"]) for u in firsts]))
                entry["vs"][base] = {**diff, "mcnemar_p": mc["p"], "model_only": mc["a_only"],
                                     "baseline_only": mc["b_only"], "mcnemar_n": mc["n"],
                                     "mcnemar_runs": firsts}
            out.append(entry)
    return out


def _pt(x: float | None) -> str:
    return "" if x is None else f"{100 * x:+.1f}"


def _markdown(summary: list[dict[str, Any]], sets: dict[str, dict[str, Any]],
              interrupted: str | None = None) -> str:
    lines = ["# sitsformer benchmark (identical splits for every method)", ""]
    if interrupted:
        lines += [(f"**Incomplete**: {interrupted}; the table holds the runs finished before "
                   "(`--resume` continues)."), ""]
    lines += ["| set | method | runs | train / test | OA | kappa | macro-F1 | s / run |",
              "|---|---|---|---|---|---|---|---|"]
    for e in summary:
        if "oa" not in e:
            lines.append(f"| {e['set']} | {e['method']} | 0 | | {e['status']} | | | |")
            continue
        lines.append(
            f"| {e['set']} | {e['method']} | {e['runs']} | {e['n_train']:.0f} / "
            f"{e['n_test']:.0f} | "
            + " | ".join(f"{e[k]:.3f} +- {e[k + '_std']:.3f}" for k in METRICS)
            + f" | {e['seconds']:.1f} |")
    lines += ["", ("OA difference (model - baseline, points) over paired runs, 95 % interval, "
                   "verdict; McNemar's exact p on the first repeat's (or seed's) test "
                   "predictions (model only right / baseline only right):"), "",
              "| set | model | baseline | OA diff | 95 % interval | verdict | McNemar p (b / c) |",
              "|---|---|---|---|---|---|---|"]
    for e in summary:
        for base, v in e["vs"].items():
            if not v.get("runs"):
                lines.append(f"| {e['set']} | {e['method']} | {base} | | | {v['verdict']} | |")
                continue
            ci = "" if v["low"] is None else \
                f"{_pt(v['low'])} .. {_pt(v['high'])}" + (" (NB)" if v["corrected"] else "")
            lines.append(f"| {e['set']} | {e['method']} | {base} | {_pt(v['mean'])} | {ci} | "
                         f"{v['verdict']} | {v['mcnemar_p']:.3g} ({v['model_only']} / "
                         f"{v['baseline_only']}) |")
    lines += ["", "Splits:", ""]
    lines += [f"- {name}: {info['split']}" for name, info in sets.items()]
    lines += ["", ("(NB): Nadeau-Bengio corrected variance (cross-validation folds share "
                   "training samples); without it: a paired t-interval over training seeds on "
                   "one fixed split.")]
    return "\n".join(lines) + "\n"


def _csv_rows(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in summary:
        row = {k: v for k, v in e.items() if k != "vs"}
        for base, v in e["vs"].items():
            for key in ("mean", "low", "high", "verdict", "mcnemar_p"):
                row[f"oa_vs_{base}_{key}"] = v.get(key)
        out.append(row)
    return out


def _plot(summary: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(e["set"] for e in summary))
    methods = list(dict.fromkeys(e["method"] for e in summary))
    width = 0.8 / max(1, len(methods))
    with matplotlib.rc_context({"figure.dpi": 100}):
        fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(sets) * max(1, len(methods) / 2)),
                                        3.6))
        for j, method in enumerate(methods):
            es = [next((e for e in summary if e["set"] == s and e["method"] == method
                        and "oa" in e), None) for s in sets]
            xs = np.arange(len(sets)) + (j - (len(methods) - 1) / 2) * width
            ax.bar(xs, [e["oa"] if e else np.nan for e in es], width,
                   yerr=[e["oa_std"] if e else 0 for e in es], capsize=3, label=method)
        ax.set_xticks(np.arange(len(sets)), sets, rotation=15)
        ax.set_ylabel("test overall accuracy (mean +- std)")
        ax.set_ylim(0, 1)
        ax.legend(loc="lower right", fontsize="small")
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)


def _write(out: Path, summary: list[dict[str, Any]], sets: dict[str, dict[str, Any]],
           header: dict[str, Any], rows: list[dict[str, Any]], interrupted: str | None
           ) -> dict[str, str]:
    files = {"json": out / "benchmark.json", "markdown": out / "benchmark.md",
             "csv": out / "benchmark.csv", "plot": out / "benchmark.png"}
    files["json"].write_text(json.dumps({**header, "complete": interrupted is None,
                                         "interrupted": interrupted, "splits": sets,
                                         "rows": rows, "summary": summary},
                                        indent=2, default=str))
    files["markdown"].write_text(_markdown(summary, sets, interrupted))
    table = _csv_rows(summary)
    with files["csv"].open("w", newline="") as fh:
        fields = list(dict.fromkeys(k for r in table for k in r)) or ["set", "method"]
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(table)
    _plot(summary, files["plot"])
    return {k: str(v) for k, v in files.items()}


def _set_runs(bset: BenchmarkSet, recipe: dict[str, Any], base: list[str],
              protocol: Protocol, out: Path) -> tuple[DataModule, list[dict[str, Any]],
                                                      dict[str, Any]]:
    """Read set ``bset`` and make its runs (see the module doc): the data, one dict per run
    (``unit``, ``protocol``, ``repeat``, ``fold``, ``seed``, ``fit`` and ``test`` indices, the
    training run's split overrides) and what the table says of the split."""
    cfg = load_config(None, [*base, "data.split=random"], base=recipe)
    dm = DataModule.from_config(cfg.data).read()
    n, groups = len(dm.labels), dm.groups
    split = bset.split
    if split == "auto":
        split = "group" if groups is not None else "stratified"
    kind = protocol.kind
    if kind == "auto":
        kind = "cv" if n <= protocol.max_samples and split not in GIVEN_SPLITS else "fixed"
    runs: list[dict[str, Any]] = []
    n_groups = None if groups is None else len(np.unique(groups))
    if kind == "cv":
        grouped = groups is not None and split not in ("stratified", "random")
        how = (f"grouped by {n_groups} group ids (StratifiedGroupKFold, shuffled with seed "
               f"{cfg.data.seed} + repeat)" if grouped else
               f"stratified (RepeatedStratifiedKFold, seed {cfg.data.seed})"
               + ("; the source's group ids are NOT used (split " + split + ")"
                  if groups is not None else ""))
        line = (f"cv: {protocol.repeats} x {protocol.folds}-fold cross-validation of {n} "
                f"samples, {how}; every sample tested once per repeat; training seed = repeat")
        folder = out / "splits" / bset.name
        folder.mkdir(parents=True, exist_ok=True)
        for r, f, fit, test in cv_folds(dm.labels, groups if grouped else None, protocol.folds,
                                        protocol.repeats, seed=cfg.data.seed):
            side = np.full(n, "train", dtype=object)
            side[test] = "test"
            path = folder / f"r{r}f{f}.csv"
            text = "id,split\n" + "".join(f"{i},{s}\n" for i, s in zip(dm.ids, side,
                                                                         strict=True))
            if not path.is_file() or path.read_text() != text:
                path.write_text(text)
            runs.append({"unit": f"r{r}f{f}", "protocol": "cv", "repeat": r, "fold": f,
                         "seed": r, "fit": fit, "test": test, "split_file": str(path),
                         "data_args": ["data.split=file", f"data.split_file={path}"]})
    else:
        dm.split = split
        dm._split()
        fit = np.sort(np.concatenate([dm.splits["train"], dm.splits["val"]]))
        test = np.sort(dm.splits["test"])
        if groups is None:
            about = ""
        else:  # say whether groups straddle the split (an upstream split may leak)
            shared = np.intersect1d(groups[fit], groups[test]).size
            about = (f", {n_groups} group ids: " + ("no group on both sides" if not shared else
                     f"{shared} group(s) on both sides"))
        line = (f"fixed: the {split!r} split of {n} samples (data.seed {cfg.data.seed}{about}), "
                f"{len(test)} test samples, training seeds "
                f"{', '.join(map(str, protocol.seeds))}")
        for seed in protocol.seeds:
            runs.append({"unit": f"s{seed}", "protocol": "fixed", "repeat": None, "fold": None,
                         "seed": seed, "fit": fit, "test": test,
                         "split_file": None, "data_args": [f"data.split={split}"]})
    info = {"protocol": kind, "split": line, "samples": n, "groups": n_groups,
            "folds": protocol.folds if kind == "cv" else None,
            "repeats": protocol.repeats if kind == "cv" else None,
            "seeds": sorted({r["seed"] for r in runs})}
    return dm, runs, info


def _predict_run(res: dict[str, Any], dm: DataModule, test: np.ndarray,
                 checkpoint: str) -> np.ndarray:
    """The test predictions of a finished training run's tested checkpoint."""
    from sitsformer.data.spec import InputSpec
    from sitsformer.evaluation.evaluate import evaluate_model
    from sitsformer.models.checkpoint import load_model

    model, ckpt = load_model(Path(res["run_dir"]) / f"{checkpoint}.pt")
    r = evaluate_model(model, dm.samples, spec=InputSpec.from_checkpoint(ckpt), indices=test,
                       progress=False, device="cpu", return_predictions=True)
    return np.asarray(r["predictions"], np.int64)


class _Stopped(Exception):
    pass


def run_benchmark(sets: Sequence[BenchmarkSet], seeds: Sequence[int] = (0, 1, 2), *,
                  models: Sequence[ModelEntry] | str | None = None,
                  baselines: Sequence[str] | str | None = None,
                  protocol: Protocol | None = None, config: str | Path | None = None,
                  overrides: Sequence[str] = (), output: str | Path = "benchmark",
                  trees: int = 500, rounds: int = 300, progress: bool = True,
                  resume: bool = False, units: Sequence[str] | str | None = None
                  ) -> dict[str, Any]:
    """Run the benchmark (see the module doc) and write its files into ``output``.

    Args:
        sets: the data sets.
        seeds: training seeds of the ``fixed`` protocol (when ``protocol`` is None).
        models: the deep models (:func:`parse_models`; default :data:`DEFAULT_MODELS`).
        baselines: names of :data:`BASELINES` (default all); one whose package is missing is
            reported as skipped.
        protocol: cross-validation or fixed split (default :class:`Protocol` with ``seeds``).
        config: the recipe, a training config file (default: the shipped ``victoria_pixel``).
        overrides: dotted overrides applied to the recipe for every set and model (after the
            set's own, before the model's).
        output: folder for ``benchmark.json|md|csv|png``, the split files and training runs.
        trees: trees of the random forest; rounds: boosting rounds of LightGBM.
        progress: progress bars of the training runs.
        resume: continue an interrupted benchmark in ``output``: the (set, method, run) rows
            ``benchmark_rows.jsonl`` already holds (each written when it finishes, with a
            fingerprint of what it depends on) are kept, a training run cut short is continued
            from its ``last.pt``, the rest is run. Rows made with other settings are refused.
            Without it the rows file is started afresh.
        units: run only the runs whose unit (``r<repeat>f<fold>`` of ``cv``, ``s<seed>`` of
            ``fixed``) matches one of these shell patterns (comma-separated in a string, e.g.
            ``"s1"`` or ``"r0f*"``); None: all. Parts of one benchmark run apart (e.g. one
            process per seed on a GPU) are joined by :func:`merge_benchmarks`.

    Returns:
        ``{"rows": [one dict per set, method and run], "summary": [...], "splits": {...},
        "files": {...}}``.

    Raises:
        BenchmarkInterrupted: Ctrl-C or SIGTERM; the files hold the rows finished before.
    """
    model_list = (list(models) if models is not None and not isinstance(models, str)
                  and all(isinstance(m, ModelEntry) for m in models)
                  else parse_models(models))  # type: ignore[arg-type]
    base_list = parse_baselines(baselines)
    if not model_list and not base_list:
        raise ValueError("benchmark: expected at least one deep model or baseline; found none")
    proto = protocol if protocol is not None else Protocol(seeds=tuple(seeds))
    patterns = ([u.strip() for u in units.split(",") if u.strip()] if isinstance(units, str)
                else list(units or []))
    recipe_path, recipe = recipe_without_data(config)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / ROWS_FILE
    done = _read_rows(rows_path) if resume else []
    if not resume:
        rows_path.unlink(missing_ok=True)
    rows: list[dict[str, Any]] = []
    infos: dict[str, dict[str, Any]] = {}
    interrupted: str | None = None

    def on_term(signum: int, frame: Any) -> None:
        raise _Stopped(f"stopped by {signal.Signals(signum).name}")

    main_thread = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, on_term) if main_thread else None
    try:
        for bset in sets:
            base = [f"data.source={bset.resolved_source()}",
                    *[f"data.options.{k}={json.dumps(v)}" for k, v in bset.options.items()],
                    *bset.overrides, *overrides]
            dm, runs, info = _set_runs(bset, recipe, base, proto, out)
            if patterns:
                runs = [r for r in runs if any(fnmatch.fnmatchcase(r["unit"], p)
                                               for p in patterns)]
                if not runs:
                    raise ValueError(f"--units {','.join(patterns)}: no run of set "
                                     f"{bset.name!r} matches ({info['split']})")
            skipped = {m: why for m in base_list if (why := _baseline_missing(m))}
            for m, why in skipped.items():
                print(f"{bset.name}: {m} {why}", flush=True)
            info.update(methods=[*(m.name for m in model_list), *base_list],
                        baselines=base_list, skipped=skipped)
            infos[bset.name] = info
            feats = _features(dm) if set(base_list) - set(skipped) else None
            common = {"recipe": recipe, "overrides": list(overrides), "set": vars(bset),
                      "protocol": {k: info[k] for k in ("protocol", "folds", "repeats")}}
            prints = {m.name: _fingerprint(**common, method=m.name, model=list(m.overrides))
                      for m in model_list}
            prints.update({b: _fingerprint(**common, method=b, trees=trees, rounds=rounds)
                           for b in base_list})
            kept_rows: dict[tuple[str, str], dict[str, Any]] = {}
            for r in done:
                if r["set"] != bset.name or r["method"] not in prints:
                    continue
                if r["fingerprint"] != prints[r["method"]]:
                    raise ValueError(
                        f"{rows_path}: the rows of set {bset.name!r}, method {r['method']!r} "
                        f"were made with other settings (recipe, overrides, set, protocol, "
                        f"model or baseline: fingerprint {r['fingerprint']}, now "
                        f"{prints[r['method']]}); pass --overwrite to start again")
                kept_rows[(r["method"], r["unit"])] = r
            for run in runs:
                unit, seed, fit, test = run["unit"], run["seed"], run["fit"], run["test"]
                where = {k: run[k] for k in ("protocol", "repeat", "fold", "seed",
                                             "split_file")}
                sizes = {"n_train": len(fit), "n_test": len(test)}
                for method in [*(m.name for m in model_list), *base_list]:
                    if method in skipped:
                        continue
                    if (method, unit) in kept_rows:
                        rows.append(kept_rows[(method, unit)])
                        print(f"{bset.name} {method} {unit}: kept from {rows_path}", flush=True)
                        continue
                    row: dict[str, Any] = {"set": bset.name, "method": method, "unit": unit,
                                           **where, **sizes}
                    t0 = time.perf_counter()
                    if method in base_list:
                        row["kind"] = "baseline"
                        pred = baseline_predict(method, feats, dm.labels, fit, test, seed,
                                                trees, rounds)
                    else:
                        entry = next(m for m in model_list if m.name == method)
                        name = f"{bset.name}_{method}_{unit}"
                        cfg = load_config(None, [
                            *base, *entry.overrides, *run["data_args"], f"train.seed={seed}",
                            f"logging.name={name}", f"logging.run_dir={out / 'runs'}",
                            f"logging.progress={str(progress).lower()}",
                            "logging.tensorboard=false"], base=recipe)
                        cfg = resolve_size_rules(cfg, n_train=len(fit))
                        last = out / "runs" / name / "last.pt"
                        cut_short = resume and cfg.train.ensemble == 1 and last.is_file()
                        res = run_experiment(cfg, resume=str(last) if cut_short else None)
                        if res.get("status") == "interrupted" or "test" not in res:
                            sig = res.get("stop_signal")
                            by = f" by {signal.Signals(sig).name}" if sig else ""
                            raise _Stopped(f"stopped{by} during the training of {name} (a "
                                           f"resumable {last.name} was saved)")
                        if res["data"]["split_sizes"]["test"] != len(test):
                            raise RuntimeError(
                                f"{name}: the training run's test split holds "
                                f"{res['data']['split_sizes']['test']} samples, the "
                                f"baselines' {len(test)}; the benchmark needs identical splits")
                        pred = _predict_run(res, dm, test, cfg.train.test_checkpoint)
                        row.update(kind="model", overrides=list(entry.overrides),
                                   run_dir=res["run_dir"], run_oa=res["test"]["test_oa"])
                        if cut_short:
                            row["resumed_from"] = str(last)
                    s = _scores(dm.labels[test], pred, dm.num_classes)
                    row.update({k: s[k] for k in METRICS}, seconds=time.perf_counter() - t0,
                               correct=_pack(s["correct"]), fingerprint=prints[method])
                    rows.append(row)
                    _append_row(rows_path, row)
                    print(f"{bset.name} {method} {unit}: OA {row['oa']:.4f}", flush=True)
    except (KeyboardInterrupt, _Stopped) as err:
        interrupted = str(err) or "stopped by Ctrl-C (SIGINT)"
        print(f"\n{interrupted}: writing the table of the {len(rows)} rows finished",
              flush=True)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, old)
    summary = summarize(rows, infos)
    header = {"recipe": str(recipe_path), "overrides": list(overrides),
              "models": [asdict(m) for m in model_list], "baselines": base_list,
              "protocol": asdict(proto), "trees": trees, "rounds": rounds,
              "sets": [vars(s) for s in sets]}
    files = _write(out, summary, infos, header, rows, interrupted)
    result = {"rows": rows, "summary": summary, "splits": infos, "files": files,
              "complete": interrupted is None}
    if interrupted:
        raise BenchmarkInterrupted(interrupted, result)
    return result


def _split_key(line: str | None) -> str:
    """A split line without its list of training seeds (parts of a fixed split may have run
    other seeds)."""
    import re

    return re.sub(r", training seeds [\d, ]+$", "", line or "")


def merge_benchmarks(parts: Sequence[str | Path], output: str | Path) -> dict[str, Any]:
    """Join the rows of benchmarks run apart (e.g. one process per model of a set, in
    parallel) into one table in ``output`` (``benchmark.json|md|csv|png``), as if one
    benchmark had run them all: the paired differences and verdicts are computed over the
    runs (folds or seeds) every side finished.

    Each part is an output folder of :func:`run_benchmark` on the same sets and protocol; its
    ``benchmark_rows.jsonl`` gives the rows (a part killed before it wrote its table still
    counts) and its ``benchmark.json`` the splits and methods. The methods keep the order of
    ``parts`` (the first part's first model is the recipe the other deep models are paired
    with). A part that is missing, incomplete or has no rows is named in the table's note.

    Returns:
        ``{"rows", "summary", "splits", "files", "complete"}`` like :func:`run_benchmark`.
    """
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    infos: dict[str, dict[str, Any]] = {}
    header: dict[str, Any] = {"merged_from": [str(p) for p in parts], "models": [],
                              "baselines": []}
    notes: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for part in map(Path, parts):
        meta_path = part / "benchmark.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        part_rows = _read_rows(part / ROWS_FILE)
        if not meta:
            notes.append(f"{part.name}: no table written (killed?), {len(part_rows)} rows")
        elif not meta.get("complete", False):
            notes.append(f"{part.name}: {meta.get('interrupted') or 'incomplete'}")
        for key in ("recipe", "overrides", "protocol", "trees", "rounds", "sets"):
            if key in meta:
                header.setdefault(key, meta[key])
        header["models"] += [m for m in meta.get("models", []) if m not in header["models"]]
        header["baselines"] += [b for b in meta.get("baselines", [])
                                if b not in header["baselines"]]
        for name, info in meta.get("splits", {}).items():
            mine = infos.setdefault(name, {**info, "methods": [], "baselines": [],
                                           "skipped": {}})
            if _split_key(info.get("split")) != _split_key(mine.get("split")):
                raise ValueError(f"merge: set {name!r} was split differently in {part} "
                                 f"({info.get('split')!r}) than before ({mine.get('split')!r})")
            seeds = sorted({*mine.get("seeds", []), *info.get("seeds", [])})
            if seeds and seeds != mine.get("seeds"):  # other seeds of the same split
                mine["seeds"] = seeds
                mine["split"] = (f"{_split_key(mine['split'])}, training seeds "
                                 f"{', '.join(map(str, seeds))}")
            mine["methods"] += [m for m in info.get("methods", []) if m not in mine["methods"]]
            mine["baselines"] += [b for b in info.get("baselines", [])
                                  if b not in mine["baselines"]]
            mine["skipped"].update(info.get("skipped", {}))
        for r in part_rows:
            key = (r["set"], r["method"], r["unit"])
            if key not in seen:
                seen.add(key)
                rows.append(r)
                info = infos.setdefault(r["set"], {"protocol": r.get("protocol"), "split": "",
                                                   "methods": [], "baselines": [],
                                                   "skipped": {}})
                if r["method"] not in info["methods"]:
                    info["methods"].append(r["method"])
                    if r.get("kind") == "baseline":
                        info["baselines"].append(r["method"])
    interrupted = "; ".join(notes) or None
    summary = summarize(rows, infos)
    files = _write(out, summary, infos, header, rows, interrupted)
    return {"rows": rows, "summary": summary, "splits": infos, "files": files,
            "complete": interrupted is None}
