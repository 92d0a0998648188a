"""What each camera sees right now, for the dashboard's live page.

Capture hands over every frame it reads (a reference, no copy) and the pre-filter each frame it
inspected with the boxes it found there. Boxes are drawn only on the frame they were found on:
while the last inspected frame is fresh it is the one shown (the pre-filter runs a frame or two
behind capture, and a box on a later frame of a moving belt would point beside the part); when
inspection pauses (a trigger waiting for a part) the newest frame is shown bare. Nothing is encoded until someone watches: a JPEG is made on
request, at most once per new frame, and shared by every viewer of that camera, so an unwatched
line pays nothing and ten screens cost as much as one.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from inspector.messages import Box, Candidate

BOX_BGR = (0, 176, 255)  # the detector's colour on every page (#ffb000)
ROI_BGR = (237, 128, 47)  # #2f80ed, as on the detail page
BOXES_FRESH_S = 1.5  # an inspected frame older than this no longer shows what the camera sees


@dataclass
class _Camera:
    image: np.ndarray | None = None
    roi: Box | None = None
    inspected: np.ndarray | None = None  # the last frame the pre-filter looked at ...
    boxes: list[Candidate] = field(default_factory=list)  # ... and what it found on it
    boxes_mono: float = 0.0
    inspected_seq: int = 0
    arrivals: deque = field(default_factory=lambda: deque(maxlen=64))
    jpeg: bytes | None = None
    jpeg_of: tuple | None = None  # (image, boxes) the JPEG shows, compared by identity
    jpeg_version: int = 0  # counts new JPEGs: a stream sends a picture when it changes
    encode_lock: threading.Lock = field(default_factory=threading.Lock)


class LiveView:
    def __init__(self, cameras: list[str], max_width: int = 960, quality: int = 70) -> None:
        self._cams = {c: _Camera() for c in cameras}
        self.max_width, self.quality = max_width, quality
        self._lock = threading.Lock()

    @property
    def cameras(self) -> list[str]:
        return list(self._cams)

    def frame(self, camera: str, image: np.ndarray, roi: Box | None) -> None:
        """Called by capture for every frame it reads, inspected or not."""
        c = self._cams[camera]
        with self._lock:
            c.image, c.roi = image, roi
            c.arrivals.append(time.monotonic())

    def inspected(self, camera: str, seq: int, image: np.ndarray, candidates: list[Candidate]) -> None:
        """Called by the pre-filter with each frame it inspected and what it found (none is news too)."""
        c = self._cams[camera]
        with self._lock:
            c.inspected, c.boxes, c.boxes_mono, c.inspected_seq = image, list(candidates), time.monotonic(), seq

    def _shown(self, c: _Camera) -> tuple[np.ndarray | None, list[Candidate], float | None]:
        age = time.monotonic() - c.boxes_mono if c.inspected is not None else None
        if age is not None and age <= BOXES_FRESH_S:
            return c.inspected, c.boxes or _NONE, age
        # One object for "no boxes", so a frame shown bare and then inspected with nothing found
        # is not encoded (and streamed) twice.
        return c.image, _NONE, age

    def fps(self, camera: str) -> float | None:
        """Frames read per second over the last few seconds (None before two frames)."""
        c = self._cams[camera]
        with self._lock:
            t = [x for x in c.arrivals if x > time.monotonic() - 5.0]
        if len(t) < 2:
            return None
        return round((len(t) - 1) / max(t[-1] - t[0], 1e-6), 2)

    def info(self, camera: str) -> dict:
        c = self._cams[camera]
        with self._lock:
            image, boxes, age = self._shown(c)
            seq = c.inspected_seq
        return {"camera": camera, "fps": self.fps(camera),
                "size": None if image is None else list(image.shape[1::-1]),
                "boxes": [{"box": [round(v, 1) for v in b.box], "score": round(b.score, 4), "label": b.label}
                          for b in boxes],
                "inspected_seq": seq, "inspected_age_s": None if age is None else round(age, 2)}

    def jpeg(self, camera: str) -> tuple[int, bytes] | None:
        """(picture number, JPEG of the frame shown with its boxes drawn), or None before the
        first frame. KeyError for an unknown camera."""
        c = self._cams[camera]
        with c.encode_lock:  # viewers of one camera wait for one encode instead of each doing it
            with self._lock:
                image, boxes, _ = self._shown(c)
                roi = c.roi
            if image is None:
                return None
            if c.jpeg_of is None or c.jpeg_of[0] is not image or c.jpeg_of[1] is not boxes:
                c.jpeg, c.jpeg_of = self._render(image, roi, boxes), (image, boxes)
                c.jpeg_version += 1
            return c.jpeg_version, c.jpeg

    def _render(self, image: np.ndarray, roi: Box | None, boxes: list[Candidate]) -> bytes:
        h, w = image.shape[:2]
        s = min(1.0, self.max_width / w)
        img = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else image.copy()
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        thick = max(2, round(img.shape[1] / 400))
        if roi is not None:
            cv2.rectangle(img, _pt(roi[:2], s), _pt(roi[2:], s), ROI_BGR, 1)
        for b in boxes:
            p1, p2 = _pt(b.box[:2], s), _pt(b.box[2:], s)
            cv2.rectangle(img, p1, p2, BOX_BGR, thick)
            cv2.putText(img, f"{b.label} {b.score:.2f}", (p1[0], max(12, p1[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.45 * max(1.0, thick / 2), BOX_BGR, max(1, thick // 2), cv2.LINE_AA)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise ValueError("could not encode the live frame")
        return buf.tobytes()


_NONE: list[Candidate] = []


def _pt(xy, s: float) -> tuple[int, int]:
    return round(xy[0] * s), round(xy[1] * s)
