"""Make docs/images/report.png, the README's picture of ``sitsformer report``: the study of
docs/examples/land_cover_study.md run in a temporary folder, its report opened in headless
Chromium, the top of the page saved as a palette PNG (< 300 KB).

    .venv/bin/python scripts/report_screenshot.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "report"))

from report_helpers import WINDOW, run_study, screenshot  # noqa: E402

from sitsformer.cli import main  # noqa: E402


def make(target: Path = REPO / "docs" / "images" / "report.png") -> Path:
    import matplotlib
    from PIL import Image

    matplotlib.use("Agg")
    with tempfile.TemporaryDirectory() as tmp:
        study = run_study(Path(tmp))
        page = study / "report.html"
        assert main(["report", "--study", str(study), "--output", str(page),
                     "--title", "sitsformer report: land_cover_study"]) == 0
        shot = Image.open(screenshot(page, study / "profile", study / "shot.png"))
        top = shot.convert("RGB").crop((0, 0, WINDOW[0], WINDOW[1]))
        top = top.resize((WINDOW[0] * 3 // 4, WINDOW[1] * 3 // 4), Image.LANCZOS)
        target.parent.mkdir(parents=True, exist_ok=True)
        top.quantize(colors=256).save(target, optimize=True)
    print(f"{target}: {target.stat().st_size / 1e3:.0f} KB")
    return target


if __name__ == "__main__":
    make()
