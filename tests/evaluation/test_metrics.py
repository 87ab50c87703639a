"""ClassificationMetrics against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    jaccard_score,
    precision_recall_fscore_support,
)

from sitsformer.evaluation.metrics import ClassificationMetrics, metrics_from_confusion_matrix


def _sk(y, p, k):
    labels = sorted(set(y.tolist()) | set(p.tolist()))
    prec, rec, f1, sup = precision_recall_fscore_support(
        y, p, labels=list(range(k)), zero_division=0
    )
    return {
        "oa": accuracy_score(y, p),
        "kappa": cohen_kappa_score(y, p),
        "macro_f1": f1_score(y, p, average="macro", zero_division=0),
        "weighted_f1": f1_score(y, p, average="weighted", zero_division=0),
        "miou": jaccard_score(y, p, average="macro", labels=labels, zero_division=0),
        "precision": prec,
        "recall": rec,
        "f1": f1,
        "iou": jaccard_score(y, p, average=None, labels=list(range(k)), zero_division=0),
        "support": sup,
        "cm": confusion_matrix(y, p, labels=list(range(k))),
    }


def _check(res, ref):
    for key in ("oa", "kappa", "macro_f1", "weighted_f1", "miou"):
        assert res[key] == pytest.approx(ref[key], rel=1e-12, abs=1e-15), key
    assert res["confusion_matrix"] == ref["cm"].tolist()
    for name in ("precision", "recall", "f1", "iou"):
        got = np.array([c[name] for c in res["per_class"]])
        np.testing.assert_allclose(got, ref[name], rtol=1e-12, atol=0)
    assert [c["support"] for c in res["per_class"]] == ref["support"].tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_on_random_batches(seed):
    g = torch.Generator().manual_seed(seed)
    k = 6
    m = ClassificationMetrics(k)
    ys, ps = [], []
    for _ in range(4):
        logits = torch.randn(50, k, generator=g)
        # bias towards the right answer, and class 5 never appears in the targets
        y = torch.randint(0, k - 1, (50,), generator=g)
        logits[torch.arange(50), y] += 1.0
        m.update(logits, y)
        ys.append(y.numpy())
        ps.append(logits.argmax(1).numpy())
    y, p = np.concatenate(ys), np.concatenate(ps)
    res = m.compute()
    _check(res, _sk(y, p, k))
    assert res["num_samples"] == 200
    assert res["per_class"][5]["support"] == 0


def test_ignore_index_and_per_pixel_maps():
    g = torch.Generator().manual_seed(3)
    k = 4
    logits = torch.randn(3, k, 8, 8, generator=g)
    target = torch.randint(0, k, (3, 8, 8), generator=g)
    target[:, :2] = -100
    m = ClassificationMetrics(k, class_names=list("abcd"))
    m.update(logits, target)
    res = m.compute()
    keep = target.reshape(-1) != -100
    y = target.reshape(-1)[keep].numpy()
    p = logits.argmax(1).reshape(-1)[keep].numpy()
    _check(res, _sk(y, p, k))
    assert res["num_samples"] == int(keep.sum()) == 3 * 6 * 8
    assert [c["name"] for c in res["per_class"]] == list("abcd")
    # class indices give the same result as logits
    m2 = ClassificationMetrics(k)
    m2.update(logits.argmax(1), target)
    assert m2.compute()["confusion_matrix"] == res["confusion_matrix"]


def test_reset_and_errors():
    m = ClassificationMetrics(3)
    m.update(torch.tensor([0, 1]), torch.tensor([0, 0]))
    m.reset()
    m.update(torch.tensor([2, 2]), torch.tensor([2, 2]))
    res = m.compute()
    assert res["oa"] == 1.0 and res["kappa"] == 1.0
    assert res["confusion_matrix"] == [[0, 0, 0], [0, 0, 0], [0, 0, 2]]
    with pytest.raises(ValueError, match="same shape"):
        m.update(torch.tensor([0, 1, 2]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="logits must be"):
        m.update(torch.randn(2, 5), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="class_names"):
        ClassificationMetrics(3, class_names=["a"])
    empty = ClassificationMetrics(3)
    empty.update(torch.tensor([0]), torch.tensor([-100]))
    with pytest.raises(ValueError, match="no sample"):
        empty.compute()
    with pytest.raises(ValueError, match="square"):
        metrics_from_confusion_matrix(np.zeros((2, 3)))


def test_merge_state_is_exact():
    """Two partial states merge to the single-process result (the sync rule)."""
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(40, 3, generator=g)
    y = torch.randint(0, 3, (40,), generator=g)
    whole, a, b = ClassificationMetrics(3), ClassificationMetrics(3), ClassificationMetrics(3)
    whole.update(logits, y)
    a.update(logits[:17], y[:17])
    b.update(logits[17:], y[17:])
    a.merge_state(b)
    assert a.compute() == whole.compute()


@pytest.mark.slow
def test_distributed_ranks_reduce_to_the_global_matrix(tmp_path):
    """Real gloo process group, two processes (rank 0 here, rank 1 spawned): each rank's
    compute() sees the samples of both."""
    import torch.multiprocessing as mp

    from _metrics_dist_worker import rank_main

    args = (2, str(tmp_path / "init"), str(tmp_path))
    child = mp.get_context("spawn").Process(target=rank_main, args=(1, *args))
    child.start()
    try:
        rank_main(0, *args)
    finally:
        child.join(timeout=120)
    assert child.exitcode == 0
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(30, 4, generator=g)
    y = torch.randint(0, 4, (30,), generator=g)
    y[::7] = -100
    whole = ClassificationMetrics(4)
    whole.update(logits, y)
    expected = whole.compute()["confusion_matrix"]
    for rank in range(2):
        assert torch.load(tmp_path / f"rank{rank}.pt") == expected
