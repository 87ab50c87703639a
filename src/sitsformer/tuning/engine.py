"""The default trial runner: one training run of :mod:`sitsformer.training` per trial.

:class:`ExperimentRunner` builds each trial's :class:`~sitsformer.training.config.ExperimentConfig`
from the sweep's ``base_config`` plus the trial's dotted overrides, checks that the model
settings make a valid :class:`~sitsformer.models.SITSFormerConfig` (so heads that do not divide
the width are caught before any data is read), trains with the training engine, and hands every
epoch's validation metrics to the sweep through a trainer callback.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from sitsformer.models import SITSFormerConfig, resolve_model_config
from sitsformer.training.config import (
    MODEL_SECTION_EXTRA,
    ConfigError,
    ExperimentConfig,
    load_config,
    save_config,
)
from sitsformer.tuning.objective import InvalidTrialConfig

# Model fields the data decides when the config leaves them unset (checked once data is read).
_DATA_DEFINED = ("in_channels", "num_classes", "img_size", "max_seq_len")


def _to_override_list(overrides: dict[str, Any]) -> list[str]:
    # load_config parses override values as YAML: dump each so strings/None/lists survive.
    return [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
            for k, v in overrides.items()]


def check_model_settings(config: ExperimentConfig) -> dict[str, Any]:
    """The model settings (variant defaults + config), validated without any data.

    Raises:
        InvalidTrialConfig: with the model's own message (e.g. heads not dividing the width).
    """
    settings = {k: v for k, v in dataclasses.asdict(config.model).items()
                if k not in MODEL_SECTION_EXTRA and v is not None}
    try:
        if "img_size" not in settings:  # the data decides; any multiple of the patch is fine
            patch = settings.get("patch_size") or resolve_model_config(
                config.model.variant).patch_size
            settings["img_size"] = patch
        resolved: SITSFormerConfig = resolve_model_config(config.model.variant, **settings)
    except (ValueError, TypeError, KeyError) as err:
        raise InvalidTrialConfig(str(err)) from None
    return {k: v for k, v in resolved.to_dict().items()
            if k in settings or k not in _DATA_DEFINED}


class ExperimentRunner:
    """Train one trial with the training engine.

    Args:
        base_config: the training YAML every trial starts from (None = code defaults).
        quiet: silence per-epoch printing and progress bars of each trial.
    """

    def __init__(self, base_config: str | os.PathLike[str] | None = None, quiet: bool = True):
        self.base_config = Path(base_config) if base_config is not None else None
        self.quiet = quiet

    def validate_keys(self, keys: list[str]) -> None:
        """Fail once, before any trial, when a swept key is not a training-config key.

        Raises:
            ConfigError: naming the key and the keys its section has.
        """
        for key in keys:
            node: Any = ExperimentConfig
            parts = key.split(".")
            for i, part in enumerate(parts):
                names = ({f.name: f for f in dataclasses.fields(node)}
                         if dataclasses.is_dataclass(node) else {})
                if part not in names:
                    where = ".".join(parts[:i]) or "<root>"
                    raise ConfigError(f"sweep parameter key {key!r}: {where} has no key "
                                      f"{part!r}; known: {sorted(names)}")
                node = typing.get_type_hints(node)[part] if dataclasses.is_dataclass(node) else None
                if i < len(parts) - 1 and not dataclasses.is_dataclass(node):
                    if node is dict or typing.get_origin(node) is dict:
                        break  # free-form options (data.options.*)
                    raise ConfigError(f"sweep parameter key {key!r}: {'.'.join(parts[:i + 1])} "
                                      "is a value, not a section")

    def prepare(self, overrides: dict[str, Any]) -> ExperimentConfig:
        """The trial's config; raises ``ValueError`` (ConfigError / InvalidTrialConfig) when
        the overrides name unknown keys, have the wrong type or make an invalid model."""
        config = load_config(self.base_config, _to_override_list(overrides))
        check_model_settings(config)
        return config

    def dump(self, config: ExperimentConfig, path: Path) -> Path:
        """Write a ready-to-run training YAML (``sitsformer train --config PATH``)."""
        return save_config(config, path)

    def run(self, config: ExperimentConfig, report: Callable[[int, dict[str, Any]], None],
            run_dir: Path) -> list[dict[str, Any]]:
        """Train with the training engine, reporting each epoch's metrics."""
        import inspect

        from sitsformer.training import experiment  # the engine's config-driven entry point

        if "callbacks" not in inspect.signature(experiment.run_experiment).parameters:
            raise RuntimeError("sitsformer.training.experiment.run_experiment takes no "
                               "'callbacks': the sweep cannot report epochs to the pruner")

        def callback(trainer: Any, event: str, info: dict[str, Any]) -> None:
            if event == "epoch_end":
                report(int(info["epoch"]), info)

        config.logging.run_dir = str(run_dir.parent)
        config.logging.name = run_dir.name
        if self.quiet:
            config.logging.progress = False
        result = experiment.run_experiment(config, run_dir=run_dir, callbacks=[callback])
        self.last_result = {k: v for k, v in result.items() if k != "trainer"}
        if result.get("status") == "interrupted":
            # the trainer caught SIGINT/SIGTERM and saved last.pt: the trial did not finish;
            # the sweep queues it again and stops this worker
            raise KeyboardInterrupt(f"training stopped by a signal ({run_dir})")
        return list(result.get("history", []))
