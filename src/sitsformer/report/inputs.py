"""Which files of a study folder the report shows: the outputs of ``predict``, ``smooth``,
``uncertainty``, ``sample-design``, ``assess``, ``train`` and ``benchmark``, by the names those
commands write.

* class map: a GeoTIFF with ``predict``'s ``class_names`` tag (``map.tif``), preferring one with
  ``<stem>_confidence.tif`` beside it; confidence ``<stem>_confidence.tif`` and probabilities
  ``<stem>_probabilities.tif`` beside it;
* smoothed class map: ``<stem>_class.tif`` next to a probability raster tagged ``smoothing``
  (``smooth.tif`` -> ``smooth_class.tif``);
* uncertainty: a folder holding ``entropy.tif`` (``margin.tif``, ``least_confidence.tif``);
* sample design: ``<stem>_design.json`` (its ``points`` file beside it);
* assessment: a folder holding ``assessment.json`` (its labelled points from ``inputs.points``);
* run: a folder with ``config.yaml`` and ``metrics.csv`` (``runs/<name>``), the newest;
* benchmark: a folder holding ``benchmark.json``.

The search looks at the study folder and two levels below it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["StudyInputs", "find_inputs"]

DEPTH = 2


@dataclass
class StudyInputs:
    """The files one report shows; None where a step's output is missing."""

    study: Path | None = None
    map: Path | None = None
    confidence: Path | None = None
    probabilities: Path | None = None
    smoothed: Path | None = None
    uncertainty: Path | None = None  # a folder with entropy.tif ... or one raster
    design: Path | None = None
    assessment: Path | None = None  # folder with assessment.json
    points: Path | None = None
    run: Path | None = None
    benchmark: Path | None = None
    samples: str | None = None  # the data source of the temporal patterns
    notes: list[str] = field(default_factory=list)  # why a section is missing
    searched: list[str] = field(default_factory=list)

    def files(self) -> dict[str, Path]:
        keys = ("map", "confidence", "probabilities", "smoothed", "uncertainty", "design",
                "assessment", "points", "run", "benchmark")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


def _walk(root: Path, pattern: str) -> list[Path]:
    """``pattern`` in ``root`` and up to :data:`DEPTH` levels below, hidden folders skipped."""
    found: list[Path] = []
    for depth in range(DEPTH + 1):
        glob = "/".join(["*"] * depth + [pattern])
        found += [p for p in root.glob(glob)
                  if not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return sorted(found, key=lambda p: (len(p.relative_to(root).parts), str(p)))


def _tags(path: Path) -> dict[str, str]:
    import rasterio

    try:
        with rasterio.open(path) as ds:
            return ds.tags()
    except Exception:  # noqa: BLE001 - a file that is not a raster is not a study output
        return {}


def _class_maps(root: Path) -> list[Path]:
    return [p for p in _walk(root, "*.tif") if "class_names" in _tags(p)]


def _pick_map(root: Path) -> Path | None:
    maps = _class_maps(root)
    with_conf = [p for p in maps if p.with_name(f"{p.stem}_confidence.tif").exists()]
    return (with_conf or maps or [None])[0]


def _smoothed(root: Path) -> Path | None:
    for prob in _walk(root, "*.tif"):
        cls = prob.with_name(f"{prob.stem}_class.tif")
        if cls.exists() and "smoothing" in _tags(prob):
            return cls
    return None


def _resolve(value: str | os.PathLike[str], *bases: Path) -> Path | None:
    """``value`` as given (absolute or relative to the working folder), else relative to one
    of ``bases``; None when it exists nowhere."""
    p = Path(value)
    if p.exists():
        return p
    for base in bases:
        if not p.is_absolute() and (base / p).exists():
            return base / p
    return None


def _newest_run(root: Path) -> Path | None:
    runs = [p.parent for p in _walk(root, "config.yaml") if (p.parent / "metrics.csv").exists()]
    return max(runs, key=lambda p: (p / "metrics.csv").stat().st_mtime) if runs else None


def find_inputs(study: str | os.PathLike[str] | None = None, **given: Any) -> StudyInputs:
    """The report's inputs: each ``given`` path (``map=``, ``probabilities=``, ...) as it is,
    the others searched in ``study`` (module doc). A given path that does not exist raises
    FileNotFoundError naming it; a missing class map raises FileNotFoundError naming what was
    searched."""
    inp = StudyInputs(study=Path(study) if study is not None else None)
    for key, value in given.items():
        if value is None:
            continue
        if key == "samples":
            inp.samples = str(value)
            continue
        p = Path(value)
        if not p.exists():
            raise FileNotFoundError(f"--{key}: {p} does not exist")
        setattr(inp, key, p)
    root = inp.study
    if root is not None and not root.is_dir():
        raise FileNotFoundError(f"--study: {root} is not a folder")
    if root is not None:
        if inp.map is None:
            inp.map = _pick_map(root)
            inp.searched.append(f"{root}: a GeoTIFF with predict's class_names tag "
                                f"(sitsformer predict --output MAP.tif), {DEPTH} levels deep")
        if inp.smoothed is None:
            inp.smoothed = _smoothed(root)
        if inp.uncertainty is None:
            hits = _walk(root, "entropy.tif")
            inp.uncertainty = hits[0].parent if hits else None
        if inp.design is None:
            hits = _walk(root, "*_design.json")
            inp.design = hits[0] if hits else None
        if inp.assessment is None:
            hits = _walk(root, "assessment.json")
            inp.assessment = hits[0].parent if hits else None
        if inp.run is None:
            inp.run = _newest_run(root)
        if inp.benchmark is None:
            hits = _walk(root, "benchmark.json")
            inp.benchmark = hits[0].parent if hits else None
    if inp.map is None:
        searched = "; ".join(inp.searched) or "no --study folder given"
        raise FileNotFoundError(f"no class map to report: pass --map MAP.tif or a --study "
                                f"folder with predict's outputs (searched {searched})")
    conf = inp.map.with_name(f"{inp.map.stem}_confidence.tif")
    prob = inp.map.with_name(f"{inp.map.stem}_probabilities.tif")
    if inp.confidence is None and conf.exists():
        inp.confidence = conf
    if inp.probabilities is None and prob.exists():
        inp.probabilities = prob
    if inp.assessment is not None and inp.assessment.is_file():
        inp.assessment = inp.assessment.parent
    bases = [b for b in (root, inp.assessment, inp.map.parent) if b is not None]
    if inp.points is None and inp.assessment is not None:
        try:
            a = json.loads((inp.assessment / "assessment.json").read_text())
        except (OSError, ValueError):  # the report names the file and why, without its section
            a = {}
        pts = a.get("inputs", {}).get("points") if isinstance(a, dict) else None
        inp.points = _resolve(pts, *bases) if pts else None
        if pts and inp.points is None:
            inp.notes.append(f"the assessment's points file {pts} was not found (searched "
                             f"the working folder and {', '.join(map(str, bases))})")
    if inp.points is None and inp.design is not None:
        try:
            d = json.loads(inp.design.read_text())
        except (OSError, ValueError):
            d = {}
        if isinstance(d, dict) and d.get("points"):
            inp.points = _resolve(d["points"], inp.design.parent, *bases)
    return inp
