"""From a class map to the numbers a study reports.

- :func:`smooth_raster` / :func:`bayes_smooth`: Bayesian spatial smoothing of class
  probabilities (the method of the R ``sits`` package);
- :func:`uncertainty_raster` / :func:`uncertainty`: entropy, margin and least-confidence maps,
  and the most uncertain pixels as points to label;
- :func:`sample_design`: a stratified random sample for accuracy assessment (Olofsson et al.
  2014);
- :func:`assess_map` / :func:`stratified_estimates`: error matrix in area proportions,
  accuracies and class areas with confidence intervals.

Raster steps run block by block through :func:`dask_cluster` (in-process, a local cluster of
worker processes, or an existing ``dask.distributed`` scheduler), so memory is bounded by a few
blocks whatever the raster size.

Every name is imported from its module on first use (dask, rasterio, pandas, pyogrio and
shapely load with the first function that needs them), so ``import sitsformer.maps`` is cheap.
"""

from __future__ import annotations

from sitsformer._lazy import lazy_exports

_LAZY = {
    "sitsformer.maps.assessment": ["assess_map", "stratified_estimates", "write_report"],
    "sitsformer.parallel.cluster": ["BlockRunner", "dask_cluster", "threads_per_worker"],
    "sitsformer.maps.points": ["read_points", "write_points"],
    "sitsformer.maps.sampling": ["SampleDesign", "allocate", "expected_oa_se", "sample_design",
                                 "sample_size"],
    "sitsformer.maps.smoothing": ["SmoothResult", "bayes_smooth", "smooth_raster"],
    "sitsformer.maps.uncertainty": ["MEASURES", "UncertaintyResult", "uncertainty",
                                    "uncertainty_raster"],
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY, globals())
