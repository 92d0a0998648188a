"""Rotation/flip of a camera's frames and the inspection polygon."""

import numpy as np
import pytest

from inspector.config import ConfigError, parse_config
from inspector.messages import Candidate
from inspector.capture.orientation import inside, orienter


def marked():
    img = np.zeros((40, 60, 3), np.uint8)
    img[0, 0] = 255  # top-left corner marked
    return img


@pytest.mark.parametrize("rotate,flip,shape,corner", [
    (90, "none", (60, 40), (0, 39)),  # clockwise: top-left goes to top-right
    (180, "none", (40, 60), (39, 59)),
    (270, "none", (60, 40), (59, 0)),
    (0, "horizontal", (40, 60), (0, 59)),
    (0, "vertical", (40, 60), (39, 0)),
    (90, "horizontal", (60, 40), (0, 0)),
])
def test_rotation_and_flip_move_pixels_where_they_should(rotate, flip, shape, corner):
    out = orienter(rotate, flip)(marked())
    assert out.shape[:2] == shape
    ys, xs = np.nonzero(out[..., 0])
    assert (ys[0], xs[0]) == corner


def test_nothing_to_do_is_no_work():
    assert orienter(0, "none") is None


def test_polygon_keeps_candidates_inside_and_gives_the_roi():
    cfg = parse_config({"cameras": [{"roi_polygon": [[100, 100], [300, 100], [100, 300]]}]})
    cam = cfg.cameras[0]
    assert cam.inspection_roi() == (100, 100, 301, 301)
    c_in = Candidate((110, 110, 130, 130), 0.9, "defect", "m")
    c_out = Candidate((260, 260, 280, 280), 0.9, "defect", "m")  # inside the box, outside the triangle
    assert inside(cam.roi_polygon, [c_in, c_out]) == [c_in]
    assert inside(None, [c_in, c_out]) == [c_in, c_out]


@pytest.mark.parametrize("polygon,message", [
    ([[0, 0], [10, 10]], "at least 3 points"),
    ([[0, 0], [4, 0], [0, 4]], "less than 8x8"),
    ([[-1, 0], [40, 0], [0, 40]], ">= 0"),
])
def test_bad_polygons_are_named(polygon, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({"cameras": [{"roi_polygon": polygon}]})


def test_the_line_turns_frames_and_drops_candidates_outside_the_polygon(tmp_path, demo_line):
    from inspector.demo.line import ROI
    from inspector.line.pipeline import Pipeline

    # The demo tile rotated 180 degrees lands at the mirrored rectangle; the polygon covers only
    # its left half, so every candidate kept has its centre there.
    W, H = 640, 480
    x1, y1, x2, y2 = W - ROI[2], H - ROI[3], W - ROI[0], H - ROI[1]
    mid = (x1 + x2) // 2
    cfg = parse_config({"data_dir": str(tmp_path / "data"), "web": {"enabled": False},
                        "cameras": [{"id": "turned", "rotate": 180,
                                     "roi_polygon": [[x1, y1], [mid, y1], [mid, y2], [x1, y2]],
                                     "source": {"type": "folder", "path": str(demo_line.frames_dir)}}]})
    pipe = Pipeline(cfg)
    seen = []
    det = pipe.detector.detect
    pipe.detector.detect = lambda img, roi, *a: seen.append((img.copy(), roi)) or det(img, roi, *a)
    pipe.start()
    try:
        assert pipe.done.wait(60)
        rows = [pipe.store.inspection(r["id"]) for r in pipe.store.feed(limit=100)]
        boxes = [c["box"] for r in rows for c in r["candidates"]]
        unfiltered = sum(len(det(img, roi)) for img, roi in seen)
    finally:
        pipe.stop()
    import cv2

    first = cv2.imread(str(sorted(demo_line.frames_dir.glob("*.png"))[0]))
    assert np.array_equal(seen[0][0], cv2.rotate(first, cv2.ROTATE_180))
    assert seen[0][1] == (x1, y1, mid + 1, y2 + 1)
    assert len(rows) == 12 and all((b[0] + b[2]) / 2 <= mid for b in boxes)
    assert unfiltered > len(boxes)  # the polygon really dropped some
