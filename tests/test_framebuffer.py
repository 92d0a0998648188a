"""The capture -> pre-filter buffer: policies under a slow consumer, fairness, end of input."""

import threading
import time

import pytest

from inspector.capture.framebuffer import FrameBuffer


def produce(buf, cam, n, stop=None):
    for i in range(n):
        buf.put(cam, (cam, i), stop)
    buf.close(cam)


def slow_consume(buf, delay):
    got = []
    while (f := buf.get(timeout=5)) is not None:
        got.append(f)
        time.sleep(delay)
    return got


def test_latest_keeps_the_newest_and_counts_every_drop():
    buf = FrameBuffer()
    buf.add_camera("c", "latest", 4)
    t = threading.Thread(target=lambda: [buf.put("c", ("c", i)) or time.sleep(0.001) for i in range(200)] and buf.close("c"))
    t.start()
    got = slow_consume(buf, 0.02)
    t.join()
    seqs = [i for _, i in got]
    assert seqs == sorted(seqs) and seqs[-1] == 199  # in order, and the last frame always arrives
    assert len(got) + buf.dropped["c"] == 200  # every frame either processed or counted
    assert buf.dropped["c"] > 100


def test_drop_oldest_holds_size_frames_and_drops_the_rest_counted():
    buf = FrameBuffer()
    buf.add_camera("c", "drop_oldest", 3)
    for i in range(10):
        buf.put("c", ("c", i))
    buf.close("c")
    assert [i for _, i in slow_consume(buf, 0)] == [7, 8, 9]
    assert buf.dropped["c"] == 7


def test_block_loses_nothing_and_capture_waits():
    buf = FrameBuffer()
    buf.add_camera("c", "block", 2)
    t = threading.Thread(target=produce, args=(buf, "c", 50))
    t.start()
    time.sleep(0.1)
    assert buf.depth("c") == 2 and t.is_alive()  # the producer is held, not dropping
    got = slow_consume(buf, 0.001)
    t.join()
    assert [i for _, i in got] == list(range(50)) and buf.dropped["c"] == 0


def test_block_gives_way_to_stop():
    buf = FrameBuffer()
    buf.add_camera("c", "block", 1)
    stop = threading.Event()
    buf.put("c", 1, stop)
    threading.Timer(0.3, stop.set).start()
    t0 = time.monotonic()
    assert buf.put("c", 2, stop) is False
    assert time.monotonic() - t0 < 2


def test_a_flooding_camera_does_not_starve_another():
    buf = FrameBuffer()
    buf.add_camera("fast", "drop_oldest", 8)
    buf.add_camera("slow", "block", 8)
    for i in range(8):
        buf.put("fast", ("fast", i))
    for i in range(3):
        buf.put("slow", ("slow", i))
    first = [buf.get(timeout=1)[0] for _ in range(6)]
    assert first.count("slow") == 3  # round robin, not first come


def test_end_of_input_and_timeouts():
    buf = FrameBuffer()
    buf.add_camera("a", "block", 2)
    buf.add_camera("b", "block", 2)
    with pytest.raises(TimeoutError):
        buf.get(timeout=0.05)
    buf.put("a", 1)
    buf.close("a")
    assert buf.get(timeout=1) == 1
    with pytest.raises(TimeoutError):
        buf.get(timeout=0.05)  # b is still open
    buf.close("b")
    assert buf.get(timeout=1) is None
    with pytest.raises(ValueError, match="buffer policy 'newest'"):
        buf.add_camera("c", "newest", 1)


def test_the_line_reports_drops_and_latency_per_camera(tmp_path, demo_line):
    """A replay at full speed into a `latest` buffer with a pre-filter slower than capture: frames
    are dropped and counted, the ones judged have capture-to-verdict latencies."""
    from inspector.config import parse_config
    from inspector.line.pipeline import Pipeline

    cfg = parse_config({
        "data_dir": str(tmp_path / "data"),
        "cameras": [{"id": "live", "buffer": {"policy": "latest"},
                     "source": {"type": "folder", "path": str(demo_line.frames_dir), "loop": True}},
                    {"id": "replay", "source": {"type": "folder", "path": str(demo_line.frames_dir)}}],
        "web": {"enabled": False}})
    pipe = Pipeline(cfg)
    pipe.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            cams = {c.id: c for c in pipe.status().cameras}
            if cams["replay"].frames_inspected == 12 and cams["live"].dropped > 20:
                break
            time.sleep(0.1)
    finally:
        pipe.stop()
    live, replay = cams["live"], cams["replay"]
    assert live.dropped > 20 and live.frames_in >= live.frames_inspected + live.dropped - 2
    assert replay.dropped == 0 and replay.frames_inspected == 12  # block: every frame judged
    for c in (live, replay):
        assert 0 < c.latency_p50_ms <= c.latency_p95_ms  # speed itself: inspector bench


def test_dropped_frames_are_handed_on():
    buf = FrameBuffer()
    lost = []
    buf.on_drop = lambda cam, frames: lost.extend(frames)
    buf.add_camera("c", "drop_oldest", 3)
    for i in range(10):
        buf.put("c", ("c", i))
    assert [i for _, i in lost] == list(range(7))


def test_a_dropped_part_is_still_decided(tmp_path, demo_line):
    """Parts (a trigger per frame, not a continuous stream) that a `latest` buffer drops because
    the pre-filter fell behind are told to the line as NG, not inspected: every part once."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from inspector.config import parse_config
    from inspector.line.pipeline import Pipeline
    from inspector.store.models import LineDecisionRow
    from tests.conftest import wait_for

    cfg = parse_config({
        "data_dir": str(tmp_path / "data"), "web": {"enabled": False},
        "cameras": [{"id": "live", "buffer": {"policy": "latest"}, "trigger": {"mode": "every_n", "n": 1},
                     "source": {"type": "folder", "path": str(demo_line.frames_dir), "loop": True}}]})
    pipe = Pipeline(cfg)
    pipe.start()
    try:
        assert wait_for(lambda: pipe.status().cameras[0].dropped > 10, 30)
    finally:
        pipe.stop()
    st = pipe.status()
    cam = st.cameras[0]
    assert cam.dropped <= st.decisions.error <= cam.dropped + 1  # each dropped part: NG, not inspected
    # every part taken: inspected, dropped, or still waiting at the stop (then NG, not inspected)
    assert cam.frames_inspected + cam.dropped <= st.decisions.ok + st.decisions.ng <= \
        cam.frames_inspected + cam.dropped + 1
    with Session(pipe.store.engine) as s:
        rows = s.execute(select(LineDecisionRow.basis, func.count()).group_by(LineDecisionRow.basis)).all()
        uids = s.scalars(select(LineDecisionRow.uid)).all()
    assert dict(rows)["error"] == st.decisions.error and len(uids) == len(set(uids))
