"""One writer per output: an OS lock on a run, benchmark or map output.

:func:`output_lock` takes an exclusive, non-blocking ``fcntl.flock`` on a lock file
(``<folder>/.sitsformer.lock`` for a folder, ``.<name>.lock`` beside a file) and writes the
holder's pid and host into it. A second writer is refused with :class:`OutputLockedError`,
whose one-line message names the holder. The operating system releases the lock when the
holder exits or is killed, so a lock file left by a dead process never blocks; a writer that
ends removes its lock file. ``flock`` locks are shared through the file system of one machine
(and NFS v4 with lock support).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LOCK_NAME", "OutputLockedError", "check_unlocked", "lock_path", "output_lock"]

LOCK_NAME = ".sitsformer.lock"


class OutputLockedError(RuntimeError):
    """Another process writes to this output; the message names its pid and host."""


def lock_path(target: str | os.PathLike[str], folder: bool = True) -> Path:
    """The lock file of ``target``: inside it for a folder, beside it for a file."""
    target = Path(target)
    return target / LOCK_NAME if folder else target.parent / f".{target.name}.lock"


def _locked(target: str | os.PathLike[str], what: str, holder: str) -> OutputLockedError:
    return OutputLockedError(
        f"{what} {Path(target)} is in use by another sitsformer process "
        f"({holder or 'pid ? on host ?'}); wait for it to finish, or choose another output")


def check_unlocked(target: str | os.PathLike[str], folder: bool = True,
                   what: str = "output") -> None:
    """Raise :class:`OutputLockedError` now when another process holds the lock of ``target``
    (so a command can say so before it looks at what the folder holds); takes nothing."""
    path = lock_path(target, folder)
    try:
        handle = open(path)
    except OSError:
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _locked(target, what, handle.read().strip()) from None
        fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def output_lock(target: str | os.PathLike[str], folder: bool = True,
                what: str = "output") -> Iterator[Path]:
    """Hold the lock of ``target`` (a folder, or a file with ``folder=False``) while the block
    runs; the folder (or the file's parent) is created. Yields the lock file's path.

    Raises:
        OutputLockedError: another live process holds the lock.
    """
    path = lock_path(target, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise _locked(target, what, holder) from None
        try:  # the holder before us may have removed the file after we opened it
            same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    try:
        handle.seek(0)
        handle.truncate()
        stamp = _dt.datetime.now().isoformat(timespec="seconds")
        handle.write(f"pid {os.getpid()} on host {socket.gethostname()}, since {stamp}\n")
        handle.flush()
        yield path
    finally:
        path.unlink(missing_ok=True)  # still locked: a newcomer makes a fresh file
        handle.close()  # closing the descriptor releases the lock
