"""Through the real CLI: ``train`` on a CSV table records its split and writes the full test
report; ``evaluate`` scores exactly the recorded test samples by default and warns on training
samples; a date typed without quotes in an override stays a string."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from sitsformer.cli import main
from sitsformer.data import DataWarning

N, T, C = 48, 4, 2
TINY = ["data.batch_size=16", "model.embed_dim=16", "model.num_heads=2", "model.num_layers=1",
        "train.threads=1", "train.epochs=1", "logging.tensorboard=false",
        "logging.progress=false", "data.split=stratified", "data.val_fraction=0.2",
        "data.test_fraction=0.25"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run on a table without dates (positional values), dates stated unquoted."""
    tmp = tmp_path_factory.mktemp("held_out")
    rng = np.random.default_rng(0)
    labels = np.arange(N) % 3
    values = rng.integers(200, 3000, (N, T * C)) + labels[:, None] * 800
    lines = ["label,id," + ",".join(f"b{i}" for i in range(T * C))]
    lines += [f"{labels[i]},px{i}," + ",".join(str(v) for v in values[i]) for i in range(N)]
    table = tmp / "table.csv"
    table.write_text("\n".join(lines) + "\n")
    torch.set_num_threads(1)
    rc = main(["train", *TINY, f"data.source={table}", "data.options.n_bands=2",
               "data.options.start_date=2018-01-01", "data.options.interval_days=10",
               f"logging.run_dir={tmp / 'runs'}", "logging.name=r", "--quiet"])
    assert rc == 0
    return tmp, table, tmp / "runs" / "r"


def test_unquoted_date_override_stays_a_string(trained):
    _, _, run = trained
    ckpt = torch.load(run / "best.pt", weights_only=True)  # read back as the crash did
    assert ckpt["config"]["data"]["options"]["start_date"] == "2018-01-01"
    assert "start_date: '2018-01-01'" in (run / "config.yaml").read_text()
    assert ckpt["input_spec"]["time_axis"] == "dates"
    assert ckpt["input_spec"]["scale"] == 10000.0  # inferred: integer values
    assert "inferred" in ckpt["input_spec"]["scale_source"]


def test_train_writes_the_full_test_report(trained):
    _, _, run = trained
    meta = torch.load(run / "best.pt", weights_only=True)["data_meta"]
    ids = meta["split_ids"]
    assert sorted(ids["train"] + ids["val"] + ids["test"]) == sorted(f"px{i}" for i in range(N))
    assert len(ids["test"]) == meta["split_sizes"]["test"] == 12
    report = run / "test_report"
    for name in ("metrics.json", "report.md", "confusion_matrix.png", "per_class.png"):
        assert (report / name).is_file(), name
    m = json.loads((report / "metrics.json").read_text())
    assert m["scored_ids"] == ids["test"] and np.sum(m["confusion_matrix"]) == 12
    assert {"precision", "recall", "f1", "iou"} <= set(m["per_class"][0])
    test = json.loads((run / "test_metrics.json").read_text())
    assert m["oa"] == pytest.approx(test["test_oa"], abs=1e-6)
    assert "| class | precision | recall | F1 | IoU | support |" in (report / "report.md").read_text()


def test_evaluate_scores_exactly_the_test_ids(trained):
    tmp, table, run = trained
    out = tmp / "ev"
    r = subprocess.run([sys.executable, "-m", "sitsformer.cli", "evaluate", "--checkpoint",
                        str(run / "best.pt"), "--data", str(table), "--output", str(out),
                        "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "split: test" in r.stdout and "warning" not in r.stderr
    m = json.loads((out / "metrics.json").read_text())
    ids = torch.load(run / "best.pt", weights_only=True)["data_meta"]["split_ids"]
    assert m["scored_ids"] == ids["test"] and m["counts"]["scored"] == len(ids["test"])
    train_report = json.loads((run / "test_report" / "metrics.json").read_text())
    assert m["confusion_matrix"] == train_report["confusion_matrix"]
    assert m["per_class"] == train_report["per_class"]


def test_evaluate_warns_on_training_samples(trained, capsys):
    tmp, table, run = trained
    ids = torch.load(run / "best.pt", weights_only=True)["data_meta"]["split_ids"]
    with pytest.warns(DataWarning, match="not a held-out estimate"):
        assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(table),
                     "--output", str(tmp / "ev_train"), "--split", "train", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert f"{len(ids['train'])} of the {len(ids['train'])} samples scored were in the model's " \
           "training split" in captured.err
    m = json.loads((tmp / "ev_train" / "metrics.json").read_text())
    assert sorted(m["scored_ids"]) == sorted(ids["train"])
    with pytest.warns(DataWarning, match="not a held-out estimate"):
        assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(table),
                     "--output", str(tmp / "ev_all"), "--split", "all", "--quiet"]) == 0
    assert f"{len(ids['train'])} of the {N} samples scored" in capsys.readouterr().err
    # another source cannot be cut by the checkpoint's split
    other = tmp / "other.csv"
    other.write_text(table.read_text())
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(other),
                 "-o", "n_bands=2", "-o", "start_date=2018-01-01", "-o", "interval_days=10",
                 "--output", str(tmp / "ev_other"), "--split", "test", "--quiet"]) == 1
    assert "needs the training source" in capsys.readouterr().err


def test_evaluate_recognises_training_samples_in_another_file(trained, capsys):
    """The same pixels under other ids, in another order (another export of the training
    data): the training samples are recognised by their values and left out by default."""
    tmp, table, run = trained
    ids = torch.load(run / "best.pt", weights_only=True)["data_meta"]["split_ids"]
    header, *rows = table.read_text().splitlines()
    renamed = [r.replace(",px", ",copy", 1) for r in reversed(rows)]
    other = tmp / "export.csv"
    other.write_text("\n".join([header, *renamed]) + "\n")
    opts = ["-o", "n_bands=2", "-o", "start_date=2018-01-01", "-o", "interval_days=10"]
    with pytest.warns(DataWarning, match="were left out; scored the other"):
        assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(other),
                     *opts, "--output", str(tmp / "ev_export"), "--quiet"]) == 0
    n_train = len(ids["train"])
    assert (f"{n_train} of the {N} samples have the values of samples in the model's training "
            f"split and were left out; scored the other {N - n_train}") in capsys.readouterr().err
    m = json.loads((tmp / "ev_export" / "metrics.json").read_text())
    held_out = sorted(i.replace("px", "copy") for i in ids["val"] + ids["test"])
    assert sorted(m["scored_ids"]) == held_out
    assert m["split"] == "all but the training samples"
    # --split all scores every sample and says how many the model trained on
    with pytest.warns(DataWarning, match="not a held-out estimate"):
        assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(other),
                     *opts, "--output", str(tmp / "ev_export_all"), "--split", "all",
                     "--quiet"]) == 0
    assert f"{n_train} of the {N} samples scored have the values" in capsys.readouterr().err
    assert json.loads((tmp / "ev_export_all" / "metrics.json").read_text())["counts"][
        "scored"] == N
