"""The study the report tests open: docs/examples/land_cover_study.md run once per module."""

from __future__ import annotations

import pytest
from report_helpers import chromium, run_study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A folder holding every study output: runs/study (train), map.tif + confidence +
    probabilities (predict), smooth.tif + smooth_class.tif (smooth), uncertainty/ (uncertainty),
    sample.gpkg + sample_design.json (sample-design), sample_labelled.gpkg and assessment/
    (assess)."""
    import matplotlib

    matplotlib.use("Agg")
    return run_study(tmp_path_factory.mktemp("study"))


@pytest.fixture
def browser():
    if chromium() is None:
        pytest.skip("no chromium on PATH (CI installs Debian's chromium package: .ci/run); "
                    "the report is checked in a headless browser")
    return chromium()
