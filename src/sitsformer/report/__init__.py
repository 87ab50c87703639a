"""A study a person can open: one offline HTML report with a map viewer (``sitsformer report``).

- :func:`find_inputs`: the outputs of the study commands (predict, smooth, uncertainty,
  sample-design, assess, train, benchmark) in a study folder;
- :func:`build_report`: one self-contained HTML file (map viewer, class areas, accuracies,
  training curves, temporal patterns, provenance) that opens from ``file://`` with no network;
- :func:`temporal_patterns` / :func:`plot_patterns`: per-class median and inter-quartile range
  of every band over the season (``sitsformer data plot``).

Names are imported on first use, so ``import sitsformer.report`` is cheap.
"""

from __future__ import annotations

from sitsformer._lazy import lazy_exports

_LAZY = {
    "sitsformer.report.inputs": ["StudyInputs", "find_inputs"],
    "sitsformer.report.build": ["build_report"],
    "sitsformer.report.patterns": ["plot_patterns", "temporal_patterns"],
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY, globals())
