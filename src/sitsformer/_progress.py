"""Progress bars for long work, only where someone watches them.

Every bar of the library goes through :func:`progress_bar`: a ``tqdm`` bar on a terminal, and
nothing when the output is redirected to a file or a pipe (a log would otherwise hold one line of
carriage returns per bar; training prints one line per epoch there instead).
``SITSFORMER_PROGRESS=1`` forces the bars on (a terminal multiplexer that is not seen as a tty),
``SITSFORMER_PROGRESS=0`` turns them off everywhere.
"""

from __future__ import annotations

import os
from typing import Any

from tqdm.auto import tqdm


def progress_bar(iterable: Any = None, *, enabled: bool = True, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)`` shown when ``enabled`` and the bar's stream is a terminal
    (or ``SITSFORMER_PROGRESS=1``)."""
    forced = os.environ.get("SITSFORMER_PROGRESS", "").strip()
    if not enabled or forced == "0":
        disable: bool | None = True
    elif forced == "1":
        disable = False
    else:
        disable = None  # tqdm: off when the stream is not a tty
    return tqdm(iterable, disable=disable, **kwargs)
