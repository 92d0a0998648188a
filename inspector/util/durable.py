"""What a power cut cannot take back: a file is on disk once it is fsynced, its name once its
directory is (POSIX promises no more, and ext4 and XFS keep exactly that much on a bad day).
Used where store.synchronous is `full`: the spool, the pictures, the data directory."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs(path: Path, *, sync: bool = True) -> None:
    """mkdir -p whose new directories are all on disk: each one's parent is fsynced after it
    (with sync=False, a plain mkdir -p: the store.synchronous: normal case)."""
    path = Path(path)
    if not sync:
        path.mkdir(parents=True, exist_ok=True)
        return
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            if not d.is_dir():
                raise
        fsync_dir(d.parent)
