"""The `aravis` source against Aravis' GigE Vision camera simulator on loopback: node checks,
triggers, frame ids and lost frames, a camera that dies and comes back."""

import threading
import time

import pytest

from inspector.capture.sources import SourceError, open_source
from inspector.config import parse_config
from tests import fake_gv_camera
from tests.conftest import need, wait_for
from tests.fake_gv_camera import FakeGvCamera


@pytest.fixture(autouse=True)
def _aravis():
    need("Aravis (gir1.2-aravis-0.8, aravis-tools, PyGObject)", fake_gv_camera.available(),
         "./bootstrap.sh test installs it")


def source(tmp_path, **kw):
    cfg = parse_config({"cameras": [{"id": "gige", "source": {
        "type": "aravis", "camera": "127.0.0.1", "timeout_s": 2,
        "reconnect": {"initial_s": 0.2, "max_s": 0.5}, **kw}}]})
    return open_source(cfg.cameras[0].source, tmp_path)


def test_free_run_frames_with_ids_timestamps_and_the_features_set(tmp_path):
    with FakeGvCamera():
        src = source(tmp_path, features={"PixelFormat": "Mono8", "Width": 320, "Height": 240,
                                         "AcquisitionFrameRate": 50.0, "GainRaw": 2}, packet_size=1400)
        try:
            ids, stamps = [], []
            for _ in range(10):
                img, name = src.read()
                assert img.shape == (240, 320, 3) and img.dtype.name == "uint8"
                assert (img[..., 0] == img[..., 2]).all()  # Mono8 came out grey
                ids.append(src.last_frame_id)
                stamps.append(src.last_timestamp)
                assert name == f"aravis:127.0.0.1#{src.last_frame_id}"
            assert ids == list(range(ids[0], ids[0] + 10)) and src.lost == 0
            assert all(b > a for a, b in zip(stamps, stamps[1:]))  # the camera's clock, per frame
            drv = src._drv
            assert drv.dev.get_integer_feature_value("GainRaw") == 2
            assert drv.cam.gv_get_packet_size() == 1400
            assert src.state == "connected" and src.errors == 0
        finally:
            src.close()


def test_unknown_nodes_and_values_are_named_with_the_nearest_ones(tmp_path):
    with FakeGvCamera():
        src = source(tmp_path, features={"ExposureTime": 1000.0})
        with pytest.raises(SourceError, match="no GenICam node 'ExposureTime'; nearest: ExposureTimeAbs"):
            src.read()
        src.close()
        src = source(tmp_path, features={"PixelFormat": "Mono12"})
        with pytest.raises(SourceError, match="PixelFormat has no value 'Mono12'; it takes: .*Mono16"):
            src.read()
        src.close()
    with pytest.raises(Exception, match="TriggerMode: set by `trigger`"):
        parse_config({"cameras": [{"id": "g", "source": {"type": "aravis", "camera": "127.0.0.1",
                                                        "features": {"TriggerMode": "On"}}}]})


def test_software_trigger_takes_one_image_per_read(tmp_path):
    with FakeGvCamera():
        src = source(tmp_path, trigger="software", features={"AcquisitionFrameRate": 100.0})
        try:
            assert src.acquires_on_read
            src.read()
            first = src.last_frame_id
            # no trigger, no frame: a camera that ignored TriggerMode and streamed would send one
            assert src._drv.grab(0.5) is None
            src.read()
            assert src.last_frame_id == first + 1 and src.lost == 0
            assert src._drv.dev.get_string_feature_value("TriggerSource") == "Software"
        finally:
            src.close()


def test_hardware_trigger_waits_for_the_line_without_reconnecting(tmp_path):
    """No light barrier fires on the simulator: read() waits (past timeout_s) and the camera stays
    connected; only the line's stop ends it."""
    with FakeGvCamera():
        src = source(tmp_path, trigger="hardware", trigger_line="Line0", timeout_s=0.5)
        got = []
        t = threading.Thread(target=lambda: got.append(src.read()))
        t.start()
        try:
            assert wait_for(lambda: src.state == "connected", 10)
            time.sleep(1.5)
            assert t.is_alive() and src.reconnects == 0 and src.state == "connected"
            assert src._drv.dev.get_string_feature_value("TriggerMode") == "On"
        finally:
            src.close()
            t.join(10)
        assert got == [None]


def test_a_camera_that_dies_is_reconnected_and_its_frames_come_back(tmp_path):
    cam = FakeGvCamera().start()
    src = source(tmp_path, timeout_s=1)
    try:
        src.read()
        cam.kill()
        got: list = []
        reader = threading.Thread(target=lambda: got.append(src.read()))
        reader.start()
        assert wait_for(lambda: src.state == "reconnecting" and src.reconnects >= 1, 20)
        assert src.last_error
        cam.start()  # power back on, same address
        reader.join(30)
        assert got and got[0] is not None and src.state == "connected"
        img, _ = src.read()
        assert img.shape[2] == 3
    finally:
        src.close()
        cam.kill()


def test_lost_packets_show_as_lost_frames(tmp_path):
    """The simulator drops GVSP packets (2 per thousand) and ignores resends: frames that do not arrive
    whole leave gaps in the frame ids, counted as lost (about 1 frame in 10 at 320x240)."""
    with FakeGvCamera(lost_per_thousand=2):
        src = source(tmp_path, packet_resend=False, timeout_s=5,
                     features={"Width": 320, "Height": 240, "AcquisitionFrameRate": 100.0})
        try:
            first = None
            for _ in range(600):
                src.read()
                if first is None:
                    # frames lost before the first one read (a loaded machine drops the first few
                    # while the stream starts) lie outside the ids counted below
                    first, lost_before = src.last_frame_id, src.lost
                if src.lost - lost_before >= 3:
                    break
            assert src.lost - lost_before >= 3
            # every id from the first frame read to the last is accounted for: read, or lost
            assert src.last_frame_id - first + 1 == src._n + src.lost - lost_before
        finally:
            src.close()


def test_the_line_reports_a_gige_camera(tmp_path):
    from inspector.line.pipeline import Pipeline

    with FakeGvCamera():
        cfg = parse_config({"data_dir": str(tmp_path / "data"), "web": {"enabled": False},
                            "cameras": [{"id": "gige", "source": {"type": "aravis", "camera": "127.0.0.1",
                                                                   "features": {"AcquisitionFrameRate": 20.0}}}]})
        pipe = Pipeline(cfg)
        pipe.start()
        try:
            status = lambda: pipe.status().cameras[0]  # noqa: E731
            assert wait_for(lambda: status().frames_in >= 5, 30)
            s = status()
            assert s.connection == "connected" and s.lost == 0 and s.source == "aravis:127.0.0.1"
        finally:
            pipe.stop()
