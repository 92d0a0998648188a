"""Triggers: one inspection per part on a generated sequence, every n-th frame, software trigger."""

import time

import cv2
import numpy as np
import pytest

from inspector.config import TriggerConfig, parse_config
from inspector.capture.triggers import Trigger

W, H = 320, 240


def belt(rng, light=1.0):
    img = np.full((H, W, 3), (58, 62, 60), np.float32) + rng.normal(0, 3, (H, W, 3))
    return np.clip(img * light, 0, 255).astype(np.uint8)


def with_part(img, x, rng):
    """A textured 100x80 part whose left edge is at x (it may be partly out of view)."""
    out = img.copy()
    part = rng.integers(120, 200, (80, 100, 3)).astype(np.uint8)
    part = cv2.GaussianBlur(part, (9, 9), 0)
    x0, x1 = max(0, x), min(W, x + 100)
    if x1 > x0:
        out[80:160, x0:x1] = part[:, x0 - x:x1 - x]
    return out


def sequence(parts=3, seed=0):
    """Empty belt, then each part slides in from the left, stops under the camera, slides out."""
    rng = np.random.default_rng(seed)
    frames = [belt(rng) for _ in range(5)]
    for _ in range(parts):
        for x in (-90, -60, -30, 0, 40, 80):  # entering
            frames.append(with_part(belt(rng), x, rng))
        frames += [with_part(belt(rng), 110, rng) for _ in range(6)]  # stopped
        for x in (160, 220, 280, 330):  # leaving
            frames.append(with_part(belt(rng), x, rng))
        frames += [belt(rng) for _ in range(4)]
    return frames


def test_part_presence_fires_once_per_part():
    trig = Trigger(TriggerConfig(mode="part_presence"))
    fired = [i for i, f in enumerate(sequence(3)) if trig.fire(f, (0, 0, W, H))]
    assert len(fired) == 3 and trig.parts == 3
    assert all(b - a >= 15 for a, b in zip(fired, fired[1:]))  # one per part, not one per frame


def test_part_presence_ignores_slow_light_drift_and_noise():
    rng = np.random.default_rng(1)
    trig = Trigger(TriggerConfig(mode="part_presence"))
    fired = [trig.fire(belt(rng, 1.0 + 0.004 * i), None) for i in range(150)]  # +60% over the run
    assert not any(fired) and trig.presence < 0.05


def test_every_n_and_software_requests():
    trig = Trigger(TriggerConfig(mode="every_n", n=4))
    img = np.zeros((8, 8, 3), np.uint8)
    assert [i for i in range(12) if trig.fire(img, None)] == [0, 4, 8]
    trig.request()
    assert trig.fire(img, None) is True  # frame 13 would not fire on its own
    soft = Trigger(TriggerConfig(mode="software"))
    assert not any(soft.fire(img, None) for _ in range(5))
    assert soft.request() == 1 and soft.request() == 2
    assert [soft.fire(img, None) for _ in range(3)] == [True, True, False]


def test_leave_above_enter_is_refused():
    from inspector.config import ConfigError

    with pytest.raises(ConfigError, match="cameras.0.trigger: .*leave_fraction must not exceed enter_fraction"):
        parse_config({"cameras": [{"trigger": {"mode": "part_presence", "enter_fraction": 0.01,
                                               "leave_fraction": 0.2}}]})


def test_software_trigger_over_the_api(tmp_path, demo_line):
    from fastapi.testclient import TestClient

    from inspector.line.pipeline import Pipeline
    from inspector.web import create_app
    from tests.conftest import authorize

    cfg = parse_config({
        "data_dir": str(tmp_path / "data"), "web": {"enabled": False},
        "cameras": [{"id": "plc-cam", "trigger": {"mode": "software"},
                     "source": {"type": "folder", "path": str(demo_line.frames_dir), "loop": True, "fps": 30}}]})
    pipe = Pipeline(cfg)
    pipe.start()
    try:
        with TestClient(create_app(pipe.store, pipe.status, pipe.trigger)) as c:
            authorize(c, pipe.store)
            time.sleep(0.5)
            cam = lambda: c.get("/api/status").json()["cameras"][0]  # noqa: E731
            assert cam()["frames_inspected"] == 0 and cam()["untriggered"] > 5
            for _ in range(3):
                r = c.post("/api/cameras/plc-cam/trigger")
                assert r.status_code == 202 and r.json()["camera"] == "plc-cam"
            end = time.monotonic() + 10
            while cam()["frames_inspected"] < 3 and time.monotonic() < end:
                time.sleep(0.05)
            time.sleep(0.3)
            assert cam()["frames_inspected"] == 3 and cam()["trigger"] == "software"
            r = c.post("/api/cameras/nope/trigger")
            assert r.status_code == 404 and "plc-cam" in r.json()["detail"]
    finally:
        pipe.stop()


def test_a_camera_that_acquires_on_the_trigger_takes_only_the_images_asked_for(tmp_path, demo_line):
    import time

    import pytest

    from inspector.config.base import ConfigError
    from inspector.line.pipeline import Pipeline
    from tests.conftest import wait_for

    with pytest.raises(ConfigError, match="acquisition: triggered needs mode: software"):
        parse_config({"cameras": [{"id": "c", "trigger": {"mode": "continuous", "acquisition": "triggered"}}]})
    cfg = parse_config({
        "data_dir": str(tmp_path / "data"), "web": {"enabled": False},
        "cameras": [{"id": "cam", "trigger": {"mode": "software", "acquisition": "triggered"},
                     "source": {"type": "folder", "path": str(demo_line.frames_dir), "loop": True, "fps": 50}}]})
    pipe = Pipeline(cfg)
    pipe.start()
    try:
        time.sleep(0.5)  # a free-running camera would have taken some 25 frames by now
        cam = pipe.status().cameras[0]
        assert (cam.frames_in, cam.untriggered) == (0, 0)
        for k in range(3):
            pipe.trigger("cam", f"P{k}")
        assert wait_for(lambda: pipe.status().cameras[0].frames_inspected == 3, 20)
        time.sleep(0.3)
        cam = pipe.status().cameras[0]
        assert (cam.frames_in, cam.untriggered, cam.frames_inspected) == (3, 0, 3)
        # The parts are the replay's first three files, in order: nothing was skipped between them.
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from inspector.store.models import Inspection

        with Session(pipe.store.engine) as s:
            names = sorted(s.scalars(select(Inspection.source_name)))
        assert names == sorted(p.name for p in sorted(demo_line.frames_dir.glob("*.png"))[:3])
    finally:
        pipe.stop()
    # A camera that streams cannot wait for a trigger to expose: refused at start, in one line.
    streaming = parse_config({"data_dir": str(tmp_path / "d2"), "web": {"enabled": False},
                              "cameras": [{"id": "ip", "trigger": {"mode": "software", "acquisition": "triggered"},
                                           "source": {"type": "rtsp", "url": "rtsp://127.0.0.1:1/x"}}]})
    with pytest.raises(ConfigError, match="a rtsp source streams"):
        Pipeline(streaming)
