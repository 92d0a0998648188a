"""Replay sources: a folder of images, a video file, and the generated demo line."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

import cv2

from inspector.util import durable
from inspector.util.image_file import ImageError, read_image
from inspector.capture.sources import FrameSource, SourceError, register
from inspector.capture.sources.inspected import Identity, Inspected, identity

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
WATCH_POLL_S = 1.0  # a watched folder with nothing new is listed again this often
SETTLE_S = 1.0  # a watched file changed more recently may still be being written: next pass


def list_images(folder: Path) -> list[Path]:
    """The files with an image suffix, sorted. A folder named like an image is not one; a broken
    link, a symlink loop or a FIFO is listed, so that reading it names the problem."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())


class FolderSource(FrameSource):
    acquires_on_read = True  # reading takes the next file: a triggered replay
    """The folder's images in name order. `after` (keep / remember / move) is what happens to a
    file once its verdict is stored; the line attaches the memory (`remember`) and reports
    each frame handed on (`taken`) and judged (`judged`). With `loop`, keep replays the folder for
    ever, remember and move keep watching it for new files."""

    def __init__(self, folder: Path, fps: float | None = None, loop: bool = False, roi=None,
                 after: str = "keep", move_to: Path | None = None):
        folder = Path(folder)
        if not folder.is_dir():
            raise SourceError(f"image folder {folder} does not exist")
        if move_to is not None:
            if Path(move_to).resolve() == folder.resolve():
                raise SourceError(f"move_to {move_to} is the image folder itself")
            try:  # now, so that a folder that cannot be made stops the start, not every move
                Path(move_to).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise SourceError(f"move_to {move_to}: cannot make the folder: {e.strerror}") from None
        self.folder, self.after, self.move_to = folder, after, Path(move_to) if move_to else None
        self.watch = loop and after != "keep"
        self.files = list_images(folder)
        if not self.files:
            if after == "keep":
                raise SourceError(f"image folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            # Remembering or moving, it is a folder parts arrive in: empty is nothing new.
            log.warning("image folder %s holds no images%s", folder, " yet" if self.watch else "")
        self.name, self.fps, self.loop, self.default_roi = str(folder), fps, loop, roi
        self.errors = 0
        self.stop_event = threading.Event()  # open_source gives it the line's
        self.memory: Inspected | None = None
        self._fsync = False
        self._skip: set[Identity] = set()  # not to be read again in this run
        self._last: tuple[Path, Identity | None] | None = None
        self._moving: dict[str, Path] = {}  # uid -> file, until its verdict is stored
        self._i = 0
        self._pass_frames = 0

    # --- what the line calls ----------------------------------------------------------------

    def remember(self, journal: Path, judged, fsync: bool = False) -> None:
        """Skip what an earlier run inspected (after: remember or move); with move, move the files
        an earlier run judged but did not get to move."""
        if self.after == "keep":
            return
        self._fsync = fsync
        if fsync and self.move_to is not None:
            durable.fsync_dir(self.move_to.parent)  # made at open, when the store's setting was not known
        present = {i for i in map(identity, self.files) if i is not None}
        self.memory = Inspected(journal, judged, present, fsync)
        known = self.memory.done & present
        if known:
            log.info("%s: %d of %d image(s) were inspected by an earlier run; %s", self.name,
                     len(known), len(self.files),
                     "moving them to " + str(self.move_to) if self.after == "move" else "skipped")
        if self.after == "move":
            for path in self.files:
                if identity(path) in known:
                    self._move(path)

    def taken(self, uid: str) -> None:
        """The frame read last goes on to be judged as inspection `uid`."""
        if self._last is None:
            return
        path, ident = self._last
        self._last = None
        if self.memory is not None and ident is not None:
            self.memory.taken(ident, uid)
        if self.after == "move":
            self._moving[uid] = path

    def judged(self, uid: str) -> None:
        """Inspection `uid`'s verdict is stored (called by the store's writer thread)."""
        path = self._moving.pop(uid, None)
        if path is not None:
            self._move(path)

    # --- reading ------------------------------------------------------------------------------

    def read(self):
        while not self.stop_event.is_set():
            if self._i >= len(self.files):
                if not self._next_pass():
                    return None
                continue
            path = self.files[self._i]
            self._i += 1
            ident = identity(path)
            key = ident or (path.name, -1, -1)  # one that cannot be stat'ed (a symlink loop)
            if key in self._skip or (self.memory is not None and ident in self.memory):
                continue
            if self.watch and ident is not None and time.time() - ident[2] / 1e9 < SETTLE_S:
                continue  # still being copied in, perhaps
            try:
                img = read_image(path, self.max_pixels)
            except ImageError as e:
                # Named once and counted once; a file that changes is a new file and is tried again.
                self.errors += 1
                self._skip.add(key)
                log.error("skipping %s", e)
                continue
            self._pass_frames += 1
            if self.after != "keep" and ident is not None:
                self._skip.add(ident)
            self._last = (path, ident)
            return img, path.name
        return None

    def _next_pass(self) -> bool:
        """At the end of the list: start over (True), or the replay is over (False)."""
        if not self.loop:
            return False
        if not self.watch and not self._pass_frames:
            # A whole pass without one readable frame: another would only say so again.
            log.error("%s: no readable image to replay", self.name)
            return False
        if self.watch and not self._pass_frames and self.stop_event.wait(WATCH_POLL_S):
            return False
        self._pass_frames, self._i = 0, 0
        if self.watch:
            try:
                self.files = list_images(self.folder)
            except OSError as e:
                log.error("%s: cannot list the folder (%s); trying again", self.name, e.strerror)
                self.files = []
        return True

    def _move(self, path: Path) -> None:
        dest = self.move_to / path.name
        n = 1
        while dest.exists() or dest.is_symlink():  # an earlier part of the same name is not replaced
            dest = self.move_to / f"{path.stem}.{n}{path.suffix}"
            n += 1
        try:
            shutil.move(str(path), str(dest))
            if self._fsync:
                durable.fsync_dir(self.move_to)
                durable.fsync_dir(path.parent)
        except OSError as e:
            # It stays where it is; the memory still skips it at the next start.
            log.error("%s: could not move %s to %s: %s", self.name, path.name, self.move_to, e)

    def close(self):
        if self.memory is not None:
            self.memory.close()


@register("folder")
def _folder(cfg, data_dir):
    return FolderSource(cfg.path, cfg.fps, cfg.loop, after=cfg.after, move_to=cfg.move_to)


@register("video")
class VideoSource(FrameSource):
    acquires_on_read = True
    def __init__(self, cfg, data_dir):
        self.path = Path(cfg.path)
        if not self.path.is_file():
            raise SourceError(f"video file {self.path} does not exist")
        self.cap = cv2.VideoCapture(str(self.path))
        if not self.cap.isOpened():
            raise SourceError(f"OpenCV cannot open video {self.path} (unsupported codec or corrupt)")
        self.name, self.fps, self.loop, self.default_roi = str(self.path), cfg.fps, cfg.loop, None
        self.errors = 0
        self._n = 0

    def read(self):
        if not self._n:  # the container's frame size, before a frame is decoded
            w, h = (int(self.cap.get(p)) for p in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT))
            if w * h > self.max_pixels:
                raise SourceError(f"video {self.path}: {w}x{h} frames, more than limits.max_image_pixels "
                                  f"({self.max_pixels}); not decoded")
        ok, img = self.cap.read()
        if not ok and self.loop and self._n:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, img = self.cap.read()
        if not ok:
            return None
        self._n += 1
        return img, f"{self.path.name}#{self._n}"

    def close(self):
        self.cap.release()


@register("demo")
def _demo(cfg, data_dir):
    from inspector.demo.line import generate

    line = generate(Path(data_dir) / "demo-line", parts=cfg.parts, seed=cfg.seed, codes=cfg.codes)
    return FolderSource(line.frames_dir, cfg.fps, cfg.loop, roi=line.roi)
