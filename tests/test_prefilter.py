import json
import shutil

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from inspector.config import CropperConfig, DetectorConfig
from inspector.cropper import make_crops
from inspector.demo.defects import hole, mask_box
from inspector.demo.line import ROI
from inspector.prefilter import ModelError, build_detector
from inspector.prefilter.manifest import sha256_of
from inspector.prefilter.metrics import found


def _surface(seed=0, w=320, h=240):
    """A real photographed surface (scikit-image's gravel), as a part would show it."""
    import skimage.data

    g = skimage.data.gravel()[:h, :w].astype(np.float32)
    return np.clip(np.stack([g, g, g], -1) * 0.8 + 30, 0, 255).astype(np.uint8)


def test_finds_a_painted_hole_and_nothing_else_near_it():
    det = build_detector(DetectorConfig())
    img = _surface()
    rng = np.random.default_rng(3)
    mask = hole(img, rng, (0, 0, img.shape[1], img.shape[0]), (60, 60, 60))
    gt = mask_box(mask)
    cands = det.detect(img)
    cx, cy = (gt[0] + gt[2]) / 2, (gt[1] + gt[3]) / 2
    hits = [c for c in cands if c.box[0] <= cx <= c.box[2] and c.box[1] <= cy <= c.box[3]]
    assert hits, f"hole at {gt} not found among {[c.box for c in cands]}"
    assert hits[0].label == "defect" and 0.5 <= hits[0].score <= 1.0


def test_boxes_stay_inside_the_roi(demo_line):
    det = build_detector(DetectorConfig())
    for f in sorted(demo_line.frames_dir.iterdir())[:6]:
        for c in det.detect(cv2.imread(str(f)), ROI):
            assert ROI[0] <= c.box[0] < c.box[2] <= ROI[2]
            assert ROI[1] <= c.box[1] < c.box[3] <= ROI[3]


def test_detector_recall_on_the_demo_line(demo_line):
    """The bundled detector must find most synthetic defects (a measured floor, not a goal)."""
    det = build_detector(DetectorConfig())
    hits = total = 0
    for line in demo_line.ground_truth.read_text().splitlines():
        row = json.loads(line)
        cands = det.detect(cv2.imread(str(demo_line.frames_dir / row["image"])), ROI)
        for d in row["defects"]:
            total += 1
            hits += found(tuple(d["box"]), [c.box for c in cands])
    assert total >= 3
    assert hits / total >= 0.5, f"recall {hits}/{total}"


def _copy_model(tmp_path):
    cfg = DetectorConfig()
    shutil.copy(cfg.model, tmp_path / cfg.model.name)
    shutil.copy(cfg.manifest, tmp_path / "manifest.json")
    return DetectorConfig(model=tmp_path / cfg.model.name, manifest=tmp_path / "manifest.json")


def test_refuses_a_model_that_does_not_match_its_sha256(tmp_path):
    cfg = _copy_model(tmp_path)
    with open(cfg.model, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match="sha256"):
        build_detector(cfg)


def test_refuses_a_missing_model(tmp_path):
    cfg = _copy_model(tmp_path)
    cfg.model.unlink()
    with pytest.raises(ModelError, match="missing"):
        build_detector(cfg)


def test_refuses_a_wrong_shaped_model_naming_the_shapes(tmp_path):
    cfg = _copy_model(tmp_path)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "wrong",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 64, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 64, 64])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), cfg.model)
    doc = json.loads(cfg.manifest.read_text())
    doc["models"][0]["sha256"] = sha256_of(cfg.model)
    cfg.manifest.write_text(json.dumps(doc))
    with pytest.raises(ModelError) as e:
        build_detector(cfg)
    assert "expected one uint8 input [1, H, W, 3]" in str(e.value) and "[1, 1, 64, 64]" in str(e.value)


def test_refuses_garbage_in_the_model_file(tmp_path):
    cfg = _copy_model(tmp_path)
    cfg.model.write_bytes(b"this is not onnx")
    doc = json.loads(cfg.manifest.read_text())
    doc["models"][0]["sha256"] = sha256_of(cfg.model)
    cfg.manifest.write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="onnxruntime cannot load"):
        build_detector(cfg)


def test_crops_map_back_to_the_frame():
    img = np.zeros((480, 640, 3), np.uint8)
    from inspector.messages import Candidate

    cands = [Candidate((600, 10, 639, 40), 0.9, "anomaly", "m"), Candidate((100, 100, 500, 460), 0.7, "anomaly", "m")]
    crops = make_crops(img, cands, CropperConfig(max_side_px=128))
    assert [c.candidate.score for c in crops] == [0.9, 0.7]
    for c in crops:
        h, w = c.image.shape[:2]
        assert max(h, w) <= 128
        back = c.transform.to_frame(c.candidate_box_in_crop)
        assert np.allclose(back, c.candidate.box, atol=1e-6)
        # the whole crop maps to a rectangle inside the frame
        fx1, fy1, fx2, fy2 = c.transform.to_frame((0, 0, w, h))
        assert 0 <= fx1 and 0 <= fy1 and fx2 <= 640 + 1e-6 and fy2 <= 480 + 1e-6
