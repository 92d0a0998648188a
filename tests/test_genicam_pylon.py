"""The `pylon` source against pylon's own camera emulator (pypylon, PYLON_CAMEMU set in conftest):
the demo line's parts served as camera images, software triggers, node checks, a line run, and a
camera removal (injected: the emulator cannot be unplugged)."""

import shutil

import cv2
import numpy as np
import pytest

from inspector.capture.sources import SourceError, open_source
from inspector.capture.sources.genicam import CameraUnavailable
from inspector.config import parse_config
from tests.conftest import need, wait_for


def _have_pylon() -> bool:
    import importlib.util

    return importlib.util.find_spec("pypylon") is not None


@pytest.fixture(autouse=True)
def _pylon():
    need("pypylon", _have_pylon(), "./bootstrap.sh test installs it")


@pytest.fixture(scope="module")
def parts(demo_line, tmp_path_factory):
    """A folder of the demo line's part images, as the emulator serves them (in name order)."""
    d = tmp_path_factory.mktemp("emu")
    for f in sorted(demo_line.frames_dir.iterdir())[:4]:
        shutil.copy(f, d / f.name)
    return d


def source_cfg(parts, **kw):
    features = {"ImageFilename": str(parts), "ImageFileMode": "On", "TestImageSelector": "Off",
                "PixelFormat": "RGB8Packed", "ExposureTimeAbs": 100.0}
    features.update(kw.pop("features", {}))
    return {"type": "pylon", "device_class": "BaslerCamEmu", "serial": "0815-0000", "timeout_s": 3,
            "features": features, "reconnect": {"initial_s": 0.1, "max_s": 0.3}, **kw}


def open_pylon(tmp_path, parts, **kw):
    cfg = parse_config({"cameras": [{"id": "basler", "source": source_cfg(parts, **kw)}]})
    return open_source(cfg.cameras[0].source, tmp_path)


def test_software_triggers_take_the_parts_in_order(tmp_path, parts):
    src = open_pylon(tmp_path, parts, trigger="software")
    try:
        files = sorted(parts.iterdir())
        ids = []
        for f in files * 2:  # the emulator cycles through the folder
            img, name = src.read()
            want = cv2.imread(str(f))
            assert img.shape == want.shape and np.array_equal(img, want), f.name
            ids.append(src.last_frame_id)
        assert ids == list(range(ids[0], ids[0] + len(ids))) and src.lost == 0
        assert name == f"pylon:0815-0000#{ids[-1]}"
    finally:
        src.close()


def test_a_bayer_camera_comes_out_in_colour(tmp_path, parts):
    """BayerRG8: the emulator mosaics the file, the source demosaics it back (a red/blue swap would
    move the mean colour far more than the demosaic's edge blur does)."""
    src = open_pylon(tmp_path, parts, trigger="software", features={"PixelFormat": "BayerRG8"})
    try:
        img, _ = src.read()
        want = cv2.imread(str(sorted(parts.iterdir())[0]))
        assert img.shape == want.shape
        assert np.abs(img.astype(int) - want.astype(int)).mean() < 6
        assert np.abs(img.reshape(-1, 3).mean(0) - want.reshape(-1, 3).mean(0)).max() < 3
    finally:
        src.close()


def test_unknown_nodes_and_values_are_named(tmp_path, parts):
    src = open_pylon(tmp_path, parts, features={"ExposureTme": 100.0})
    with pytest.raises(SourceError, match="no GenICam node 'ExposureTme'; nearest: ExposureTime"):
        src.read()
    src.close()
    src = open_pylon(tmp_path, parts, features={"PixelFormat": "RGB8"})
    with pytest.raises(SourceError, match="PixelFormat has no value 'RGB8'; it takes: .*RGB8Packed"):
        src.read()
    src.close()
    src = open_pylon(tmp_path, parts, features={"Width": 10**9})
    with pytest.raises(SourceError, match="cannot set Width = 1000000000"):
        src.read()
    src.close()


def test_no_such_camera_keeps_retrying_with_its_reason(tmp_path, parts):
    import threading

    src = open_pylon(tmp_path, parts, serial="0815-9999")
    t = threading.Thread(target=src.read)
    t.start()
    try:
        assert wait_for(lambda: src.reconnects >= 2, 20)
        assert src.state == "reconnecting" and "no Basler camera 0815-9999 found" in src.last_error
    finally:
        src.close()
        t.join(10)


def test_a_removed_camera_is_reconnected(tmp_path, parts, monkeypatch):
    """The emulator cannot be unplugged: the driver's grab is made to fail as pylon's does when a
    camera is removed, once; the source drops the device, opens it again and goes on."""
    from inspector.capture.sources import pylon as pylon_src

    src = open_pylon(tmp_path, parts)
    try:
        src.read()
        real = pylon_src.PylonDriver.grab
        calls = {"n": 0}

        def pulled(self, timeout_s):
            calls["n"] += 1
            if calls["n"] == 1:
                raise CameraUnavailable("the camera was removed")
            return real(self, timeout_s)

        monkeypatch.setattr(pylon_src.PylonDriver, "grab", pulled)
        img, _ = src.read()
        assert img is not None and src.reconnects == 1 and src.state == "connected"
        assert src.last_error == "the camera was removed"
    finally:
        src.close()


def test_a_line_inspects_each_part_the_plc_triggers(tmp_path, parts):
    """trigger.acquisition: triggered with source.trigger: software: one exposure per request."""
    from inspector.line.pipeline import Pipeline

    cfg = parse_config({"data_dir": str(tmp_path / "data"), "web": {"enabled": False},
                        "cameras": [{"id": "basler", "source": source_cfg(parts, trigger="software"),
                                     "trigger": {"mode": "software", "acquisition": "triggered"}}]})
    pipe = Pipeline(cfg)
    pipe.start()
    try:
        for i in range(3):
            pipe.trigger("basler", f"P-{i}")
        status = lambda: pipe.status().cameras[0]  # noqa: E731
        assert wait_for(lambda: status().frames_in == 3 and status().frames_inspected == 3, 60)
        # each image is a part: the buffer waits instead of dropping one (auto policy, triggered acquisition)
        assert status().connection == "connected" and status().lost == 0 and status().dropped == 0
        assert wait_for(lambda: {r["part_id"] for r in pipe.store.feed(limit=10)} == {"P-0", "P-1", "P-2"}, 60)
    finally:
        pipe.stop()


def test_a_streaming_source_with_a_software_camera_trigger_is_refused(tmp_path, parts):
    from inspector.errors import InspectorError
    from inspector.line.pipeline import Pipeline

    cfg = parse_config({"data_dir": str(tmp_path / "data"), "web": {"enabled": False},
                        "cameras": [{"id": "basler", "source": source_cfg(parts, trigger="software")}]})
    with pytest.raises(InspectorError, match="source.trigger: software takes an image only when the line asks"):
        Pipeline(cfg)
