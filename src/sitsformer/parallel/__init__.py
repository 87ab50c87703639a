"""Where block computations run (in this process, a local Dask cluster or a scheduler).

A low-level sub-package: it imports nothing else of sitsformer, so the map post-processing
(:mod:`sitsformer.maps`), map inference (:mod:`sitsformer.inference`) and the cube-based sample
store writer (:mod:`sitsformer.data`) all run their blocks through the same :func:`dask_cluster`.
:mod:`sitsformer.parallel.locks` keeps a second process from writing the same output (runs,
benchmarks, maps).
"""

from sitsformer.parallel.cluster import (BlockRunner, dask_cluster, threads_per_worker,
                                         tune_worker_malloc, worker_index)

__all__ = ["BlockRunner", "dask_cluster", "threads_per_worker", "tune_worker_malloc",
           "worker_index"]
