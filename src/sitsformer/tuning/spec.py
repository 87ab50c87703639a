"""The sweep file: what to search, how, for how long and where to keep the results.

A sweep file is YAML (or a dict) in the format Weights & Biases sweeps use, plus a few keys for
running it with Optuna::

    method: bayes                 # bayes (TPE) | grid | random
    metric: {name: val_accuracy, goal: maximize}
    base_config: tiny.yaml        # training config every trial starts from (relative to this file)
    runner: null                  # or "package.module:factory" returning a custom trial runner
    trials: 20                    # also accepted as ``count``; grid defaults to every grid point
    epochs: 10                    # overrides the training config's number of epochs
    seed: 0
    pruner: {type: median, n_startup_trials: 5, n_warmup_steps: 1}   # or ``none``
    storage: null                 # default: an SQLite file in output_dir; or a database URL
    study_name: null              # default: <name or "sweep">-<hash of method/metric/parameters>
    heartbeat_interval: 60        # seconds; a trial whose worker died is failed and run again
    output_dir: runs/sweeps/my_sweep
    parameters:
      learning_rate: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-2}
      embed_dim: {values: [128, 256]}
      model.num_layers: {value: 2}          # dotted training-config keys are accepted as-is

Parameter names are either the flat names of the tutorial (``learning_rate``, ``embed_dim``,
``num_layers``, ``num_heads``, ``dropout``, ``weight_decay`` ...; see :data:`PARAM_ALIASES`) or
dotted keys of the training config (``optim.lr``). Every problem is a :class:`SweepSpecError`
naming the file and the key.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sitsformer.configs import is_shipped

METHODS = ("bayes", "grid", "random")
GOALS = ("maximize", "minimize")
PRUNERS = ("median", "hyperband", "none")

# Workers beat a heartbeat this often (seconds) unless the file says otherwise; a trial whose
# worker stopped beating for twice as long is marked failed and queued again. 0/null/false in
# the file turns it off; $SITSFORMER_SWEEP_HEARTBEAT changes the default.
DEFAULT_HEARTBEAT_S = 60
HEARTBEAT_ENV = "SITSFORMER_SWEEP_HEARTBEAT"
# The real storage URL for a sweep file whose saved URL has its password masked.
STORAGE_ENV = "SITSFORMER_SWEEP_STORAGE"
MASK = "***"

# Flat names (tutorial, W&B habits) -> dotted keys of the training config.
PARAM_ALIASES: dict[str, str] = {
    "learning_rate": "optim.lr",
    "lr": "optim.lr",
    "weight_decay": "optim.weight_decay",
    "optimizer": "optim.type",
    "optimizer_type": "optim.type",
    "layer_decay": "optim.layer_decay",
    "embed_dim": "model.embed_dim",
    "num_layers": "model.num_layers",
    "num_heads": "model.num_heads",
    "dropout": "model.dropout",
    "attn_dropout": "model.attn_dropout",
    "mlp_ratio": "model.mlp_ratio",
    "patch_size": "model.patch_size",
    "pool": "model.pool",
    "date_encoding": "model.date_encoding",
    "batch_size": "data.batch_size",
    "label_smoothing": "loss.label_smoothing",
    "warmup_epochs": "schedule.warmup_epochs",
    "min_lr": "schedule.min_lr",
    "scheduler": "schedule.type",
    "scheduler_type": "schedule.type",
    "grad_clip": "train.grad_clip",
    "accumulation_steps": "train.accumulation_steps",
    "focal_gamma": "loss.focal_gamma",
    "loss": "loss.type",
    "epochs": "train.epochs",
    "num_epochs": "train.epochs",
}

# Distributions with min/max, and what Optuna call each becomes.
DISTRIBUTIONS = ("constant", "categorical", "uniform", "log_uniform_values", "int_uniform",
                 "q_uniform", "log_uniform", "q_log_uniform_values", "int_log_uniform_values")

# Keys of a W&B sweep file that only matter to W&B; accepted and kept, not used by Optuna.
_WANDB_ONLY = ("program", "command", "project", "entity", "description", "run_cap")

_TOP_KEYS = ("method", "metric", "parameters", "base_config", "trials", "count", "epochs", "seed",
             "pruner", "early_terminate", "storage", "study_name", "output_dir", "name",
             "workers", "timeout", "overrides", "heartbeat_interval", "runner", *_WANDB_ONLY)


def mask_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: ``postgresql+psycopg://u:***@h/db``."""
    import re

    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@\s]*@", rf"\1:{MASK}@", str(url))


def scrub(text: str, url: str | None) -> str:
    """``text`` with the password of ``url`` (plain and URL-quoted) replaced by ``***``."""
    import re
    from urllib.parse import unquote

    if not url:
        return text
    m = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:([^@\s]*)@", str(url))
    if not m or not m.group(1) or m.group(1) == MASK:
        return text
    for secret in {m.group(1), unquote(m.group(1))}:
        text = text.replace(secret, MASK)
    return text


def default_study_name(prefix: str | None, definition: dict[str, Any]) -> str:
    """``<prefix or "sweep">-<12 hex digits>``: a readable name plus a stable hash of the sweep
    definition (method, metric, parameters), so that two different sweep files sharing a
    database never land in one study by accident."""
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps(definition, sort_keys=True, default=repr).encode())
    return f"{prefix or 'sweep'}-{digest.hexdigest()[:12]}"


class SweepSpecError(ValueError):
    """A sweep file that cannot be run; the message names the file and the key."""


@dataclass
class ParamSpec:
    """One searched (or fixed) parameter.

    Attributes:
        name: the name as written in the sweep file.
        key: the dotted training-config key it sets.
        kind: one of :data:`DISTRIBUTIONS`.
        values: the choices (``categorical``) or the single value (``constant``).
        low, high: bounds of a range distribution (in value space, not log space).
        step: the step of a ``q_*`` distribution.
        log: sample uniformly in log space.
    """

    name: str
    key: str
    kind: str
    values: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False

    @property
    def is_int(self) -> bool:
        return self.kind in ("int_uniform", "int_log_uniform_values")

    def grid_values(self) -> list[Any]:
        """The values a grid search takes for this parameter."""
        if self.kind == "categorical":
            return list(self.values or [])
        if self.kind == "constant":
            return [self.values[0]] if self.values else [None]
        if self.kind == "int_uniform" and self.step is None:
            return list(range(int(self.low), int(self.high) + 1))
        raise SweepSpecError(
            f"parameters.{self.name}: method 'grid' needs 'values' (or 'value' or an "
            f"int_uniform range) for every parameter; found distribution {self.kind!r}"
        )


@dataclass
class SweepSpec:
    """A parsed, validated sweep file. Build it with :func:`load_sweep_spec`."""

    method: str
    metric_name: str
    goal: str
    parameters: list[ParamSpec]
    base_config: Path | None = None
    trials: int | None = None
    epochs: int | None = None
    seed: int = 0
    pruner: dict[str, Any] = field(default_factory=lambda: {"type": "median"})
    storage: str | None = None
    study_name: str = ""  # set by load_sweep_spec: default_study_name(...) unless given
    output_dir: Path = Path("runs/sweep")
    overrides: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    heartbeat_interval: int | None = DEFAULT_HEARTBEAT_S
    runner: str | None = None
    source: str = "<dict>"
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def direction(self) -> str:
        return self.goal

    def grid(self) -> dict[str, list[Any]]:
        """``{dotted key: values}`` of the full grid (every parameter must be discrete)."""
        return {p.key: p.grid_values() for p in self.parameters}

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())

    def n_trials(self) -> int:
        """How many trials the whole sweep runs (over all workers)."""
        if self.method == "grid":
            # Each grid point runs once; more trials would only repeat points.
            size = self.grid_size()
            return size if self.trials is None else min(self.trials, size)
        if self.trials is not None:
            return self.trials
        raise SweepSpecError(f"{self.source}: 'trials' (or 'count') is required for method "
                             f"{self.method!r}")

    def resolved_storage(self) -> str:
        """The storage URL; the default is ``sqlite:///<output_dir>/sweep.db``.

        A URL whose password was masked when it was saved (``user:***@host``) takes the real
        one from ``$SITSFORMER_SWEEP_STORAGE`` when that names the same database (the
        processes ``--workers`` starts get it that way); otherwise it stays masked and the
        database refuses it (use ``--storage URL``, or no password in the URL and
        ``PGPASSWORD`` / ``~/.pgpass``).
        """
        if self.storage:
            env = os.environ.get(STORAGE_ENV)
            if env and MASK in self.storage and mask_url(env) == self.storage:
                return env
            return self.storage
        return f"sqlite:///{(self.output_dir / 'sweep.db').resolve()}"

    def masked_storage(self) -> str:
        """The storage URL with its password replaced by ``***`` (for printing and saving)."""
        return mask_url(self.resolved_storage())

    def definition(self) -> dict[str, Any]:
        """What makes two sweep files the same search: method, metric and parameters (each
        parameter's key, distribution and range or values). The default study name hashes it,
        and a study keeps it to refuse a different sweep joining it."""
        return {"method": self.method, "metric": {"name": self.metric_name, "goal": self.goal},
                "parameters": {p.key: {"kind": p.kind, "values": p.values, "low": p.low,
                                       "high": p.high, "step": p.step, "log": p.log}
                               for p in sorted(self.parameters, key=lambda p: p.key)}}

    def to_dict(self) -> dict[str, Any]:
        """The sweep as a plain dict with resolved paths (workers re-read it)."""
        out = copy.deepcopy(self.raw)
        out["base_config"] = str(self.base_config) if self.base_config else None
        out["output_dir"] = str(self.output_dir.resolve())
        out["storage"] = self.masked_storage()  # never a password in a file
        out["study_name"] = self.study_name
        out["heartbeat_interval"] = self.heartbeat_interval  # workers use the same
        out.pop("count", None)
        out["trials"] = self.n_trials()
        return out


def _err(source: str, key: str, msg: str) -> SweepSpecError:
    return SweepSpecError(f"{source}: {key}: {msg}")


def _number(source: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        # YAML 1.1 reads "1e-5" (no dot) as a string: accept numeric strings.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise _err(source, key, f"expected a number, found {value!r}")
    return float(value)


def resolve_key(name: str) -> str:
    """The dotted training-config key for a sweep parameter name."""
    if "." in name:
        return name
    return PARAM_ALIASES.get(name, name)


def parse_parameter(name: str, spec: Any, source: str = "<dict>") -> ParamSpec:
    """Parse one entry of ``parameters`` into a :class:`ParamSpec`.

    Raises:
        SweepSpecError: naming the parameter, when the entry is not a valid distribution.
    """
    where = f"parameters.{name}"
    key = resolve_key(name)
    if "." not in key:
        raise _err(source, where, f"unknown parameter name; use a dotted training-config key "
                                  f"(e.g. 'model.{name}') or one of {sorted(PARAM_ALIASES)}")
    if not isinstance(spec, dict):
        raise _err(source, where, f"expected a mapping with 'values', 'value' or 'distribution', "
                                  f"found {spec!r}")
    allowed = {"values", "value", "distribution", "min", "max", "q", "probabilities"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise _err(source, where, f"unknown key(s) {unknown}; expected some of {sorted(allowed)}")
    dist = spec.get("distribution")
    if "value" in spec:
        if dist not in (None, "constant"):
            raise _err(source, where, f"'value' goes with no distribution, found {dist!r}")
        return ParamSpec(name, key, "constant", values=[spec["value"]])
    if "values" in spec:
        values = spec["values"]
        if dist not in (None, "categorical"):
            raise _err(source, where, f"'values' goes with distribution 'categorical' (or none), "
                                      f"found {dist!r}")
        if not isinstance(values, list) or not values:
            raise _err(source, where, f"'values' must be a non-empty list, found {values!r}")
        for v in values:
            if not (v is None or isinstance(v, (bool, int, float, str))):
                raise _err(source, where, f"values must be numbers, strings, booleans or null; "
                                          f"found {v!r}")
        if len({repr(v) for v in values}) != len(values):
            raise _err(source, where, f"'values' has duplicates: {values}")
        return ParamSpec(name, key, "categorical", values=list(values))
    if dist is None:
        raise _err(source, where, "expected 'values', 'value' or 'distribution' with min/max")
    if dist not in DISTRIBUTIONS or dist in ("constant", "categorical"):
        ranged = [d for d in DISTRIBUTIONS if d not in ("constant", "categorical")]
        raise _err(source, where, f"unsupported distribution {dist!r}; supported: {ranged}")
    for bound in ("min", "max"):
        if bound not in spec:
            raise _err(source, where, f"distribution {dist!r} needs '{bound}'")
    low = _number(source, f"{where}.min", spec["min"])
    high = _number(source, f"{where}.max", spec["max"])
    if not low < high:
        raise _err(source, where, f"need min < max, found min={low:g}, max={high:g}")
    step = _number(source, f"{where}.q", spec["q"]) if "q" in spec else None
    if dist == "log_uniform":
        # W&B: min/max are natural logs of the bounds.
        return ParamSpec(name, key, dist, low=math.exp(low), high=math.exp(high), log=True)
    if dist in ("log_uniform_values", "q_log_uniform_values", "int_log_uniform_values"):
        if low <= 0:
            raise _err(source, where, f"{dist!r} needs min > 0, found {low:g}")
        if dist == "q_log_uniform_values":
            raise _err(source, where, "q_log_uniform_values is not supported by Optuna "
                                      "(a log scale with a step); use log_uniform_values")
    if dist in ("int_uniform", "int_log_uniform_values"):
        if low != int(low) or high != int(high):
            raise _err(source, where, f"{dist!r} needs integer min/max, found {low:g}, {high:g}")
        return ParamSpec(name, key, dist, low=int(low), high=int(high),
                         step=int(step) if step else None, log=dist == "int_log_uniform_values")
    if dist == "q_uniform":
        if step is None or step <= 0:
            raise _err(source, where, "q_uniform needs a positive 'q' (the step)")
        return ParamSpec(name, key, dist, low=low, high=high, step=step)
    return ParamSpec(name, key, dist, low=low, high=high, log=dist == "log_uniform_values")


def _positive_int(source: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _err(source, key, f"expected a positive integer, found {value!r}")
    return value


def parse_pruner(source: str, raw: dict[str, Any]) -> dict[str, Any]:
    """``pruner`` (ours) or ``early_terminate`` (W&B) as ``{"type": ..., options}``."""
    if "pruner" in raw and "early_terminate" in raw:
        raise _err(source, "pruner", "give either 'pruner' or 'early_terminate', not both")
    if "early_terminate" in raw:
        et = raw["early_terminate"]
        if not isinstance(et, dict) or et.get("type") != "hyperband":
            raise _err(source, "early_terminate", f"only type 'hyperband' is known, found {et!r}")
        return {"type": "hyperband", "min_resource": int(et.get("min_iter", 1)),
                "reduction_factor": int(et.get("eta", 3))}
    pruner = raw.get("pruner", {"type": "median"})
    if pruner is None or pruner is False or pruner == "none":
        return {"type": "none"}
    if isinstance(pruner, str):
        pruner = {"type": pruner}
    if not isinstance(pruner, dict):
        raise _err(source, "pruner", f"expected a mapping or a name in {PRUNERS}, found {pruner!r}")
    pruner = dict(pruner)
    pruner.setdefault("type", "median")
    if pruner["type"] not in PRUNERS:
        raise _err(source, "pruner.type", f"expected one of {PRUNERS}, found {pruner['type']!r}")
    known = {"median": {"n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"},
             "hyperband": {"min_resource", "max_resource", "reduction_factor"},
             "none": set()}[pruner["type"]]
    unknown = sorted(set(pruner) - known - {"type"})
    if unknown:
        raise _err(source, "pruner", f"unknown option(s) {unknown} for {pruner['type']!r}; "
                                     f"expected some of {sorted(known)}")
    return pruner


def load_sweep_spec(config: str | os.PathLike[str] | dict[str, Any] | SweepSpec,
                    output_dir: str | os.PathLike[str] | None = None) -> SweepSpec:
    """Read and validate a sweep file (or dict).

    Relative paths in a file (``base_config``, ``output_dir``) are resolved against the file's
    folder; in a dict, against the current directory. A shipped sweep file
    (:mod:`sitsformer.configs`) takes its ``output_dir`` from the current directory.

    Args:
        config: path to a YAML sweep file, a dict in the same format, or a parsed spec.
        output_dir: overrides the file's ``output_dir``.

    Raises:
        SweepSpecError: naming the file and the key.
    """
    if isinstance(config, SweepSpec):
        if output_dir is not None:
            config = copy.copy(config)
            config.output_dir = Path(output_dir)
        return config
    if isinstance(config, dict):
        raw, source, root = copy.deepcopy(config), "<sweep dict>", Path.cwd()
    else:
        path = Path(config)
        if not path.is_file():
            raise SweepSpecError(f"sweep file not found: {path}")
        source, root = str(path), path.resolve().parent
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise SweepSpecError(f"{path}: not valid YAML: {err}") from err
        if not isinstance(raw, dict):
            raise SweepSpecError(f"{path}: expected a mapping at the top level, found "
                                 f"{type(raw).__name__}")
    unknown = sorted(set(raw) - set(_TOP_KEYS))
    if unknown:
        raise SweepSpecError(f"{source}: unknown key(s) {unknown}; expected some of "
                             f"{sorted(_TOP_KEYS)}")
    method = raw.get("method", "bayes")
    if method not in METHODS:
        raise _err(source, "method", f"expected one of {METHODS}, found {method!r}")
    metric = raw.get("metric")
    if not isinstance(metric, dict) or "name" not in metric:
        raise _err(source, "metric", f"expected {{name: ..., goal: maximize|minimize}}, "
                                     f"found {metric!r}")
    goal = metric.get("goal", "minimize")
    if goal not in GOALS:
        raise _err(source, "metric.goal", f"expected one of {GOALS}, found {goal!r}")
    params_raw = raw.get("parameters")
    if not isinstance(params_raw, dict) or not params_raw:
        raise _err(source, "parameters", f"expected a non-empty mapping, found {params_raw!r}")
    parameters = [parse_parameter(str(n), s, source) for n, s in params_raw.items()]
    seen: dict[str, str] = {}
    for p in parameters:
        if p.key in seen:
            raise _err(source, f"parameters.{p.name}",
                       f"sets {p.key!r}, which parameter {seen[p.key]!r} sets too")
        seen[p.key] = p.name
    if "trials" in raw and "count" in raw and raw["trials"] != raw["count"]:
        raise _err(source, "trials", f"'trials' ({raw['trials']}) and 'count' ({raw['count']}) "
                                     "disagree")
    trials = raw.get("trials", raw.get("count"))
    trials = _positive_int(source, "trials", trials) if trials is not None else None
    epochs = raw.get("epochs")
    epochs = _positive_int(source, "epochs", epochs) if epochs is not None else None
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise _err(source, "seed", f"expected an integer, found {seed!r}")
    base = raw.get("base_config")
    base_path = None
    if base is not None:
        base_path = Path(base)
        if not base_path.is_absolute():
            base_path = root / base_path
        base_path = base_path.resolve()
        if not base_path.is_file():
            raise _err(source, "base_config", f"training config not found: {base_path}")
    default_out = f"runs/sweeps/{raw.get('name') or raw.get('study_name') or 'sweep'}"
    out = Path(output_dir) if output_dir is not None else Path(
        raw.get("output_dir") or default_out)
    if not out.is_absolute() and output_dir is None and raw.get("output_dir"):
        # a file shipped inside the package: results go below the current directory
        out = ((Path.cwd() if is_shipped(source) else root) / out).resolve()
    overrides = raw.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise _err(source, "overrides", f"expected a mapping of dotted keys, found {overrides!r}")
    for k in overrides:
        if "." not in str(k):
            raise _err(source, f"overrides.{k}", "expected a dotted training-config key")
    timeout = raw.get("timeout")
    if timeout is not None:
        timeout = _number(source, "timeout", timeout)
    if "heartbeat_interval" in raw:
        hb = raw["heartbeat_interval"]
        hb = None if hb in (None, False, 0) else _positive_int(source, "heartbeat_interval", hb)
    else:
        env = os.environ.get(HEARTBEAT_ENV)
        hb = _positive_int(HEARTBEAT_ENV, "value", int(env)) if env else DEFAULT_HEARTBEAT_S
    runner = raw.get("runner")
    if runner is not None and (not isinstance(runner, str) or ":" not in runner):
        raise _err(source, "runner", f"expected 'package.module:factory', found {runner!r}")
    spec = SweepSpec(
        method=method, metric_name=str(metric["name"]), goal=goal, parameters=parameters,
        base_config=base_path, trials=trials, epochs=epochs, seed=seed,
        pruner=parse_pruner(source, raw), storage=raw.get("storage"),
        study_name=str(raw.get("study_name") or ""),
        output_dir=out, overrides=dict(overrides), timeout=timeout, heartbeat_interval=hb,
        runner=runner, source=source, raw=raw,
    )
    if not spec.study_name:
        spec.study_name = default_study_name(raw.get("name"), spec.definition())
    if method == "grid":
        try:
            spec.grid()  # raises, naming the parameter, when one is continuous
        except SweepSpecError as err:
            raise SweepSpecError(f"{source}: {err}") from None
    elif trials is None:
        raise _err(source, "trials", f"'trials' (or 'count') is required for method {method!r}")
    return spec
