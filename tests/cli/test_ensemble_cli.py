"""``train.ensemble=2`` through the real CLI: one checkpoint whose ``evaluate`` scores and
``predict`` map are those of the mean of its members' probabilities."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import torch
from test_round_trip import TINY, make_folder

from sitsformer.cli import main
from sitsformer.data import DataWarning, InputSpec, collate, open_source
from sitsformer.evaluation import ClassificationMetrics
from sitsformer.models import SITSEnsemble, load_checkpoint, load_model


def test_ensemble_train_evaluate_predict(tmp_path):
    data, labels = make_folder(tmp_path)
    run = tmp_path / "run"
    assert main(["train", f"data.source={data}", f"data.options.labels={labels}",
                 "data.options.patch_size=1", *TINY, "train.ensemble=2",
                 "train.ema_decay=0.9", "train.test_checkpoint=last", "--output", str(run),
                 "--quiet"]) == 0
    ckpt = load_checkpoint(run / "best.pt")
    assert len(ckpt["model_config"]["ensemble"]) == 2
    member_files = [run / "member0" / "last.pt", run / "member1" / "last.pt"]
    assert ckpt["members"] == [str(p) for p in member_files]
    seeds = [load_checkpoint(p)["config"]["train"]["seed"] for p in member_files]
    assert seeds == [0, 1]
    assert (run / "data_meta.json").read_text() == (run / "member0" / "data_meta.json").read_text()

    ens, _ = load_model(run / "best.pt")
    assert isinstance(ens, SITSEnsemble)
    nets = [load_model(p)[0] for p in member_files]
    spec = InputSpec.from_checkpoint(ckpt)
    ds = open_source(str(data), labels=str(labels), patch_size=1)
    b = collate([spec.transform()(ds[i]) for i in range(len(ds))])
    with torch.no_grad():
        prob = torch.stack([n(b["sequence"], b["mask"], doy=b["doy"], dates=b["dates"],
                              pixel_mask=b["pixel_mask"]).softmax(-1) for n in nets]).mean(0)
    ref = ClassificationMetrics(2, class_names=spec.classes)
    ref.update(prob.log(), b["label"])

    report = tmp_path / "report"
    with pytest.warns(DataWarning, match="samples scored were in the model's training split"):
        assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(data),
                     "-o", f"labels={labels}", "-o", "patch_size=1", "--output", str(report),
                     "--split", "all", "--quiet"]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["confusion_matrix"] == ref.compute()["confusion_matrix"]
    test = json.loads((run / "test_metrics.json").read_text())
    assert test["ensemble"] == 2 and len(test["members"]) == 2

    out = tmp_path / "map.tif"
    done = subprocess.run([sys.executable, "-m", "sitsformer", "predict", "--checkpoint",
                           str(run / "best.pt"), "--input", str(data), "--output", str(out),
                           "--quiet"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with rasterio.open(out) as c, rasterio.open(tmp_path / "map_confidence.tif") as f:
        class_map, confidence = c.read(1), f.read(1)
    rows, cols = ds.coords[:, 0].astype(int), ds.coords[:, 1].astype(int)
    np.testing.assert_array_equal(class_map[rows, cols], prob.argmax(-1).numpy())
    np.testing.assert_allclose(confidence[rows, cols], prob.max(-1).values.numpy(), atol=1e-5)


def test_ensembles_of_different_seeds_share_no_member(tmp_path):
    """train.seed=1 with 2 members trains seeds 2 and 3 (seed 0 trained 0 and 1); member 1 is
    the very run `train.seed=3` gives alone."""
    common = ["train", "data.source=demo", "data.split=stratified", "data.demo_samples=48",
              "data.demo_classes=4", "data.batch_size=16", "model.variant=sitsformer_pixel",
              "model.embed_dim=16", "model.num_heads=2", "model.num_layers=1",
              "train.epochs=2", "train.threads=1", "logging.plots=false", "--quiet"]
    assert main([*common, "train.seed=1", "train.ensemble=2", "--output",
                 str(tmp_path / "ens")]) == 0
    members = [load_checkpoint(tmp_path / "ens" / f"member{i}" / "last.pt") for i in (0, 1)]
    assert [m["config"]["train"]["seed"] for m in members] == [2, 3]
    assert main([*common, "train.seed=3", "--output", str(tmp_path / "alone")]) == 0
    alone = load_checkpoint(tmp_path / "alone" / "last.pt")["model_state_dict"]
    for name, value in members[1]["model_state_dict"].items():
        assert torch.equal(value, alone[name]), name


@pytest.mark.parametrize("limit", [10, 1000])
def test_ensemble_only_for_training_splits_up_to_ensemble_max_samples(tmp_path, limit, capsys):
    """train.ensemble_max_samples: 48 demo samples (a training split of about 30) get two
    members under a limit of 1000, and one plain model, said and recorded, under 10."""
    run = tmp_path / "run"
    assert main(["train", "data.source=demo", "data.split=stratified", "data.demo_samples=48",
                 "data.demo_classes=4", "data.batch_size=16", "model.variant=sitsformer_pixel",
                 "model.embed_dim=16", "model.num_heads=2", "model.num_layers=1",
                 "train.epochs=1", "train.threads=1", "logging.plots=false", "train.ensemble=2",
                 f"train.ensemble_max_samples={limit}", "--output", str(run), "--quiet"]) == 0
    ckpt = load_checkpoint(run / "best.pt")
    n_train = ckpt["data_meta"]["split_sizes"]["train"]
    if limit == 10:
        assert n_train > 10 and "ensemble" not in ckpt["model_config"]
        assert not (run / "member0").exists()
        assert ckpt["config"]["train"]["ensemble"] == 1
        assert f"holds {n_train} samples, more than train.ensemble_max_samples=10" in \
            capsys.readouterr().out
    else:
        assert len(ckpt["model_config"]["ensemble"]) == 2
        assert (run / "member1" / "last.pt").is_file()


def test_sigterm_during_an_ensemble_member_says_how_to_resume(tmp_path):
    """Issue 32: SIGTERM to ``train.ensemble=2`` during a member ended in ``KeyError:
    'trainer'``; now exit 143 and the line saying which member to resume and how."""
    import os
    import signal
    import time

    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sitsformer", "train", "data.source=demo",
         "data.demo_samples=48", "data.demo_classes=4", "data.batch_size=16",
         "model.embed_dim=16", "model.num_heads=2", "model.num_layers=1", "train.threads=1",
         "logging.tensorboard=false", "logging.progress=false", "logging.plots=false",
         "train.ensemble=2", "train.epochs=100000", "--output", str(run)],
        env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not (run / "member0" / "last.pt").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    member = run / "member0"
    assert out.strip().splitlines()[-1] == (
        f"stopped by a signal in member 0 of the ensemble; resume that member with: sitsformer "
        f"train --config {member}/config.yaml --resume {member}/last.pt")
    assert load_checkpoint(member / "last.pt")["epoch"] >= 1
