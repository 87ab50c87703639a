"""Issue 26 section 2 through the real CLI on real rasters (the sen2r ROI, NDVI x 10000): the
training data's legend (names, codes, colours of a class_map.txt) reaches the checkpoint and
every map; ``predict --legend`` and ``--png``; ``predict --probabilities-dtype uint8`` feeds
``smooth`` and ``uncertainty`` like the float32 probabilities do."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import rasterio
from inference_helpers import SEN2R_ROI, write_checkpoint
from PIL import Image

from sitsformer.cli import main
from sitsformer.data import DataWarning, InputSpec
from sitsformer.data.legend import from_raster
from sitsformer.inference import open_raster_source
from sitsformer.inference.predict import input_medians

NAMES = ["cultivated land", "forest", "grassland", "schrubland", "artificial surface"]
CODES = [1, 2, 3, 4, 8]
# fixed: palette entry 0 is not used by a name; forest, grassland, shrubland, artificial have
# their ESA WorldCover colours (cultivated land too: "cultivated")
COLORS = [(240, 150, 255), (0, 100, 0), (255, 255, 76), (255, 187, 34), (250, 0, 0)]


@pytest.fixture(scope="module")
def study(shared_data, slovenia_model, tmp_path_factory):
    """A checkpoint with the training legend, and its predict outputs on the ROI (float32
    and uint8 probabilities, a PNG)."""
    roi = shared_data / SEN2R_ROI
    tmp = tmp_path_factory.mktemp("study")
    spec0 = InputSpec(bands=["NDVI"], scale=10000.0)
    median = input_medians(open_raster_source(roi, scale=10000), spec0, scaled=True)
    ckpt = write_checkpoint(tmp / "m.pt", slovenia_model, bands=["NDVI"], scale=10000.0,
                            time_axis="dates", median=median.tolist(), classes=NAMES,
                            class_values=CODES)
    common = ["predict", "--checkpoint", str(ckpt), "--input", str(roi), "--window", "16",
              "--quiet", "--probabilities"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        assert main([*common, "--output", str(tmp / "f" / "map.tif"), "--png"]) == 0
        assert main([*common, "--output", str(tmp / "q" / "map.tif"),
                     "--probabilities-dtype", "uint8"]) == 0
    return {"ckpt": ckpt, "roi": roi, "tmp": tmp, "float": tmp / "f", "uint8": tmp / "q"}


def _cmap(path, k):
    with rasterio.open(path) as ds:
        cm = ds.colormap(1)
    return [tuple(cm[i][:3]) for i in range(k)]


def test_predict_writes_the_training_legend_and_a_png(study):
    cls = study["float"] / "map.tif"
    assert _cmap(cls, 5) == COLORS
    lg = from_raster(cls)
    assert lg.names == tuple(NAMES) and lg.codes == tuple(CODES)
    with rasterio.open(study["float"] / "map_probabilities.tif") as ds:
        assert ds.descriptions == tuple(f"p({n})" for n in NAMES)
        assert json.loads(ds.tags()["class_codes"]) == CODES
        classes = None
    with rasterio.open(cls) as ds:
        classes, nodata = ds.read(1), ds.nodata
    img = Image.open(cls.with_suffix(".png"))
    zoom = int(img.text["sitsformer:zoom"])
    px = np.asarray(img.convert("RGBA"))[:classes.shape[0] * zoom:zoom,
                                         :classes.shape[1] * zoom:zoom]
    valid = classes != nodata
    assert valid.sum() > 50 and len(np.unique(classes[valid])) >= 2
    lut = np.array([(*c, 255) for c in COLORS], np.uint8)
    np.testing.assert_array_equal(px[valid], lut[classes[valid]])
    assert (px[~valid][:, 3] == 0).all()  # nodata is transparent


def test_legend_file_sets_names_and_colours_of_every_map(study, tmp_path, capsys):
    legend = tmp_path / "class_map.txt"
    legend.write_text("value,class,colour\n1,Cropland,#aa0000\n2,Forest,rgb(0, 80, 0)\n"
                      "3,Grassland,#cccc00\n4,Shrubland,#bb8800\n8,Built-up,#202020\n")
    out = tmp_path / "map.tif"
    assert main(["predict", "--checkpoint", str(study["ckpt"]), "--input", str(study["roi"]),
                 "--window", "16", "--quiet", "--probabilities", "--legend", str(legend),
                 "--output", str(out), "--png", str(tmp_path / "look.png")]) == 0, \
        capsys.readouterr().err
    expected = [(170, 0, 0), (0, 80, 0), (204, 204, 0), (187, 136, 0), (32, 32, 32)]
    assert _cmap(out, 5) == expected  # matched by the training codes 1, 2, 3, 4, 8
    assert from_raster(out).names == ("Cropland", "Forest", "Grassland", "Shrubland",
                                      "Built-up")
    assert "quick-look: " + str(tmp_path / "look.png") in capsys.readouterr().out
    # smooth carries the names and colours on without --legend
    assert main(["smooth", "--input", str(tmp_path / "map_probabilities.tif"), "--output",
                 str(tmp_path / "s.tif"), "--window", "3", "--quiet"]) == 0
    assert _cmap(tmp_path / "s_class.tif", 5) == expected
    assert from_raster(tmp_path / "s_class.tif").codes == tuple(CODES)
    # a legend that does not fit is refused, naming the file and what is missing
    bad = tmp_path / "bad.txt"
    bad.write_text("1 Cropland\n2 Forest\n")
    assert main(["predict", "--checkpoint", str(study["ckpt"]), "--input", str(study["roi"]),
                 "--quiet", "--legend", str(bad), "--output", str(tmp_path / "x.tif")]) == 1
    err = capsys.readouterr().err
    assert (f"error: {bad}: no entry for class(es) ['grassland', 'schrubland', 'artificial "
            "surface'] of the map (5 classes") in err
    # one PNG name for several tiles is refused before anything is read
    assert main(["predict", "--checkpoint", str(study["ckpt"]), "--input", "west", "--input",
                 "east", "--output", str(tmp_path / "m.vrt"), "--png", "one.png"]) == 1
    assert ("--png one.png names one PNG, but there are 2 --input tiles: pass --png alone"
            in capsys.readouterr().err)


def test_uint8_probabilities_smooth_and_uncertainty_like_float32(study, tmp_path):
    """predict --probabilities-dtype uint8 -> smooth / uncertainty equal to the float32 path
    within the quantisation (1/254 per probability)."""
    out = {}
    for kind in ("float", "uint8"):
        prob = study[kind] / "map_probabilities.tif"
        assert main(["smooth", "--input", str(prob), "--output", str(tmp_path / f"{kind}.tif"),
                     "--window", "3", "--quiet"]) == 0
        assert main(["uncertainty", "--input", str(prob), "--output",
                     str(tmp_path / f"u_{kind}"), "--quiet"]) == 0
        with rasterio.open(tmp_path / f"{kind}.tif") as ds:
            sm = ds.read()
        with rasterio.open(tmp_path / f"{kind}_class.tif") as ds:
            cls = ds.read(1)
        with rasterio.open(tmp_path / f"u_{kind}" / "entropy.tif") as ds:
            ent = ds.read(1)
        out[kind] = (sm, cls, ent)
        assert _cmap(tmp_path / f"{kind}_class.tif", 5) == COLORS
    sm_f, cls_f, ent_f = out["float"]
    sm_q, cls_q, ent_q = out["uint8"]
    valid = cls_f != 255
    np.testing.assert_array_equal(cls_q == 255, ~valid)
    assert valid.sum() > 50
    np.testing.assert_allclose(sm_q[:, valid], sm_f[:, valid], atol=0.02)
    np.testing.assert_allclose(ent_q[valid], ent_f[valid], atol=0.02)
    # the class map agrees except where the two best classes are within the quantisation
    top2 = -np.sort(-sm_f[:, valid], axis=0)[:2]
    close = (top2[0] - top2[1]) < 0.02
    assert (cls_q[valid] == cls_f[valid])[~close].all()


def test_class_map_txt_colours_reach_the_checkpoint_spec(shared_data):
    """The Victoria CSV's ../map/class_map.txt gives colours: the data module's spec (what a
    checkpoint stores) carries them, in class order, and the maps take them from there."""
    from sitsformer.data.legend import resolve
    from sitsformer.data.module import DataModule

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # undated series
        dm = DataModule(str(shared_data / "s2_victoria_igarss2019/raw"), {"bands": "s2"},
                        split="upstream").setup()
    spec = InputSpec.from_dict(dm.spec.to_dict())
    assert spec.classes == ["Bare Ground", "Canola", "Cereals", "Legumes", "Forest",
                            "Grassland", "Water", "Urban"]
    assert spec.class_values == [1, 2, 3, 7, 8, 10, 12, 13]
    assert spec.class_colors == ["#918269", "#ffff00", "#ffd27d", "#ff8c00", "#329600",
                                 "#bee65a", "#0028f0", "#ff6464"]
    lg = resolve(8, spec=spec)
    assert lg.colors[4] == (50, 150, 0) and lg.codes == (1, 2, 3, 7, 8, 10, 12, 13)
