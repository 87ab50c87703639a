"""sitsformer: SITS-Former transformers for satellite image time series.

Sub-packages: ``layers`` (building blocks), ``models`` (SITSFormer, the TempCNN and L-TAE
baselines, variants), ``data`` (readers, sample stores, transforms, splits, collate),
``training`` (trainer, factories, checkpoints), ``evaluation`` (metrics, reports),
``inference`` (maps over rasters), ``tuning`` (sweeps). The command line lives in
``sitsformer.cli``; nothing in the library imports it.
"""

__version__ = "0.1.0"
