"""The shape of the package: imports go one way, and model settings have one source of truth."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import yaml

from sitsformer.models import SITSFormerConfig, create_sits_former, list_models, variant_config
from sitsformer.training.config import MODEL_SECTION_EXTRA, ExperimentConfig, ModelSection

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "sitsformer"

# Which sub-packages each sub-package may import (itself included). layers <- models <-
# training <- cli; data imports no model; evaluation and inference never import training.
ALLOWED = {
    "layers": {"layers"},
    "data": {"data", "parallel"},
    "models": {"models", "layers", "data"},
    "evaluation": {"evaluation", "models", "data"},
    "inference": {"inference", "models", "data", "parallel"},
    "maps": {"maps", "data", "parallel"},
    # the study report reads the map products and the training samples; inference for the
    # one default palette of class maps
    "report": {"report", "maps", "data", "inference"},
    "parallel": {"parallel"},
    "training": {"training", "evaluation", "models", "layers", "data", "configs",
                 "parallel"},  # parallel.locks: one writer per run folder
    "tuning": {"tuning", "training", "evaluation", "models", "data", "configs"},
    "configs": {"configs"},
}


def _imports(path: Path) -> set[str]:
    """Every ``sitsformer.<sub>`` a module imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "sitsformer" and len(parts) > 1:
                found.add(parts[1])
    return found


# Private top-level modules (sitsformer/_yaml.py ...) are leaves: any sub-package may use them,
# and they import no sitsformer module themselves.
LEAVES = {p.stem for p in PACKAGE.glob("_*.py") if p.stem not in ("__init__", "__main__")}


def test_imports_go_one_way():
    bad = [f"{leaf}.py imports sitsformer.{t}" for leaf in sorted(LEAVES)
           for t in sorted(_imports(PACKAGE / f"{leaf}.py"))]
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if len(rel.parts) == 1:  # sitsformer/__init__.py, __main__.py: the top may import cli
            continue
        sub = rel.parts[0]
        if sub == "cli":
            continue
        assert sub in ALLOWED, f"new sub-package {sub!r}: add its allowed imports to ALLOWED"
        bad += [f"{rel} imports sitsformer.{target}"
                for target in sorted(_imports(path) - ALLOWED[sub] - LEAVES)
                if target not in ("__init__",)]
    assert not bad, "upward or sideways imports:\n  " + "\n  ".join(bad)


def test_evaluation_and_inference_load_without_training():
    code = ("import sys, sitsformer.evaluation, sitsformer.inference, sitsformer.data; "
            "import sitsformer.models; "
            "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('sitsformer.')}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    loaded = set(eval(done.stdout))  # noqa: S307 - our own printed list
    assert "training" not in loaded and "cli" not in loaded and "tuning" not in loaded
    assert {"evaluation", "inference", "data", "models", "layers"} <= loaded


def test_data_does_not_import_models():
    done = subprocess.run([sys.executable, "-c", "import sys, sitsformer.data as d; "
                           "d.DataModule, d.InputSpec, d.open_source, d.make_loader; "
                           "print(any(m.startswith('sitsformer.models') for m in sys.modules))"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_variants_config_and_yaml_schema_agree():
    fields = {f.name: (f.default_factory() if f.default is dataclasses.MISSING else f.default)
              for f in dataclasses.fields(SITSFormerConfig)}
    # the config section is generated from the dataclass: the same settings, nothing else
    section = {f.name for f in dataclasses.fields(ModelSection)}
    assert section == set(fields) | set(MODEL_SECTION_EXTRA)
    assert all(getattr(ModelSection(), name) is None for name in fields)
    # the YAML schema (a resolved config written to config.yaml) has exactly those keys
    dumped = yaml.safe_load(yaml.safe_dump(ExperimentConfig().to_dict()))
    assert set(dumped["model"]) == section
    # a variant changes only known settings, and building it gives the dataclass defaults
    # updated by the variant, field for field
    assert list_models() == sorted(["sitsformer_base", "sitsformer_original",
                                    "sitsformer_original_exact", "sitsformer_pixel",
                                    "sitsformer_small", "sitsformer_tiny", "tempcnn", "ltae"])
    for name in list_models():
        changes = variant_config(name)
        assert set(changes) <= set(fields), name
        assert all(fields[k] != v for k, v in changes.items()), f"{name} repeats a default"
        built = create_sits_former(name).config.to_dict()
        assert built == {**fields, **changes}, name
    # the tutorial's keyword construction and the dataclass give the same model settings
    assert create_sits_former({}).config == SITSFormerConfig()


def test_original_variant_is_the_published_model():
    cfg = create_sits_former("sitsformer_original").config
    assert (cfg.img_size, cfg.patch_size, cfg.in_channels, cfg.embed_dim, cfg.num_layers,
            cfg.num_heads, cfg.mlp_ratio, cfg.stem, cfg.pool) == (5, 5, 10, 256, 3, 8, 4.0,
                                                                   "conv3d", "max")
    n = sum(p.numel() for p in create_sits_former("sitsformer_original").parameters())
    assert round(n / 1e6, 2) == 2.50


def test_python_dash_m_sitsformer():
    done = subprocess.run([sys.executable, "-m", "sitsformer", "--version"], capture_output=True,
                          text=True, check=True)
    assert done.stdout.startswith("sitsformer ")


# What a bare GPU machine lacks (benchmarks/gpu_check.sh): the model, training and the demo and
# .npz data paths import none of these; the commands that need one import it when they run.
GIS_AND_CLUSTER = ["rasterio", "dask", "distributed", "zarr", "numcodecs", "optuna", "pyproj",
                   "pyogrio", "shapely", "odc", "pystac", "rioxarray"]
# A subprocess prelude: importing any of GIS_AND_CLUSTER raises ImportError, as where it is
# not installed.
BLOCKER = f"""
import sys
BLOCKED = {GIS_AND_CLUSTER!r}
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked by the test", name=name)
sys.meta_path.insert(0, Blocker())
"""


def test_command_line_parser_loads_no_heavy_library():
    # --version and --help build every sub-parser: no command module may import torch, dask,
    # rasterio, pandas, matplotlib or onnx to register itself
    code = ("import sys; from sitsformer.cli import build_parser; build_parser(); "
            "print(sorted({m.partition('.')[0] for m in sys.modules}))")
    done = subprocess.run([sys.executable, "-c", BLOCKER + code], capture_output=True,
                          text=True, check=True)
    loaded = set(eval(done.stdout))  # noqa: S307 - our own printed list
    heavy = {"torch", "pandas", "scipy", "xarray", "matplotlib", "onnx", "onnxruntime", "yaml",
             "tqdm", "einops", *GIS_AND_CLUSTER} & loaded
    assert not heavy, f"building the parser imports {sorted(heavy)}"


def test_demo_and_npz_training_without_gis_or_cluster_libraries(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((40, 6, 4)).astype("float32"),
             y=rng.integers(0, 3, 40), bands=np.array(["B2", "B3", "B4", "B8"]),
             classes=np.array(["a", "b", "c"]), t_index=np.arange(6))
    tiny = {"model": {"variant": "sitsformer_pixel", "embed_dim": 16, "num_heads": 2,
                      "num_layers": 1},
            "train": {"epochs": 1, "threads": 1},
            "logging": {"run_dir": str(tmp_path / "runs"), "progress": False}}
    demo = {**tiny, "data": {"source": "demo", "split": "group", "demo_samples": 48,
                             "batch_size": 16}}
    npz = {**tiny, "data": {"source": str(tmp_path / "d.npz"), "split": "random",
                            "batch_size": 16,
                            "options": {"start_date": "2021-01-01", "interval_days": 10}},
           "logging": {**tiny["logging"], "tensorboard": False}}
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump({**demo, "logging": {
        **tiny["logging"], "name": "demo"}}))
    (tmp_path / "npz.yaml").write_text(yaml.safe_dump({**npz, "logging": {
        **npz["logging"], "name": "npz"}}))
    code = BLOCKER + f"""
import sitsformer.cli
from sitsformer.cli import main
for name in ("demo", "npz"):
    rc = main(["train", "--config", {str(tmp_path)!r} + f"/{{name}}.yaml"])
    assert rc == 0, f"{{name}}: exit {{rc}}"
print(sorted({{m.partition(".")[0] for m in sys.modules}} & set(BLOCKED)))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    for name in ("demo", "npz"):
        assert (tmp_path / "runs" / name / "best.pt").is_file(), name


def test_eopatch_reads_without_pyogrio(shared_data):
    # the Slovenia EOPatch has vector_timeless/LULC.gpkg: its class names are read with the
    # standard library's sqlite3, so a bare GPU machine without pyogrio reads them too, with no
    # warning (benchmarks/bench_pretrain.py --set slovenia runs there)
    folder = shared_data / "s2_slovenia_eopatch/raw/example_data/TestEOPatch"
    code = BLOCKER + f"""
import warnings
from sitsformer.data import open_source
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    ds = open_source({str(folder)!r})
assert not [w for w in caught if "pyogrio" in str(w.message)], caught
print(len(ds), ds.classes)
print(sorted({{m.partition(".")[0] for m in sys.modules}} & set(BLOCKED)))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "[]"
    assert lines[-2] == ("9945 ['cultivated land', 'forest', 'grassland', 'schrubland', "
                         "'artificial surface']")
