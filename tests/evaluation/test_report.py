"""Reports: JSON round trip, Markdown content, PNG figures; evaluate_model on a dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from sitsformer.data import ArrayDataset, InputSpec
from sitsformer.evaluation import ClassificationMetrics, evaluate_model, write_report
from sitsformer.evaluation.evaluate import label_mapping
from sitsformer.inference import InputMismatchError
from sitsformer.models import create_sits_former


def _metrics():
    m = ClassificationMetrics(3, class_names=["wheat", "maize", "forest"])
    m.update(torch.tensor([0, 0, 1, 2, 2, 1, 0]), torch.tensor([0, 1, 1, 2, 2, 2, -100]))
    return m.compute()


def test_report_files(tmp_path):
    metrics = _metrics()
    files = write_report(metrics, tmp_path / "r", info={"checkpoint": "best.pt"})
    saved = json.loads(files["json"].read_text())
    assert saved["info"] == {"checkpoint": "best.pt"}
    assert {k: v for k, v in saved.items() if k != "info"} == metrics
    md = files["markdown"].read_text()
    assert "| overall accuracy | 0.6667 |" in md
    assert "| maize | 0.5000 | 0.5000 | 0.5000 | 0.3333 | 2 |" in md
    assert "| **forest** | 0 | 1 | 2 |" in md
    for key in ("confusion_matrix", "per_class"):
        img = imread(files[key])
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300


def test_evaluate_model_counts_exclusions_and_remaps_classes():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 6, 2)).astype(np.float32)
    mask = np.ones((20, 6), bool)
    labels = np.arange(20) % 2
    ds = ArrayDataset(x, mask=mask, labels=labels, classes=["b", "a"], bands=["B04", "B08"],
                      dates=np.datetime64("2021-01-01") + np.arange(6) * 7)
    ds.mask[3] = False  # a sample whose dates are all invalid (e.g. after cloud filtering)
    model = create_sits_former(img_size=1, patch_size=1, in_channels=2, num_classes=2,
                               embed_dim=16, num_layers=1, num_heads=2, max_seq_len=8).eval()
    res = evaluate_model(model, ds, spec=InputSpec(classes=["a", "b"], bands=["B04", "B08"],
                                                   scale=2.0), progress=False, batch_size=6)
    assert res["counts"] == {"samples": 20, "scored": 19, "excluded_no_valid_date": 1,
                             "unlabelled": 0}
    # reference: the model on the scaled inputs, labels mapped by name (b -> 1, a -> 0)
    with torch.no_grad():
        doy = torch.tensor([1, 8, 15, 22, 29, 36]).expand(20, -1)
        pred = model(torch.from_numpy(x / 2.0), torch.from_numpy(ds.mask), doy=doy).argmax(-1)
    keep = np.arange(20) != 3
    ref = ClassificationMetrics(2, class_names=["a", "b"])
    ref.update(pred[keep], torch.from_numpy(1 - labels[keep]))
    assert res["confusion_matrix"] == ref.compute()["confusion_matrix"]
    with pytest.raises(InputMismatchError, match="band mismatch"):
        evaluate_model(model, ds, spec=InputSpec(bands=["B02", "B03"]), progress=False)
    with pytest.raises(InputMismatchError, match="not among"):
        label_mapping(["a", "c"], ["a", "b"])
