"""Checkpoints of the original SITS-Former code (github.com/linlei1214/SITS-Former), read exactly.

The original saves three kinds of file, all read here with ``torch.load(weights_only=True)``:

* ``checkpoint.bert.tar`` (``trainer/pretrain.py``): the plain ``state_dict`` of its ``BERT``
  encoder (``embedding.*``, ``transformer_encoder.*``);
* ``checkpoint.tar`` of pre-training: ``{"model_state_dict", "optimizer_state_dict"}`` of
  ``BERTPrediction`` (``bert.*`` + the reconstruction ``linear.*``);
* ``checkpoint.tar`` of fine-tuning: ``{"epoch", "model_state_dict", "optimizer_state_dict"}``
  of ``BERTClassification`` (``bert.*`` + ``classification.linear.*``).

Keys saved from ``nn.DataParallel`` (``module.`` in front) are read too. Every key is mapped
onto the variant ``sitsformer_original_exact`` (:data:`ENCODER_KEYS` says which goes where);
a key that maps nowhere, or a weight of ours that no key fills, is an
:class:`OriginalCheckpointError` listing them. The one exception is the pre-training model's
``mask_token``: the original hides dates in input space (a fixed random patch drawn by its data
loader, never saved), so it has no such weight; it is set to zero and reported.

The number of attention heads is not stored in the weights: it is 8 (the original's default)
unless given. The band count comes from the reconstruction head when there is one; otherwise
it is solved from the stem for a 5 x 5 patch (the original's default) unless given.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from sitsformer.models.factory import resolve_model_config

VARIANT = "sitsformer_original_exact"
SCALE = 10000.0  # the original divides reflectance by 10000 when no mean/std is given

# the original BERT's key (after "bert.") -> ours; {i} = layer index
ENCODER_KEYS = {
    "embedding.conv1.0.{p}": "embed.conv.0.{p}",
    "embedding.conv1.2.{p}": "embed.norms.0.{p}",
    "embedding.conv2.0.{p}": "embed.conv.2.{p}",
    "embedding.conv2.2.{p}": "embed.norms.1.{p}",
    "embedding.linear.{p}": "embed.proj.{p}",
    "embedding.position.pe": "date_encoding.pe",
    "transformer_encoder.layers.{i}.self_attn.in_proj_weight": "blocks.{i}.attn_t.qkv.weight",
    "transformer_encoder.layers.{i}.self_attn.in_proj_bias": "blocks.{i}.attn_t.qkv.bias",
    "transformer_encoder.layers.{i}.self_attn.out_proj.{p}": "blocks.{i}.attn_t.proj.{p}",
    "transformer_encoder.layers.{i}.linear1.{p}": "blocks.{i}.mlp.fc1.{p}",
    "transformer_encoder.layers.{i}.linear2.{p}": "blocks.{i}.mlp.fc2.{p}",
    "transformer_encoder.layers.{i}.norm1.{p}": "blocks.{i}.norm_t.{p}",
    "transformer_encoder.layers.{i}.norm2.{p}": "blocks.{i}.norm_mlp.{p}",
    "transformer_encoder.norm.{p}": "norm.{p}",
}
CLASSIFIER_HEAD = {"classification.linear.{p}": "head.{p}"}  # BERTClassification
PRETRAIN_HEAD = {"linear.{p}": "decoder.{p}"}  # BERTPrediction


class OriginalCheckpointError(ValueError):
    """An original SITS-Former checkpoint whose keys or shapes do not fit (names them)."""


def _pattern(template: str) -> re.Pattern[str]:
    rx = re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{p\}", r"(?P<p>\w+)")
    return re.compile(rx + "$")


_COMPILED: dict[str, list[tuple[re.Pattern[str], str]]] = {}


def _table(mapping: dict[str, str]) -> list[tuple[re.Pattern[str], str]]:
    key = repr(sorted(mapping.items()))
    if key not in _COMPILED:
        _COMPILED[key] = [(_pattern(k), v) for k, v in mapping.items()]
    return _COMPILED[key]


def map_key(key: str, mapping: dict[str, str]) -> str | None:
    """Our name of an original key (``None``: it maps nowhere)."""
    for rx, target in _table(mapping):
        m = rx.match(key)
        if m:
            return target.format(**m.groupdict())
    return None


def original_name(ours: str) -> str:
    """The original's key that fills our weight ``ours`` (for error messages)."""
    name = ours[len("encoder."):] if ours.startswith("encoder.") else ours
    for table, prefix in ((ENCODER_KEYS, "bert." if name != ours or ours.startswith("head.")
                           else ""), (CLASSIFIER_HEAD, ""), (PRETRAIN_HEAD, "")):
        for theirs, target in table.items():
            m = _pattern(target).match(name)
            if m:
                return prefix + theirs.format(**m.groupdict())
    return "?"


def detect_original(obj: Any) -> str | None:
    """``"encoder"`` (a ``checkpoint.bert.tar`` state dict), ``"classifier"`` (fine-tuning
    ``checkpoint.tar``), ``"pretrain"`` (pre-training ``checkpoint.tar``) or None (not one)."""
    if not isinstance(obj, dict):
        return None
    if "format" in obj:
        return None
    state = obj.get("model_state_dict") if "model_state_dict" in obj else obj
    if not isinstance(state, dict) or not state:
        return None
    keys = [_strip_module(k) for k in state if isinstance(k, str)]
    if "model_state_dict" not in obj:
        return "encoder" if any(k.startswith("transformer_encoder.") for k in keys) else None
    if "model_config" in obj or not any(k.startswith("bert.transformer_encoder.") for k in keys):
        return None
    if any(k.startswith("classification.") for k in keys):
        return "classifier"
    return "pretrain"


def _strip_module(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key


def _encoder_config(state: dict[str, torch.Tensor], where: str, num_heads: int,
                    in_channels: int | None, patch_size: int | None,
                    **overrides: Any) -> dict[str, Any]:
    """The ``sitsformer_original_exact`` settings that the weights imply."""
    def need(key: str) -> torch.Tensor:
        if key not in state:
            raise OriginalCheckpointError(f"{where}: expected the original SITS-Former key "
                                          f"{key!r}, not found (keys: {sorted(state)[:8]} ...)")
        return state[key]

    hidden = need("transformer_encoder.norm.weight").shape[0]
    layers = sorted({int(m.group(1)) for k in state
                     if (m := re.match(r"transformer_encoder\.layers\.(\d+)\.", k))})
    if layers != list(range(len(layers))) or not layers:
        raise OriginalCheckpointError(f"{where}: expected layers 0..n-1 under "
                                      f"transformer_encoder.layers, found {layers}")
    ff = need("transformer_encoder.layers.0.linear1.weight").shape[0]
    c1 = need("embedding.conv1.0.weight").shape[0]
    c2 = need("embedding.conv2.0.weight").shape[0]
    kd, kh = need("embedding.conv1.0.weight").shape[2:4]
    per_filter = need("embedding.linear.weight").shape[1] // c2  # (C - 2(kd-1)) * (P - 2(kh-1))^2
    if in_channels is None:
        patch_size = 5 if patch_size is None else patch_size
        side = patch_size - 2 * (kh - 1)
        in_channels = per_filter // max(side * side, 1) + 2 * (kd - 1)
    elif patch_size is None:
        depth = in_channels - 2 * (kd - 1)
        side = round((per_filter / max(depth, 1)) ** 0.5)
        patch_size = side + 2 * (kh - 1)
    got = (in_channels - 2 * (kd - 1)) * (patch_size - 2 * (kh - 1)) ** 2
    if got != per_filter:
        raise OriginalCheckpointError(
            f"{where}: the stem's projection takes {per_filter * c2} features ({c2} filters x "
            f"{per_filter}); {in_channels} bands and a {patch_size}x{patch_size} patch give "
            f"{c2} x {got}: give the band count and patch size the model was trained with")
    if hidden % num_heads:
        raise OriginalCheckpointError(f"{where}: width {hidden} is not divisible by "
                                      f"num_heads={num_heads}")
    settings = dict(variant=VARIANT, embed_dim=int(hidden), num_layers=len(layers),
                    num_heads=int(num_heads), mlp_ratio=ff / hidden, stem_channels=[c1, c2],
                    in_channels=int(in_channels), img_size=int(patch_size),
                    patch_size=int(patch_size))
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return resolve_model_config(settings).to_dict()


def _map_state(state: dict[str, torch.Tensor], head: dict[str, str], where: str,
               prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Every key renamed (``prefix`` = "bert." inside a model checkpoint); unmapped keys are an
    error listing them. Returns ``(ours, {original key: our key})``."""
    out: dict[str, torch.Tensor] = {}
    names: dict[str, str] = {}
    unmapped = []
    for key, value in state.items():
        if key.startswith(prefix):
            ours = map_key(key[len(prefix):], ENCODER_KEYS)
        else:
            ours = map_key(key, head)
        if ours is None:
            unmapped.append(key)
            continue
        out[ours] = value
        names[key] = ours
    if unmapped:
        raise OriginalCheckpointError(
            f"{where}: {len(unmapped)} key(s) of the original checkpoint map to no weight of "
            f"{VARIANT}: {unmapped}; expected {prefix}embedding.*, "
            f"{prefix}transformer_encoder.* and {sorted(head)}")
    return out, names


def original_to_checkpoint(obj: dict[str, Any], where: str = "checkpoint",
                           num_heads: int = 8, in_channels: int | None = None,
                           patch_size: int | None = None, num_classes: int | None = None,
                           **overrides: Any) -> dict[str, Any]:
    """An original SITS-Former checkpoint (as loaded) as a sitsformer format-2 checkpoint dict.

    An encoder (``checkpoint.bert.tar``) becomes a classifier checkpoint without head weights
    (``num_classes`` placeholder 1 unless given: only ``--pretrained`` / the encoder filter
    use it); a fine-tuning ``checkpoint.tar`` a complete classifier; a pre-training
    ``checkpoint.tar`` a :class:`~sitsformer.models.pretrain.SITSFormerForPretraining`
    checkpoint (``mask_token`` zero: see the module doc). ``original_keys`` records the
    mapping, ``imported_from`` the kind.
    """
    from sitsformer.data.spec import InputSpec
    from sitsformer.models.checkpoint import FORMAT

    kind = detect_original(obj)
    if kind is None:
        raise OriginalCheckpointError(
            f"{where}: not an original SITS-Former checkpoint (expected a BERT state dict with "
            f"transformer_encoder.* keys, or a dict with model_state_dict of bert.* keys)")
    raw = obj if kind == "encoder" else obj["model_state_dict"]
    state = {_strip_module(k): v for k, v in raw.items()}
    if kind == "encoder":
        enc_state = state
        head, prefix = {}, ""
    else:
        enc_state = {k[len("bert."):]: v for k, v in state.items() if k.startswith("bert.")}
        head = CLASSIFIER_HEAD if kind == "classifier" else PRETRAIN_HEAD
        prefix = "bert."
    if kind == "pretrain" and in_channels is None and "linear.weight" in state:
        in_channels = int(state["linear.weight"].shape[0])
    if kind == "classifier":
        n = int(state["classification.linear.weight"].shape[0]) \
            if "classification.linear.weight" in state else None
        if num_classes is not None and n is not None and n != num_classes:
            raise OriginalCheckpointError(f"{where}: the checkpoint's head has {n} classes, "
                                          f"num_classes={num_classes} was given")
        num_classes = n or num_classes
    config = _encoder_config(enc_state, where, num_heads, in_channels, patch_size,
                             num_classes=num_classes or 1, **overrides)
    mapped, names = _map_state(state, head, where, prefix)
    if kind == "pretrain":
        mapped = {(k if k.startswith("decoder.") else f"encoder.{k}"): v for k, v in mapped.items()}
        names = {k: (v if v.startswith("decoder.") else f"encoder.{v}") for k, v in names.items()}
        mapped["mask_token"] = torch.zeros(config["embed_dim"])
        model_config: dict[str, Any] = {"encoder": config, "target": "center", "hide_ratio": 0.3}
    else:
        model_config = config
    _check_complete(model_config, mapped, where, allow_missing_head=kind == "encoder")
    spec = InputSpec(bands=[f"band{i}" for i in range(config["in_channels"])], scale=SCALE,
                     time_axis="dates", max_t=config["max_seq_len"],
                     sample_size=config["img_size"],
                     scale_source="the original SITS-Former code divides by 10000")
    return {"format": FORMAT, "model_config": model_config, "model_state_dict": mapped,
            "epoch": int(obj.get("epoch", 0)) if kind != "encoder" else 0, "global_step": 0,
            "input_spec": spec.to_dict(), "data_meta": {},
            "imported_from": f"original SITS-Former {kind} checkpoint", "original_kind": kind,
            "original_keys": names}


def _check_complete(model_config: dict[str, Any], state: dict[str, torch.Tensor], where: str,
                    allow_missing_head: bool) -> None:
    """Every weight of the model filled (the head may be missing for an encoder), shapes equal."""
    from sitsformer.models.checkpoint import model_from_checkpoint

    own = model_from_checkpoint({"model_config": model_config}).state_dict()
    missing = sorted(k for k in set(own) - set(state)
                     if not (allow_missing_head and k.startswith("head.")))
    missing_named = [f"{k} (the original's {original_name(k)})" for k in missing]
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: {VARIANT} {tuple(own[k].shape)}, checkpoint {tuple(v.shape)}"
              for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        raise OriginalCheckpointError(
            f"{where}: the original checkpoint does not fill {VARIANT} exactly; missing: "
            f"{missing_named}; unexpected: {unexpected}; shapes differ: {shapes}")


def read_original(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def load_original_checkpoint(path: str | os.PathLike[str], num_heads: int = 8,
                             in_channels: int | None = None, patch_size: int | None = None,
                             num_classes: int | None = None, **overrides: Any,
                             ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build the model an original SITS-Former checkpoint holds, with its weights.

    Args:
        path: ``checkpoint.bert.tar`` (the encoder: a :class:`SITSFormer` with a fresh head of
            ``num_classes``, default 1) or ``checkpoint.tar`` (fine-tuning: the classifier;
            pre-training: a ``SITSFormerForPretraining``).
        num_heads: attention heads (not stored in the file; the original's default is 8).
        in_channels, patch_size: bands and patch side, when not the original's 10 and 5.
        num_classes: classes of the fresh head of an encoder (checked against a classifier).
        **overrides: settings that do not change the weights (``dropout``, ``max_seq_len`` ...).

    Returns:
        ``(model, checkpoint)``: the model in eval mode and the converted format-2 checkpoint
        dict (``original_keys``: each original key and the weight it filled).
    """
    from sitsformer.models.checkpoint import model_from_checkpoint

    ckpt = original_to_checkpoint(read_original(path), str(path), num_heads, in_channels,
                                  patch_size, num_classes, **overrides)
    model = model_from_checkpoint(ckpt)
    result = model.load_state_dict(ckpt["model_state_dict"], strict=False)
    # _check_complete has checked both directions; only an encoder's head stays fresh
    assert not result.unexpected_keys and all(k.startswith("head.") for k in result.missing_keys)
    model.eval()
    return model, ckpt
