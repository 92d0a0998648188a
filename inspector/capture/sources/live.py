"""Live cameras: USB/V4L2 devices, RTSP and HTTP (MJPEG) streams, GStreamer pipelines.

All go through cv2.VideoCapture. A live source never ends: when it fails to open or stops
delivering frames it reconnects with exponential backoff and jitter, for ever, and says so in its
`state` (connected / reconnecting), `reconnects` and `last_error`, which the line shows in its
status, dashboard and metrics. Only a stop request ends `read()` (it then returns None).
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from pathlib import Path

import cv2

from inspector.util.redact import redact_text, redact_url
from inspector.capture.sources import FrameSource, SourceError, register

log = logging.getLogger(__name__)


class LiveSource(FrameSource):
    replay = False  # paced by the camera itself (fps None): it must never wait for the line
    acquires_on_read = False  # it streams: reading picks the next frame, it does not take one

    def __init__(self, cfg, name: str):
        self.cfg = cfg
        self.name = name
        self.errors = 0
        self.state = "connecting"
        self.reconnects = 0
        self.last_error: str | None = None
        self.stop_event = threading.Event()  # open_source gives it the line's
        self._cap = None
        self._n = 0
        self._delay = cfg.reconnect.initial_s
        self.lost = 0
        self._outage_from: float | None = None  # the last good frame before the stream broke
        self._rng = random.Random()

    # --- opening ---------------------------------------------------------------------------

    def _open(self) -> cv2.VideoCapture:
        raise NotImplementedError

    def _configure(self, cap: cv2.VideoCapture) -> None:
        """Ask for resolution, frame rate and exposure; a backend that ignores one is logged."""
        c = self.cfg
        asks = []
        if c.width and c.height:
            asks += [(cv2.CAP_PROP_FRAME_WIDTH, c.width, "width"), (cv2.CAP_PROP_FRAME_HEIGHT, c.height, "height")]
        if c.fps:
            asks.append((cv2.CAP_PROP_FPS, c.fps, "fps"))
        if c.exposure is not None:
            asks += [(cv2.CAP_PROP_AUTO_EXPOSURE, 1, "manual exposure"), (cv2.CAP_PROP_EXPOSURE, c.exposure, "exposure")]
        for prop, value, what in asks:
            if not cap.set(prop, value):
                log.warning("camera %s: the backend does not take %s=%s", self.name, what, value)

    def _connect(self) -> bool:
        try:
            cap = self._open()
        except cv2.error as e:
            cap, why = None, str(e)
        else:
            why = "cannot open"
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            self._failed(why)
            return False
        self._configure(cap)
        self._cap = cap
        if self.state != "connected":
            log.info("camera %s: connected%s", self.name,
                     f" after {self.reconnects} reconnect(s)" if self.reconnects else "")
        self.state, self._delay = "connected", self.cfg.reconnect.initial_s
        return True

    def _failed(self, why: str) -> None:
        why = redact_text(why)  # FFmpeg's messages may quote the URL, password and all
        self.last_error = why
        if self.state == "connected":
            log.warning("camera %s: %s; reconnecting", self.name, why)
            self._outage_from = self._last_good
        self.state = "reconnecting"
        self._release()
        # Exponential backoff with full jitter: many cameras of one dead switch do not retry in step.
        wait = self._rng.uniform(0.5, 1.0) * self._delay
        self._delay = min(self._delay * 2, self.cfg.reconnect.max_s)
        self.stop_event.wait(wait)
        self.reconnects += 1

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    # --- reading ---------------------------------------------------------------------------

    def read(self):
        while not self.stop_event.is_set():
            if self._cap is None and not self._connect():
                continue
            ok, img = self._cap.read()
            if ok and img is not None and img.size:
                self._n += 1
                self._count_outage()
                return img, f"{self.name}#{self._n}"
            self.errors += 1
            self._failed("stream ended or stalled (no frame)")
        return None

    _last_good: float | None = None

    def _count_outage(self) -> None:
        """A stream carries no frame numbers OpenCV shows: what an outage lost is estimated from its
        length and the stream's frame rate."""
        now = time.monotonic()
        if self._outage_from is not None:
            fps = self.cfg.fps or (self._cap.get(cv2.CAP_PROP_FPS) if self._cap is not None else 0)
            if fps and 0.5 <= fps <= 1000:
                self.lost += max(0, round((now - self._outage_from) * fps) - 1)
            self._outage_from = None
        self._last_good = now

    def close(self) -> None:
        self.stop_event.set()
        self._release()


@register("usb")
class UsbSource(LiveSource):
    def __init__(self, cfg, data_dir):
        dev = cfg.device
        if isinstance(dev, str) and not dev.isdigit() and not Path(dev).exists():
            raise SourceError(f"camera device {dev} does not exist (is the camera plugged in? "
                              f"`ls /dev/video*` lists the devices)")
        super().__init__(cfg, f"usb:{dev}")
        self.device = int(dev) if isinstance(dev, int) or str(dev).isdigit() else str(dev)

    def _open(self):
        return cv2.VideoCapture(self.device, cv2.CAP_V4L2)


class _UrlSource(LiveSource):
    def __init__(self, cfg, data_dir):
        super().__init__(cfg, redact_url(cfg.url))
        self.url = cfg.url

    def _open(self):
        t = int(self.cfg.timeout_s * 1000)
        return cv2.VideoCapture(self.url, cv2.CAP_FFMPEG,
                                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, t, cv2.CAP_PROP_READ_TIMEOUT_MSEC, t])


register("rtsp")(_UrlSource)
register("mjpeg")(_UrlSource)


@register("gstreamer")
class GStreamerSource(LiveSource):
    def __init__(self, cfg, data_dir):
        if not re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()):
            raise SourceError("this OpenCV has no GStreamer support (the opencv-python wheel is built "
                              "without it): use the system's OpenCV built with GStreamer, or the "
                              "camera's RTSP/MJPEG stream")
        super().__init__(cfg, "gstreamer")
        self.pipeline = cfg.pipeline

    def _open(self):
        return cv2.VideoCapture(self.pipeline, cv2.CAP_GSTREAMER)
