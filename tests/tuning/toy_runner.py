"""A trial runner with a known answer, for testing the sweep machinery without training.

Each trial "trains" for ``train.epochs`` epochs and reports ``val_oa = score * epoch / epochs``
where ``score`` is a fixed function of the parameters. ``model.dropout > 0.45`` raises (a
failing trial); ``model.embed_dim % model.num_heads != 0`` is an invalid config. Usable from
worker processes: ``python tests/tuning/toy_runner.py SWEEP.yaml``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml


class ToyRunner:
    def __init__(self, sleep: float = 0.0, interrupt_on: set[int] | None = None):
        self.sleep = sleep
        self.interrupt_on = interrupt_on or set()
        self.calls = 0

    def prepare(self, overrides: dict[str, Any]) -> dict[str, Any]:
        width, heads = overrides.get("model.embed_dim", 16), overrides.get("model.num_heads", 4)
        if width % heads:
            raise ValueError(f"num_heads ({heads}) must divide embed_dim ({width})")
        return dict(overrides)

    @staticmethod
    def score(config: dict[str, Any]) -> float:
        return float(config.get("optim.lr", 1.0)) + 0.01 * config.get("model.num_layers", 0)

    def run(self, config: dict[str, Any], report, run_dir: Path) -> list[dict[str, Any]]:
        self.calls += 1
        if self.calls in self.interrupt_on:
            raise KeyboardInterrupt
        if config.get("model.dropout", 0.0) > 0.45:
            raise RuntimeError("toy training diverged")
        run_dir.mkdir(parents=True, exist_ok=True)
        epochs = int(config.get("train.epochs", 3))
        history = []
        for epoch in range(1, epochs + 1):
            time.sleep(self.sleep)
            record = {"epoch": epoch, "val_oa": self.score(config) * epoch / epochs,
                      "val_loss": 1.0 / epoch}
            history.append(record)
            report(epoch, record)
        (run_dir / "history.json").write_text(json.dumps(history))
        return history

    def dump(self, config: dict[str, Any], path: Path) -> Path:
        path.write_text(yaml.safe_dump(config))
        return path


def slow_toy_runner() -> ToyRunner:
    """A factory for sweep files (``runner: toy_runner:slow_toy_runner``): each epoch takes
    ``$TOY_SLEEP`` seconds (default 0.3), so that several workers really share the work."""
    return ToyRunner(sleep=float(os.environ.get("TOY_SLEEP", "0.3")))


if __name__ == "__main__":  # a worker process: run trials of the sweep file given
    from sitsformer.tuning import load_sweep_spec, run_worker

    spec = load_sweep_spec(sys.argv[1])
    n = run_worker(spec, ToyRunner(sleep=float(os.environ.get("TOY_SLEEP", "0.02"))),
                   progress=False)
    print(f"ran {n}")

