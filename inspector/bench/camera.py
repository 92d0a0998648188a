"""`inspector bench loop --source aravis|pylon`: the capture worker on a simulated machine-vision
camera against a bare grab loop of the same library on the same camera, in the same run.

- aravis: Aravis' GigE Vision simulator (`arv-fake-gv-camera-0.8`) on 127.0.0.1, 512x512 Mono8 asked
  for 1000 frames/s (the loopback and the CPU set the real rate); GVSP over UDP as on a plant.
- pylon: pylon's camera emulator (PYLON_CAMEMU), 1024x1040 Mono8, 100 us exposure, no rate limit.

1. bare: the library's own loop: pop a buffer, copy it out as an array, give the buffer back, and
   make it the BGR picture a line needs (cv2.cvtColor), nothing else.
2. capture: our capture worker (driver, BGR conversion, frame ids, trigger, frame, buffer) into a
   `latest` buffer nobody drains. The bar: >= 0.9x bare.
3. software trigger to frame: p50/p99 of `read()` with `trigger: software` (fire, wait, convert), and
   the bare library's trigger-and-pop. The Aravis simulator looks for triggers at 25 Hz, so its
   latency is quantised to 40 ms by the simulator itself; pylon's emulator answers at once.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 2)


class _Camera:
    """The simulated camera and what the bench needs of its library."""

    def __init__(self, kind: str):
        self.kind = kind
        self.proc = None
        if kind == "pylon":
            os.environ.setdefault("PYLON_CAMEMU", "1")  # before pypylon starts its transport layers

    def __enter__(self):
        if self.kind == "aravis":
            self.proc = subprocess.Popen(["arv-fake-gv-camera-0.8", "-i", "127.0.0.1", "-s", "BENCH"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            import gi

            gi.require_version("Aravis", "0.8")
            from gi.repository import Aravis, GLib

            for _ in range(100):  # until the simulator answers (opened by address: no broadcast)
                try:
                    Aravis.Camera.new("127.0.0.1")
                    break
                except GLib.Error:
                    time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)

    def source(self, **kw) -> dict:
        if self.kind == "aravis":
            return {"type": "aravis", "camera": "127.0.0.1", "packet_size": 8192,
                    "features": {"PixelFormat": "Mono8", "AcquisitionFrameRate": 1000.0}, **kw}
        return {"type": "pylon", "device_class": "BaslerCamEmu",
                "features": {"PixelFormat": "Mono8", "ExposureTimeAbs": 100.0, "AcquisitionFrameRateEnable": False},
                **kw}

    def bare(self, frames: int) -> float:
        return self._bare_aravis(frames) if self.kind == "aravis" else self._bare_pylon(frames)

    def bare_trigger(self, n: int) -> list[float]:
        return self._bare_aravis(n, trigger=True) if self.kind == "aravis" else self._bare_pylon(n, trigger=True)

    def _bare_aravis(self, frames: int, trigger: bool = False):
        import cv2
        import gi
        import numpy as np

        gi.require_version("Aravis", "0.8")
        from gi.repository import Aravis

        cam = Aravis.Camera.new("127.0.0.1")
        cam.gv_set_packet_size(8192)
        cam.set_pixel_format_from_string("Mono8")
        cam.set_frame_rate(1000.0)
        if trigger:
            cam.set_trigger("Software")
        else:
            cam.clear_triggers()
        stream = cam.create_stream(None, None)
        for _ in range(8):
            stream.push_buffer(Aravis.Buffer.new_allocate(cam.get_payload()))
        cam.start_acquisition()
        waits, n, t = [], 0, None
        try:
            while n < frames:
                t0 = time.perf_counter()
                if trigger:
                    cam.software_trigger()
                buf = stream.timeout_pop_buffer(5_000_000)
                if buf is None:
                    raise RuntimeError("the simulator sent no frame within 5 s")
                if buf.get_status() == Aravis.BufferStatus.SUCCESS:
                    h, w = buf.get_image_height(), buf.get_image_width()
                    cv2.cvtColor(np.frombuffer(buf.get_data(), np.uint8).reshape(h, w), cv2.COLOR_GRAY2BGR)
                    n += 1
                    t = t or time.perf_counter()
                    waits.append(time.perf_counter() - t0)
                stream.push_buffer(buf)
            return waits if trigger else (n - 1) / (time.perf_counter() - t)
        finally:
            cam.stop_acquisition()

    def _bare_pylon(self, frames: int, trigger: bool = False):
        import cv2
        from pypylon import pylon

        tlf = pylon.TlFactory.GetInstance()
        want = pylon.DeviceInfo()
        want.SetDeviceClass("BaslerCamEmu")
        cam = pylon.InstantCamera(tlf.CreateDevice(tlf.EnumerateDevices([want])[0]))
        cam.Open()
        cam.PixelFormat.Value = "Mono8"
        cam.ExposureTimeAbs.Value = 100.0
        cam.AcquisitionFrameRateEnable.Value = False
        cam.TriggerSelector.Value = "FrameStart"
        cam.TriggerMode.Value = "On" if trigger else "Off"
        if trigger:
            cam.TriggerSource.Value = "Software"
        cam.StartGrabbing(pylon.GrabStrategy_OneByOne)
        waits, n, t = [], 0, None
        try:
            while n < frames:
                t0 = time.perf_counter()
                if trigger:  # as our source does, and Basler's samples: a trigger during readout is lost
                    cam.WaitForFrameTriggerReady(5000, pylon.TimeoutHandling_ThrowException)
                    cam.ExecuteSoftwareTrigger()
                res = cam.RetrieveResult(5000, pylon.TimeoutHandling_ThrowException)
                if res.GrabSucceeded():
                    cv2.cvtColor(res.GetArray(), cv2.COLOR_GRAY2BGR)
                    n += 1
                    t = t or time.perf_counter()
                    waits.append(time.perf_counter() - t0)
                res.Release()
            return waits if trigger else (n - 1) / (time.perf_counter() - t)
        finally:
            cam.StopGrabbing()
            cam.Close()


def capture(cam: _Camera, frames: int, data: Path) -> float:
    """Our capture worker (the function the capture thread runs), on this thread, until `frames`
    frames after the first reached the buffer (counted there, so nothing else competes for the GIL)."""
    from inspector.config import parse_config
    from inspector.line.pipeline import Pipeline

    cfg = parse_config({"data_dir": str(data), "web": {"enabled": False},
                        "cameras": [{"id": "bench", "source": cam.source(), "buffer": {"policy": "latest"}}]})
    pipe = Pipeline(cfg)
    put, seen = pipe.frames.put, []

    def counted(camera_id, frame, stop):
        seen.append(time.perf_counter())
        if len(seen) > frames:
            pipe.stop_event.set()
        return put(camera_id, frame, stop)
    pipe.frames.put = counted
    try:
        pipe._capture(pipe.cfg.cameras[0])
        return (len(seen) - 1) / (seen[-1] - seen[0])
    finally:
        pipe.stop()


def triggered(cam: _Camera, n: int, data: Path) -> list[float]:
    from inspector.capture.sources import open_source
    from inspector.config import parse_config

    cfg = parse_config({"cameras": [{"id": "bench", "source": cam.source(trigger="software")}]})
    src = open_source(cfg.cameras[0].source, data)
    try:
        src.read()  # connect and warm up
        waits = []
        for _ in range(n):
            t0 = time.perf_counter()
            src.read()
            waits.append(time.perf_counter() - t0)
        return waits
    finally:
        src.close()


def main(kind: str, frames: int = 300, as_json: bool = False, rounds: int = 5, triggers: int = 50) -> int:
    import logging

    from inspector.errors import InspectorError

    for noisy in ("inspector", "alembic"):  # each round opens a line: its start-up lines are not the result
        logging.getLogger(noisy).setLevel(logging.WARNING)

    if kind == "aravis" and subprocess.run(["sh", "-c", "command -v arv-fake-gv-camera-0.8"],
                                           capture_output=True).returncode != 0:
        raise InspectorError("the Aravis bench needs Debian's aravis-tools (arv-fake-gv-camera-0.8)")
    with tempfile.TemporaryDirectory() as d, _Camera(kind) as cam:
        d = Path(d)
        b, c = [], []
        for r in range(rounds):  # interleaved, so drift of the shared machine hits both alike
            b.append(cam.bare(frames))
            c.append(capture(cam, frames, d / f"cap{r}"))
        bare_trig = cam.bare_trigger(triggers)
        ours_trig = triggered(cam, triggers, d)
    res = {"bench": "loop", "source": kind, "frames": frames, "rounds": rounds,
           "bare_fps": round(statistics.median(b), 1), "capture_fps": round(statistics.median(c), 1),
           "capture_ratio": round(statistics.median(c) / statistics.median(b), 3),
           "trigger_ms": {"ours_p50": _pct(ours_trig, 0.5), "ours_p99": _pct(ours_trig, 0.99),
                          "bare_p50": _pct(bare_trig, 0.5), "bare_p99": _pct(bare_trig, 0.99)},
           "triggers": triggers}
    t = res["trigger_ms"]
    what = "Aravis GigE Vision simulator, 512x512 Mono8" if kind == "aravis" else \
        "pylon camera emulator, 1024x1040 Mono8"
    print(f"camera loop bench ({what}): {frames} frames, medians of {rounds} rounds")
    print(f"  bare {kind} grab loop            {res['bare_fps']:8.1f} frames/s")
    print(f"  our capture worker               {res['capture_fps']:8.1f} frames/s  "
          f"ratio {res['capture_ratio']:.3f} (bar >= 0.9)")
    print(f"  software trigger to frame, {triggers} triggers: ours p50 {t['ours_p50']} ms, p99 {t['ours_p99']} ms; "
          f"bare p50 {t['bare_p50']} ms, p99 {t['bare_p99']} ms")
    if kind == "aravis":
        print("    (the simulator looks for triggers at 25 Hz: its latency is up to 40 ms by itself)")
    if as_json:
        print(json.dumps(res))
    return 0
