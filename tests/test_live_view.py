"""The live page's pictures: boxes drawn on the frame they were found on, JPEGs shared by viewers,
and the MJPEG stream of a running line."""

import time

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from inspector.capture import live_view
from inspector.config import parse_config
from inspector.capture.live_view import BOX_BGR, LiveView
from inspector.messages import Candidate
from inspector.line.pipeline import Pipeline
from inspector.web import create_app
from tests.conftest import authorize


def decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def near(px, bgr, tol=60) -> bool:
    return all(abs(int(a) - b) <= tol for a, b in zip(px, bgr))


def test_boxes_are_drawn_on_the_frame_they_were_found_on():
    view = LiveView(["c"], max_width=2000)
    assert view.jpeg("c") is None  # nothing yet: the route answers 503, not a broken picture
    inspected = np.zeros((240, 320, 3), np.uint8)
    view.frame("c", inspected, None)
    view.inspected("c", 1, inspected, [Candidate((100, 60, 200, 160), 0.9, "anomaly", "m")])
    # The belt moved on: a newer (white) frame came in while the boxes are fresh.
    view.frame("c", np.full((240, 320, 3), 255, np.uint8), None)
    img = decode(view.jpeg("c")[1])
    assert near(img[110, 100], BOX_BGR) and near(img[60, 150], BOX_BGR)  # left and top edges
    assert img[110, 150].max() < 40 and img[20, 20].max() < 40  # the inspected (black) frame is shown
    info = view.info("c")
    assert info["boxes"] == [{"box": [100.0, 60.0, 200.0, 160.0], "score": 0.9, "label": "anomaly"}]
    assert info["size"] == [320, 240]


def test_stale_boxes_give_way_to_the_newest_bare_frame(monkeypatch):
    view = LiveView(["c"], max_width=2000)
    black = np.zeros((240, 320, 3), np.uint8)
    view.inspected("c", 1, black, [Candidate((100, 60, 200, 160), 0.9, "anomaly", "m")])
    view.frame("c", np.full((240, 320, 3), 255, np.uint8), None)
    monkeypatch.setattr(live_view, "BOXES_FRESH_S", -1.0)  # the inspected frame is now old
    img = decode(view.jpeg("c")[1])
    assert img[110, 100].min() > 215 and img[110, 150].min() > 215  # white, no box
    assert view.info("c")["boxes"] == []


def test_viewers_share_one_encode_per_new_picture_and_frames_are_scaled():
    view = LiveView(["c"], max_width=400)
    img = np.random.default_rng(0).integers(0, 255, (1024, 1280, 3), np.uint8)
    view.frame("c", img, (100, 100, 1100, 900))
    v1, j1 = view.jpeg("c")
    v2, j2 = view.jpeg("c")
    assert (v1, j1) == (v2, j2) and j1 is j2  # the second viewer got the same bytes, not a new encode
    assert decode(j1).shape == (320, 400, 3)
    view.frame("c", img.copy(), None)
    v3, j3 = view.jpeg("c")
    assert v3 > v1 and j3 is not j1
    with pytest.raises(KeyError):
        view.jpeg("nope")


def test_fps_is_the_rate_frames_arrive():
    view = LiveView(["c"])
    img = np.zeros((8, 8, 3), np.uint8)
    assert view.fps("c") is None
    t0 = time.monotonic()
    for i in range(6):
        view.frame("c", img, None)
        if i < 5:
            time.sleep(0.05)
    span = time.monotonic() - t0
    # Five gaps of at least 50 ms each, inside the span this test measured: bounds that hold
    # however busy the machine is.
    assert 5 / span - 0.01 <= view.fps("c") <= 5 / 0.25 + 0.01  # fps is rounded to 0.01


def read_parts(resp, n: int) -> list[bytes]:
    """The JPEGs of the first n parts of a multipart/x-mixed-replace stream."""
    assert resp.headers["content-type"].startswith("multipart/x-mixed-replace; boundary=frame")
    buf, parts = b"", []
    for chunk in resp.iter_bytes():
        buf += chunk
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if not buf.startswith(b"--frame\r\n") or head_end < 0:
                break
            length = int(next(line.split(b":")[1] for line in buf[:head_end].split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            start = head_end + 4
            if len(buf) < start + length + 2:
                break
            parts.append(buf[start:start + length])
            buf = buf[start + length + 2:]
        if len(parts) >= n:
            break
    return parts[:n]


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    cfg = parse_config({"data_dir": str(tmp_path_factory.mktemp("live")),
                        "cameras": [{"id": "cam1", "source": {"type": "demo", "parts": 12, "seed": 5,
                                                              "fps": 8, "loop": True}}]})
    pipe = Pipeline(cfg)
    pipe.start()
    with TestClient(create_app(pipe.store, pipe.status, pipe.trigger, live=pipe.live)) as c:
        authorize(c, pipe.store, "viewer")
        yield c, pipe
    pipe.stop()


def test_stream_sends_new_pictures_of_a_running_line(running):
    c, pipe = running
    with c.stream("GET", "/api/cameras/cam1/stream.mjpg", params={"fps": 30, "frames": 3}) as r:
        assert r.status_code == 200
        parts = read_parts(r, 3)
    assert len(parts) == 3 and len(set(parts)) == 3  # three different pictures, not one repeated
    for p in parts:
        img = decode(p)
        assert img.shape[1] <= 960 and img.shape[0] > 100
    snap = c.get("/api/cameras/cam1/snapshot.jpg")
    assert snap.status_code == 200 and snap.headers["cache-control"] == "no-store"
    decode(snap.content)


def test_cameras_api_reports_rate_and_the_boxes_being_shown(running):
    c, pipe = running
    deadline, seen = time.monotonic() + 20, None
    while time.monotonic() < deadline:
        cams = c.get("/api/cameras").json()
        live = cams[0]["live"]
        if live["boxes"]:
            seen = cams[0]
            break
        time.sleep(0.1)
    assert seen is not None, "no candidate box reached the live view in 20 s of a line with defects"
    w, h = seen["live"]["size"]
    for b in seen["live"]["boxes"]:
        x1, y1, x2, y2 = b["box"]
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h and b["score"] > 0
    # The source is paced at 8 fps, so the rate cannot run far above it; how far below it falls is
    # the machine's speed (`inspector bench loop` measures that), not this test's business.
    assert 0 < seen["fps"] < 12
    assert seen["frames_inspected"] > 0


def test_live_routes_refuse_unknown_cameras_anonymous_viewers_and_a_missing_line(running, tmp_path):
    c, pipe = running
    assert c.get("/api/cameras/nope/snapshot.jpg").status_code == 404
    assert c.get("/api/cameras/nope/stream.mjpg").status_code == 404
    assert c.get("/api/cameras/cam1/stream.mjpg", params={"fps": 0}).status_code == 422
    page = c.get("/live")
    assert page.status_code == 200 and 'src="/api/cameras/cam1/stream.mjpg"' in page.text
    with TestClient(create_app(pipe.store, pipe.status, live=pipe.live), follow_redirects=False) as anon:
        assert anon.get("/api/cameras/cam1/snapshot.jpg").status_code == 401
        assert anon.get("/live", headers={"Accept": "text/html"}).status_code == 303
    with TestClient(create_app(pipe.store, pipe.status)) as no_line:
        authorize(no_line, pipe.store, "viewer")
        assert no_line.get("/api/cameras/cam1/snapshot.jpg").status_code == 503
        assert "No line is running" in no_line.get("/live").text


def test_a_frame_inspected_with_nothing_found_is_not_sent_again():
    view = LiveView(["c"])
    img = np.zeros((64, 64, 3), np.uint8)
    view.frame("c", img, None)
    n, first = view.jpeg("c")
    view.inspected("c", 1, img, [])  # the same picture, now known to hold nothing
    assert view.jpeg("c") == (n, first)
    view.inspected("c", 2, img, [Candidate((1, 1, 9, 9), 0.5, "anomaly", "m")])
    assert view.jpeg("c")[0] == n + 1  # a box appeared: a new picture
