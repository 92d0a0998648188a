"""Replay sources: a folder of images, a video file, and the generated demo line."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2

from inspector.sources import SourceError, register

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class FolderSource:
    def __init__(self, folder: Path, fps: float | None = None, loop: bool = False, roi=None):
        folder = Path(folder)
        if not folder.is_dir():
            raise SourceError(f"image folder {folder} does not exist")
        self.files = list_images(folder)
        if not self.files:
            raise SourceError(f"image folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.name, self.fps, self.loop, self.default_roi = str(folder), fps, loop, roi
        self.errors = 0
        self._i = 0

    def read(self):
        while True:
            if self._i >= len(self.files):
                if not self.loop:
                    return None
                self._i = 0
            path = self.files[self._i]
            self._i += 1
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                self.errors += 1
                log.error("skipping %s: not a readable image (corrupt or truncated)", path)
                if self.errors >= len(self.files) and not self.loop:
                    return None
                continue
            return img, path.name

    def close(self):
        pass


@register("folder")
def _folder(cfg, data_dir):
    return FolderSource(cfg.path, cfg.fps, cfg.loop)


@register("video")
class VideoSource:
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

    line = generate(Path(data_dir) / "demo-line", parts=cfg.parts, seed=cfg.seed)
    return FolderSource(line.frames_dir, cfg.fps, cfg.loop, roi=line.roi)
