"""``InputSpec``: what a model's inputs are, and the one way raw values are prepared for it.

An input spec travels with every trained model (checkpoints store ``InputSpec.to_dict()``) and
says everything later steps need to feed the model the way it was trained:

* ``bands``: band names, in order; ``classes``: class names (index = class) and, where the
  source labels its classes with codes, ``class_values`` (the code of each class);
  ``class_colors``: ``#rrggbb`` per class when the source's legend gives colours (a
  ``class_map.txt``); maps take their legend from these (:mod:`sitsformer.data.legend`);
* ``scale``: the factor values are stored with (``10000`` for reflectance x 10000; None or 1 =
  values are used as stored): models see ``value / scale``;
* ``mean`` / ``std``: per-band standardisation applied after the scale (train-split statistics);
* ``scale_source``: how the scale was chosen (given by the user, or inferred and why);
* ``median``: robust per-band medians of the training values (after the scale), so later
  inputs can be compared with them (``predict`` warns when they are far apart);
* ``valid_range``: ``[low, high]`` after the scale; observations outside it are masked like
  missing ones (the sensor's physical range, see :mod:`sitsformer.data.values`);
* ``time_axis``: ``"dates"`` (positions are acquisition dates / days of year) or ``"t_index"``
  (the dates were unknown and the model saw the time-step positions 1..T);
* ``max_t``: the longest series seen in training; ``sample_size``: the side of a sample in
  pixels (1 = pixel time series, ``p`` = a ``p x p`` patch centred on the pixel).

:meth:`InputSpec.transform` is the input preparation used by training, evaluation and mapping;
:meth:`InputSpec.check_input` refuses input that does not fit (a wrong map is worse than none).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from sitsformer.data.errors import InputMismatchError
from sitsformer.data.transforms import Compose, MaskOutOfRange, Normalize, Scale

__all__ = ["TIME_AXES", "InputSpec"]

TIME_AXES = ("dates", "t_index")
_GENERIC = re.compile(r"^(band_?)?\d+$", re.IGNORECASE)  # band0, band_1, 2: no real name


@dataclass
class InputSpec:
    """The inputs of a model (see the module doc); plain data, stored in checkpoints."""

    bands: list[str]
    classes: list[str] | None = None
    class_values: list[Any] | None = None
    scale: float | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    time_axis: str = "dates"
    max_t: int | None = None
    sample_size: int = 1
    scale_source: str | None = None
    median: list[float] | None = None
    valid_range: list[float] | None = None
    class_colors: list[str] | None = None

    def __post_init__(self) -> None:
        self.bands = [str(b) for b in self.bands]
        if self.classes is not None:
            self.classes = [str(c) for c in self.classes]
        if self.time_axis not in TIME_AXES:
            raise ValueError(f"InputSpec.time_axis must be one of {TIME_AXES}, "
                             f"got {self.time_axis!r}")
        if self.scale is not None:
            self.scale = float(self.scale)
            if not np.isfinite(self.scale) or self.scale <= 0:
                raise ValueError(f"InputSpec.scale must be a positive number (the factor values "
                                 f"are stored with), got {self.scale}")
        if (self.mean is None) != (self.std is None):
            raise ValueError("InputSpec: mean and std must be given together")
        if self.mean is not None:
            self.mean = [float(v) for v in np.asarray(self.mean, np.float64).ravel()]
            self.std = [float(v) for v in np.asarray(self.std, np.float64).ravel()]
            if not len(self.mean) == len(self.std) == len(self.bands):
                raise ValueError(f"InputSpec: {len(self.bands)} bands but statistics for "
                                 f"{len(self.mean)} (mean) and {len(self.std)} (std) bands")
        if self.median is not None:
            self.median = [float(v) for v in np.asarray(self.median, np.float64).ravel()]
            if len(self.median) != len(self.bands):
                raise ValueError(f"InputSpec: {len(self.bands)} bands but {len(self.median)} "
                                 "medians")
        if self.valid_range is not None:
            self.valid_range = [float(v) for v in self.valid_range]
            if len(self.valid_range) != 2 or not self.valid_range[0] < self.valid_range[1]:
                raise ValueError(f"InputSpec.valid_range must be [low, high] with low < high, "
                                 f"got {self.valid_range}")
        if self.class_values is not None and (self.classes is None
                                              or len(self.class_values) != len(self.classes)):
            raise ValueError("InputSpec: class_values needs one value per class name")
        if self.class_colors is not None and (self.classes is None
                                              or len(self.class_colors) != len(self.classes)):
            raise ValueError("InputSpec: class_colors needs one colour per class name")

    # ------------------------------------------------------------------- plain data
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        """Build from :meth:`to_dict` output (older dicts without the newer keys
        ``scale_source``, ``median``, ``valid_range``, ``class_colors`` too); unknown keys are
        an error naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown InputSpec key(s) {unknown}; expected {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_data_meta(cls, meta: dict[str, Any], model_config: dict[str, Any] | None = None,
                       ) -> InputSpec:
        """Read the ``data_meta`` dict of a format-1 checkpoint (before input specs existed)."""
        model_config = dict(model_config or {})
        if "encoder" in model_config:  # a pre-training model
            model_config = dict(model_config["encoder"])
        norm = meta.get("normalization", meta.get("norm")) or {}
        if not norm and "mean" in meta and "std" in meta:
            norm = {"mean": meta["mean"], "std": meta["std"]}
        n_bands = int(model_config.get("in_channels") or len(meta.get("bands") or []))
        bands = list(meta.get("bands") or model_config.get("bands")
                     or [f"band{i}" for i in range(n_bands)])
        time_axis = meta.get("time_axis") or "dates"
        return cls(bands=bands, classes=meta.get("classes"), scale=meta.get("scale") or None,
                   mean=norm.get("mean"), std=norm.get("std") if norm.get("mean") is not None
                   else None, time_axis="t_index" if time_axis == "t_index" else "dates",
                   max_t=model_config.get("max_seq_len"),
                   sample_size=int(model_config.get("img_size") or 1))

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> InputSpec:
        """The spec stored in a checkpoint (format 2), or the one its ``data_meta`` implies
        (format 1)."""
        if ckpt.get("input_spec"):
            return cls.from_dict(dict(ckpt["input_spec"]))
        return cls.from_data_meta(dict(ckpt.get("data_meta") or {}), ckpt.get("model_config"))

    # ------------------------------------------------------------------- preparation
    def transform(self, scaled: bool = False) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """The input preparation: a function from a sample dict (numpy or torch ``sequence``
        ``(T, C, ...)``) to the sample the model sees: ``sequence / scale``, observations
        outside ``valid_range`` masked, then standardised with ``mean``/``std``.
        ``scaled=True`` skips the division (the reader already did it).
        """
        steps: list[Callable[[dict[str, Any]], dict[str, Any]]] = []
        if self.scale not in (None, 1.0) and not scaled:
            steps.append(Scale(1.0 / float(self.scale)))  # type: ignore[arg-type]
        if self.valid_range is not None:
            steps.append(MaskOutOfRange(*self.valid_range))
        if self.mean is not None:
            steps.append(Normalize(self.mean, self.std))  # type: ignore[arg-type]
        return Compose(steps)

    def prepare_array(self, x: np.ndarray, scaled: bool = False) -> np.ndarray:
        """:meth:`transform` applied to a bare ``(T, C, H, W)`` array (raster windows)."""
        x = np.asarray(x, dtype=np.float32)
        if self.mean is not None and len(self.mean) != x.shape[1]:
            raise InputMismatchError(f"the input spec has statistics for {len(self.mean)} "
                                     f"bands, the input has {x.shape[1]}")
        return self.transform(scaled)({"sequence": x})["sequence"]

    # ------------------------------------------------------------------- checks
    def far_medians(self, medians: Any, factor: float = 5.0) -> list[tuple[str, float, float]]:
        """Bands whose ``medians`` (of an input, after the scale) are more than ``factor``
        times apart from the training medians: ``[(band, training median, input median)]``.
        Empty when the spec has no medians (older checkpoints)."""
        if self.median is None:
            return []
        far = []
        for b, ref, got in zip(self.bands, self.median, np.asarray(medians, np.float64)):
            a, c = abs(ref), abs(float(got))
            if not np.isfinite(c) or max(a, c) < 1e-6:
                continue
            if min(a, c) * factor < max(a, c):
                far.append((b, float(ref), float(got)))
        return far

    def check_input(self, bands: list[str], has_dates: bool, num_dates: int,
                    where: str = "input", *, date_encoding: str = "sinusoidal",
                    max_seq_len: int | None = None) -> None:
        """Raise :class:`~sitsformer.data.errors.InputMismatchError` when an input with these
        ``bands``, dates (``has_dates``) and ``num_dates`` does not fit the model.

        ``date_encoding`` and ``max_seq_len`` are the model's (``"days_since"`` needs dates).
        Band names are compared (case-insensitive, same order) unless one side only has generic
        names such as ``band0``.
        """
        if len(bands) != len(self.bands):
            raise InputMismatchError(
                f"{where}: the model expects {len(self.bands)} bands {self.bands}, the input "
                f"has {len(bands)} {list(bands)}")
        generic = all(_GENERIC.match(str(b)) for b in bands) or all(
            _GENERIC.match(b) for b in self.bands)
        if not generic and [str(b).lower() for b in bands] != [b.lower() for b in self.bands]:
            raise InputMismatchError(
                f"{where}: band mismatch: the model was trained on {self.bands}, the input has "
                f"{list(bands)} (same order required)")
        if not has_dates and (self.time_axis == "dates" or date_encoding == "days_since"):
            raise InputMismatchError(
                f"{where}: the model was trained with acquisition dates (time_axis='dates', "
                f"date_encoding={date_encoding!r}) but the input has no dates; give the input "
                "its dates (file names, a timestamps file or a dates option)")
        if has_dates and self.time_axis == "t_index":
            raise InputMismatchError(
                f"{where}: the model was trained on time-step positions 1..T (dates unknown, "
                "time_axis='t_index'); a dated input would be read as different dates. Retrain "
                "with dates, or give an input prepared the same way as the training data (a "
                "stacked raster: -o dates=false reads it as undated)")
        if max_seq_len is not None and num_dates > int(max_seq_len):
            raise InputMismatchError(
                f"{where}: {num_dates} dates but the model accepts at most max_seq_len="
                f"{max_seq_len}; select a date range of the input")
