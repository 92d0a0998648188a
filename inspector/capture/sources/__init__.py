"""Frame sources, registered by the `source.type` name used in config.

A source yields (image, name) pairs; `None` from `read()` means it is exhausted (non-looping replay).
A frame that cannot be decoded is reported through `errors` and skipped, never fatal. Image files
are read through inspector/util/image_file.py, which refuses a header claiming more pixels than
limits.max_image_pixels before decoding it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from inspector.errors import InspectorError
from inspector.util.registry import Registry


class SourceError(InspectorError):
    """A source that cannot be opened at all (missing folder, unreadable video)."""


class FrameSource(Protocol):
    name: str
    fps: float | None
    default_roi: tuple[int, int, int, int] | None
    errors: int

    def read(self) -> tuple[np.ndarray, str] | None: ...

    def close(self) -> None: ...


SOURCES: Registry[Callable[..., FrameSource]] = Registry(
    "source", SourceError, ("inspector.capture.sources.files", "inspector.capture.sources.live"))
register = SOURCES.register


def open_source(cfg, data_dir: Path, max_image_pixels: int | None = None) -> FrameSource:
    """`max_image_pixels`: limits.max_image_pixels, for the sources that read image files."""
    src = SOURCES.get(cfg.type)(cfg, data_dir)
    if max_image_pixels is not None and hasattr(src, "max_pixels"):
        src.max_pixels = max_image_pixels
    return src
