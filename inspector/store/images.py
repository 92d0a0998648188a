"""Pictures on disk (frames, crops, thumbnails), and the disk-space guard in front of them.

Verdicts matter more than pictures: when the disk runs low or the pictures reach their budget,
the guard stops writing pictures (the verdicts go on being written), raises the alert (a log line,
`status()` for the metrics and the dashboard banner) and lets retention make room; it resumes by
itself once there is room again.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inspector.util import durable

log = logging.getLogger(__name__)
RECHECK_S = 1.0  # disk_usage is a syscall; once a second is plenty at line speed
RESUME_MARGIN = 0.95  # resume only clear of the limits, so the alert does not flap


# Where the writer puts each kind of picture, under the data directory.
PICTURE_DIRS = {"frame": "frames", "thumb": "thumbs", "crop": "crops"}


@dataclass(frozen=True)
class Written:
    path: str  # relative to the data directory, POSIX separators
    bytes: int


class ImageStore:
    def __init__(self, data_dir: Path, *, jpeg_quality: int = 90, budget_bytes: int | None = None,
                 min_free_bytes: int = 0, used_bytes: int = 0, synchronous_full: bool = False):
        self.root = Path(data_dir)
        self.jpeg_quality = jpeg_quality
        self.budget_bytes = budget_bytes
        self.min_free_bytes = min_free_bytes
        self.used_bytes = used_bytes  # what the pictures take, by the database's count
        self.fsync = synchronous_full
        self.paused_reason: str | None = None
        self.paused_since: float | None = None
        self.skipped = 0  # pictures not written while paused or after a write error
        self.written = 0
        self.on_pressure = None  # called (no args) when the guard trips: retention makes room
        self._lock = threading.Lock()
        self._unsynced_dirs: set[Path] = set()  # new names not yet on disk (fsync mode)
        self._checked = 0.0

    # --- the guard ------------------------------------------------------------------------------

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def _problem(self, margin: float = 1.0) -> str | None:
        free = self.free_bytes()
        if free < self.min_free_bytes / margin:
            return (f"disk nearly full: {free / 1e6:.0f} MB free on {self.root}, "
                    f"{self.min_free_bytes / 1e6:.0f} MB must stay free")
        if self.budget_bytes is not None and self.used_bytes > self.budget_bytes * margin:
            return (f"pictures over their budget: {self.used_bytes / 1e9:.2f} GB of "
                    f"{self.budget_bytes / 1e9:.2f} GB")
        return None

    def shortfall(self, spare: float = 0.9) -> int:
        """Bytes to free to be back under both limits with 10% to spare (so retention makes real
        room in one pass, not one picture's worth); 0 when there is room."""
        need = 0
        if self.min_free_bytes:
            need = int(self.min_free_bytes / spare) - self.free_bytes()
        if self.budget_bytes is not None:
            need = max(need, self.used_bytes - int(self.budget_bytes * spare))
        return max(0, need)

    def writable(self) -> bool:
        """Whether pictures may be written now (checked at most once a second)."""
        now = time.monotonic()
        with self._lock:
            if now - self._checked < RECHECK_S:
                return self.paused_reason is None
            self._checked = now
            if self.paused_reason is None:
                problem = self._problem()
                if problem:
                    self._pause(problem)
            elif self._problem(RESUME_MARGIN) is None:
                log.warning("ALERT cleared: writing pictures again after %.0f s (%d skipped)",
                            time.time() - self.paused_since, self.skipped)
                self.paused_reason = self.paused_since = None
            return self.paused_reason is None

    def _pause(self, reason: str) -> None:
        self.paused_reason, self.paused_since = reason, time.time()
        log.error("ALERT: %s - pictures are no longer saved; verdicts still are", reason)
        if self.on_pressure is not None:
            self.on_pressure()

    def recheck(self) -> None:
        """Look again at the next write (retention has just freed space)."""
        with self._lock:
            self._checked = 0.0

    def freed(self, n_bytes: int) -> None:
        with self._lock:
            self.used_bytes = max(0, self.used_bytes - n_bytes)
            self._checked = 0.0

    # --- writing --------------------------------------------------------------------------------

    def write_jpeg(self, rel: Path, image: np.ndarray) -> Written | None:
        """Encode and write one picture; None when the guard is closed or the disk refused it."""
        if not self.writable():
            self.skipped += 1
            return None
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            log.error("could not encode %s as JPEG (image %s %s)", rel, image.shape, image.dtype)
            self.skipped += 1
            return None
        path = self.root / rel
        tmp = path.with_suffix(".part")
        try:
            durable.makedirs(path.parent, sync=self.fsync)
            with open(tmp, "wb") as f:
                f.write(buf.tobytes())
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            tmp.replace(path)  # never a half-written JPEG behind a database row
            if self.fsync:
                with self._lock:
                    self._unsynced_dirs.add(path.parent)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            self.skipped += 1
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                with self._lock:
                    self._checked = time.monotonic()
                    if self.paused_reason is None:
                        self._pause(f"disk full writing {rel}: {e.strerror}")
            else:
                log.error("could not write %s: %s", rel, e)
            return None
        with self._lock:
            self.used_bytes += len(buf)
            self.written += 1
        return Written(rel.as_posix(), len(buf))

    def make_durable(self) -> None:
        """Put the names of the pictures written since on disk (one fsync per folder, not per
        picture): called before the rows that point at them are committed, so that after a power
        cut no row points at a picture the disk forgot."""
        with self._lock:
            dirs, self._unsynced_dirs = self._unsynced_dirs, set()
        for d in dirs:
            try:
                durable.fsync_dir(d)
            except OSError as e:
                log.error("could not sync the folder %s: %s (its newest pictures may not survive a power cut)",
                          d, e)

    def delete(self, rel: str) -> int:
        """Remove one picture; returns the bytes it took (0 if it was already gone)."""
        path = self.resolve(rel)
        if path is None:
            return 0
        try:
            n = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return n

    def resolve(self, rel: str, kind: str | None = None) -> Path | None:
        """The file of a stored relative path, only ever a JPEG inside the picture folders (of
        `kind`'s folder when given). A tampered row must reach no other file: not the database
        (served, it gives away password hashes; merely opened and closed by this process, it
        drops SQLite's POSIX locks), not the spool, not a symlink out."""
        folders = [PICTURE_DIRS[kind]] if kind else list(PICTURE_DIRS.values())
        root = self.root.resolve()
        try:
            path = (root / rel).resolve()
        except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
            return None
        if path.suffix.lower() != ".jpg":
            return None
        return path if any(path.is_relative_to(root / f) for f in folders) else None

    def status(self) -> dict:
        self.writable()  # the alert must show before the next picture is due, not only at it
        return {"images_paused": self.paused_reason is not None, "images_paused_reason": self.paused_reason,
                "images_paused_since": self.paused_since, "images_skipped": self.skipped,
                "images_written": self.written, "images_bytes": self.used_bytes,
                "disk_free_bytes": self.free_bytes(),
                "images_budget_bytes": self.budget_bytes}


def thumbnail(image: np.ndarray, longest: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = longest / max(h, w)
    if scale >= 1:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
