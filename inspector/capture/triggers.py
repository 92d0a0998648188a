"""Which captured frames get inspected: every one, every n-th, one per part, or on request.

- `continuous`: every frame.
- `every_n`: every n-th frame (a fast camera on a slow line).
- `part_presence`: one inspection per part. The empty belt inside the ROI is learnt as a running
  average while nothing is there; a part is present when enough of the ROI differs from it. The
  frame inspected is the first one after the part has been present for `settle_frames` frames
  (it has stopped moving into view); the trigger re-arms once the belt is empty again for
  `settle_frames` frames. (Not an adaptive background subtractor: it would learn a part that
  stops under the camera as background and fire again when the part leaves.)
- `software`: only frames requested by `POST /api/cameras/{id}/trigger` (a PLC or a script).
A software request also fires under every other mode: the next frame is inspected.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import cv2
import numpy as np

from inspector.errors import InspectorError


MAX_WAITING = 1000  # software requests not yet served: a flood must not grow without bound


class TriggerFull(InspectorError):
    """Too many software requests wait for frames already (the API answers 429)."""


class Trigger:
    def __init__(self, cfg):
        self.cfg = cfg
        self.mode = cfg.mode
        self._n = 0
        # One per request: the part id it gave (if any), when it came (monotonic), the recipe in
        # force then (a changeover after the request is for the next part, not this one) and the
        # job it belongs to (a PLC link's name for it, to know its image was taken).
        self._requests: deque[tuple[str | None, float, str | None, str | None]] = deque()
        self._lock = threading.Condition()
        self.part_id: str | None = None  # the part id of the request the last fired frame took
        self.requested_mono: float | None = None  # and when that request came: a deadline starts there
        self.requested_product: str | None = None  # and the recipe in force when it came
        self.job: str | None = None  # and the job it named
        # part_presence
        self._bg: np.ndarray | None = None
        self._present = False
        self._fired = False
        self._streak = 0
        self.presence = 0.0  # share of the ROI that differs from the empty belt, last frame
        self.parts = 0

    def request(self, part_id: str | None = None, product: str | None = None, job: str | None = None) -> int:
        """A software trigger, perhaps naming the part; returns how many are waiting."""
        with self._lock:
            if len(self._requests) >= MAX_WAITING:
                raise TriggerFull(f"{MAX_WAITING} trigger requests are already waiting for frames")
            self._requests.append((part_id, time.monotonic(), product, job))
            self._lock.notify_all()
            return len(self._requests)

    def wait_request(self, timeout: float) -> bool:
        """Whether a request waits (a camera that acquires on trigger takes its image then)."""
        with self._lock:
            return self._lock.wait_for(lambda: bool(self._requests), timeout)

    def cancel(self, job: str) -> bool:
        """Withdraws the request of `job` if no frame has taken it yet (a PLC link gave up on it)."""
        with self._lock:
            for r in self._requests:
                if r[3] == job:
                    self._requests.remove(r)
                    return True
            return False

    def _take_request(self) -> bool:
        with self._lock:
            if self._requests:
                self.part_id, self.requested_mono, self.requested_product, self.job = self._requests.popleft()
                return True
            return False

    def fire(self, image: np.ndarray, roi) -> bool:
        """Whether this frame is inspected. Called once per captured frame, in order; after a
        frame that fires, `part_id` is the id its software request gave (else None)."""
        self._n += 1
        self.part_id = self.requested_mono = self.requested_product = self.job = None
        asked = self._take_request()
        if self.mode == "continuous":
            return True
        if self.mode == "every_n":
            return asked or (self._n - 1) % self.cfg.n == 0
        if self.mode == "part_presence":
            return self._part(image, roi) or asked
        return asked  # software

    def _part(self, image: np.ndarray, roi) -> bool:
        c = self.cfg
        x0, y0, x1, y1 = roi if roi is not None else (0, 0, image.shape[1], image.shape[0])
        g = cv2.cvtColor(image[int(y0):int(y1), int(x0):int(x1)], cv2.COLOR_BGR2GRAY)
        s = c.analysis_width / g.shape[1]
        g = cv2.GaussianBlur(cv2.resize(g, None, fx=s, fy=s, interpolation=cv2.INTER_AREA), (5, 5), 0)
        g = g.astype(np.float32)
        if self._bg is None or self._bg.shape != g.shape:
            self._bg = g.copy()  # the first frame is taken as the empty belt
            return False
        self.presence = float(np.mean(np.abs(g - self._bg) > c.pixel_threshold))
        present_now = self.presence >= (c.leave_fraction if self._present else c.enter_fraction)
        if present_now == self._present:
            self._streak = 0
        else:
            self._streak += 1
            if self._streak >= c.settle_frames:
                self._present, self._streak, self._fired = present_now, 0, False
        if not self._present:
            if not present_now:
                cv2.accumulateWeighted(g, self._bg, c.background_rate)  # light drifts over a shift
            return False
        if not self._fired:
            self._fired = True
            self.parts += 1
            return True
        return False
