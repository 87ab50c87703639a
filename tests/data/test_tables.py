"""CSV tables in the layouts people export: read right, or refused with the option that decides."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from sitsformer.cli import main
from sitsformer.data import (BandCountError, DataError, DataWarning, LabelError, open_source,
                             read_csv_table)

RNG = np.random.default_rng(0)
N, T, C = 6, 3, 2
VALUES = RNG.integers(0, 5000, (N, T, C))  # (sample, date, band), reflectance x 10000
DATES = ["20180812", "20180901", "20180921"]
BANDS = ["B02", "B03"]


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def _no_header(path, rows):
    path.write_text("\n".join(",".join(str(v) for v in r) for r in rows) + "\n")


def test_no_header_train_and_test_files_date_major(tmp_path):
    folder = tmp_path / "tables"
    folder.mkdir()
    flat = VALUES.reshape(N, T * C)  # date-major: d1.b1, d1.b2, d2.b1 ...
    _no_header(folder / "train.csv", [[i % 2, 10 + i // 2, *flat[i]] for i in range(4)])
    _no_header(folder / "test.csv", [[i % 2, 20 + i, *flat[i]] for i in range(4, 6)])
    ds = _quiet(read_csv_table, folder, n_bands=C)
    np.testing.assert_array_equal(ds.x[:, :, :, 0, 0], VALUES)
    assert ds.split.tolist() == ["train"] * 4 + ["test"] * 2
    assert ds.groups.tolist() == [10, 10, 11, 11, 24, 25]
    assert ds.classes == ["0", "1"] and ds.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert ds.meta["header"] is False and ds.sample_ids[4] == "test.csv:0"
    with pytest.raises(BandCountError, match=r"6 value columns .* fit 4 band x date "
                       r"factorisations \(1 bands x 6 dates, 2 bands x 3 dates, 3 bands x 2 "
                       r"dates, 6 bands x 1 dates\); give n_bands=, bands="):
        _quiet(read_csv_table, folder)
    # string class names in the first column work the same
    _no_header(folder / "train.csv", [["wheat" if i % 2 else "maize", i, *flat[i]]
                                      for i in range(4)])
    _no_header(folder / "test.csv", [["wheat", 9, *flat[4]], ["maize", 9, *flat[5]]])
    ds = _quiet(read_csv_table, folder, bands="B2,B3")
    assert ds.classes == ["maize", "wheat"] and ds.labels.tolist() == [0, 1, 0, 1, 1, 0]
    assert ds.bands == ["B2", "B3"]


def _named_table(path, date_first=False, shuffle=True):
    cols = [(b, d) for d in DATES for b in BANDS]
    order = RNG.permutation(len(cols)) if shuffle else np.arange(len(cols))
    names = [f"{d}_{b}" if date_first else f"{b}_{d}" for b, d in cols]
    header = ["id", "label", "lon", "lat", "start_date"] + [names[k] for k in order[:3]] + [
        "cloud_cover"] + [names[k] for k in order[3:]]
    lines = [",".join(header)]
    for i in range(N):
        vals = [VALUES[i, DATES.index(cols[k][1]), BANDS.index(cols[k][0])] for k in order]
        row = [f"p{i}", ["crop", "forest"][i % 2], 144.0 + i * 0.1, -36.0 - i * 0.05,
               "2018-08-01"] + vals[:3] + [0.1 * i] + vals[3:]
        lines.append(",".join(str(v) for v in row))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("date_first", [False, True])
def test_header_with_named_value_columns_and_other_columns(tmp_path, date_first):
    _named_table(tmp_path / "s.csv", date_first)
    ds = read_csv_table(tmp_path / "s.csv")
    assert sorted(ds.bands) == BANDS  # in the order the columns first name them
    order = [BANDS.index(b) for b in ds.bands]
    np.testing.assert_array_equal(ds.x[:, :, :, 0, 0], VALUES[:, :, order])
    np.testing.assert_array_equal(ds.dates.astype(str), ["2018-08-12", "2018-09-01",
                                                          "2018-09-21"])
    np.testing.assert_allclose(ds.coords[2], [144.2, -36.1])
    assert ds.meta["columns"]["ignored"] == ["start_date", "cloud_cover"]
    assert ds.meta["columns"]["coords"] == ["lon", "lat"] and ds.meta["coords"] == "lon/lat"
    assert ds.sample_ids.tolist() == [f"p{i}" for i in range(N)]
    assert ds.classes == ["crop", "forest"] and ds.labels.tolist() == [0, 1] * 3


def test_inspect_lists_ignored_columns_and_value_ranges(tmp_path, capsys):
    _named_table(tmp_path / "s.csv")
    assert main(["data", "inspect", str(tmp_path / "s.csv")]) == 0
    out = capsys.readouterr().out
    assert "ignored     start_date, cloud_cover" in out
    assert "coords ['lon', 'lat']" in out and "id id" in out
    assert "integer reflectance (or index) x 10000" in out and "scale       10000.0" in out
    assert main(["data", "inspect", str(tmp_path / "s.csv"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    lo, hi = VALUES[:, :, BANDS.index("B02")].min(), VALUES[:, :, BANDS.index("B02")].max()
    assert info["value_ranges"]["B02"]["min"] == lo and info["value_ranges"]["B02"]["max"] == hi
    assert info["scale"]["inferred"] == 10000.0


def _labelled(path, labels, codes=None):
    head = "label," + ("code," if codes is not None else "") + "B2_20200101,B3_20200101"
    rows = [f"{lab}," + (f"{codes[i]}," if codes is not None else "") + f"{i},{i + 1}"
            for i, lab in enumerate(labels)]
    path.write_text(head + "\n" + "\n".join(rows) + "\n")


def test_labels_names_codes_with_legend_and_both(tmp_path):
    (tmp_path / "class_map.txt").write_text("value,class,colour\n1,Bare,x\n3,Cereals,y\n"
                                            "7,Legumes,z\n")
    _labelled(tmp_path / "codes.csv", [7, 1, 7, 3])
    with pytest.warns(DataWarning, match=r"class_map.txt: cannot read the colour on line 2 "
                      r"\(colour 'x' of class 'Bare'\); line 3 .*line 4 .*default colours"):
        ds = read_csv_table(tmp_path / "codes.csv")
    assert ds.classes == ["Bare", "Cereals", "Legumes"] and ds.labels.tolist() == [2, 0, 2, 1]
    assert ds.meta["class_codes"] == [1, 3, 7] and "class_colors" not in ds.meta
    (tmp_path / "class_map.txt").write_text("value,class,colour\n1,Bare,rgb(145, 130, 105)\n"
                                            "3,Cereals,#ffd27d\n7,Legumes,255,140,0\n")
    ds = read_csv_table(tmp_path / "codes.csv")  # readable colours: carried to the maps
    assert ds.meta["class_colors"] == ["#918269", "#ffd27d", "#ff8c00"]
    (tmp_path / "class_map.txt").write_text("value,class,colour\n1,Bare\n3,Cereals\n"
                                            "7,Legumes\n")
    _labelled(tmp_path / "codes.csv", [7, 1, 5, 3, 5])
    with pytest.raises(LabelError, match=r"2 row\(s\) have a class code that is not in the "
                       r"legend .*class_map.txt \(codes \[1, 3, 7\]\): codes.csv row 2 \(5\), "
                       r"codes.csv row 4 \(5\)"):
        read_csv_table(tmp_path / "codes.csv")
    _labelled(tmp_path / "codes.csv", [1, 1, 0, 1])  # 0 is no code: legend row numbers
    assert read_csv_table(tmp_path / "codes.csv").classes[0] == "Bare"
    _labelled(tmp_path / "codes.csv", [1, 1])  # code 1 or row 1? refused, option named
    with pytest.raises(LabelError, match="label_values='codes' or label_values='index'"):
        read_csv_table(tmp_path / "codes.csv")
    assert read_csv_table(tmp_path / "codes.csv", label_values="index").classes[
        read_csv_table(tmp_path / "codes.csv", label_values="index").labels[0]] == "Cereals"
    # names and codes together: they must agree
    _labelled(tmp_path / "codes.csv", ["Legumes", "Bare"], codes=[7, 1])
    both = read_csv_table(tmp_path / "codes.csv")
    assert both.classes == ["Bare", "Cereals", "Legumes"] and both.labels.tolist() == [2, 0]
    _labelled(tmp_path / "codes.csv", ["Legumes", "Bare", "Bare"], codes=[7, 1, 3])
    with pytest.raises(LabelError, match="disagree"):
        read_csv_table(tmp_path / "codes.csv")
    # class names checked against a legend file: an unknown name names its rows
    _labelled(tmp_path / "names.csv", ["Bare", "Urban", "Legumes"])
    with pytest.raises(LabelError, match=r"1 row\(s\) have a class name that is not in the "
                       r"legend .*names.csv row 1 \('Urban'\)"):
        read_csv_table(tmp_path / "names.csv")


def test_files_that_could_be_misread_are_refused(tmp_path):
    p = tmp_path / "t.csv"
    # a column that is no band would be read as one
    p.write_text("label,B2_20200101,cloud_20200101,B2_20200111,cloud_20200111\n0,1,2,3,4\n")
    with pytest.raises(DataError, match=r"would be read as band\(s\) \['cloud'\].*give "
                       r"-o bands=NAME,NAME,... .*-o ignore_columns=COL,COL,..."):
        read_csv_table(p)
    ds = read_csv_table(p, bands=["B2"])  # the option that decides
    assert ds.bands == ["B2"] and ds.meta["columns"]["ignored"] == ["cloud_20200101",
                                                                    "cloud_20200111"]
    # an incomplete band x date grid
    p.write_text("label,B2_20200101,B3_20200101,B2_20200111\n0,1,2,3\n")
    with pytest.raises(DataError, match=r"complete band x date grid .*missing \['B3@2020-01-11'"):
        read_csv_table(p)
    # a short row names its line
    p.write_text("label,id,b0,b1\n0,1,5,6\n1,2,7\n")
    with pytest.raises(DataError, match=r"t.csv line 3: short row: 3 fields, expected 4"):
        read_csv_table(p, n_bands=1)
    # generic and named value columns mixed
    p.write_text("label,b0,B2_20200101\n0,1,2\n")
    with pytest.raises(DataError, match="both named value columns"):
        read_csv_table(p)
    # text in a value column
    p.write_text("label,b0,b1\n0,1,2\n1,x,3\n")
    with pytest.raises(DataError, match=r"value column 'b0' holds text \(t.csv row 1: 'x'\)"):
        read_csv_table(p, n_bands=1)


def test_misread_file_refused_through_cli(tmp_path, capsys):
    p = tmp_path / "t.csv"
    p.write_text("label,id,b0,b1,b2,b3\n0,1,1,2,3,4\n")
    assert main(["data", "inspect", str(p)]) == 1
    assert "give n_bands=, bands=" in capsys.readouterr().err
    assert main(["data", "inspect", str(p), "-o", "n_bands=2"]) == 0
    assert "samples     1   T 2   C 2" in capsys.readouterr().out


def test_hints_typed_as_shown_and_legend_in_a_sibling_map_folder(tmp_path, capsys):
    """The options an error suggests work when typed as shown; a legend in ../map is found."""
    data = tmp_path / "data"
    data.mkdir()
    p = data / "t.csv"
    p.write_text("label,B2_20200101,cloud_20200101,B2_20200111,cloud_20200111\n"
                 "1,10,2,30,4\n2,11,2,31,4\n")
    (tmp_path / "map").mkdir()
    (tmp_path / "map" / "class_map.txt").write_text("code,class\n1,Forest\n2,Pasture\n")
    assert main(["data", "inspect", str(p)]) == 1
    assert "give -o bands=NAME,NAME,... to say which are bands, or -o ignore_columns=COL,COL," \
        in capsys.readouterr().err
    for opt in ("bands=B2", "bands=[B2]", "ignore_columns=cloud_20200101,cloud_20200111",
                "ignore_columns=[cloud_20200101, cloud_20200111]"):
        ds = read_csv_table(p, **{opt.split("=")[0]: opt.split("=", 1)[1]})
        assert ds.bands == ["B2"], opt
        np.testing.assert_array_equal(ds.x.reshape(2, 2), [[10, 30], [11, 31]])
        assert ds.classes == ["Forest", "Pasture"] and ds.labels.tolist() == [0, 1], opt
        assert main(["data", "inspect", str(p), "-o", opt]) == 0, opt
        assert "C 1" in capsys.readouterr().out


def test_victoria_tables_without_header_read_like_the_originals(tmp_path, shared_data):
    raw = shared_data / "s2_victoria_igarss2019/raw"
    ref = _quiet(open_source, raw, bands="s2")
    for name in ("train_dataset.csv", "test_dataset.csv"):  # the same rows, header dropped
        lines = (raw / name).read_text().splitlines()[1:]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    (tmp_path / "class_map.txt").write_text((raw / "map/class_map.txt").read_text())
    ds = _quiet(open_source, tmp_path, bands="s2")
    np.testing.assert_array_equal(ds.x, ref.x)
    np.testing.assert_array_equal(ds.labels, ref.labels)
    np.testing.assert_array_equal(ds.groups, ref.groups)
    assert ds.classes == ref.classes and ds.split.tolist() == ref.split.tolist()
    assert ref.classes[1] == "Canola" and ref.meta["class_codes"][1] == 2
