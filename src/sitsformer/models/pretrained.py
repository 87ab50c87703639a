"""Loading a pre-trained encoder into a classifier: the encoder filter of fine-tuning.

* :func:`pretrained_encoder_state` splits a checkpoint (a pre-training checkpoint from
  ``sitsformer pretrain`` or a classifier checkpoint) into the encoder's configuration, its
  weights named as in a :class:`~sitsformer.models.SITSFormer`, and the keys left out (the
  classification head, the mask token, the reconstruction decoder).
* :func:`load_pretrained_encoder` copies those weights into a model with an exact check: the
  only keys the model may miss are its head's, and the band set, date encoding and architecture
  must match (:func:`check_encoder_compatible`). The model then gets a fresh head.
* :func:`build_finetune_model` creates that model from the checkpoint's own configuration.
* :func:`load_original_checkpoint` reads the original SITS-Former code's files
  (``checkpoint.bert.tar``, ``checkpoint.tar``; :mod:`sitsformer.models.original`); the
  functions above take them too, through :func:`~sitsformer.models.load_checkpoint`.
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from sitsformer.models.checkpoint import load_checkpoint
from sitsformer.models.config import SITSFormerConfig
from sitsformer.models.factory import create_sits_former
from sitsformer.models.original import (  # noqa: F401  (re-exported)
    OriginalCheckpointError,
    load_original_checkpoint,
)
from sitsformer.models.sits_former import SITSFormer

HEAD_PREFIX = "head."
PRETRAIN_ONLY = ("mask_token", "decoder.")  # parts of SITSFormerForPretraining, not the encoder

# Settings that change the encoder's weights or the meaning of its inputs: they must match.
MATCHED_SETTINGS = ("in_channels", "bands", "img_size", "patch_size", "stem", "embed_dim",
                    "num_layers", "num_heads", "mlp_ratio", "date_encoding", "reference_date",
                    "continuous_doy", "norm", "activation", "stem_norm", "stem_channels")


class PretrainedMismatchError(ValueError):
    """A pre-trained checkpoint does not fit the model it is loaded into (names what differs)."""


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel (or similar ``.module``) wrapper."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def pretrained_encoder_state(ckpt: dict[str, Any], where: str = "checkpoint",
                             ) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Split a checkpoint into the encoder's config, its weights, and the keys left out.

    Args:
        ckpt: a checkpoint dict (``model_config``, ``model_state_dict``).
        where: the file name, for error messages.

    Returns:
        ``(encoder_config, encoder_state, dropped)``: the SITSFormer config dict, the weights
        named as in a :class:`SITSFormer`, and the checkpoint keys deliberately not loaded
        (its classification head, the mask token and the reconstruction decoder).
    """
    config = dict(ckpt["model_config"])
    state = ckpt["model_state_dict"]
    dropped: list[str] = []
    out: dict[str, Any] = {}
    if "encoder" in config:  # a SITSFormerForPretraining checkpoint
        enc_config = dict(config["encoder"])
        for key, value in state.items():
            if key.startswith("encoder."):
                name = key[len("encoder."):]
                if name.startswith(HEAD_PREFIX):
                    dropped.append(key)
                else:
                    out[name] = value
            elif key.startswith(PRETRAIN_ONLY):
                dropped.append(key)
            else:
                raise PretrainedMismatchError(
                    f"{where}: unexpected key {key!r} in a pre-training checkpoint "
                    f"(expected 'encoder.*', 'mask_token' or 'decoder.*')"
                )
    else:
        enc_config = config
        for key, value in state.items():
            (dropped.append(key) if key.startswith(HEAD_PREFIX) else out.__setitem__(key, value))
    return enc_config, out, dropped


def check_encoder_compatible(model_config: dict[str, Any], pretrained_config: dict[str, Any],
                     where: str = "checkpoint") -> None:
    """Raise :class:`PretrainedMismatchError` listing every setting that differs.

    The band set (names and count), the date encoding (kind and reference date) and the
    architecture (image and patch size, stem, width, depth, heads) must be the same.
    """
    problems = []
    # a setting missing from a config written before it existed has its default (norm "pre",
    # activation "gelu", no stem BatchNorm, stem 32/64: what such a model was)
    defaults = SITSFormerConfig().to_dict()
    for key in MATCHED_SETTINGS:
        mine = model_config.get(key, defaults.get(key))
        theirs = pretrained_config.get(key, defaults.get(key))
        if key == "bands" and (mine is None or theirs is None):
            continue  # band names unknown on one side: the band count is still checked
        if mine != theirs:
            label = {"bands": "band set", "in_channels": "band count",
                     "date_encoding": "date encoding",
                     "reference_date": "date encoding reference date"}.get(key, key)
            name = label if label == key else f"{label} ({key})"
            problems.append(f"{name}: the model has {mine!r}, "
                            f"the pre-trained encoder has {theirs!r}")
    if problems:
        raise PretrainedMismatchError(
            f"{where} does not match the model:\n  " + "\n  ".join(problems)
            + "\nBuild the model with the pre-trained settings "
            "(build_finetune_model does) and prepare the data the same way."
        )


def load_pretrained_encoder(model: SITSFormer, ckpt_path: str | os.PathLike[str] | dict[str, Any],
                            reset_head: bool = True) -> dict[str, Any]:
    """Load the encoder weights of a checkpoint into ``model``, exactly.

    Args:
        model: the :class:`SITSFormer` to fine-tune (its ``num_classes`` is the new task's).
        ckpt_path: a checkpoint file (or an already loaded checkpoint dict) from pre-training or
            from a trained classifier.
        reset_head: give the model a freshly initialised head for its classes (default).

    Returns:
        A report: ``loaded`` (keys copied), ``missing`` (the head keys the checkpoint did not
        provide), ``dropped`` (checkpoint keys not used: mask token, decoder, old head),
        ``data_meta`` (how the pre-training data was prepared: bands, normalisation ...) and
        ``task`` of the checkpoint.

    Raises:
        PretrainedMismatchError: band set, date encoding or architecture differ; or a key other
            than the head's is missing, or an unexpected key is present (all listed).
    """
    if isinstance(ckpt_path, dict):
        ckpt, where = ckpt_path, "checkpoint"
    else:
        ckpt, where = load_checkpoint(ckpt_path), str(ckpt_path)
    base = unwrap_model(model)
    enc_config, state, dropped = pretrained_encoder_state(ckpt, where)
    check_encoder_compatible(base.config.to_dict(), enc_config, where)

    own = base.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad_missing = [k for k in missing if not k.startswith(HEAD_PREFIX)]
    if bad_missing or unexpected:
        raise PretrainedMismatchError(
            f"{where}: encoder weights do not match the model exactly; "
            f"missing (other than the head): {bad_missing}; unexpected: {unexpected}"
        )
    shapes = [f"{k}: model {tuple(own[k].shape)} vs checkpoint {tuple(v.shape)}"
              for k, v in state.items() if tuple(own[k].shape) != tuple(v.shape)]
    if shapes:
        raise PretrainedMismatchError(f"{where}: weight shapes differ: " + "; ".join(shapes))
    result = base.load_state_dict(state, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys
    if reset_head:
        base.reset_classifier(base.config.num_classes)
    return {"loaded": sorted(state), "missing": missing, "dropped": sorted(dropped),
            "data_meta": dict(ckpt.get("data_meta") or {}), "task": ckpt.get("task"),
            "checkpoint": where}


def build_finetune_model(ckpt_path: str | os.PathLike[str], num_classes: int,
                         **overrides: Any) -> tuple[SITSFormer, dict[str, Any]]:
    """Create a classifier from a pre-trained checkpoint's encoder configuration.

    Args:
        ckpt_path: checkpoint file from ``sitsformer pretrain`` (or a classifier checkpoint).
        num_classes: classes of the new task (the head is fresh).
        **overrides: settings that do not change the weights (``dropout``, ``attn_dropout``,
            ``pool``, ``max_seq_len``); others must equal the pre-trained ones.

    Returns:
        ``(model, report)`` as from :func:`load_pretrained_encoder`.
    """
    ckpt = load_checkpoint(ckpt_path)
    enc_config, _, _ = pretrained_encoder_state(ckpt, str(ckpt_path))
    config = {**enc_config, **{k: v for k, v in overrides.items() if v is not None},
              "num_classes": num_classes}
    model = create_sits_former(config)
    report = load_pretrained_encoder(model, {**ckpt}, reset_head=True)
    report["checkpoint"] = str(ckpt_path)
    return model, report
