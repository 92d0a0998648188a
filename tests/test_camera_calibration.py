"""Camera calibration: checkerboards rendered through a known camera are calibrated back."""

import json

import cv2
import numpy as np
import pytest
import yaml

from inspector.capture import camera_calibration as cc
from inspector.demo.checkerboard import DEFAULT_DIST, DEFAULT_K, DEFAULT_SIZE, render_view, write_views
from tests.conftest import run_cli

BOARD, SQUARE = (9, 6), 25.0


@pytest.fixture(scope="module")
def views(tmp_path_factory):
    d = tmp_path_factory.mktemp("board")
    write_views(d, views=10, board=BOARD, square_mm=SQUARE, seed=3)
    return d


@pytest.fixture(scope="module")
def flat_on(tmp_path_factory):
    """The board lying on the working plane 500 mm under the camera, square to it."""
    z = 500.0
    t = np.array([-BOARD[0] * SQUARE / 2, -BOARD[1] * SQUARE / 2, z])
    p = tmp_path_factory.mktemp("scale") / "on-the-belt.png"
    cv2.imwrite(str(p), render_view(DEFAULT_K, DEFAULT_DIST, np.zeros(3), t, BOARD, SQUARE))
    return p, z


def test_cli_recovers_the_camera_and_the_scale(tmp_path, views, flat_on):
    scale_img, z = flat_on
    p = run_cli("calibrate", "camera", "--camera", "belt-cam", "--images", str(views), "--board", "9x6",
                "--square-mm", "25", "--scale", str(scale_img), "--out-dir", str(tmp_path))
    assert p.returncode == 0, p.stderr
    cal = yaml.safe_load((tmp_path / "belt-cam.yaml").read_text())
    K = np.array(cal["camera_matrix"])
    assert K[0, 0] == pytest.approx(DEFAULT_K[0, 0], rel=0.01)
    assert K[1, 1] == pytest.approx(DEFAULT_K[1, 1], rel=0.01)
    assert K[0, 2] == pytest.approx(DEFAULT_K[0, 2], abs=5) and K[1, 2] == pytest.approx(DEFAULT_K[1, 2], abs=5)
    assert cal["dist_coeffs"][0] == pytest.approx(DEFAULT_DIST[0], abs=0.02)
    assert cal["reprojection_error_px"] < 0.5
    assert len(cal["per_view_error_px"]) == 10 and max(cal["per_view_error_px"].values()) < 0.5
    assert cal["image_size"] == list(DEFAULT_SIZE)
    # Flat on at z mm, a pixel near the middle spans z / f mm.
    assert cal["mm_per_px"] == pytest.approx(z / DEFAULT_K[0, 0], rel=0.01)
    assert f"{K[0, 0]:.2f}" in p.stdout and "reprojection error" in p.stdout and "mm per pixel" in p.stdout


def test_undistorted_frames_have_straight_lines(views):
    cal, skipped = cc.calibrate("cam", sorted(views.glob("view_*.png")), BOARD, SQUARE)
    assert not skipped
    und = cc.Undistorter(cal)
    obj = cc.board_points(BOARD, SQUARE)[:, :2]

    def homography_misfit(img):
        c = cc.find_corners(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), BOARD).reshape(-1, 2)
        H, _ = cv2.findHomography(obj, c)  # a plane seen by an ideal camera is a homography
        fit = cv2.perspectiveTransform(obj[None].astype(np.float64), H)[0]
        return float(np.sqrt(np.mean(np.sum((fit - c) ** 2, axis=1))))

    imgs = [cv2.imread(str(p)) for p in sorted(views.glob("view_*.png"))]
    before = [homography_misfit(i) for i in imgs]
    after = [homography_misfit(und(i)) for i in imgs]
    # The barrel distortion bends the board's lines (0.4-0.9 px RMS off a plane's homography
    # here); undistorted, every view is a plane seen by an ideal camera again.
    assert min(before) > 0.3 and max(before) > 0.8
    assert max(after) < 0.1
    with pytest.raises(cc.CameraCalibrationError, match="frame is 640x480, but its calibration is for 1280x1024"):
        und(np.zeros((480, 640, 3), np.uint8))


def test_the_line_undistorts_and_takes_the_scale(tmp_path, views, flat_on):
    from inspector.config import load_config

    cal, _ = cc.calibrate("demo-cam", sorted(views.glob("view_*.png")), BOARD, SQUARE)
    cal.mm_per_px, _ = cc.measure_scale(cal, flat_on[0])
    cc.save(tmp_path, cal)
    cfg = load_config(None)
    cam = cfg.cameras[0]
    und, mm = cc.for_camera(tmp_path, cam)
    assert und is not None and mm == pytest.approx(cal.mm_per_px)
    cam.mm_per_px = 0.5  # the config wins
    assert cc.for_camera(tmp_path, cam)[1] == 0.5
    cam.undistort = False
    assert cc.for_camera(tmp_path, cam)[0] is None
    assert cc.for_camera(tmp_path / "nothing-here", cam) == (None, 0.5)


def test_bad_input_is_named(tmp_path, views):
    blank = tmp_path / "blank"
    blank.mkdir()
    for i in range(4):
        cv2.imwrite(str(blank / f"wall_{i}.png"), np.full((240, 320, 3), 128, np.uint8))
    (blank / "broken.png").write_bytes(b"not a png")
    p = run_cli("calibrate", "camera", "--camera", "c", "--images", str(blank), "--square-mm", "25",
                "--out-dir", str(tmp_path))
    assert p.returncode == 2
    assert "the board was found in 0 of 5 images" in p.stderr and "broken.png: not a readable image" in p.stderr
    p = run_cli("calibrate", "camera", "--camera", "c", "--images", str(views), "--board", "9by6",
                "--square-mm", "25", "--out-dir", str(tmp_path))
    assert p.returncode == 2 and "expected inner corners as COLSxROWS" in p.stderr
    p = run_cli("calibrate", "camera", "--camera", "c", "--images", str(tmp_path / "nope"), "--square-mm", "25")
    assert p.returncode == 2 and "no such folder" in p.stderr
    assert not (tmp_path / "c.yaml").exists()


def test_broken_calibration_file_stops_the_start_naming_it(tmp_path):
    from inspector.config import load_config

    (tmp_path / "demo-cam.yaml").write_text(yaml.safe_dump({"camera": "demo-cam", "camera_matrix": [[1, 0]]}))
    cam = load_config(None).cameras[0]
    with pytest.raises(cc.CameraCalibrationError, match="demo-cam.yaml is not usable.*calibrate camera"):
        cc.for_camera(tmp_path, cam)


def test_a_camera_may_not_overwrite_a_product_calibration(tmp_path, views):
    (tmp_path / "demo-tile.yaml").write_text(yaml.safe_dump({"product": "demo-tile", "threshold": 0.5}))
    cal, _ = cc.calibrate("demo-tile", sorted(views.glob("view_*.png"))[:4], BOARD, SQUARE)
    with pytest.raises(cc.CameraCalibrationError, match="calibration of product 'demo-tile'"):
        cc.save(tmp_path, cal)
    assert json.loads(json.dumps(yaml.safe_load((tmp_path / "demo-tile.yaml").read_text())))["threshold"] == 0.5


def test_line_undistorts_its_frames_and_a_misfit_calibration_fails_that_camera_only(tmp_path, demo_line):
    """cam-a is calibrated at the demo frames' size, so its frames are undistorted and get its
    scale; cam-b's calibration is for another resolution, so cam-b fails, naming why, and cam-a
    carries on."""
    from inspector.config import parse_config
    from inspector.line.pipeline import Pipeline

    K = np.array([[700.0, 0, 322], [0, 700.0, 238], [0, 0, 1]])
    small = tmp_path / "views-640"
    write_views(small, views=8, board=(7, 5), square_mm=20.0, seed=5, K=K, size=(640, 480))
    cal, _ = cc.calibrate("cam-a", sorted(small.glob("view_*.png")), (7, 5), 20.0)
    cal.mm_per_px = 0.25
    cc.save(tmp_path / "cal", cal)
    big, _ = cc.calibrate("cam-b", sorted(small.glob("view_*.png")), (7, 5), 20.0)
    big.image_size = (1280, 1024)
    cc.save(tmp_path / "cal", big)
    cfg = parse_config({
        "data_dir": str(tmp_path / "data"), "calibration_dir": str(tmp_path / "cal"),
        "cameras": [{"id": cid, "source": {"type": "folder", "path": str(demo_line.frames_dir)}}
                    for cid in ("cam-a", "cam-b")],
        "web": {"enabled": False}})
    pipe = Pipeline(cfg)
    assert pipe.geometry["cam-a"][1] == 0.25 and pipe.geometry["cam-a"][0] is not None
    seen = []
    und = pipe.geometry["cam-a"][0]
    pipe.geometry["cam-a"] = (lambda img: seen.append(img) or und(img), 0.25)  # watch what it is given
    pipe.start()
    try:
        assert pipe.done.wait(60)
        cams = {c.id: c for c in pipe.status().cameras}
    finally:
        pipe.stop()
    assert cams["cam-a"].state == "exhausted" and cams["cam-a"].frames_in == 12
    assert cams["cam-b"].state == "failed" and cams["cam-b"].frames_inspected == 0
    assert "frame is 640x480, but its calibration is for 1280x1024" in cams["cam-b"].error
    assert len(seen) == 12
    first = cv2.imread(str(sorted(demo_line.frames_dir.glob("*.png"))[0]))
    assert not np.array_equal(und(first), first)  # the maps really move pixels
