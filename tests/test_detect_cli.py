"""`inspector detect --json`: a stable contract other tools call."""

import json

import cv2

from tests.conftest import run_cli


def test_json_lines_with_boxes_inside_the_images(demo_line, tmp_path):
    extra = tmp_path / "one.jpg"
    img = cv2.imread(str(sorted(demo_line.frames_dir.iterdir())[0]))
    cv2.imwrite(str(extra), cv2.resize(img, (320, 240)))
    r = run_cli("detect", str(demo_line.frames_dir), str(extra), "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(lines) == len(list(demo_line.frames_dir.iterdir())) + 1
    assert any(rec["candidates"] for rec in lines)
    for rec in lines:
        assert set(rec) == {"image", "candidates", "ms"} and rec["ms"] >= 0
        h, w = cv2.imread(rec["image"]).shape[:2]
        for c in rec["candidates"]:
            assert set(c) == {"box", "score", "label"}
            x1, y1, x2, y2 = c["box"]
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            assert 0 < c["score"] <= 1 and c["label"] == "defect"


def test_roi_limits_the_boxes(demo_line):
    f = sorted(demo_line.frames_dir.iterdir())[3]
    r = run_cli("detect", str(f), "--json", "--roi", "108,84,532,396")
    rec = json.loads(r.stdout)
    for c in rec["candidates"]:
        assert 108 <= c["box"][0] and c["box"][2] <= 532


def test_errors_go_to_stderr_with_nonzero_exit(demo_line, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    good = sorted(demo_line.frames_dir.iterdir())[0]
    r = run_cli("detect", str(bad), str(good), str(tmp_path / "missing.png"), "--json")
    assert r.returncode == 1
    assert "bad.png" in r.stderr and "missing.png" in r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["image"] == str(good)
    r = run_cli("detect", str(good), "--roi", "5,5,1")
    assert r.returncode == 2 and "--roi" in r.stderr


def test_a_bomb_and_other_hostile_files_are_named_one_line_each(demo_line, tmp_path):
    from tests.hostile_images import hostile_folder

    good = sorted(demo_line.frames_dir.iterdir())[0]
    d = tmp_path / "imgs"
    d.mkdir()
    wrong = hostile_folder(d, good)
    r = run_cli("detect", str(d), str(good), str(d / "bomb.png"), str(d / "dir.png"), "--json")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert [json.loads(line)["image"] for line in r.stdout.splitlines()] == [str(good)]
    said = [ln for ln in r.stderr.splitlines() if ln.startswith("inspector: ")]
    for name, why in wrong.items():
        about = [ln for ln in said if f"/{name}:" in ln]
        assert len(about) == (2 if name == "bomb.png" else 1) and why in about[0], (name, said)
    assert any("dir.png: folder holds no images" in ln for ln in said)
    # A configured limit applies: the good frame (640x480) is refused by a smaller one.
    cfg = tmp_path / "small.yaml"
    cfg.write_text("limits: {max_image_pixels: 100000}\n")
    r = run_cli("detect", str(good), "--config", str(cfg))
    assert r.returncode == 1 and "640x480 = 307200 pixels, more than limits.max_image_pixels (100000)" in r.stderr


def test_reason_refuses_a_bomb_in_one_line(tmp_path):
    from tests.hostile_images import bomb_png

    r = run_cli("reason", str(bomb_png(tmp_path / "bomb.png")), "--test-vlm")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"inspector: {tmp_path / 'bomb.png'}: the header says 60000x60000")
