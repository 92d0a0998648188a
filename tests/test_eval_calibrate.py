"""`inspector eval` numbers on a tiny set computed by hand, and golden-sample calibration."""

import json

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from inspector.prefilter.calibration import fit_threshold
from tests.conftest import run_cli
from tests.onnx_models import anomalib_map


@pytest.fixture
def anomalib_config(tmp_path):
    m = anomalib_map(tmp_path / "bright.onnx")
    cfg = tmp_path / "line.yaml"
    cfg.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / "data"), "calibration_dir": str(tmp_path / "cal"),
        "detector": {"type": "anomaly_map", "model": str(m), "min_area_px": 1},
        "cameras": [{"id": "c1", "product": "disc", "source": {"type": "folder", "path": str(tmp_path)}}],
        "products": [{"name": "disc"}]}))
    return cfg


def img(spots=()):
    im = np.full((64, 64, 3), 30, np.uint8)
    for (x1, y1, x2, y2, v) in spots:
        im[y1:y2, x1:x2] = v
    return im


def test_eval_numbers_match_a_hand_computation(tmp_path, anomalib_config):
    d = tmp_path / "set"
    d.mkdir()
    # The model's score is the brightest pixel / 255; at threshold 0.5 a bright patch is a candidate.
    cases = {
        "good1.png": (img(), []),                                      # score 0.118, nothing
        "good2.png": (img([(10, 10, 13, 13, 200)]), []),               # score 0.784, 1 false candidate
        "bad1.png": (img([(20, 20, 30, 30, 250)]), [[20, 20, 30, 30]]),  # score 0.980, found
        "bad2.png": (img(), [[40, 40, 50, 50]]),                       # score 0.118, missed
    }
    for name, (im, _) in cases.items():
        cv2.imwrite(str(d / name), im)
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"image": n, "boxes": b}) + "\n" for n, (_, b) in cases.items()))
    png = tmp_path / "pr.png"
    p = run_cli("eval", "--images", str(d), "--labels", str(labels), "--threshold", "0.5",
                "--json", "--pr-curve", str(png), "--config", str(anomalib_config))
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    # AUROC over (bad, good) pairs: (0.98 > 0.118) + (0.98 > 0.784) + tie 0.5 + (0.118 < 0.784) 0 = 2.5/4
    assert r["image_auroc"] == pytest.approx(0.625)
    assert r["defect_recall"] == pytest.approx(0.5) and r["defects_found"] == 1
    # Wilson, 1 of 2 at z=1.96: centre 0.5, half-width 1.96*sqrt(0.25/2 + 3.8416/16)/(1 + 3.8416/2)
    half = 1.96 * (0.125 + 1.96 ** 2 / 16) ** 0.5 / (1 + 1.96 ** 2 / 2)
    assert r["defect_recall_ci95"] == pytest.approx([0.5 - half, 0.5 + half], abs=1e-4)
    assert r["false_candidates_per_good"] == pytest.approx(0.5)
    assert r["sent_to_vlm"] == pytest.approx(0.5) and r["good_sent_to_vlm"] == pytest.approx(0.5)
    assert r["good_sent_to_vlm_ci95"] == pytest.approx([0.5 - half, 0.5 + half], abs=1e-4)  # 1 of 2 too
    assert (r["images"], r["good"], r["defects"]) == (4, 2, 2)
    pr = cv2.imread(str(png))
    assert pr is not None and pr.shape == (480, 640, 3)


def test_eval_reads_demo_ground_truth_and_reports_bad_lines(tmp_path, anomalib_config, demo_line):
    p = run_cli("eval", "--images", str(demo_line.frames_dir), "--labels", str(demo_line.ground_truth),
                "--json", "--pr-curve", str(tmp_path / "pr.png"), "--config", str(anomalib_config))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["images"] == 12
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "a.png", "boxes": [[1, 2, 3]]}\n')
    p = run_cli("eval", "--images", str(tmp_path), "--labels", str(bad), "--config", str(anomalib_config))
    assert p.returncode == 2 and "bad.jsonl line 1" in p.stderr
    # An ROI that does not fit the images: each is named with the reason, then a clear failure.
    p = run_cli("eval", "--images", str(demo_line.frames_dir), "--labels", str(demo_line.ground_truth),
                "--roi", "636,476,900,700", "--pr-curve", str(tmp_path / "p.png"),
                "--config", str(anomalib_config))
    assert p.returncode == 2 and "leaves less than 8x8 pixels" in p.stderr
    assert "no readable image to evaluate" in p.stderr


@given(scores=st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=300),
       target=st.floats(0, 0.5))
def test_fit_threshold_is_the_lowest_meeting_the_target(scores, target):
    thr = fit_threshold(scores, target)
    s = np.array(scores)
    allowed = int(np.floor(target * len(s) + 1e-9))
    assert (s >= thr).sum() <= max(allowed, 0) or allowed >= len(s)
    lower = np.nextafter(thr, -np.inf)
    if allowed < len(s):
        assert (s >= lower).sum() > allowed  # any lower threshold lets one more good part through


def test_calibration_reaches_its_target_and_the_line_uses_it(tmp_path, anomalib_config):
    rng = np.random.default_rng(1)
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    for i in range(100):  # good parts with harmless specks of varying brightness
        x, y = rng.integers(0, 60, 2)
        cv2.imwrite(str(good / f"g{i:03d}.png"), img([(x, y, x + 2, y + 2, int(rng.integers(40, 200)))]))
    for i in range(20):
        x, y = rng.integers(0, 50, 2)
        cv2.imwrite(str(bad / f"b{i:03d}.png"), img([(x, y, x + 8, y + 8, int(rng.integers(190, 256)))]))
    p = run_cli("calibrate", "thresholds", "--product", "disc", "--good", str(good), "--bad", str(bad),
                "--target", "0.05", "--config", str(anomalib_config))
    assert p.returncode == 0, p.stderr
    cal = yaml.safe_load((tmp_path / "cal" / "disc.yaml").read_text())
    assert cal["measured"]["good_images"] == 100
    assert cal["measured"]["false_reject_rate"] <= 0.05
    assert cal["measured"]["false_reject_rate"] >= 0.03  # the lowest such threshold, not a safe high one
    assert f"threshold {cal['threshold']:.6g}" in p.stdout and "false-reject rate" in p.stdout
    assert cal["measured"]["bad_images"] == 20 and cal["measured"]["bad_recall"] > 0.5

    from inspector.config import load_config
    from inspector.prefilter import ModelError, build_detector
    from inspector.prefilter.calibration import product_tuning

    cfg = load_config(anomalib_config)
    det = build_detector(cfg.detector)
    tuning = product_tuning(cfg, det)
    assert tuning["disc"].threshold == cal["threshold"] and tuning["disc"].normal is None
    cfg.detector.threshold = 0.9  # explicit config wins over calibration
    assert product_tuning(cfg, det)["disc"].threshold == 0.9
    cfg.detector.threshold = None
    cal["detector_model"] = "another-model@123"
    (tmp_path / "cal" / "disc.yaml").write_text(yaml.safe_dump(cal))
    with pytest.raises(ModelError, match="was fitted for detector another-model@123.*calibrate thresholds"):
        product_tuning(cfg, det)


@pytest.mark.parametrize("args,message", [
    (["--product", "widget", "--good", "GOOD"], "--product 'widget' is not in the config"),
    (["--product", "disc", "--good", "MISSING"], "--good MISSING: no such folder"),
    (["--product", "disc", "--good", "EMPTY"], "folder holds no images"),
    (["--product", "disc", "--good", "GOOD", "--target", "1.5"], "--target must be a rate in 0..1"),
])
def test_calibrate_bad_input_is_named(tmp_path, anomalib_config, args, message):
    good, empty = tmp_path / "good", tmp_path / "empty"
    good.mkdir()
    empty.mkdir()
    cv2.imwrite(str(good / "g.png"), img())
    subs = {"GOOD": str(good), "EMPTY": str(empty), "MISSING": str(tmp_path / "missing")}
    args = [subs.get(a, a) for a in args]
    message = message.replace("MISSING", subs["MISSING"])
    p = run_cli("calibrate", "thresholds", *args, "--config", str(anomalib_config))
    assert p.returncode == 2 and message in p.stderr, p.stderr
    assert not (tmp_path / "cal").exists(), "a failed calibration must not write a file"


def test_eval_skips_missing_images_by_name(tmp_path, anomalib_config):
    d = tmp_path / "set"
    d.mkdir()
    cv2.imwrite(str(d / "a.png"), img())
    labels = tmp_path / "l.jsonl"
    labels.write_text('{"image": "a.png", "boxes": []}\n{"image": "gone.png", "boxes": []}\n')
    p = run_cli("eval", "--images", str(d), "--labels", str(labels), "--json", "--threshold", "0.5",
                "--pr-curve", str(tmp_path / "p.png"), "--config", str(anomalib_config))
    assert p.returncode == 0, p.stderr
    assert "gone.png: cannot open: No such file or directory (skipped)" in p.stderr
    assert json.loads(p.stdout)["images"] == 1


def test_wilson_interval_edges_and_width():
    from inspector.prefilter.metrics import wilson

    z2 = 1.96 ** 2
    assert wilson(0, 10) == pytest.approx((0.0, z2 / (10 + z2)))  # none found: closed form
    assert wilson(10, 10) == pytest.approx((10 / (10 + z2), 1.0))
    lo, hi = wilson(99, 110)  # gravel's 0.900: the bar 0.95 is inside what it could be
    assert lo < 0.9 < hi and 0.82 < lo < 0.84 and 0.94 < hi < 0.95
    lo4, hi4 = wilson(396, 440)  # 4x the defects: half as wide
    assert (hi4 - lo4) == pytest.approx((hi - lo) / 2, rel=0.1)
    assert all(v != v for v in wilson(0, 0))  # nan


def test_pr_curve_title_stays_inside_the_picture(tmp_path):
    """A long title (model id + surface) is shrunk or shortened, never cut off at the edge."""
    from pathlib import Path

    from inspector.prefilter.evaluate import ImageResult, draw_pr_curve

    results = [ImageResult(Path(f"{i}.png"), [(0, 0, 9, 9)] if i % 2 else [], s, [])
               for i, s in enumerate([0.1, 0.9, 0.3, 0.8, 0.5, 0.4])]
    short, long_ = tmp_path / "short.png", tmp_path / "long.png"
    draw_pr_curve(results, 0.5, short, "x")
    draw_pr_curve(results, 0.5, long_, "default-anomaly@c68cfcb69e16 + normal statistics (4 Gaussians) "
                                        "on held-out tissue, and then some more words " * 2)
    for png in (short, long_):
        top = cv2.imread(str(png))[:40]
        inked = np.flatnonzero((top < 128).any(axis=(0, 2)))
        assert inked.size and inked.max() < 640 - 4  # no ink in the last columns: nothing ran off
    top_long = cv2.imread(str(long_))[:40]
    # The long title still fills most of the width: shrunk to fit, not dropped.
    assert np.flatnonzero((top_long < 128).any(axis=(0, 2))).max() > 400


# --- hostile images, and what a calibration on few parts can say ---------------------------------

def _goods(folder, n, seed=3):
    rng = np.random.default_rng(seed)
    folder.mkdir()
    for i in range(n):  # good parts with harmless specks of varying brightness
        x, y = rng.integers(0, 60, 2)
        cv2.imwrite(str(folder / f"g{i:03d}.png"), img([(x, y, x + 2, y + 2, int(rng.integers(40, 200)))]))
    return folder


def test_calibration_states_its_minimum_and_the_interval_of_its_rate(tmp_path, anomalib_config):
    from inspector.prefilter.calibration import MIN_GOOD_PARTS
    from inspector.prefilter.metrics import wilson

    few = _goods(tmp_path / "few", 3)
    p = run_cli("calibrate", "thresholds", "--product", "disc", "--good", str(few), "--no-statistics",
                "--config", str(anomalib_config))
    assert p.returncode == 2, p.stdout
    assert f"3 good parts are too few to calibrate on: at least {MIN_GOOD_PARTS}" in p.stderr
    assert not (tmp_path / "cal").exists()

    good = _goods(tmp_path / "good", 20)
    p = run_cli("calibrate", "thresholds", "--product", "disc", "--good", str(good), "--no-statistics",
                "--target", "0.05", "--config", str(anomalib_config))
    assert p.returncode == 0, p.stderr
    m = yaml.safe_load((tmp_path / "cal" / "disc.yaml").read_text())["measured"]
    k = round(m["false_reject_rate"] * 20)
    lo, hi = wilson(k, 20)
    assert m["false_reject_ci95"] == pytest.approx([lo, hi])
    assert f"({k} of 20; 95% interval {lo:.2%}-{hi:.2%})" in p.stdout
    # 20 parts cannot show 5%: the note says what could (0 of n, Wilson's upper end <= 5%: n >= 73).
    assert hi > 0.05 and "takes at least 73 good parts" in p.stderr


def test_unreadable_good_images_are_named_as_unreadable(tmp_path, anomalib_config):
    from tests.hostile_images import bomb_png

    bad = tmp_path / "bad"
    bad.mkdir()
    bomb_png(bad / "a.png")
    (bad / "b.png").write_bytes(b"")
    (bad / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n and then nothing")
    p = run_cli("calibrate", "thresholds", "--product", "disc", "--good", str(bad), "--no-statistics",
                "--config", str(anomalib_config))
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    msg = p.stderr.strip().splitlines()[-1]
    assert "none of the 3 good images can be read" in msg and "too few" not in msg
    assert "a.png: the header says 60000x60000" in msg and "b.png: not a readable image (empty file)" in msg
    assert "c.png: not a readable image" in msg
    # Among enough good ones, each unreadable file is named and skipped; the rest calibrate.
    good = _goods(tmp_path / "good", 14)
    for f in bad.iterdir():
        (good / f.name).write_bytes(f.read_bytes())
    p = run_cli("calibrate", "thresholds", "--product", "disc", "--good", str(good), "--no-statistics",
                "--config", str(anomalib_config))
    assert p.returncode == 0, p.stderr
    for name in ("a.png", "b.png", "c.png"):
        assert sum(f"{name}:" in ln and "(skipped)" in ln for ln in p.stderr.splitlines()) == 1, p.stderr
    assert yaml.safe_load((tmp_path / "cal" / "disc.yaml").read_text())["measured"]["good_images"] == 14
    # Bad parts none of which can be read: the threshold stands, the recall is said to be unmeasured.
    p = run_cli("calibrate", "thresholds", "--product", "disc", "--good", str(good), "--bad", str(bad),
                "--no-statistics", "--config", str(anomalib_config))
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert "none of the 3 bad images can be read: no recall measured" in p.stderr
    assert yaml.safe_load((tmp_path / "cal" / "disc.yaml").read_text())["measured"]["bad_images"] == 0


def test_eval_and_camera_calibration_skip_a_bomb_by_name(tmp_path, anomalib_config):
    from tests.hostile_images import bomb_png

    d = tmp_path / "set"
    d.mkdir()
    cv2.imwrite(str(d / "a.png"), img())
    bomb_png(d / "bomb.png")
    labels = tmp_path / "l.jsonl"
    labels.write_text('{"image": "a.png", "boxes": []}\n{"image": "bomb.png", "boxes": []}\n')
    p = run_cli("eval", "--images", str(d), "--labels", str(labels), "--json", "--threshold", "0.5",
                "--pr-curve", str(tmp_path / "p.png"), "--config", str(anomalib_config))
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert "bomb.png: the header says 60000x60000" in p.stderr and json.loads(p.stdout)["images"] == 1
    p = run_cli("calibrate", "camera", "--camera", "c1", "--images", str(d), "--square-mm", "25",
                "--out-dir", str(tmp_path / "cc"), "--config", str(anomalib_config))
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "bomb.png: the header says 60000x60000" in p.stderr
    p = run_cli("calibrate", "camera", "--camera", "c1", "--images", str(d), "--square-mm", "25",
                "--scale", str(d / "bomb.png"), "--out-dir", str(tmp_path / "cc"), "--config", str(anomalib_config))
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr


def test_eval_reports_recall_per_defect_kind(tmp_path, anomalib_config):
    d = tmp_path / "set"
    d.mkdir()
    cv2.imwrite(str(d / "a.png"), img([(20, 20, 30, 30, 250), (40, 40, 44, 44, 250)]))  # both found
    cv2.imwrite(str(d / "b.png"), img())  # its scratch is missed
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"image": "a.png", "boxes": [[20, 20, 30, 30], [40, 40, 44, 44]],
                                  "kinds": ["scratch", "hole"]}) + "\n"
                      + json.dumps({"image": "b.png", "boxes": [[5, 5, 15, 15]], "kinds": ["scratch"]}) + "\n")
    p = run_cli("eval", "--images", str(d), "--labels", str(labels), "--threshold", "0.5", "--json",
                "--pr-curve", str(tmp_path / "pr.png"), "--config", str(anomalib_config))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["per_kind"] == {"hole": [1, 1], "scratch": [1, 2]}
    p = run_cli("eval", "--images", str(d), "--labels", str(labels), "--threshold", "0.5",
                "--pr-curve", str(tmp_path / "pr.png"), "--config", str(anomalib_config))
    assert "scratch" in p.stdout and "0.5000  (1/2)" in p.stdout
    labels.write_text(json.dumps({"image": "a.png", "boxes": [[20, 20, 30, 30]], "kinds": ["scratch", "hole"]}) + "\n")
    p = run_cli("eval", "--images", str(d), "--labels", str(labels), "--config", str(anomalib_config))
    assert p.returncode == 2 and "line 1" in p.stderr and "one name per box" in p.stderr


def test_calibration_cross_validates_its_threshold_and_warns_when_unstable(tmp_path, anomalib_config):
    from inspector.prefilter.calibration import cv_unstable

    rng = np.random.default_rng(3)
    steady, odd = tmp_path / "steady", tmp_path / "odd"
    steady.mkdir()
    odd.mkdir()
    for i in range(24):
        x, y = rng.integers(0, 60, 2)
        cv2.imwrite(str(steady / f"g{i:03d}.png"), img([(x, y, x + 2, y + 2, int(rng.integers(40, 200)))]))
        # Every third part of the odd set is unlike the rest (as a batch from another shift would be):
        # thresholds fitted without them send them all on.
        v = 240 if i % 3 == 0 else int(rng.integers(40, 60))
        cv2.imwrite(str(odd / f"g{i:03d}.png"), img([(x, y, x + 2, y + 2, v)]))
    args = ["--product", "disc", "--no-statistics", "--target", "0.05", "--config", str(anomalib_config)]
    p = run_cli("calibrate", "thresholds", "--good", str(odd), *args)
    assert p.returncode == 0, p.stderr
    m = yaml.safe_load((tmp_path / "cal" / "disc.yaml").read_text())["measured"]
    assert m["false_reject_cv"] == [8, 24] and m["unstable"] and len(m["fold_thresholds"]) == 3
    assert "warning: the fit is unstable" in p.stderr and "sent 8 of 24" in p.stderr
    p = run_cli("calibrate", "thresholds", "--good", str(steady), *args)
    m = yaml.safe_load((tmp_path / "cal" / "disc.yaml").read_text())["measured"]
    assert p.returncode == 0 and not m["unstable"] and "unstable" not in p.stderr
    assert m["false_reject_cv"][1] == 24 and "cross-validated" in p.stdout
    # The rule itself: more than twice what the target allows, and at least two parts more.
    assert not cv_unstable(1, 40, 0.01) and cv_unstable(2, 40, 0.01)
    assert not cv_unstable(4, 40, 0.05) and cv_unstable(5, 40, 0.05) and not cv_unstable(0, 0, 0.05)


def test_eval_on_coco_and_yolo_datasets_matches_the_labels_file(tmp_path, anomalib_config):
    """The same images and boxes as a labels file, a COCO folder and a YOLO folder measure the same."""
    import yaml

    d = tmp_path / "ds"
    (d / "images").mkdir(parents=True)
    cv2.imwrite(str(d / "images" / "a.png"), img([(20, 20, 30, 30, 250), (40, 40, 44, 44, 250)]))
    cv2.imwrite(str(d / "images" / "b.png"), img())  # its scratch is missed
    cv2.imwrite(str(d / "images" / "c.png"), img([(10, 10, 13, 13, 200)]))  # good, a false candidate
    boxes = {"a.png": [([20, 20, 30, 30], "scratch"), ([40, 40, 44, 44], "hole")], "b.png": [([5, 5, 15, 15], "scratch")],
             "c.png": []}
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"image": f"images/{n}", "boxes": [b for b, _ in bs],
                                          "kinds": [k for _, k in bs]}) + "\n" for n, bs in boxes.items()))
    h, w = img().shape[:2]
    names = ["hole", "scratch"]
    coco = {"images": [{"id": i, "file_name": f"images/{n}", "width": w, "height": h} for i, n in enumerate(boxes)],
            "categories": [{"id": k + 1, "name": n} for k, n in enumerate(names)],
            "annotations": [{"id": j, "image_id": i, "category_id": names.index(k) + 1,
                             "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]}
                            for i, bs in enumerate(boxes.values()) for j, (b, k) in enumerate(bs)]}
    (d / "annotations.json").write_text(json.dumps(coco))
    y = tmp_path / "yolo"
    (y / "labels").mkdir(parents=True)
    (y / "images").symlink_to(d / "images")
    (y / "data.yaml").write_text(yaml.safe_dump({"names": names}))
    for n, bs in boxes.items():
        (y / "labels" / f"{n[:-4]}.txt").write_text("".join(
            f"{names.index(k)} {(b[0] + b[2]) / 2 / w} {(b[1] + b[3]) / 2 / h} {(b[2] - b[0]) / w} {(b[3] - b[1]) / h}\n"
            for b, k in bs))
    common = ["--threshold", "0.5", "--json", "--pr-curve", str(tmp_path / "pr.png"), "--config", str(anomalib_config)]
    got = []
    for source in (["--labels", str(labels), "--images", str(d)], ["--dataset", str(d)], ["--dataset", str(y)]):
        p = run_cli("eval", *source, *common)
        assert p.returncode == 0, p.stderr
        r = json.loads(p.stdout)
        got.append((r["per_kind"], r["defect_recall"], r["false_candidates_per_good"], r["images"], r["good"]))
    assert got[0] == got[1] == got[2] and got[0][0] == {"hole": [1, 1], "scratch": [1, 2]}
    assert got[0][3:] == (3, 1)
    (y / "labels" / "a.txt").write_text("0 0.5 0.5\n")
    p = run_cli("eval", "--dataset", str(y), *common)
    assert p.returncode == 2 and "a.txt line 1: expected `class centre_x centre_y width height`" in p.stderr


def test_hostile_datasets_are_one_line_or_skipped_by_name(tmp_path, anomalib_config):
    import yaml

    common = ["--threshold", "0.5", "--pr-curve", str(tmp_path / "pr.png"), "--config", str(anomalib_config)]

    def coco(images, annotations, name="c"):
        d = tmp_path / name
        (d / "images").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / "images" / "a.png"), img())
        (d / "annotations.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                        "categories": [{"id": 1, "name": "scratch"}]}))
        return d
    one = [{"id": 1, "file_name": "images/a.png"}]
    for d, says in [
        (coco(one, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, float("nan"), 5]}], "nan"), "is not a box with an area"),
        (coco([{"id": 1e999, "file_name": "images/a.png"}], [], "inf"), "OverflowError"),
        (coco(one, [{"image_id": 1, "category_id": 1, "bbox": [10 ** 400, 0, 5, 5]}], "huge"), "OverflowError"),
        (coco(one, [{"image_id": 2, "category_id": 1, "bbox": [0, 0, 5, 5]}], "orphan"), "KeyError"),
    ]:
        p = run_cli("eval", "--dataset", str(d), *common)
        assert p.returncode == 2 and "Traceback" not in p.stderr and says in p.stderr, p.stderr
    y = tmp_path / "y"
    (y / "images").mkdir(parents=True)
    (y / "labels").mkdir()
    cv2.imwrite(str(y / "images" / "a.png"), img())
    cv2.imwrite(str(y / "images" / "b.png"), img([(20, 20, 30, 30, 250)]))
    (y / "labels" / "b.txt").write_text("0 0.4 0.4 0.2 0.2\n")
    (y / "data.yaml").write_text("names:\n")
    p = run_cli("eval", "--dataset", str(y), *common)
    assert p.returncode == 2 and "'names' must list the classes, got NoneType" in p.stderr
    (y / "data.yaml").write_text(yaml.safe_dump({"names": ["scratch"]}))
    (y / "labels" / "a.txt").write_bytes(b"\xff\xfe\x00garbage\n")
    p = run_cli("eval", "--dataset", str(y), "--json", *common)
    assert p.returncode == 0 and "a.txt: cannot read: not text (skipped)" in p.stderr, p.stderr
    assert json.loads(p.stdout)["images"] == 1
    (y / "labels" / "b.txt").write_text("0 nan 0.4 0.2 0.2\n")
    p = run_cli("eval", "--dataset", str(y), *common)
    assert p.returncode == 2 and "b.txt line 1" in p.stderr
