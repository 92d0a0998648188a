"""Live sources: a real MJPEG stream on loopback that dies and comes back; clear errors."""

import time

import pytest

from inspector.config import parse_config
from inspector.line.pipeline import Pipeline
from inspector.capture.sources import SourceError, open_source
from tests.conftest import authorize, wait_for
from tests.mjpeg_server import MjpegCamera


def test_mjpeg_camera_reconnects_and_the_other_camera_keeps_running(tmp_path, demo_line):
    cam = MjpegCamera().start()
    cfg = parse_config({
        "data_dir": str(tmp_path / "data"),
        "cameras": [
            {"id": "live", "source": {"type": "mjpeg", "url": cam.url, "timeout_s": 1,
                                      "reconnect": {"initial_s": 0.2, "max_s": 0.5}}},
            {"id": "files", "source": {"type": "folder", "path": str(demo_line.frames_dir), "loop": True,
                                       "fps": 20}}],
        "web": {"enabled": False}})
    pipe = Pipeline(cfg)
    status = lambda: {c.id: c for c in pipe.status().cameras}  # noqa: E731
    pipe.start()
    try:
        assert wait_for(lambda: status()["live"].frames_in >= 10)
        s = status()["live"]
        assert s.connection == "connected" and s.reconnects == 0
        # A live camera gets the `latest` policy by default.
        assert pipe.frames._policies["live"] == "latest"

        cam.kill()
        assert wait_for(lambda: status()["live"].connection == "reconnecting")
        assert status()["live"].last_error
        files_before, live_before = status()["files"].frames_in, status()["live"].frames_in
        time.sleep(1.5)
        assert status()["files"].frames_in > files_before + 10  # the other camera never stopped
        assert status()["live"].frames_in <= live_before + 1
        assert status()["live"].reconnects >= 1 and status()["live"].state == "running"

        cam.start()  # power back on, same address
        assert wait_for(lambda: status()["live"].connection == "connected")
        assert wait_for(lambda: status()["live"].frames_in >= live_before + 10)
        assert status()["live"].frames_inspected > 0
    finally:
        pipe.stop()
        cam.kill()


def test_a_device_that_does_not_exist_is_named(tmp_path):
    cfg = parse_config({"cameras": [{"id": "usb", "source": {"type": "usb", "device": "/dev/video-nope"}}]})
    with pytest.raises(SourceError, match="camera device /dev/video-nope does not exist"):
        open_source(cfg.cameras[0].source, tmp_path)


def test_gstreamer_without_support_says_so(tmp_path):
    import re

    import cv2

    cfg = parse_config({"cameras": [{"id": "gige", "source": {
        "type": "gstreamer", "pipeline": "aravissrc ! videoconvert ! appsink"}}]})
    if re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()):
        pytest.skip("this OpenCV has GStreamer")
    with pytest.raises(SourceError, match="no GStreamer support"):
        open_source(cfg.cameras[0].source, tmp_path)


def test_block_is_refused_for_a_live_camera(tmp_path):
    cfg = parse_config({"data_dir": str(tmp_path), "web": {"enabled": False}, "cameras": [
        {"id": "live", "buffer": {"policy": "block"},
         "source": {"type": "mjpeg", "url": "http://127.0.0.1:9/x.mjpg"}}]})
    with pytest.raises(ValueError, match="block is for offline replay and triggered acquisition only"):
        Pipeline(cfg)


def test_camera_state_and_counters_reach_metrics(tmp_path, demo_line):
    """/metrics (Prometheus text) carries each camera's state, frames, drops and latency."""
    from fastapi.testclient import TestClient
    from prometheus_client.parser import text_string_to_metric_families

    from inspector.web import create_app

    cam = MjpegCamera().start()
    cfg = parse_config({
        "data_dir": str(tmp_path / "data"), "web": {"enabled": False},
        "cameras": [{"id": "live", "source": {"type": "mjpeg", "url": cam.url, "timeout_s": 1,
                                              "reconnect": {"initial_s": 0.2, "max_s": 0.5}}},
                    {"id": "files", "source": {"type": "folder", "path": str(demo_line.frames_dir)}}]})
    pipe = Pipeline(cfg)
    pipe.start()
    try:
        with TestClient(create_app(pipe.store, pipe.status, pipe.trigger)) as c:
            authorize(c, pipe.store)

            def scrape():
                r = c.get("/metrics")
                assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
                return {(s.name, tuple(sorted(s.labels.items()))): s.value
                        for f in text_string_to_metric_families(r.text) for s in f.samples}

            assert wait_for(lambda: pipe.done.is_set() or pipe.status().cameras[1].state == "exhausted")
            assert wait_for(lambda: pipe.status().cameras[0].frames_in >= 5)
            m = scrape()
            assert m[("inspector_camera_state", (("camera", "live"), ("state", "connected")))] == 1.0
            assert m[("inspector_camera_frames_total", (("camera", "files"),))] == 12.0
            assert m[("inspector_camera_state", (("camera", "files"), ("state", "exhausted")))] == 1.0
            assert ("inspector_camera_latency_seconds", (("camera", "files"), ("quantile", "0.95"))) in m
            cam.kill()
            assert wait_for(lambda: scrape()[("inspector_camera_state", (("camera", "live"), ("state", "reconnecting")))] == 1.0)
            # The attempt is counted when it is made, after the first backoff wait.
            assert wait_for(lambda: scrape()[("inspector_camera_reconnects_total", (("camera", "live"),))] >= 1)
    finally:
        pipe.stop()
        cam.kill()


def test_rtsp_against_a_real_server_that_dies_and_comes_back(tmp_path):
    """GStreamer's RTSP server on loopback serving H.264: frames, the server killed (reconnecting, the
    line's other work unharmed), restarted on the same port (frames again), and the outage counted."""
    from inspector.reasoner.local_server import free_port
    from tests import rtsp_server
    from tests.conftest import need

    need("GStreamer's RTSP server and ffmpeg", rtsp_server.available(),
         "gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good/-bad, ffmpeg: ./bootstrap.sh test")
    clip = rtsp_server.make_clip(tmp_path / "cam.h264")
    server = rtsp_server.RtspServer(clip, free_port()).start()
    cfg = parse_config({"cameras": [{"id": "ipcam", "source": {
        "type": "rtsp", "url": server.url, "timeout_s": 2, "reconnect": {"initial_s": 0.2, "max_s": 0.5}}}]})
    src = open_source(cfg.cameras[0].source, tmp_path)
    try:
        for _ in range(10):
            img, name = src.read()
            assert img.shape == (240, 320, 3)
        assert src.state == "connected" and src.reconnects == 0 and src.lost == 0
        import threading

        frames: list[float] = []  # when each frame came
        done = threading.Event()

        def reader():
            while not done.is_set() and src.read() is not None:
                frames.append(time.monotonic())
        t = threading.Thread(target=reader)
        t.start()
        server.kill()
        t0 = time.monotonic()
        assert wait_for(lambda: src.state == "reconnecting" and src.reconnects >= 1, 30)
        assert "no frame" in src.last_error or "cannot open" in src.last_error
        time.sleep(1.0)
        n_down = len(frames)
        server.start()  # back on the same port
        assert wait_for(lambda: len(frames) >= n_down + 10 and src.state == "connected", 60)
        back = next(f for f in frames[n_down:])
        done.set()
        src.stop_event.set()  # the reader closes nothing: it ends its read, then the test closes
        t.join(10)
        # what the outage lost, from its length at the stream's 25 fps: at least the second it was down
        assert rtsp_server.FPS * 1.0 <= src.lost <= rtsp_server.FPS * (back - t0 + 2), (src.lost, back - t0)
    finally:
        src.close()
        server.kill()
