"""Detector plugins against small ONNX models built here: Ultralytics YOLO heads, anomalib maps."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.config import parse_config
from inspector.prefilter import ModelError, build_detector
from inspector.prefilter.yolo import letterbox
from tests.onnx_models import anomalib_map, identity, yolo_head


def det_cfg(**d):
    return parse_config({"detector": d}).detector


# --- yolo --------------------------------------------------------------------------------------

def preds(*rows, nc=2):
    """rows: (cx, cy, w, h, class, score) in 64x64 input pixels -> [4+nc, N]."""
    out = np.zeros((4 + nc, len(rows)), np.float32)
    for j, (cx, cy, w, h, c, s) in enumerate(rows):
        out[:4, j] = (cx, cy, w, h)
        out[4 + c, j] = s
    return out


@pytest.fixture
def labels_file(tmp_path):
    p = tmp_path / "labels.txt"
    p.write_text("scratch\ndent\n")
    return p


def test_yolo_nms_is_class_aware_and_boxes_map_back(tmp_path, labels_file):
    m = yolo_head(tmp_path / "y.onnx", preds(
        (32, 32, 20, 10, 0, 0.9),   # scratch
        (33, 32, 20, 10, 0, 0.8),   # the same scratch again: suppressed
        (32, 33, 20, 10, 1, 0.7),   # a dent at the same place: kept (other class)
        (10, 50, 6, 6, 1, 0.2),     # below the threshold
    ))
    det = build_detector(det_cfg(type="yolo", model=str(m), labels=str(labels_file)))
    # A 200x100 image letterboxed into 64x64: scale 0.32, 16 px of padding above and below.
    cands = det.detect(np.zeros((100, 200, 3), np.uint8))
    assert [(c.label, round(c.score, 2)) for c in cands] == [("scratch", 0.9), ("dent", 0.7)]
    s, pad = 64 / 200, 16
    assert cands[0].box == pytest.approx(((22) / s, (27 - pad) / s, (42) / s, (37 - pad) / s), abs=1e-3)


def test_yolo_per_class_thresholds_and_roi_offset(tmp_path, labels_file):
    m = yolo_head(tmp_path / "y.onnx", preds((16, 16, 8, 8, 0, 0.5), (48, 48, 8, 8, 1, 0.5)))
    det = build_detector(det_cfg(type="yolo", model=str(m), labels=str(labels_file),
                                 threshold=0.3, class_thresholds={"scratch": 0.6}))
    img = np.zeros((300, 300, 3), np.uint8)
    (c,) = det.detect(img, roi=(100, 100, 164, 164))  # 64x64 ROI: scale 1, no padding
    assert c.label == "dent" and c.box == pytest.approx((144, 144, 152, 152))


def test_yolo_labels_from_ultralytics_metadata(tmp_path):
    m = yolo_head(tmp_path / "y.onnx", preds((32, 32, 8, 8, 1, 0.9)), names=["crack", "hole"])
    (c,) = build_detector(det_cfg(type="yolo", model=str(m))).detect(np.zeros((64, 64, 3), np.uint8))
    assert c.label == "hole"


@pytest.mark.parametrize("problem,message", [
    ("labels", "expected output [1, 7, N] (4 box values + 3 classes from the labels), got output0 float[1, 6, 1]"),
    ("shape", "expected one input [1, 3, S, S] of fixed size"),
    ("class", "detector.class_thresholds: unknown class(es) ['rust']"),
    ("nolabels", "no class names in the model's metadata; give detector.labels"),
])
def test_yolo_misfit_is_refused_at_start(tmp_path, problem, message):
    labels = tmp_path / "l.txt"
    labels.write_text("a\nb\nc\n" if problem == "labels" else "a\nb\n")
    if problem == "shape":
        m = identity(tmp_path / "m.onnx", [1, 3, "h", "w"])
    else:
        m = yolo_head(tmp_path / "m.onnx", preds((1, 1, 1, 1, 0, 0.1)))
    kw = {"type": "yolo", "model": str(m)}
    if problem != "nolabels":
        kw["labels"] = str(labels)
    if problem == "class":
        kw["class_thresholds"] = {"rust": 0.5}
    with pytest.raises(ModelError) as e:
        build_detector(det_cfg(**kw))
    assert message in str(e.value), str(e.value)


@given(iw=st.integers(8, 900), ih=st.integers(8, 900), data=st.data())
@settings(max_examples=60, deadline=None)
def test_letterbox_maps_boxes_back_to_original_pixels(iw, ih, data):
    """Paint a box, letterbox the image, find the box in the letterboxed image, map it back."""
    x1 = data.draw(st.integers(0, iw - 4))
    y1 = data.draw(st.integers(0, ih - 4))
    x2 = data.draw(st.integers(x1 + 4, iw))
    y2 = data.draw(st.integers(y1 + 4, ih))
    img = np.zeros((ih, iw, 3), np.uint8)
    img[y1:y2, x1:x2] = 255
    canvas, lb = letterbox(img, (320, 320))
    ys, xs = np.nonzero(canvas[..., 0] > 127)
    if len(xs) == 0:
        return  # the box shrank below one pixel
    seen = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], float)
    back = lb.to_image(seen)[0]
    tol = 1.5 / min(lb.scale_x, lb.scale_y) + 1  # one letterboxed pixel, in original pixels
    assert back == pytest.approx([x1, y1, x2, y2], abs=tol)
    assert lb.to_image(lb.to_input(np.array([[x1, y1, x2, y2]], float)))[0] == pytest.approx([x1, y1, x2, y2])


# --- anomaly_map (anomalib format) ---------------------------------------------------------------

def test_anomalib_map_finds_the_bright_square_in_frame_pixels(tmp_path):
    m = anomalib_map(tmp_path / "a.onnx")
    det = build_detector(det_cfg(type="anomaly_map", model=str(m), threshold=0.5, min_area_px=1))
    assert det.feed.size == (64, 64)  # read from the model, not configured
    img = np.full((300, 500, 3), 30, np.uint8)
    img[150:200, 300:400] = 250  # inside the ROI below
    roi = (100, 100, 420, 260)  # 320 x 160, fed to the model as 64 x 64 (5x and 2.5x)
    ins = det.inspect(img, roi)
    (c,) = ins.candidates
    assert c.label == "anomaly" and ins.score == pytest.approx(250 / 255, abs=0.01)
    assert c.box == pytest.approx((300, 150, 400, 200), abs=6)  # within a map cell (5 x 2.5 px)


def test_weaker_regions_are_boxed_only_on_a_part_that_is_already_flagged(tmp_path):
    m = anomalib_map(tmp_path / "a.onnx")
    img = np.full((320, 320, 3), 30, np.uint8)
    img[40:100, 40:100] = 120  # map 0.47: under the 0.5 threshold, over 0.9 x 0.5
    img[200:260, 200:260] = 60  # map 0.24: under both
    det = build_detector(det_cfg(type="anomaly_map", model=str(m), threshold=0.5, min_area_px=1))
    assert det.inspect(img).candidates == []  # nothing reaches the threshold: the part passes

    img[200:260, 40:100] = 250  # a clear defect: now the part goes to the VLM
    cands = det.inspect(img).candidates
    assert [c.box for c in cands] == [pytest.approx((40, 200, 100, 260), abs=5),
                                      pytest.approx((40, 40, 100, 100), abs=5)]
    assert cands[0].score > 0.5 > cands[1].score == pytest.approx(0.47 / 0.97, abs=0.01)

    only = build_detector(det_cfg(type="anomaly_map", model=str(m), threshold=0.5, min_area_px=1,
                                  secondary=1.0))
    assert [c.box for c in only.inspect(img).candidates] == [pytest.approx((40, 200, 100, 260), abs=5)]


@pytest.mark.parametrize("kind,shape,message", [
    ("anomaly_map", [1, 4, 64, 64], "expected one float32 input [1, 3, H, W], got x float[1, 4, 64, 64]"),
    ("anomaly_map", [1, 3, 64], "expected one float32 input [1, 3, H, W], got x float[1, 3, 64]"),
])
def test_anomalib_misfit_is_refused(tmp_path, kind, shape, message):
    m = identity(tmp_path / "m.onnx", shape)
    with pytest.raises(ModelError) as e:
        build_detector(det_cfg(type=kind, model=str(m)))
    assert message in str(e.value), str(e.value)


def test_map_output_must_be_a_map(tmp_path):
    m = identity(tmp_path / "m.onnx", [1, 3, 64, 64], [1, 3, 64, 64])
    with pytest.raises(ModelError, match=r"expected an anomaly map output \[1, 1, h, w\].*y float\[1, 3, 64, 64\]"):
        build_detector(det_cfg(type="anomaly_map", model=str(m)))


def test_sha256_pin_and_missing_file(tmp_path):
    m = anomalib_map(tmp_path / "a.onnx")
    with pytest.raises(ModelError, match="detector.sha256 pins 0000"):
        build_detector(det_cfg(type="anomaly_map", model=str(m), sha256="0" * 64))
    with pytest.raises(ModelError, match="detector.model: file .*nope.onnx does not exist"):
        build_detector(det_cfg(type="yolo", model=str(tmp_path / "nope.onnx")))
    garbage = tmp_path / "g.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="onnxruntime cannot load"):
        build_detector(det_cfg(type="anomaly_map", model=str(garbage)))


def test_bench_prefilter_prints_stage_and_bare_rates():
    import json

    from tests.conftest import run_cli

    p = run_cli("bench", "prefilter", "--frames", "4", "--json")
    assert p.returncode == 0, p.stderr
    assert "bare session.run on pre-made tensors" in p.stdout
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["frame"] == [1280, 1024] and r["frames"] == 4
    assert r["stage_fps"] == pytest.approx(1000 / r["stage_ms"], rel=0.01)
    assert r["session_run_fps"] == pytest.approx(1000 / r["session_run_ms"], rel=0.01)
    assert r["ratio"] == pytest.approx(r["stage_ms"] / r["session_run_ms"], rel=0.01)
    assert r["outside_session_run"] == pytest.approx(1 - 1 / r["ratio"], abs=0.002)
    assert r["peak_rss_mib"] > 0
