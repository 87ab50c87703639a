"""Accuracy of the default recipe beside a 500-tree random forest on every labelled real set.

A thin script around ``sitsformer benchmark`` (``sitsformer.training.benchmark``): the same
command, with the defaults of a full run (3 seeds, 500 trees, every set). Any extra arguments are
passed through, e.g.::

    python benchmarks/bench_accuracy.py --sets victoria_group,rondonia --seeds 3
    python benchmarks/bench_accuracy.py --output runs/bench_accuracy train.threads=2
"""

from __future__ import annotations

import sys

from sitsformer.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--output" not in args:
        args = ["--output", "runs/bench_accuracy", *args]
    sys.exit(main(["benchmark", *args]))
