"""What a sweep leaves behind: a table of trials, the best config, plots."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from sitsformer.tuning.spec import SweepSpec
from sitsformer.tuning.study import superseded


def trials_table(study: optuna.Study, spec: SweepSpec) -> pd.DataFrame:
    """One row per trial: number, state, status, value, every parameter, time, worker, error.

    Parameters are columns named by their dotted training-config keys; fixed (``value:``)
    parameters are included. Queued (waiting) trials are left out.
    """
    rows = []
    keys = [p.key for p in spec.parameters]
    trials = study.get_trials(deepcopy=False)
    retried = superseded(trials)
    for t in trials:
        if t.state == TrialState.WAITING:
            continue
        a = t.user_attrs
        row: dict[str, Any] = {"number": t.number, "state": t.state.name,
                               "status": a.get("status") or (
                                   "stale" if t.state == TrialState.FAIL else t.state.name.lower())}
        row[spec.metric_name] = t.value if t.state == TrialState.COMPLETE else None
        for k in keys:
            row[k] = t.params.get(k, a.get(f"fixed:{k}", a.get("overrides", {}).get(k)))
        row["epochs_run"] = a.get("epochs_run")
        row["last_reported"] = (t.intermediate_values[max(t.intermediate_values)]
                                if t.intermediate_values else None)
        row["duration_s"] = a.get("duration_s")
        row["worker"] = a.get("worker")
        row["retried"] = t.number in retried
        row["error"] = a.get("error", "")
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame, max_error: int = 80) -> str:
    """A GitHub-flavoured Markdown table (errors shortened to ``max_error`` characters)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            s = _fmt(r[c])
            if c == "error" and len(s) > max_error:
                s = s[:max_error] + "..."
            cells.append(s)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best completed trial, or None when none completed."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not done:
        return None
    return study.best_trial


def save_plots(study: optuna.Study, spec: SweepSpec, out_dir: Path) -> dict[str, Path]:
    """PNG plots: optimisation history, per-epoch curves and, when at least two trials completed
    with varying parameters and different values, parameter importances. Returns ``{name:
    path}`` of those written.

    Importances use Optuna's PED-ANOVA evaluator, which needs nothing beyond Optuna and numpy
    (the default fANOVA one needs scikit-learn, which is no dependency). The plots are drawn
    inside ``matplotlib.rc_context``: Optuna's plotting switches to its own style, and the
    caller's style, rcParams and backend are left as they were.
    """
    import matplotlib
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    out_dir.mkdir(parents=True, exist_ok=True)
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    written: dict[str, Path] = {}

    def save(name: str, make: Any) -> None:
        with matplotlib.rc_context(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna's matplotlib plots are "experimental"
            ax = make()
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            try:
                fig.set_size_inches(8, 5)
                fig.tight_layout()
                path = out_dir / f"{name}.png"
                fig.savefig(path, dpi=100)
            finally:
                if plt.fignum_exists(fig.number if hasattr(fig, "number") else -1):
                    plt.close(fig)
        written[name] = path

    if done:
        save("optimization_history",
             lambda: ovm.plot_optimization_history(study, target_name=spec.metric_name))
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        save("intermediate_values", lambda: ovm.plot_intermediate_values(study))
    varying = {k for t in done for k in t.params
               if len({repr(u.params.get(k)) for u in done}) > 1}
    if len(done) >= 2 and varying and len({t.value for t in done}) > 1:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # PED-ANOVA warns on very few trials
                importances = optuna.importance.get_param_importances(
                    study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
                    params=sorted(varying))
            save("param_importances",
                 lambda: _importance_bars(importances, spec.metric_name))
        except (RuntimeError, ValueError, ZeroDivisionError) as err:
            warnings.warn(f"parameter importances not plotted: {err}", stacklevel=2)
    return written


def _importance_bars(importances: dict[str, float], metric: str) -> Any:
    """A horizontal bar chart of importances on a figure of its own (not pyplot's: it works
    under any backend the caller chose)."""
    from matplotlib.figure import Figure

    names = list(importances)[::-1]  # most important at the top
    fig = Figure()
    ax = fig.add_subplot()
    bars = ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.bar_label(bars, fmt="%.2f", padding=2)
    ax.set_xlabel(f"importance for {metric} (PED-ANOVA)")
    ax.set_title("Hyperparameter importances")
    ax.set_xlim(0, max(1e-12, max(importances.values(), default=0.0)) * 1.15)
    return ax
