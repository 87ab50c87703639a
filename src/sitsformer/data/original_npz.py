"""Folders of per-sample ``.npz`` files in the original SITS-Former code's layout.

The original (github.com/linlei1214/SITS-Former, ``code/dataset/``) trains from folders with one
``.npz`` per sample:

* ``ts`` ``(T, C, P, P)``: reflectance x 10000 of a ``P x P`` patch at each of the ``T`` dates
  (10 bands, 5 x 5 in its data); ``T`` varies from file to file;
* ``doy`` ``(T,)``: the day of year of each date (1..366; no year is stored);
* ``class_label`` (fine-tuning only): the class index, a scalar or a one-element array.

Pre-training reads one folder (``--dataset_path``, every file, a random 3 % for validation);
fine-tuning reads ``TRAIN/``, ``VALIDATE/`` and ``TEST/`` under ``--dataset_path``. The files
are not padded: the original's loaders pad every series at the end to ``--max_length`` with
zero patches, day of year 0 and ``bert_mask`` 0. Here a row whose day of year is 0 is treated as
such padding (invalid, ``mask`` False) should a file hold one; every other row is valid.

Values are kept as stored (``meta["scale"] = 10000``: models see ``value / 10000``, as in the
original when it is given no statistics); ``mean=``/``std=`` (per band) apply the original's
other option, ``(ts - mean) / std`` on the stored values, while reading (``meta["scale"]``
None then). Files are read when a sample is asked for, so a pre-training folder of a million
files opens at once; labels and dates of up to :data:`SCAN_LIMIT` files are read on opening.
Every error names the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sitsformer.data.dataset import SITSDataset, Transform
from sitsformer.data.errors import DataError, LabelError

SPLIT_FOLDERS = {"TRAIN": "train", "VALIDATE": "val", "TEST": "test"}
SCALE = 10000.0
SCAN_LIMIT = 20000  # files whose labels and dates are read on opening (all of them if labelled)
REQUIRED = ("ts", "doy")


def is_original_folder(path: str | Path) -> bool:
    """True for a folder of ``.npz`` files with ``ts`` and ``doy`` (pre-training layout) or
    with ``TRAIN/`` (and ``VALIDATE/``, ``TEST/``) folders of them (fine-tuning layout)."""
    p = Path(path)
    if not p.is_dir():
        return False
    folders = [p / name for name in SPLIT_FOLDERS if (p / name).is_dir()]
    for folder in folders or [p]:
        first = next(iter(sorted(folder.glob("*.npz"))), None)
        if first is not None:
            try:
                with np.load(first, allow_pickle=False) as z:
                    return all(k in z.files for k in REQUIRED)
            except Exception:  # noqa: BLE001 - not ours to judge here; the reader will say
                return False
    return False


def _read(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise DataError(f"{path}: expected the original SITS-Former keys {list(keys)}, "
                                f"missing {missing} (keys present: {sorted(z.files)})")
            return {k: z[k] for k in keys}
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - re-raised naming the file
        raise DataError(f"{path}: cannot be read as .npz ({type(err).__name__}: {err})") from err


def _label(value: np.ndarray, path: Path) -> int:
    arr = np.asarray(value).reshape(-1)
    if arr.size != 1 or not np.issubdtype(arr.dtype, np.number) \
            or float(arr[0]) != int(arr[0]) or int(arr[0]) < 0:
        raise LabelError(f"{path}: 'class_label' must be one class index >= 0, found "
                         f"{np.asarray(value)!r} (shape {np.asarray(value).shape})")
    return int(arr[0])


class OriginalNpzFolder(SITSDataset):
    """A folder in the original SITS-Former layout (see the module doc) as contract samples.

    Args:
        folder: the pre-training folder, or the fine-tuning folder holding ``TRAIN/``,
            ``VALIDATE/``, ``TEST/`` (those present are read; ``split`` says which file came
            from which: ``train``, ``val``, ``test``).
        num_classes: classes (the original's ``--num_classes``; default: the largest label + 1).
        labelled: read ``class_label`` (default: True for the fine-tuning layout).
        mean, std: per-band statistics: values are read as ``(ts - mean) / std`` (the
            original's ``norm``) instead of being kept as stored (then divided by 10000).
        bands: band names (default ``band0`` ...).
    """

    def __init__(self, folder: str | Path, *, num_classes: int | None = None,
                 labelled: bool | None = None, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, bands: Sequence[str] | None = None,
                 transform: Transform | None = None) -> None:
        root = Path(folder)
        if not root.is_dir():
            raise DataError(f"{root}: expected a folder of .npz files (the original "
                            f"SITS-Former layout), found no such folder")
        split_dirs = [(root / name, tag) for name, tag in SPLIT_FOLDERS.items()
                      if (root / name).is_dir()]
        files: list[Path] = []
        split: list[str] = []
        counts = []
        for d, tag in split_dirs or [(root, "train")]:
            found = sorted(d.glob("*.npz"))
            files += found
            split += [tag] * len(found)
            counts.append(f"{d.name} {len(found)}")
        layout = (f"fine-tuning ({', '.join(counts)} files)" if split_dirs
                  else f"pre-training ({len(files)} files)")
        if not files:
            where = ", ".join(str(d) for d, _ in split_dirs) or str(root)
            raise DataError(f"{where}: no .npz files (expected one file per sample with 'ts' "
                            f"and 'doy', the original SITS-Former layout)")
        self.files = files
        self.split = np.array(split) if split_dirs else None
        if (mean is None) != (std is None):
            raise DataError(f"{root}: mean and std must be given together")
        self.mean = None if mean is None else np.asarray(mean, np.float64)
        self.std = None if std is None else np.asarray(std, np.float64)
        first = _read(files[0], REQUIRED)["ts"]
        if first.ndim != 4 or first.shape[2] != first.shape[3]:
            raise DataError(f"{files[0]}: 'ts' must be (T, C, P, P), found {first.shape}")
        self.shape = tuple(int(v) for v in first.shape[1:])  # (C, P, P)
        n_bands = self.shape[0]
        self.bands = list(bands) if bands is not None else [f"band{i}" for i in range(n_bands)]
        if len(self.bands) != n_bands:
            raise DataError(f"{root}: {len(self.bands)} band names for {n_bands} bands")
        for name, v in (("mean", self.mean), ("std", self.std)):
            if v is not None and v.shape != (n_bands,):
                raise DataError(f"{root}: {name} must have one value per band ({n_bands}), "
                                f"found {v.shape}")
        labelled = bool(split_dirs) if labelled is None else labelled
        self.meta: dict[str, Any] = {
            "source": str(root), "format": f"original SITS-Former npz, {layout} layout",
            "layout": layout, "crs": None, "transform": None,
            "scale": None if self.mean is not None else SCALE,
            "time_axis": "dates", "exclusions": {}, "files": len(files)}
        if self.mean is not None:
            self.meta["normalized"] = "(ts - mean) / std while reading (given statistics)"
        self.labels = None
        self.classes = None
        scan = files if labelled else files[:SCAN_LIMIT]
        keys = ("doy", "class_label") if labelled else ("doy",)
        lo, hi, labels = 366, 0, []
        for f in scan:
            z = _read(f, keys)
            doy = np.asarray(z["doy"]).reshape(-1)
            real = doy[doy > 0]
            if real.size:
                lo, hi = min(lo, int(real.min())), max(hi, int(real.max()))
            if labelled:
                labels.append(_label(z["class_label"], f))
        if hi:
            note = "" if len(scan) == len(files) else f", first {len(scan)} files"
            self.meta["date_range"] = f"day of year {lo}..{hi} (no year in the files{note})"
        if labelled:
            self.labels = np.asarray(labels, np.int64)
            k = int(self.labels.max()) + 1 if num_classes is None else int(num_classes)
            if int(self.labels.max()) >= k:
                i = int(np.argmax(self.labels))
                raise LabelError(f"{files[i]}: class_label {int(self.labels[i])} is outside "
                                 f"0..{k - 1} (num_classes={k})")
            self.classes = [str(i) for i in range(k)]
        self.groups = None
        self.coords = None
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def raw_sample(self, index: int) -> dict[str, Any]:
        path = self.files[index]
        z = _read(path, REQUIRED)
        ts, doy = np.asarray(z["ts"]), np.asarray(z["doy"])
        if ts.ndim != 4 or tuple(ts.shape[1:]) != self.shape:
            raise DataError(f"{path}: 'ts' must be (T, {', '.join(map(str, self.shape))}) like "
                            f"the folder's first file, found {ts.shape}")
        if doy.shape != (ts.shape[0],):
            raise DataError(f"{path}: 'doy' must be (T,) = ({ts.shape[0]},) like 'ts', found "
                            f"{doy.shape}")
        if ts.shape[0] and (int(doy.min()) < 0 or int(doy.max()) > 366):
            raise DataError(f"{path}: 'doy' must be days of year in 1..366 (0 = padding), "
                            f"found {int(doy.min())}..{int(doy.max())}")
        mask = doy > 0
        if not mask.any():
            raise DataError(f"{path}: no valid date (every day of year is 0, or T = 0)")
        x = ts.astype(np.float32)
        if self.mean is not None:
            x = ((ts - self.mean[None, :, None, None]) / self.std[None, :, None, None]
                 ).astype(np.float32)
        sample: dict[str, Any] = {"sequence": x, "mask": mask, "doy": doy.astype(np.int64),
                                  "index": np.int64(index)}
        if self.labels is not None:
            sample["label"] = np.int64(self.labels[index])
        return sample


def read_original_folder(path: str | Path, **options: Any) -> OriginalNpzFolder:
    """:class:`OriginalNpzFolder` (``open_source`` calls it for such folders)."""
    return OriginalNpzFolder(path, **options)
