"""``sitsformer data inspect|build``: in-process via ``cli.main`` and once as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sitsformer.cli import main
from sitsformer.data import SampleStore


def test_inspect_json(capsys, shared_data):
    src = shared_data / "s2_victoria_igarss2019/raw"
    assert main(["data", "inspect", str(src), "-o", "bands=s2", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["samples"], info["T"], info["C"], info["H"], info["W"]) == (800, 73, 10, 1, 1)
    assert info["classes"]["Canola"] == 100 and info["valid_fraction"] == 1.0
    assert info["value_range"]["B8A"] == [0.0, 7379.0]
    assert info["groups"] == 182
    assert any("dates are unknown" in w for w in info["warnings"])
    roi = shared_data / "s2_sen2rts_roi/raw/inst/extdata/sen2r/sampleroi"
    assert main(["data", "inspect", str(roi / "NDVI"), "-o", f"cloud_folder={roi / 'SCL'}",
                 "-o", "scale=10000"]) == 0
    text = capsys.readouterr().out
    assert "samples     175   T 60   C 1" in text and "EPSG:32632" in text
    assert "valid obs.  38.2%" in text and "2020-01-04" in text
    assert main(["data", "inspect", "/nonexistent/source"]) == 1
    assert "no such file" in capsys.readouterr().err


def test_build_real_process(tmp_path, shared_data):
    src = shared_data / "s2_victoria_igarss2019/raw"
    out = tmp_path / "vic.zarr"
    r = subprocess.run([sys.executable, "-m", "sitsformer.cli", "data", "build", str(src),
                        "--output", str(out), "-o", "bands=s2", "--stats-split", "group",
                        "--chunk-size", "100"],
                       capture_output=True, text=True, timeout=180,
                       env={**os.environ, "SITSFORMER_PROGRESS": "1"})  # bars as on a terminal
    assert r.returncode == 0, r.stderr
    assert "writing vic.zarr" in r.stderr and "8/8" in r.stderr  # the progress bar
    store = SampleStore(out)
    assert len(store) == 800 and store.attrs["stats_on"].endswith("training samples")
    assert store.classes[1] == "Canola" and store.meta["time_axis"] == "t_index"


def test_option_values_are_yaml(tmp_path, capsys, geotiff_stack):
    """``-o KEY=VALUE`` is YAML for every command: a ``{code: name}`` mapping names the label
    codes (it was one string, one class per character); invalid YAML is refused naming the
    option; ``class_names`` left a plain string is refused instead of split into characters."""
    s = geotiff_stack(tmp_path / "stack")
    base = ["data", "inspect", str(s["data"]), "-o", f"labels={s['labels']}", "-o",
            "label_nodata=[0]", "--json"]
    assert main(base + ["-o", "class_names={3: wheat, 7: maize}"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert sorted(info["classes"]) == ["maize", "wheat"]
    assert main(base + ["-o", "class_names=[a, b, c, wheat, e, f, g, maize]"]) == 0
    counts = json.loads(capsys.readouterr().out)["classes"]
    assert counts["wheat"] == info["classes"]["wheat"] and counts["maize"] > 0
    assert main(base + ["-o", "class_names={3: wheat, 7: maize"]) == 1
    err = capsys.readouterr().err
    assert "-o class_names=" in err and "not valid YAML" in err
    assert main(base + ["-o", "class_names=wheat maize"]) == 1
    assert "class_names must be {code: name} or a list" in capsys.readouterr().err
    for cmd in (["predict", "--checkpoint", "x.pt", "--input", str(s["data"]), "--output",
                 str(tmp_path / "m.tif")], ["evaluate", "--checkpoint", "x.pt", "--data",
                                            str(s["data"])]):
        assert main(cmd + ["-o", "bands=[B2, B3"]) == 1
        assert "-o bands=[B2, B3: the value is not valid YAML" in capsys.readouterr().err


def test_labels_outside_the_legend_name_only_those_rows(tmp_path, capsys):
    """Issue 32: labels that are legend row numbers, one of them outside, were read as codes
    and every row was blamed. The reading that fits more rows is taken; only the rows outside
    it are named."""
    (tmp_path / "class_map.txt").write_text("value,class\n10,A\n20,B\n30,C\n")
    table = tmp_path / "t.csv"
    table.write_text("label,B2_20200101,B3_20200101\n0,1,2\n1,2,3\n2,3,4\n0,4,5\n9,5,6\n1,1,1\n")
    assert main(["data", "inspect", str(table)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {table}: label outside the legend rows 0..2 ({tmp_path / 'class_map.txt'}): "
        f"rows {table.name} row 4 (9)")
    table.write_text("label,B2_20200101,B3_20200101\n10,1,2\n20,2,3\n30,3,4\n9,5,6\n")
    assert main(["data", "inspect", str(table)]) == 1
    assert capsys.readouterr().err.strip().endswith(
        f"(codes [10, 20, 30]): {table.name} row 3 (9)")


def test_inspect_excludes_what_training_excludes(tmp_path, capsys):
    """Issue 32: ``data inspect`` said "nothing excluded" for a 1e30 cell that training
    excludes; both now apply the one validity rule and count it."""
    from sitsformer.data import DataModule

    rows = ["label,B2_20200101,B3_20200101,B2_20200201,B3_20200201"]
    for i in range(200):
        rows.append(f"{('Crop', 'Forest')[i % 2]},{500 + 10 * i},{800 + 7 * i},"
                    f"{600 + 9 * i},{1e30 if i == 7 else 900 + 5 * i}")
    table = tmp_path / "t.csv"
    table.write_text("\n".join(rows) + "\n")
    assert main(["data", "inspect", str(table), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    got = info["exclusions"]["out_of_range_observations"]
    assert got["count"] == 1 and len(got["examples"]) == 1, got
    assert info["exclusion_report"].startswith("out_of_range_observations: 1")
    assert main(["data", "inspect", str(table)]) == 0
    assert "excluded    out_of_range_observations: 1" in capsys.readouterr().out
    dm = DataModule(str(table), split="random").setup()
    trained = dm.meta["exclusions"]["out_of_range_observations"]
    assert trained["count"] == got["count"] and trained["examples"] == got["examples"]
