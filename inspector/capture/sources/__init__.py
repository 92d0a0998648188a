"""Frame sources, registered by the `source.type` name used in config.

A source yields (image, name) pairs; `None` from `read()` means it is exhausted (non-looping replay).
A frame that cannot be decoded is reported through `errors` and skipped, never fatal. Image files
are read through inspector/util/image_file.py, which refuses a header claiming more pixels than
limits.max_image_pixels before decoding it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
import threading
from typing import Protocol, runtime_checkable

import numpy as np

from inspector import MAX_IMAGE_PIXELS
from inspector.errors import InspectorError
from inspector.util.registry import Registry


class SourceError(InspectorError):
    """A source that cannot be opened at all (missing folder, unreadable video)."""


@runtime_checkable
class FrameSource(Protocol):
    """What the line uses of a source. A plugin subclasses it and overrides what applies: the
    defaults are those of a source that replays, has no connection and keeps nothing."""

    name: str
    fps: float | None = None  # the pace of a replay; None: paced by the camera itself
    default_roi: tuple[int, int, int, int] | None = None
    errors: int = 0  # frames that could not be decoded, so far
    replay: bool = True  # may wait for the line (buffer policy block) without losing frames
    # read() takes an image (a file's next one, a software-triggered camera's exposure) rather than
    # picking the next of a stream: trigger.acquisition: triggered needs it
    acquires_on_read: bool = False  # files and the demo line: True; GenICam: with trigger software
    lost: int = 0  # frames the camera sent that never arrived (gaps in its frame ids)
    last_frame_id: int | None = None  # the camera's own id and clock of the frame read last
    last_timestamp: int | None = None
    max_pixels: int = MAX_IMAGE_PIXELS  # open_source sets limits.max_image_pixels
    # A live camera's link: connecting / connected / reconnecting; None for files.
    state: str | None = None
    reconnects: int = 0
    last_error: str | None = None
    # Waits (reconnect back-off, a watched folder's poll) end when it is set; the line gives its own.
    stop_event: threading.Event

    def read(self) -> tuple[np.ndarray, str] | None: ...

    def close(self) -> None: ...

    def remember(self, journal: Path, judged: Callable[[str], bool], fsync: bool = False) -> None:
        """The line's journal of what earlier runs inspected, for sources that skip or move it."""

    def taken(self, uid: str) -> None:
        """The frame read last goes on to be judged as inspection `uid`."""

    def judged(self, uid: str) -> None:
        """Inspection `uid`'s verdict is stored (called from the store's writer thread)."""


SOURCES: Registry[Callable[..., FrameSource]] = Registry(
    "source", SourceError, ("inspector.capture.sources.files", "inspector.capture.sources.live",
                            "inspector.capture.sources.aravis", "inspector.capture.sources.pylon"))
register = SOURCES.register


def open_source(cfg, data_dir: Path, max_image_pixels: int | None = None,
                stop_event: threading.Event | None = None) -> FrameSource:
    """`max_image_pixels`: limits.max_image_pixels, for the sources that read image files;
    `stop_event`: the line's, which ends the source's waits."""
    src = SOURCES.get(cfg.type)(cfg, data_dir)
    src.stop_event = stop_event if stop_event is not None else threading.Event()
    if not isinstance(src, FrameSource):
        missing = [m for m in _MEMBERS if not hasattr(src, m)]
        raise SourceError(f"source type {cfg.type!r} is not a FrameSource (lacks {', '.join(missing)}); "
                          f"subclass inspector.capture.sources.FrameSource")
    if max_image_pixels is not None:
        src.max_pixels = max_image_pixels
    return src


_MEMBERS = sorted(m for m in (*FrameSource.__annotations__, "read", "close", "remember", "taken", "judged"))
