"""Helpers of the report tests: the study of docs/examples/land_cover_study.md, and a headless
Chromium that opens a report from file:// (no DevTools library: the page's own script writes
its errors, blocked and external requests into #report-state, which --dump-dom returns after
the script ran)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STUDY_PAGE = REPO / "docs" / "examples" / "land_cover_study.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
WINDOW = (1300, 900)


def run_study(folder: Path) -> Path:
    """Run the documented study up to the report step (train -> predict -> smooth ->
    uncertainty -> sample-design -> label -> assess, all through ``sitsformer.cli.main``) in
    ``folder``; the study page is the one source of the study, not a copy of it."""
    text = STUDY_PAGE.read_text().split("\n## 7.")[0]
    blocks = BLOCK.findall(text)
    assert len(blocks) >= 7, f"{STUDY_PAGE}: expected the study's python blocks"
    here = os.getcwd()
    os.chdir(folder)
    try:
        namespace: dict = {"__name__": "__study__"}
        for code in blocks:
            exec(compile(code, str(STUDY_PAGE), "exec"), namespace)  # noqa: S102
    finally:
        os.chdir(here)
    return folder


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _browser(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    exe = chromium()
    assert exe, "no chromium"
    cmd = [exe, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
           "--hide-scrollbars", f"--user-data-dir={profile}", "--enable-logging=stderr",
           "--v=0", f"--window-size={WINDOW[0]},{WINDOW[1]}", "--virtual-time-budget=5000",
           *extra, page.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def open_page(page: Path, profile: Path) -> tuple[str, dict, str]:
    """``(DOM after the script ran, #report-state, browser log)``."""
    done = _browser(page, profile, "--dump-dom")
    assert done.returncode == 0, done.stderr[-3000:]
    m = re.search(r'<pre id="report-state">(.*?)</pre>', done.stdout, re.S)
    assert m and m.group(1), f"the page's script did not run:\n{done.stderr[-3000:]}"
    import html

    return done.stdout, json.loads(html.unescape(m.group(1))), done.stderr


def screenshot(page: Path, profile: Path, png: Path) -> Path:
    done = _browser(page, profile, f"--screenshot={png}")
    assert done.returncode == 0 and png.exists(), done.stderr[-3000:]
    return png


def console_errors(log: str) -> list[str]:
    """Console lines of the page that report an error (uncaught exception, refused load)."""
    return [ln for ln in log.splitlines() if "CONSOLE" in ln and re.search(
        r"Uncaught|Refused|Failed to load|ERR_|Error", ln)]


class Dom(HTMLParser):
    """Every element's tag, attributes, text (all text inside it) and the ids of the elements
    around it."""

    VOID = ("img", "input", "br", "meta", "link", "source", "hr")

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[dict] = []
        self._open: list[dict] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        el = {"tag": tag, **{k: v or "" for k, v in attrs}, "text": "",
              "inside": {e["id"] for e in self._open if e.get("id")}}
        self.elements.append(el)
        if tag not in self.VOID:
            self._open.append(el)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self._open.pop()

    def handle_endtag(self, tag):
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i]["tag"] == tag:
                del self._open[i:]
                break

    def handle_data(self, data):
        for el in self._open:
            el["text"] += data

    def by_id(self, ident: str) -> dict | None:
        return next((e for e in self.elements if e.get("id") == ident), None)

    def find(self, tag: str, inside: str | None = None) -> list[dict]:
        return [e for e in self.elements
                if e["tag"] == tag and (inside is None or inside in e["inside"])]
