"""Accuracy of the default deep models beside a random forest and LightGBM on every labelled
real set.

A thin script around ``sitsformer benchmark`` (``sitsformer.training.benchmark``): the same
command, with the defaults of a full run (every set; 2 x 5-fold cross-validation on sets of at
most 3000 samples, 3 seeds on one split above; 500 trees, 300 boosting rounds). Any extra
arguments are passed through, e.g.::

    python benchmarks/bench_accuracy.py --sets victoria_group,rondonia --repeats 3
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
