"""Frame sources, registered by the `source.type` name used in config.

A source yields (image, name) pairs; `None` from `read()` means it is exhausted (non-looping replay).
A frame that cannot be decoded is reported through `errors` and skipped, never fatal.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np


class SourceError(Exception):
    """A source that cannot be opened at all (missing folder, unreadable video)."""


class FrameSource(Protocol):
    name: str
    fps: float | None
    default_roi: tuple[int, int, int, int] | None
    errors: int

    def read(self) -> tuple[np.ndarray, str] | None: ...

    def close(self) -> None: ...


SOURCES: dict[str, Callable[..., FrameSource]] = {}


def register(type_name: str):
    def deco(factory):
        SOURCES[type_name] = factory
        return factory
    return deco


def open_source(cfg, data_dir: Path) -> FrameSource:
    from inspector.sources import files, live  # noqa: F401  (registers the built-in sources)

    try:
        factory = SOURCES[cfg.type]
    except KeyError:
        raise SourceError(f"unknown source type {cfg.type!r}; known: {sorted(SOURCES)}") from None
    return factory(cfg, data_dir)
