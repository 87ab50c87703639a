"""Wall-to-wall map inference over a raster time series.

Every pixel is classified from its own time series: pixel models (``img_size == 1``) from the
pixel alone, patch models (``img_size == p``) from the ``p x p`` neighbourhood centred on the
pixel, exactly as :class:`sitsformer.data.RasterPixelDataset` cuts training samples. The raster
is processed in windows of ``window x window`` pixels, each read with a halo of ``overlap``
pixels (at least ``p // 2``) so every pixel of the window has its full neighbourhood; the
halo is what adjacent windows share. As each pixel's class depends only on its own
neighbourhood, the map does not depend on the window size, the overlap or the batch size.

Raster edges: cells of a neighbourhood that fall outside the raster are filled according to
``edge_mode``: ``"masked"`` (default; zeros marked not clear, the same convention as the
training samples cut by the data layer), ``"edge"`` (replicate the border pixel) or
``"reflect"`` (mirror the raster, needs a raster larger than the halo).

Pixels without any clear date get the nodata value in every output (they are counted).
Memory is bounded by one window (``T x C x (window + 2 overlap)^2`` values plus one batch of
patches), never by the raster: each finished window is written to disk at once and the
final maps are assembled from those parts window by window.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from torch import nn
from sitsformer._progress import progress_bar

from sitsformer.data.spec import InputSpec
from sitsformer.inference.blocks import (BlockLedger, BlockSettings, fingerprint as _fingerprint,
                                         parts_dir, predict_block, read_block)
from sitsformer.inference.outputs import CLASS_NODATA, CONFIDENCE_NODATA, write_outputs
from sitsformer.inference.sources import open_raster_source

__all__ = ["CLASS_NODATA", "CONFIDENCE_NODATA", "PredictionResult", "companion_paths",
           "predict_raster"]

EDGE_MODES = ("masked", "edge", "reflect")
PRECISIONS = ("fp32", "bf16", "fp16")
PROBABILITY_DTYPES = ("float32", "uint8")


@dataclass
class PredictionResult:
    """What :func:`predict_raster` wrote and how long it took."""

    class_map: str
    confidence: str
    probabilities: str | None
    height: int
    width: int
    num_pixels: int
    num_predicted: int
    num_nodata: int  # pixels without any clear date
    class_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    blocks_total: int = 0
    blocks_computed: int = 0  # in this call
    blocks_resumed: int = 0  # finished by an earlier, interrupted call
    block_seconds: float = 0.0  # computing blocks (without assembling the outputs)
    where: str = "in-process"
    lost_workers: list[str] = field(default_factory=list)  # Dask workers that died or left
    pixels_computed: int | None = None  # pixels of the blocks computed in this call

    @property
    def pixels_per_second(self) -> float:
        """Pixels computed in this call per second (a resumed run's finished blocks are not
        counted: they cost nothing here)."""
        done = self.num_pixels if self.pixels_computed is None else self.pixels_computed
        return done / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pixels_per_second"] = self.pixels_per_second
        return d


def companion_paths(output: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Paths of the confidence and probability rasters written beside the class map
    (``map.tif`` -> ``map_confidence.tif``, ``map_probabilities.tif``)."""
    out = Path(output)
    return (out.with_name(f"{out.stem}_confidence{out.suffix or '.tif'}"),
            out.with_name(f"{out.stem}_probabilities{out.suffix or '.tif'}"))


def _pad(block: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]], mode: str,
         fill: Any) -> np.ndarray:
    if not any(pads[0]) and not any(pads[1]):
        return block
    full = [(0, 0)] * (block.ndim - 2) + list(pads)
    if mode == "masked":
        return np.pad(block, full, mode="constant", constant_values=fill)
    return np.pad(block, full, mode="edge" if mode == "edge" else "reflect")


def input_values(src: Any, side: int = 128) -> np.ndarray:
    """The clear observations ``(n, C)`` of a central ``side x side`` window of ``src``, as
    the reader gives them (divided by the reader's ``scale`` when it was given one)."""
    h, w = min(side, int(src.height)), min(side, int(src.width))
    r0, c0 = (int(src.height) - h) // 2, (int(src.width) - w) // 2
    block = src.read_window(r0, c0, h, w)
    x = np.asarray(block["sequence"], np.float32)  # (T, C, h, w)
    clear = np.asarray(block["pixel_mask"], bool)
    return np.moveaxis(x, 1, -1)[clear]  # (n, C)


def input_medians(src: Any, spec: InputSpec, scaled: bool, side: int = 128) -> np.ndarray:
    """Per-band medians of the clear pixels of a central ``side x side`` window of ``src``,
    in the units the model sees (after the input's or the spec's scale)."""
    vals = input_values(src, side)
    if not scaled and spec.scale not in (None, 1.0):
        vals = vals / np.float32(spec.scale)
    return np.median(vals, axis=0) if len(vals) else np.full(len(spec.bands), np.nan)


def check_input_scale(src: Any, spec: InputSpec, scaled: bool, where: str, *,
                      side: int = 128, force: bool = False) -> list[str]:
    """Refuse an input whose value scale clearly differs from training; warn on a milder
    mismatch. Returns the bands whose medians are far from training.

    "Clearly" means both: the input's per-band medians (in model units) are more than 5x from
    the training medians stored in ``spec``, and the scale the input's own values imply
    (:func:`sitsformer.data.values.guess_scale`, the inference ``data inspect`` prints) is not
    the training scale. Such a map would be all one class. ``scaled`` (the reader was given
    a scale: ``--input-scale``) or ``force`` turn the refusal into a ``DataWarning``; far
    medians alone are always only a warning. Nothing is checked for older checkpoints
    without training medians.

    Raises:
        sitsformer.data.InputMismatchError: the clear case, naming the input, what training
            expected and what was found, and the two options.
    """
    import warnings

    from sitsformer.data.errors import DataError, DataWarning, InputMismatchError
    from sitsformer.data.values import guess_scale

    if spec.median is None:  # older checkpoints: nothing to compare with
        return []
    raw = input_values(src, side)
    model_units = raw / np.float32(spec.scale) if not scaled and spec.scale not in (
        None, 1.0) else raw
    medians = (np.median(model_units, axis=0) if len(model_units)
               else np.full(len(spec.bands), np.nan))
    far = spec.far_medians(medians)
    if not far:
        return []
    detail = ", ".join(f"{b} (training {ref:.4g}, input {got:.4g})" for b, ref, got in far)
    trained = float(spec.scale or 1.0)
    found = None
    if not scaled and len(raw):
        try:
            guess = guess_scale(raw, list(spec.bands), where)
        except DataError:
            guess = None
        if guess is not None and guess.kind != "unknown" and guess.scale != trained:
            found = guess
    if found is not None and not force:
        raise InputMismatchError(
            f"{where}: the input's values are not on the training scale: expected values "
            f"stored with scale {trained:g} (training: {spec.scale_source or 'given'}), found "
            f"{found.reason}, i.e. scale {found.scale:g}; the model would see per-band medians "
            f"far from training for {detail} and map everything as one class. Pass "
            f"--input-scale {found.scale:g} (the factor the input values are stored with) if "
            "that is what they are, or --force to map them as they are")
    hint = (f" (its values imply scale {found.scale:g}: {found.reason}; mapped anyway, "
            "--force)" if found is not None else "")
    warnings.warn(f"{where}: the input's per-band medians are more than 5x from the training "
                  f"statistics for {detail}{hint}; check the input's scale (--input-scale: the "
                  f"factor the input values are stored with; the model was trained with "
                  f"scale {spec.scale})", DataWarning, stacklevel=3)
    return [b for b, _, _ in far]



def predict_raster(model: nn.Module, source: Any, output: str | os.PathLike[str], *,
                   window: int | tuple[int, int] = 256, overlap: int | None = None, batch_size: int = 1024,
                   precision: str = "fp32", probabilities: bool = False, progress: bool = True,
                   spec: InputSpec | None = None, edge_mode: str = "masked",
                   device: str | torch.device | None = None, overwrite: bool = False,
                   class_names: list[str] | None = None, runner: Any = None,
                   probabilities_dtype: str = "float32", cog: bool = True,
                   torch_threads: int | None = None, legend: Any = None,
                   force: bool = False) -> PredictionResult:
    """Classify every pixel of a raster time series and write GeoTIFF maps.

    Writes ``output`` (class index per pixel, ``uint8``, nodata :data:`CLASS_NODATA`, with a
    colour table, the class names and a QGIS ``.qml`` style beside it),
    ``<stem>_confidence.tif`` (``float32`` highest class probability, nodata
    :data:`CONFIDENCE_NODATA`) and, with ``probabilities=True``, ``<stem>_probabilities.tif``
    (one band per class: ``float32``, or ``uint8`` = round(254 p) with nodata 255 and the
    1/254 scale in the file when ``probabilities_dtype="uint8"``). All carry the source's CRS
    and transform and are Cloud-Optimized GeoTIFFs with overviews (``cog=False``: plain tiled
    GeoTIFFs).

    Windows ("blocks") run where ``runner`` says (:func:`sitsformer.parallel.dask_cluster`;
    None = one after the other in this process). Each finished block is written at once to
    a hidden ``.<name>.parts`` folder beside ``output`` and entered in its ledger; a run that
    was killed resumes from there (same settings) without recomputing finished blocks. The
    final files are assembled from the parts when all are done.

    Args:
        model: a ``SITSFormer`` (pixel or patch model); put in eval mode here.
        source: a raster source (see :mod:`sitsformer.inference.sources`) or a path the data
            layer reads (a folder of per-date GeoTIFFs, or one raster holding every date).
        output: path of the class-map GeoTIFF.
        window: processing window in pixels: a side, or ``(rows, cols)``.
        overlap: halo read around each window; default and minimum ``img_size // 2``.
        batch_size: pixels per forward pass.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast; fp16 on GPU only).
        probabilities: also write the per-class probabilities.
        progress: show a tqdm bar over windows.
        spec: the model's :class:`~sitsformer.data.InputSpec` (``InputSpec.from_checkpoint``:
            bands, scale, normalisation, time axis); the input is checked against it and
            prepared with it exactly as in training. None = values used as read.
        edge_mode: how neighbourhoods are completed beyond the raster edge (module doc).
        device: where the model runs (default: the model's device).
        overwrite: replace existing outputs instead of refusing.
        class_names: names for ``class_counts`` and the legend (default ``spec.classes``).
        runner: a :class:`sitsformer.parallel.BlockRunner` (a Dask cluster) or None.
        probabilities_dtype: ``"float32"`` or ``"uint8"`` (compact, see above).
        cog: write Cloud-Optimized GeoTIFFs with overviews.
        torch_threads: intra-op threads of each cluster worker (default: torch's own).
        legend: a :class:`sitsformer.data.legend.Legend` for the class map (default: from
            ``class_names`` / ``spec``: the training data's names, codes and colours).
        force: map an input whose value scale clearly differs from training (only a
            warning then; see :func:`check_input_scale`).

    Returns:
        A :class:`PredictionResult` (paths, pixel counts, class counts, seconds).

    Raises:
        FileExistsError: an output exists and ``overwrite`` is False, or unfinished parts of
            a run with other settings are there.
        sitsformer.data.InputMismatchError: bands, dates or length do not match, or the
            input's value scale clearly differs from training (unless ``force``).
        ValueError: invalid window, overlap, precision or edge mode.
    """
    cfg = model.config  # type: ignore[attr-defined]
    p = int(cfg.img_size)
    half = p // 2
    overlap = half if overlap is None else int(overlap)
    win_h, win_w = (window, window) if isinstance(window, int) else (int(window[0]),
                                                                     int(window[1]))
    if win_h < 1 or win_w < 1:
        raise ValueError(f"window must be >= 1 pixel, got {window}")
    if overlap < half:
        raise ValueError(f"overlap must be at least img_size // 2 = {half} so every pixel sees "
                         f"its full {p}x{p} neighbourhood, got {overlap}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if edge_mode not in EDGE_MODES:
        raise ValueError(f"edge_mode must be one of {EDGE_MODES}, got {edge_mode!r}")
    if p % 2 == 0:
        raise ValueError(f"map inference needs an odd img_size (a centred neighbourhood), "
                         f"the model has img_size={p}")
    src = open_raster_source(source)
    where = str(source) if isinstance(source, (str, os.PathLike)) else str(
        getattr(src, "folder", None) or getattr(src, "path", None) or type(src).__name__)
    dates = None if getattr(src, "dates", None) is None else np.asarray(src.dates)
    num_dates = len(dates) if dates is not None else int(
        src.read_window(0, 0, 1, 1)["sequence"].shape[0])
    if spec is None:  # the model's bands (names when it has them), the input's time axis
        spec = InputSpec(bands=cfg.bands or [f"band{i}" for i in range(cfg.in_channels)],
                         time_axis="dates" if dates is not None else "t_index")
    spec.check_input(list(src.bands), dates is not None, num_dates, where,
                     date_encoding=cfg.date_encoding, max_seq_len=cfg.max_seq_len)
    if dates is None and spec.time_axis == "t_index" and spec.max_t and num_dates != spec.max_t:
        from sitsformer.data.errors import InputMismatchError

        raise InputMismatchError(
            f"{where}: {num_dates} time steps, but the model was trained on undated series of "
            f"{spec.max_t} steps (positions 1..{spec.max_t}); an undated input needs the same "
            "steps (for a stacked raster check n_bands= and layout=)")
    out = Path(output)
    conf_path, prob_path = companion_paths(out)
    targets = [out, conf_path] + ([prob_path] if probabilities else [])
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"output exists: {', '.join(existing)} (pass overwrite=True / "
                              "--overwrite to replace it)")
    if probabilities_dtype not in PROBABILITY_DTYPES:
        raise ValueError(f"probabilities_dtype must be one of {PROBABILITY_DTYPES}, got "
                         f"{probabilities_dtype!r}")
    out.parent.mkdir(parents=True, exist_ok=True)

    scaled = getattr(src, "scale", None) is not None  # the reader already divided by it
    check_input_scale(src, spec, scaled, where, side=min(win_h, win_w, 128), force=force)

    k = int(cfg.num_classes)
    cls_dtype, cls_nodata = ("uint8", CLASS_NODATA) if k < 255 else ("uint16", 65535)
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    if precision == "fp16" and dev.type != "cuda":
        raise ValueError("precision='fp16' needs a CUDA device; use 'bf16' on CPU")
    if precision == "bf16":
        from sitsformer._hardware import warn_emulated_bf16

        warn_emulated_bf16(dev, "predict precision bf16")
    if legend is None:
        from sitsformer.data.legend import resolve

        legend = resolve(k, class_names=class_names, spec=spec)
    legend = legend.resized(k)
    names = list(legend.names)

    h_all, w_all = int(src.height), int(src.width)
    windows = [(r, c, min(win_h, h_all - r), min(win_w, w_all - c))
               for r in range(0, h_all, win_h) for c in range(0, w_all, win_w)]
    settings = BlockSettings(
        spec=spec, scaled=scaled, overlap=overlap, half=half, edge_mode=edge_mode,
        batch_size=int(batch_size), dates=dates, device=str(dev), precision=precision,
        k=k, cls_nodata=cls_nodata, probabilities=probabilities,
        probabilities_dtype=probabilities_dtype, torch_threads=torch_threads)
    fingerprint = _fingerprint(model, src, where, settings, windows)
    ledger = BlockLedger(parts_dir(out), fingerprint, overwrite=overwrite)
    todo = [i for i in range(len(windows)) if i not in ledger.done]
    start = time.perf_counter()
    if runner is None or getattr(runner, "client", None) is None:
        model.eval().to(dev)
        bar = progress_bar(todo, desc="predict", unit="block", enabled=progress)
        # One thread reads (and prepares) the next window while this one is classified:
        # GDAL and numpy release the GIL, and a GPU otherwise waits for every read.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict-read") as pool:
            ahead = pool.submit(read_block, src, settings, windows[todo[0]]) if todo else None
            for j, i in enumerate(bar):
                block = ahead.result()
                ahead = (pool.submit(read_block, src, settings, windows[todo[j + 1]])
                         if j + 1 < len(todo) else None)
                ledger.add(i, predict_block(model, src, settings, ledger.folder, i,
                                            windows[i], block=block))
    else:
        import dask

        model_f, src_f = runner.share(model.cpu().eval()), runner.share(src)
        tasks = [dask.delayed(predict_block, pure=False)(model_f, src_f, settings,
                                                         ledger.folder, i, windows[i])
                 for i in todo]
        for j, stats in runner.iter_blocks(tasks, progress=progress, desc="predict"):
            ledger.add(todo[j], stats)
    seconds_blocks = time.perf_counter() - start
    write_outputs(ledger, windows, src, targets, cls_dtype, cls_nodata, k, legend,
                  probabilities, probabilities_dtype, cog=cog)
    ledger.remove()
    seconds = time.perf_counter() - start
    counts = np.zeros(k, dtype=np.int64)
    n_nodata = 0
    for st in ledger.done.values():
        counts += np.asarray(st["counts"], dtype=np.int64)
        n_nodata += int(st["nodata"])
    total = h_all * w_all
    return PredictionResult(
        class_map=str(out), confidence=str(conf_path),
        probabilities=str(prob_path) if probabilities else None, height=h_all, width=w_all,
        num_pixels=total, num_predicted=total - n_nodata, num_nodata=n_nodata,
        class_counts={str(names[i]) if i < len(names) else str(i): int(counts[i])
                      for i in range(k)},
        seconds=seconds, blocks_total=len(windows), blocks_computed=len(todo),
        blocks_resumed=len(windows) - len(todo), block_seconds=seconds_blocks,
        where=getattr(runner, "description", "in-process"),
        lost_workers=sorted(getattr(runner, "lost_workers", None) or []),
        pixels_computed=sum(windows[i][2] * windows[i][3] for i in todo))


def _read_window(src: Any, prep: Any, r0: int, c0: int, h: int, w: int, overlap: int,
                 edge_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a window plus its halo, clipped to the raster, prepared (scale, bands) and
    completed at the raster's edges: ``(x (T, C, h + 2o, w + 2o), pixel_mask (T, ...))``."""
    h_all, w_all = int(src.height), int(src.width)
    rs, re_ = max(r0 - overlap, 0), min(r0 + h + overlap, h_all)
    cs, ce = max(c0 - overlap, 0), min(c0 + w + overlap, w_all)
    block = src.read_window(rs, cs, re_ - rs, ce - cs)
    pads = ((rs - (r0 - overlap), (r0 + h + overlap) - re_),
            (cs - (c0 - overlap), (c0 + w + overlap) - ce))
    x = _pad(prep(np.asarray(block["sequence"], dtype=np.float32)), pads, edge_mode, 0.0)
    pm = _pad(np.asarray(block["pixel_mask"], dtype=bool), pads, edge_mode, False)
    return x, pm


@torch.no_grad()
def _predict_window(model: nn.Module, x: np.ndarray, pm: np.ndarray, h: int, w: int,
                    overlap: int, half: int, batch_size: int,
                    doy: torch.Tensor | None, days: torch.Tensor | None, dev: torch.device,
                    autocast: Any, k: int, cls_nodata: int, probabilities: bool,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """Classify the ``h x w`` centre of a window read by :func:`_read_window`."""
    # The whole window (with its halo) goes to the device once; the (p x p) neighbourhood of
    # every pixel is gathered there, batch by batch, and the outputs stay there until the
    # window is done. Gathering on the host and copying each batch (p * p times the window's
    # bytes) ran a GPU at a tenth of the model's own forward rate (benchmarks/gpu_profile.py).
    x_t = torch.from_numpy(np.ascontiguousarray(x)).to(dev)  # (T, C, h + 2o, w + 2o)
    pm_t = torch.from_numpy(np.ascontiguousarray(pm)).to(dev)  # (T, h + 2o, w + 2o)
    t = x_t.shape[0]
    if doy is None:  # an undated input: positions 1..T, the doy of undated training samples
        doy = torch.arange(1, t + 1)
    doy = doy.to(dev)
    days = days.to(dev) if days is not None else None
    p = 2 * half + 1
    # Each centre pixel (i, j) of the window sees rows i + o - half .. i + o + half.
    x_u = x_t.unfold(2, p, 1).unfold(3, p, 1)  # (T, C, h', w', p, p), a view
    pm_u = pm_t.unfold(1, p, 1).unfold(2, p, 1)  # (T, h', w', p, p)
    centre = pm_t[:, overlap:overlap + h, overlap:overlap + w]  # (T, h, w)
    has_clear = centre.any(0)
    rows, cols = torch.nonzero(has_clear, as_tuple=True)
    off = overlap - half
    cls_dev = torch.full((h, w), cls_nodata, dtype=torch.int64, device=dev)
    conf_dev = torch.full((h, w), CONFIDENCE_NODATA, dtype=torch.float32, device=dev)
    prob_dev = (torch.full((k, h, w), CONFIDENCE_NODATA, dtype=torch.float32, device=dev)
                if probabilities else None)
    for b0 in range(0, rows.numel(), batch_size):
        ri, ci = rows[b0:b0 + batch_size], cols[b0:b0 + batch_size]
        n = ri.numel()
        seq = rearrange(x_u[:, :, ri + off, ci + off], "t c b p q -> b t c p q")
        pmask = rearrange(pm_u[:, ri + off, ci + off], "t b p q -> b t p q")
        masks = rearrange(centre[:, ri, ci], "t b -> b t")
        kwargs: dict[str, Any] = {"pixel_mask": pmask, "doy": doy.expand(n, t)}
        if days is not None:
            kwargs["dates"] = days.expand(n, t)
        with autocast:
            logits = model(seq, masks, **kwargs)
        prob = logits.float().softmax(-1)
        conf, cls = prob.max(-1)
        cls_dev[ri, ci] = cls
        conf_dev[ri, ci] = conf
        if prob_dev is not None:
            prob_dev[:, ri, ci] = prob.T
    prob_block = prob_dev.cpu().numpy() if prob_dev is not None else None
    return (cls_dev.cpu().numpy(), conf_dev.cpu().numpy(), prob_block,
            int((~has_clear).sum()))
