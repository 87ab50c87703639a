"""Train/validation/test splits that return index arrays (for ``torch.utils.data.Subset``).

Pixels of one field are strongly correlated: a random pixel split puts the same field on both
sides and overstates accuracy. :func:`group_split` (polygon/parcel id) and
:func:`spatial_block_split` (map blocks) keep every group on one side only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sitsformer.data.errors import DataError
from sitsformer.data.sample import IGNORE_INDEX


def _n(data: Any) -> int:
    return data if isinstance(data, int) else len(data)


def _sizes(n: int, test_size: float, val_size: float) -> tuple[int, int]:
    if not 0 <= test_size < 1 or not 0 <= val_size < 1 or test_size + val_size >= 1:
        raise DataError(f"need 0 <= test_size, val_size and test_size + val_size < 1, got "
                        f"{test_size}, {val_size}")
    return int(round(n * test_size)), int(round(n * val_size))


def _out(parts: list[np.ndarray], val_size: float) -> tuple[np.ndarray, ...]:
    parts = [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    return tuple(parts) if val_size > 0 else (parts[0], parts[2])


def random_split(data: Any, test_size: float = 0.2, val_size: float = 0.0, seed: int = 0
                 ) -> tuple[np.ndarray, ...]:
    """Random split of ``data`` (a length or a sized dataset).

    Returns:
        ``(train, test)`` index arrays, or ``(train, val, test)`` when ``val_size > 0``.
    """
    n = _n(data)
    n_test, n_val = _sizes(n, test_size, val_size)
    perm = np.random.default_rng(seed).permutation(n)
    return _out([perm[n_test + n_val:], perm[n_test:n_test + n_val], perm[:n_test]], val_size)


def stratified_split(labels: Any, test_size: float = 0.2, val_size: float = 0.0, seed: int = 0
                     ) -> tuple[np.ndarray, ...]:
    """Per-class random split: every class keeps (about) the same share on each side."""
    labels = np.asarray(getattr(labels, "labels", labels))
    if labels is None or labels.ndim != 1:
        raise DataError("stratified_split needs one label per sample")
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test, n_val = _sizes(idx.size, test_size, val_size)
        parts[2] += idx[:n_test].tolist()
        parts[1] += idx[n_test:n_test + n_val].tolist()
        parts[0] += idx[n_test + n_val:].tolist()
    return _out([np.array(p) for p in parts], val_size)


def group_split(groups: Any, test_size: float = 0.2, val_size: float = 0.0, seed: int = 0,
                labels: Any = None) -> tuple[np.ndarray, ...]:
    """Split by group (polygon/parcel/field id): no group has samples on two sides.

    Args:
        groups: ``(N,)`` group id per sample (or a dataset with ``.groups``).
        labels: optional ``(N,)`` labels: groups are then assigned class by class (by their
            majority label), so every class appears on each side when it has enough groups.

    The sizes are met in samples as closely as whole groups allow.
    """
    if hasattr(groups, "groups"):
        labels = groups.labels if labels is None else labels
        groups = groups.groups
    if groups is None:
        raise DataError("group_split needs group ids (the dataset has no 'groups')")
    groups = np.asarray(groups)
    uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    rng = np.random.default_rng(seed)
    if labels is not None:
        labels = np.asarray(labels)
        major = np.array([np.bincount(labels[inverse == g] - labels.min()).argmax()
                          for g in range(uniq.size)])
        strata = [np.flatnonzero(major == m) for m in np.unique(major)]
    else:
        strata = [np.arange(uniq.size)]
    side = np.zeros(uniq.size, np.int64)  # 0 train, 1 val, 2 test
    for members in strata:
        members = rng.permutation(members)
        total = counts[members].sum()
        filled = np.cumsum(counts[members]) - counts[members] / 2.0  # group centre position
        side[members[filled < total * test_size]] = 2
        side[members[(filled >= total * test_size)
                     & (filled < total * (test_size + val_size))]] = 1
    sample_side = side[inverse]
    return _out([np.flatnonzero(sample_side == k) for k in (0, 1, 2)], val_size)


def spatial_block_split(coords: Any, block_size: float, test_size: float = 0.2,
                        val_size: float = 0.0, seed: int = 0, labels: Any = None
                        ) -> tuple[np.ndarray, ...]:
    """Split by square map blocks of side ``block_size`` (in the units of ``coords``).

    Args:
        coords: ``(N, 2)`` positions (pixel row/col or map x/y), or a dataset with ``.coords``.
    """
    if hasattr(coords, "coords"):
        labels = coords.labels if labels is None else labels
        coords = coords.coords
    if coords is None:
        raise DataError("spatial_block_split needs coordinates (the dataset has no 'coords')")
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise DataError(f"coords must be (N, 2), got {coords.shape}")
    blocks = np.floor(coords / float(block_size)).astype(np.int64)
    block_id = blocks[:, 0] * 1_000_003 + blocks[:, 1]
    return group_split(block_id, test_size, val_size, seed, labels=labels)


def kfold_split(labels: Any, folds: int, fold: int, seed: int = 0, groups: Any = None,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``fold`` of a ``folds``-fold cross-validation: ``(rest, test)`` index arrays.

    Samples are dealt to folds class by class (stratified); with ``groups`` whole groups are
    dealt (by majority label, each to the fold with the fewest samples so far), so no group
    is in two folds. The same ``seed`` gives the same folds for every ``fold``, so the
    ``folds`` test parts are disjoint and cover every sample once.
    """
    labels = np.asarray(labels)
    if not isinstance(folds, int) or folds < 2:
        raise DataError(f"k-fold cross-validation needs folds >= 2, got {folds!r}")
    if not isinstance(fold, int) or not 0 <= fold < folds:
        raise DataError(f"fold must be in 0..{folds - 1}, got {fold!r}")
    rng = np.random.default_rng(seed)
    assign = np.zeros(len(labels), np.int64)
    if groups is not None:
        groups = np.asarray(groups)
        uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
        if uniq.size < folds:
            raise DataError(f"{folds}-fold cross-validation by groups needs at least {folds} "
                            f"groups, found {uniq.size}")
        lab = labels - labels.min()
        major = np.array([np.bincount(lab[inverse == g]).argmax() for g in range(uniq.size)])
        group_fold = np.zeros(uniq.size, np.int64)
        for m in np.unique(major):
            filled = np.zeros(folds)
            for g in rng.permutation(np.flatnonzero(major == m)):
                k = int(np.argmin(filled + rng.random(folds) * 1e-9))
                group_fold[g] = k
                filled[k] += counts[g]
        assign = group_fold[inverse]
    else:
        offset = 0
        for c in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == c))
            assign[idx] = (np.arange(idx.size) + offset) % folds
            offset += idx.size
    test = np.flatnonzero(assign == fold)
    rest = np.flatnonzero(assign != fold)
    return rest, test


def class_weights(labels: Any, num_classes: int, ignore_index: int = IGNORE_INDEX
                  ) -> torch.Tensor:
    """Inverse-frequency class weights ``N / (K * count_k)`` for ``CrossEntropyLoss(weight=)``.

    ``labels`` may hold per-pixel maps; ``ignore_index`` entries are skipped. A class with no
    sample gets weight 0 (it cannot be learned from this data).
    """
    lab = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    lab = lab.ravel()
    lab = lab[lab != ignore_index]
    if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
        raise DataError(f"labels must be in 0..{num_classes - 1} (or {ignore_index}); found "
                        f"{lab.min()}..{lab.max()}")
    counts = np.bincount(lab, minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, lab.size / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)
