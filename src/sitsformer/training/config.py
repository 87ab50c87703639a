"""Experiment configuration: typed dataclasses, YAML files and dotted ``key=value`` overrides.

An experiment has seven sections (``model``, ``data``, ``optim``, ``schedule``, ``loss``,
``train``, ``logging``), plus ``pretrain`` or ``finetune`` for those recipes; every field has a default in code, a YAML file sets some of them and
command-line overrides such as ``optim.lr=3e-4`` or ``model.embed_dim=64`` set others. Unknown
keys and values of the wrong type are errors that name the dotted key. The resolved config is
written to the run folder (``config.yaml``) and stored in every checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sitsformer._yaml import load_yaml as _yaml  # YAML without timestamps
from sitsformer.models.config import SITSFormerConfig


class ConfigError(ValueError):
    """A config key is unknown, or its value has the wrong type or is out of range; the message
    names the key (and, for a range, the value and the valid range)."""


def _model_section() -> type:
    """``ModelSection``, generated from :class:`~sitsformer.models.SITSFormerConfig`: a
    ``variant`` plus every architecture setting as an optional override (None = the variant's
    value, or for ``in_channels``, ``num_classes``, ``img_size`` and ``max_seq_len`` what the
    data needs), plus ``grad_checkpointing``. Generated, so the two cannot drift apart."""
    fields: list[Any] = [("variant", str | None, field(default="sitsformer_pixel"))]
    hints = typing.get_type_hints(SITSFormerConfig)
    for f in dataclasses.fields(SITSFormerConfig):
        tp = hints[f.name]
        optional = tp if type(None) in typing.get_args(tp) else tp | None
        fields.append((f.name, optional, field(default=None)))
    fields.append(("grad_checkpointing", bool, field(default=False)))
    cls = dataclasses.make_dataclass("ModelSection", fields)
    cls.__module__ = __name__
    cls.__doc__ = ("The model: a registered variant plus overrides of any SITSFormerConfig "
                   "setting (None = the variant's value; in_channels, num_classes, img_size "
                   "and max_seq_len default to what the data needs).")
    return cls


ModelSection = _model_section()
MODEL_SECTION_EXTRA = ("variant", "grad_checkpointing")  # the keys that are not model settings


@dataclass
class DataSection:
    """Where the samples come from, how they are split, scaled and batched."""

    source: str = "demo"  # "demo" (GENERATED data), a shared-format .npz, or any open_source path
    options: dict[str, Any] = field(default_factory=dict)  # passed to sitsformer.data.open_source
    demo_samples: int = 800  # demo only
    demo_img_size: int = 1  # demo only: 1 = pixel time series
    demo_classes: int = 8  # demo only
    split: str = "group"  # one of sitsformer.data.SPLITS (docs/data_preparation.md, "Splits")
    split_file: str | None = None  # split "file": CSV id,split or JSON {id: split}
    folds: int = 5  # split "kfold": number of folds ...
    fold: int = 0  # ... and the fold held out as the test split (0 .. folds - 1)
    block_size: float | None = None  # split "spatial": block side in coordinate units
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    # the factor values are stored with (models see value / scale): "auto" infers it from the
    # training values (integer reflectance x 10000 -> 10000, floats 0..1 or an index -> 1);
    # a number always wins; null = values used as stored
    scale: float | str | None = "auto"
    normalize: bool = True  # then standardised per band with train-split statistics
    batch_size: int = 64  # global batch (split over ranks under torchrun)
    eval_batch_size: int | None = None
    num_workers: int = 0
    seed: int = 0
    # random augmentation of the training split (sitsformer.data.augment; 0 = off)
    date_dropout: float = 0.0  # probability of hiding each valid date
    date_shift_days: int = 0  # whole series moved by up to +- this many days
    band_noise: float = 0.0  # std of Gaussian noise on the (standardised) values

    def __post_init__(self) -> None:
        from sitsformer.data.module import SPLITS

        if self.split not in SPLITS:
            allowed = "; ".join(f"{k!r} ({v})" for k, v in SPLITS.items())
            raise ConfigError(f"config key 'data.split': expected one of {allowed}; found "
                              f"{self.split!r} (see docs/data_preparation.md)")
        if isinstance(self.scale, str) and self.scale != "auto":
            try:  # YAML 1.1 reads "1e4" (no dot) as a string
                self.scale = float(self.scale)
            except ValueError:
                pass
        if isinstance(self.scale, str) and self.scale != "auto":
            raise ConfigError(f"config key 'data.scale': expected 'auto', null or a positive "
                              f"number (the factor values are stored with), found {self.scale!r}")
        if self.scale is not None and not isinstance(self.scale, str) and not self.scale > 0:
            raise ConfigError(f"config key 'data.scale': expected a positive number, found "
                              f"{self.scale!r}")


@dataclass
class OptimSection:
    type: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.9
    layer_decay: float | None = None


@dataclass
class ScheduleSection:
    type: str = "cosine"
    warmup_epochs: float = 1.0
    min_lr: float = 1e-6
    step_size: int = 30
    gamma: float = 0.1
    per_step: bool = True  # step per optimizer update (else per epoch)
    patience: int = 5  # plateau only
    factor: float = 0.5  # plateau only


@dataclass
class LossSection:
    type: str = "cross_entropy"  # or "focal"
    label_smoothing: float = 0.0
    class_weights: str | list[float] | None = None  # "balanced" = from the train split
    focal_gamma: float = 2.0


@dataclass
class TrainSection:
    epochs: int = 20
    precision: str = "fp32"  # "fp32", "bf16", "fp16" (GPU)
    grad_clip: float | None = 1.0
    accumulation_steps: int = 1
    early_stopping_patience: int | None = None
    monitor: str = "val_loss"
    seed: int = 0
    device: str | None = None  # default: CUDA when available
    save_every: int | None = None
    # least seconds between two writes of last.pt / best.pt at epoch ends (None: every epoch);
    # the final epoch, a signal and an error always write: a kill -9 loses at most this much
    checkpoint_interval_s: float | None = None
    threads: int | None = None  # torch.set_num_threads
    dist_timeout_s: float | None = None  # torchrun: a collective waiting longer fails (600 s)
    min_steps: int | None = None  # at least this many optimizer updates: more epochs when small
    ema_decay: float | None = None  # evaluate and save an exponential moving average of weights
    test_checkpoint: str = "best"  # scored on the test split: "best" (monitor) or "last"
    ensemble: int = 1  # K > 1: K models (seeds seed*K..seed*K+K-1), one averaged checkpoint
    # train.ensemble only when the training split holds at most this many samples (None:
    # always): small sets, where seeds differ most, get K models; large ones one
    ensemble_max_samples: int | None = None
    # a training split of at most small_set_max_samples samples (None: never) trains with the
    # settings of small_set instead, dotted keys as on the command line ({"model.embed_dim":
    # 64}); a key given as an override keeps the override. The run prints what was applied
    # and its config.yaml holds the settings used, the rule cleared
    small_set_max_samples: int | None = None
    small_set: dict[str, Any] = field(default_factory=dict)
    # GiB a training step may use: picks block checkpointing and micro-batching (same effective
    # batch) from the measured saved-for-backward bytes (sitsformer.training.memory)
    memory_budget_gb: float | None = None
    # torch.compile backend for the training steps ("inductor": fused kernels on a GPU; None:
    # eager). Measured on an H200: the tutorial model's bf16 step 108 -> 80 ms, 34 s to compile
    compile: str | None = None


@dataclass
class LoggingSection:
    run_dir: str = "runs"  # parent folder of runs
    name: str | None = None  # run folder name (default: date-time)
    tensorboard: bool = True
    wandb: bool = False
    wandb_project: str = "sitsformer"
    plots: bool = True
    progress: bool = True


@dataclass
class ExperimentConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    loss: LossSection = field(default_factory=LossSection)
    train: TrainSection = field(default_factory=TrainSection)
    logging: LoggingSection = field(default_factory=LoggingSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ExperimentConfig:
        """Build and validate: types first, then the value ranges (:data:`RANGES`)."""
        cfg = _build(cls, data or {}, "")
        check_values(cfg)
        return cfg


@dataclass
class PretrainSection:
    """Masked-date pre-training settings."""

    target: str = "center"  # "center" (centre pixel, all bands) or "patch" (every pixel)
    hide_ratio: float = 0.3  # share of the valid dates hidden per sample
    baseline: bool = True  # report linear interpolation on the same hidden dates
    eval_seed: int = 0  # seed of the validation / test hiding draws


@dataclass
class PretrainExperimentConfig(ExperimentConfig):
    """An experiment config (model, data, optim, schedule, train, logging) plus ``pretrain``.

    ``data.source`` needs no labels; ``data.split`` ``"group"`` falls back to ``"random"``
    (with a printed note) when the source has no group ids. The validation split monitors
    training; the test split is held out and reported at the end (model vs baseline).
    """

    pretrain: PretrainSection = field(default_factory=PretrainSection)


@dataclass
class FinetuneSection:
    """Fine-tuning settings (layer-wise LR decay is ``optim.layer_decay``)."""

    freeze_epochs: int = 0  # epochs with a frozen encoder (only the new head learns)
    label_fraction: float = 1.0  # share of the training labels used (per class, >= 1 each)
    use_pretrained_normalization: bool = True  # scale/standardise as in pre-training


@dataclass
class FinetuneExperimentConfig(ExperimentConfig):
    """An experiment config plus ``finetune``. ``model.*`` settings that change weights
    (width, depth, bands, date encoding ...) come from the pre-trained checkpoint; a value
    that differs is an error."""

    finetune: FinetuneSection = field(default_factory=FinetuneSection)


# ------------------------------------------------------------------------------ value ranges
# Every numeric setting and the values it accepts, checked when a config is read (after the
# types). One table, kept apart from the section classes above: a new numeric field gets a
# line here (tests/training/test_config_values.py checks that every numeric field has one).
# A list value (optim.betas, loss.class_weights) is checked item by item; None is always
# accepted where the type allows it (it means "off" or "the default").


@dataclass(frozen=True)
class Range:
    """``lo``/``hi`` bounds (None = unbounded); ``lo_open``/``hi_open`` exclude the bound."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def contains(self, v: float) -> bool:
        if not math.isfinite(v):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def __str__(self) -> str:
        if self.lo is not None and self.hi is not None:
            return (f"{'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}"
                    f"{')' if self.hi_open else ']'}")
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return f"{'<' if self.hi_open else '<='} {self.hi:g}" if self.hi is not None else "any"


_POSITIVE = Range(0, lo_open=True)  # > 0
_AT_LEAST_1 = Range(1)
_NON_NEGATIVE = Range(0)
_FRACTION = Range(0, 1, hi_open=True)  # [0, 1)
_SEED = Range(0, 2**32 - 1)  # what numpy accepts

RANGES: dict[str, Range] = {
    # model (the architecture settings; SITSFormerConfig checks the combinations)
    "model.img_size": _AT_LEAST_1, "model.patch_size": _AT_LEAST_1,
    "model.in_channels": _AT_LEAST_1, "model.num_classes": Range(2),
    "model.embed_dim": _AT_LEAST_1, "model.num_layers": _AT_LEAST_1,
    "model.num_heads": _AT_LEAST_1, "model.mlp_ratio": _POSITIVE,
    "model.dropout": _FRACTION, "model.attn_dropout": _FRACTION,
    "model.max_seq_len": _AT_LEAST_1, "model.stem_channels": _AT_LEAST_1,
    "model.temporal_conv": _NON_NEGATIVE,  # 0 = none; SITSFormerConfig asks for an odd size
    # the baselines (arch tempcnn / ltae); list widths are checked item by item
    "model.baseline_dropout": _FRACTION, "model.tempcnn_layers": _AT_LEAST_1,
    "model.tempcnn_filters": _AT_LEAST_1, "model.tempcnn_kernel_size": _AT_LEAST_1,
    "model.tempcnn_hidden": _AT_LEAST_1, "model.ltae_d_model": _AT_LEAST_1,
    "model.ltae_heads": _AT_LEAST_1, "model.ltae_d_k": _AT_LEAST_1,
    "model.ltae_mlp": _AT_LEAST_1, "model.ltae_decoder": _AT_LEAST_1,
    # data
    "data.demo_samples": _AT_LEAST_1, "data.demo_img_size": _AT_LEAST_1,
    "data.demo_classes": Range(2),
    "data.val_fraction": _FRACTION, "data.test_fraction": _FRACTION,
    "data.scale": _POSITIVE,
    "data.batch_size": _AT_LEAST_1, "data.eval_batch_size": _AT_LEAST_1,
    "data.num_workers": _NON_NEGATIVE, "data.seed": _SEED,
    "data.folds": Range(2), "data.fold": _NON_NEGATIVE, "data.block_size": _POSITIVE,
    "data.date_dropout": _FRACTION, "data.date_shift_days": _NON_NEGATIVE,
    "data.band_noise": _NON_NEGATIVE,
    # optim
    "optim.lr": _POSITIVE, "optim.weight_decay": _NON_NEGATIVE,
    "optim.betas": _FRACTION, "optim.momentum": _FRACTION,
    "optim.layer_decay": Range(0, 1, lo_open=True),  # (0, 1]
    # schedule
    "schedule.warmup_epochs": _NON_NEGATIVE, "schedule.min_lr": _NON_NEGATIVE,
    "schedule.step_size": _AT_LEAST_1, "schedule.gamma": Range(0, 1, lo_open=True),
    "schedule.patience": _NON_NEGATIVE, "schedule.factor": Range(0, 1, True, True),
    # loss
    "loss.label_smoothing": _FRACTION, "loss.class_weights": _NON_NEGATIVE,
    "loss.focal_gamma": _NON_NEGATIVE,
    # train
    "train.epochs": _AT_LEAST_1, "train.grad_clip": _POSITIVE,
    "train.accumulation_steps": _AT_LEAST_1, "train.early_stopping_patience": _AT_LEAST_1,
    "train.seed": _SEED, "train.save_every": _AT_LEAST_1, "train.threads": _AT_LEAST_1,
    "train.dist_timeout_s": _POSITIVE, "train.checkpoint_interval_s": _POSITIVE,
    "train.min_steps": _AT_LEAST_1, "train.ema_decay": Range(0, 1, True, True),
    "train.ensemble": _AT_LEAST_1, "train.ensemble_max_samples": _AT_LEAST_1,
    "train.small_set_max_samples": _AT_LEAST_1,
    "train.memory_budget_gb": _POSITIVE,
    # pretrain / finetune
    "pretrain.hide_ratio": Range(0, 1, True, True), "pretrain.eval_seed": _SEED,
    "finetune.freeze_epochs": _NON_NEGATIVE, "finetune.label_fraction": Range(0, 1, True),
}

_NONE_MEANS = {"train.grad_clip": " (null = no clipping)",
               "train.early_stopping_patience": " (null = never stop early)",
               "train.save_every": " (null = no epoch_XXXX.pt files)",
               "train.checkpoint_interval_s": " (null = write checkpoints every epoch)"}


def with_small_set(cfg: ExperimentConfig) -> Any:
    """``cfg`` with the settings of ``train.small_set`` applied (dotted keys, or nested
    sections) and the rule cleared (``small_set`` empty, ``small_set_max_samples`` null), so
    the config written to a run folder trains the same model again. Validated like any config.

    Raises:
        ConfigError: an unknown key or an invalid value among the settings.
    """
    data = cfg.to_dict()
    settings = flatten_keys(data["train"]["small_set"])
    data["train"].update(small_set={}, small_set_max_samples=None)
    return type(cfg).from_dict(_merge(data, _nest(settings)))


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"model.embed_dim": 64}`` -> ``{"model": {"embed_dim": 64}}``."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        node = nested
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return nested


def flatten_keys(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"embed_dim": 64}}`` -> ``{"model.embed_dim": 64}`` (reader options stay
    one value)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "options":
            out.update(flatten_keys(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def check_values(cfg: ExperimentConfig) -> None:
    """Check every numeric setting against :data:`RANGES`, then the settings that depend on
    each other (the validation and test fractions leave a training split; the warm-up fits in
    the run; the cosine floor is below the peak).

    Raises:
        ConfigError: names the key, the value found and the valid range.
    """
    flat = flatten_keys(cfg.to_dict())
    if cfg.train.small_set:
        try:
            with_small_set(cfg)
        except ConfigError as err:
            raise ConfigError(f"config key 'train.small_set': {err}") from None
    for key, rng in RANGES.items():
        if key not in flat or flat[key] is None:
            continue
        value = flat[key]
        items = value if isinstance(value, list) else [value]
        for v in items:
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not rng.contains(v):
                raise ConfigError(f"config key {key!r}: value {value!r} is out of range; "
                                  f"expected {rng}{_NONE_MEANS.get(key, '')}")
    d, s, t = cfg.data, cfg.schedule, cfg.train
    if getattr(d, "split", None) != "upstream" and d.val_fraction + d.test_fraction >= 1:
        raise ConfigError(f"config keys 'data.val_fraction' + 'data.test_fraction': "
                          f"{d.val_fraction} + {d.test_fraction} = "
                          f"{d.val_fraction + d.test_fraction:g} leaves no training data; "
                          "expected a sum < 1")
    if s.type != "plateau" and s.warmup_epochs > t.epochs:
        raise ConfigError(f"config key 'schedule.warmup_epochs': value {s.warmup_epochs!r} is "
                          f"longer than the run (train.epochs={t.epochs}); expected "
                          f"<= train.epochs")
    if s.min_lr > cfg.optim.lr:
        raise ConfigError(f"config key 'schedule.min_lr': value {s.min_lr!r} is above the "
                          f"peak learning rate optim.lr={cfg.optim.lr!r}; expected <= optim.lr")
    variant = getattr(getattr(cfg, "model", None), "variant", None)
    if variant:
        from sitsformer.models.factory import list_models

        if variant not in list_models():
            raise ConfigError(f"config key 'model.variant': unknown variant {variant!r}; "
                              f"expected one of the registered variants {list_models()}")
    name = cfg.logging.name
    if name is not None and (name in (".", "..") or "/" in name or "\\" in name
                             or "\0" in name):
        raise ConfigError(f"config key 'logging.name': value {name!r} is not a folder name; "
                          "expected a name without '/', '\\' or '..' (the run folder is "
                          "logging.run_dir/logging.name; choose the parent with "
                          "logging.run_dir or the whole folder with --output)")
# ------------------------------------------------------------------------------ end of ranges


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return isinstance(value, (list, tuple)) and all(_type_ok(v, item) for v in value)
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    return isinstance(value, tp)


def _type_name(tp: Any) -> str:
    return str(tp).replace("typing.", "") if not isinstance(tp, type) else tp.__name__


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"config key {prefix.rstrip('.') or '<root>'!r}: expected a mapping, "
                          f"found {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key {prefix + unknown[0]!r}; known keys"
                          f"{' in ' + prefix.rstrip('.') if prefix else ''}: {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value if value is not None else {}, f"{prefix}{name}.")
            continue
        if isinstance(value, str) and not _type_ok(value, tp) and _type_ok(1.0, tp):
            try:  # YAML 1.1 reads "3e-4" (no dot) as a string
                value = float(value)
            except ValueError:
                pass
        if not _type_ok(value, tp):
            raise ConfigError(f"config key {prefix + name!r}: expected {_type_name(tp)}, "
                              f"found {type(value).__name__} {value!r}")
        if tp is float or (typing.get_origin(tp) in (typing.Union, types.UnionType)
                           and float in typing.get_args(tp) and isinstance(value, int)
                           and int not in typing.get_args(tp)):
            value = float(value)
        kwargs[name] = list(value) if isinstance(value, tuple) else value
    return cls(**kwargs)


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["optim.lr=3e-4", "train.epochs=5"]`` -> nested dict; values are parsed as YAML
    (dates such as ``2006-01-01`` stay strings)."""
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: empty name in key {key!r}")
        try:
            value = _yaml(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(f"override {key!r}: cannot parse value {raw!r} ({err})") from err
        node = nested
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r} conflicts with an earlier override")
        node[parts[-1]] = value
    return nested


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "options":
            out[k] = _merge(out[k], v)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None,
                cls: type[ExperimentConfig] = ExperimentConfig) -> Any:
    """Defaults <- ``base`` <- YAML file ``path`` <- ``overrides``; validated.

    ``cls`` is the config class: :class:`ExperimentConfig` (train), :class:`PretrainExperimentConfig`
    or :class:`FinetuneExperimentConfig`.

    Raises:
        ConfigError: unknown key, wrong type or unreadable file (names the key or file).
    """
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        path = Path(path)
        try:
            loaded = _yaml(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read config file {path}: {err}") from err
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of sections, found {type(loaded).__name__}")
        data = _merge(data, loaded)
    given = parse_overrides(overrides or [])
    data = _merge(data, given)
    rule = data.get("train", {}).get("small_set")
    if isinstance(rule, dict) and rule:  # a setting given as an override is not replaced
        keep = set(flatten_keys(given))
        data["train"] = {**data["train"], "small_set": {
            k: v for k, v in flatten_keys(rule).items() if k not in keep}}
    try:
        return cls.from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}" if path else str(err)) from None


def save_config(config: ExperimentConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML (replaced whole: temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    tmp.replace(path)
    return path
