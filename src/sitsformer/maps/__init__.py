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
"""

from sitsformer.maps.assessment import assess_map, stratified_estimates, write_report
from sitsformer.parallel.cluster import BlockRunner, dask_cluster, threads_per_worker
from sitsformer.maps.points import read_points, write_points
from sitsformer.maps.sampling import (
                                      SampleDesign,
                                      allocate,
                                      expected_oa_se,
                                      sample_design,
                                      sample_size,
)
from sitsformer.maps.smoothing import SmoothResult, bayes_smooth, smooth_raster
from sitsformer.maps.uncertainty import MEASURES, UncertaintyResult, uncertainty, uncertainty_raster

__all__ = ["MEASURES", "BlockRunner", "SampleDesign", "SmoothResult", "UncertaintyResult",
           "allocate", "assess_map", "bayes_smooth", "dask_cluster", "expected_oa_se",
           "read_points", "sample_design", "sample_size", "smooth_raster",
           "stratified_estimates", "threads_per_worker", "uncertainty", "uncertainty_raster",
           "write_points", "write_report"]
