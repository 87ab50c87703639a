"""``DemoDataset``: the GENERATED demo data as a torch dataset (synthetic, not real data)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sitsformer.data.dataset import SITSDataset, Transform
from sitsformer.data.synthetic import make_demo_data


class DemoDataset(SITSDataset):
    """GENERATED Sentinel-2-like samples from :func:`make_demo_data` (synthetic, fixed seed).

    Use it to check a pipeline anywhere; never to report accuracy on real land cover.
    ``meta['generated']`` is True. Keyword arguments go to :func:`make_demo_data`.
    """

    def __init__(self, transform: Transform | None = None, **kwargs: Any) -> None:
        demo = make_demo_data(**kwargs)
        self.samples = demo.samples
        self.classes = list(demo.classes)
        self.bands = list(demo.bands)
        self.labels = np.array([s["label"] for s in self.samples], dtype=np.int64)
        self.groups = np.array([s["group"] for s in self.samples], dtype=np.int64)
        self.coords = None
        self.transform = transform
        all_dates = np.concatenate([s["dates"] for s in self.samples])
        self.meta = {"source": "GENERATED demo data (sitsformer.data.make_demo_data)",
                     "generated": True, "format": "demo", "crs": None, "transform": None,
                     "scale": None, "time_axis": "dates", "exclusions": {},
                     "date_range": [str(all_dates.min()), str(all_dates.max())],
                     "options": {k: v for k, v in kwargs.items()}}

    def __len__(self) -> int:
        return len(self.samples)

    def raw_sample(self, index: int) -> dict[str, Any]:
        s = dict(self.samples[index])
        s["label"] = np.int64(s["label"])
        s["group"] = np.int64(s["group"])
        s["index"] = np.int64(index)
        return s
