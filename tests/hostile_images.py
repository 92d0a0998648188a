"""Image files a careless or hostile user puts where the inspector reads images."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, width: int = 60000, height: int = 60000) -> Path:
    """A valid PNG header claiming width x height RGB pixels, with a few KB of zero rows: OpenCV
    would allocate the whole image (or raise) before finding the data short."""
    rows = zlib.compress(b"\0" * (1 + 3 * 100) * 100, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + _chunk(b"IDAT", rows) + _chunk(b"IEND", b""))
    return path


def hostile_folder(folder: Path, good: Path) -> dict[str, str]:
    """Fill `folder` with files that must each be skipped and named, next to copies of `good`
    (a readable image). Returns {file name: what is wrong with it}."""
    data = good.read_bytes()
    bomb_png(folder / "bomb.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(data[: len(data) // 3])
    (folder / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG at all" * 10)
    (folder / "dir.png").mkdir()
    os.symlink("loop_b.png", folder / "loop_a.png")
    os.symlink("loop_a.png", folder / "loop_b.png")
    os.mkfifo(folder / "fifo.png")  # opened naively, a read would wait for a writer for ever
    return {"bomb.png": "60000x60000", "empty.png": "empty", "truncated.png": "not a readable image",
            "garbage.jpg": "not a readable image", "loop_a.png": "cannot open",
            "loop_b.png": "cannot open", "fifo.png": "not a regular file"}
