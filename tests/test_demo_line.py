import hashlib
import json
import time

import cv2

from inspector.demo.line import FRAME_H, FRAME_W, ROI, generate


def _digest(line):
    h = hashlib.sha256()
    for f in sorted(line.frames_dir.iterdir()):
        h.update(f.read_bytes())
    h.update(line.ground_truth.read_bytes())
    return h.hexdigest()


def test_reproducible_from_seed(tmp_path):
    t0 = time.perf_counter()
    a = generate(tmp_path / "a", parts=10, seed=11)
    elapsed = time.perf_counter() - t0
    b = generate(tmp_path / "b", parts=10, seed=11)
    c = generate(tmp_path / "c", parts=10, seed=12)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)
    assert elapsed < 30, "the demo line must generate in well under 30 s"


def test_ground_truth_matches_frames(demo_line):
    rows = [json.loads(line) for line in demo_line.ground_truth.read_text().splitlines()]
    frames = sorted(p.name for p in demo_line.frames_dir.iterdir())
    assert [r["image"] for r in rows] == frames
    kinds = set()
    for r in rows:
        img = cv2.imread(str(demo_line.frames_dir / r["image"]))
        assert img.shape == (FRAME_H, FRAME_W, 3)
        for d in r["defects"]:
            x1, y1, x2, y2 = d["box"]
            assert 0 <= x1 < x2 <= FRAME_W and 0 <= y1 < y2 <= FRAME_H
            kinds.add(d["type"])
    assert any(r["defects"] for r in rows) and any(not r["defects"] for r in rows)
    assert kinds, "some parts must carry defects"


def test_regenerates_when_incomplete(tmp_path):
    line = generate(tmp_path / "l", parts=3, seed=1)
    (line.frames_dir.parent / "line.json").unlink()  # as if interrupted before completion
    first = sorted(p.name for p in line.frames_dir.iterdir())
    line2 = generate(tmp_path / "l", parts=3, seed=1)
    assert sorted(p.name for p in line2.frames_dir.iterdir()) == first
    assert line2.roi == ROI
