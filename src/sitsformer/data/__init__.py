"""Data: the sample contract, collate, readers, stores, transforms, splits, demo data."""

from sitsformer.data.sample import IGNORE_INDEX, SampleError, check_sample, collate
from sitsformer.data.synthetic import DEMO_CLASSES, S2_BANDS, DemoData, make_demo_data

__all__ = [
    "DEMO_CLASSES",
    "IGNORE_INDEX",
    "S2_BANDS",
    "DemoData",
    "SampleError",
    "check_sample",
    "collate",
    "make_demo_data",
]
