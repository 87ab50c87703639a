"""Cloud-Optimized GeoTIFFs: how every map command (predict, smooth, uncertainty) turns a
finished GeoTIFF into its final file, so that all of them pass ``rio cogeo validate``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cog_blocksize", "to_cog"]


def cog_blocksize(h: int, w: int) -> int:
    """Internal tile side of a COG of ``h x w`` pixels."""
    side = min(h, w)
    return 512 if side >= 4096 else 256 if side >= 512 else 128 if side >= 256 else 32


def to_cog(tmp: Path, final: Path, resampling: str, *, cog: bool = True) -> None:
    """Turn the finished GeoTIFF ``tmp`` into ``final``: copied through GDAL's COG driver
    (internal tiles, overviews made with ``resampling``: ``nearest`` for classes, ``average``
    for probabilities), staged under a hidden name and renamed; ``cog=False`` just renames.
    ``tmp`` is removed. Every map command writes its final rasters through this."""
    staged = final.with_name(f".{final.name}.partial")
    if cog:
        import rasterio
        import rasterio.shutil

        with rasterio.open(tmp) as ds:
            h, w = ds.height, ds.width
        rasterio.shutil.copy(tmp, staged, driver="COG", compress="DEFLATE",
                             blocksize=cog_blocksize(h, w),
                             overview_resampling=resampling.upper(), overviews="AUTO")
    else:
        os.replace(tmp, staged)
    os.replace(staged, final)
    Path(tmp).unlink(missing_ok=True)
