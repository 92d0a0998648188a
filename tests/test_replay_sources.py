"""Replay sources: a folder of images and a video file, read by the real OpenCV."""

import cv2
import numpy as np
import pytest

from inspector.config import parse_config
from inspector.capture.sources import SourceError, open_source


def _video(path, n=9, size=(160, 120)):
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for i in range(n):
        img = np.full((size[1], size[0], 3), 20 * i, np.uint8)
        out.write(img)
    out.release()
    return path


def _source(tmp_path, **src):
    return open_source(parse_config({"cameras": [{"source": src}]}).cameras[0].source, tmp_path)


def test_video_plays_every_frame_in_order_then_ends(tmp_path):
    src = _source(tmp_path, type="video", path=str(_video(tmp_path / "line.avi")))
    frames = []
    while (item := src.read()) is not None:
        frames.append(item)
    src.close()
    assert [name for _, name in frames] == [f"line.avi#{i}" for i in range(1, 10)]
    means = [float(img.mean()) for img, _ in frames]
    assert means == sorted(means) and abs(means[0] - 0) < 3 and abs(means[-1] - 160) < 3


def test_video_loops_when_asked(tmp_path):
    src = _source(tmp_path, type="video", path=str(_video(tmp_path / "line.avi", n=4)), loop=True)
    means = [float(src.read()[0].mean()) for _ in range(10)]
    src.close()
    assert means[4] == pytest.approx(means[0], abs=1) and means[8] == pytest.approx(means[0], abs=1)


def test_folder_is_sorted_and_loops(tmp_path):
    for name, v in (("b.png", 100), ("a.png", 50), ("c.jpg", 150)):
        cv2.imwrite(str(tmp_path / name), np.full((20, 20, 3), v, np.uint8))
    (tmp_path / "notes.txt").write_text("not a frame")
    src = _source(tmp_path, type="folder", path=str(tmp_path), loop=True)
    names = [src.read()[1] for _ in range(5)]
    assert names == ["a.png", "b.png", "c.jpg", "a.png", "b.png"]


def test_unreadable_videos_are_named(tmp_path):
    with pytest.raises(SourceError, match="video file .*nope.avi does not exist"):
        _source(tmp_path, type="video", path=str(tmp_path / "nope.avi"))
    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"RIFF....not a video at all")
    with pytest.raises(SourceError, match="OpenCV cannot open video .*broken.avi"):
        _source(tmp_path, type="video", path=str(bad))


# --- hostile and careless files ----------------------------------------------------------------

def test_a_decompression_bomb_is_skipped_by_its_header_and_the_folder_goes_on(tmp_path, caplog):
    from tests.hostile_images import bomb_png

    d = tmp_path / "imgs"
    d.mkdir()
    for name, v in (("a.png", 50), ("c.png", 150)):
        cv2.imwrite(str(d / name), np.full((20, 20, 3), v, np.uint8))
    bomb_png(d / "b.png")
    src = _source(tmp_path, type="folder", path=str(d))
    names = []
    while (item := src.read()) is not None:
        names.append(item[1])
    assert names == ["a.png", "c.png"] and src.errors == 1
    said = [r.getMessage() for r in caplog.records if "b.png" in r.getMessage()]
    assert len(said) == 1 and "60000x60000" in said[0] and "limits.max_image_pixels" in said[0]


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tiff", ".webp"])
def test_each_format_is_measured_on_its_header_against_the_limit(tmp_path, ext):
    from inspector.util.image_file import ImageError, read_image

    p = tmp_path / f"i{ext}"
    ok, buf = cv2.imencode(ext, np.full((200, 300, 3), 90, np.uint8))
    p.write_bytes(buf.tobytes())
    with pytest.raises(ImageError, match=r"300x200 = 60000 pixels, more than limits.max_image_pixels \(59999\)"):
        read_image(p, max_pixels=59999)
    assert read_image(p, max_pixels=60000).shape == (200, 300, 3)
    assert read_image(p, 60000, cv2.IMREAD_GRAYSCALE).shape == (200, 300)


def test_hostile_files_in_a_folder_are_each_named_and_skipped(tmp_path, caplog):
    from tests.hostile_images import hostile_folder

    d = tmp_path / "imgs"
    d.mkdir()
    cv2.imwrite(str(tmp_path / "good.png"), np.full((30, 40, 3), 99, np.uint8))
    (d / "a_good.png").write_bytes((tmp_path / "good.png").read_bytes())
    (d / "z_good.png").write_bytes((tmp_path / "good.png").read_bytes())
    wrong = hostile_folder(d, tmp_path / "good.png")
    src = _source(tmp_path, type="folder", path=str(d), loop=True)
    # Two passes of a looping replay: the good files each time, each bad one named once.
    names = [src.read()[1] for _ in range(4)]
    assert names == ["a_good.png", "z_good.png"] * 2
    assert src.errors == len(wrong)
    for name, why in wrong.items():
        said = [r.getMessage() for r in caplog.records if f"/{name}" in r.getMessage()]
        assert len(said) == 1 and why in said[0], (name, said)
    assert not any("dir.png" in r.getMessage() for r in caplog.records)  # a folder is not a frame


def test_a_looping_folder_with_nothing_readable_ends_instead_of_spinning(tmp_path):
    from tests.hostile_images import bomb_png

    bomb_png(tmp_path / "only.png")
    src = _source(tmp_path, type="folder", path=str(tmp_path), loop=True)
    assert src.read() is None and src.errors == 1


def _run_folder(tmp_path, folder, **extra):
    import json

    import yaml

    from tests.conftest import run_cli

    cfg = tmp_path / "line.yaml"
    cfg.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "calibration_dir": str(tmp_path / "cal"),
                                   "cameras": [{"id": "cam1", "roi": [108, 84, 532, 396],
                                                "source": {"type": "folder", "path": str(folder)}}],
                                   **extra}))
    r = run_cli("run", "--config", str(cfg), "--exit-when-done", "--no-web")
    lines = r.stdout.strip().splitlines()
    return r, (json.loads(lines[-1]) if lines else None)


def test_a_bomb_among_a_lines_frames_is_counted_and_the_camera_goes_on(tmp_path, demo_line):
    from tests.hostile_images import bomb_png

    d = tmp_path / "imgs"
    d.mkdir()
    frames = sorted(demo_line.frames_dir.glob("*.png"))[:4]
    for f in frames:
        (d / f.name).write_bytes(f.read_bytes())
    bomb_png(d / f"{frames[1].stem}_b.png")  # sorts second of five: files after it must still come
    r, summary = _run_folder(tmp_path, d)
    assert r.returncode == 0, r.stderr
    assert summary["inspected"] == 4 and summary["read_errors"] == 1 and summary["cameras_failed"] == {}
    assert "Traceback" not in r.stderr
    said = [ln for ln in r.stderr.splitlines() if "_b.png" in ln]
    assert len(said) == 1 and "60000x60000" in said[0], r.stderr


def test_a_run_in_which_a_camera_failed_does_not_exit_0(tmp_path, demo_line):
    from inspector.capture.camera_calibration import CameraCalibration, save

    d = tmp_path / "imgs"
    d.mkdir()
    for f in sorted(demo_line.frames_dir.glob("*.png"))[:2]:
        (d / f.name).write_bytes(f.read_bytes())
    # The camera's calibration is for another resolution: its capture thread stops at the first frame.
    save(tmp_path / "cal", CameraCalibration(
        camera="cam1", image_size=(320, 240), camera_matrix=[[300, 0, 160], [0, 300, 120], [0, 0, 1]],
        dist_coeffs=[0, 0, 0, 0, 0], reprojection_error_px=0.1, per_view_error_px={}, board=(9, 6), square_mm=25))
    r, summary = _run_folder(tmp_path, d)
    assert r.returncode == 1, r.stderr
    assert "frame is 640x480, but its calibration is for 320x240" in summary["cameras_failed"]["cam1"]
    assert r.stderr.strip().splitlines()[-1].startswith("inspector: camera cam1 failed:")

    # A camera none of whose files can be read has failed too.
    from tests.hostile_images import bomb_png

    (tmp_path / "cal" / "cam1.yaml").unlink()
    bad = tmp_path / "bad"
    bad.mkdir()
    bomb_png(bad / "a.png")
    (bad / "b.png").write_bytes(b"")
    r, summary = _run_folder(tmp_path, bad)
    assert r.returncode == 1 and summary["read_errors"] == 2, r.stderr
    assert summary["cameras_failed"] == {"cam1": "no readable frame (2 unreadable)"}
    assert "Traceback" not in r.stderr


# --- what a folder does with a file once it is inspected ----------------------------------------

def _names_stored(data):
    import sqlite3

    con = sqlite3.connect(data / "inspector.db")
    try:
        return sorted(n for (n,) in con.execute("SELECT source_name FROM inspections"))
    finally:
        con.close()


def test_a_folder_remembers_what_it_inspected_across_restarts(tmp_path, demo_line):
    d = tmp_path / "incoming"
    d.mkdir()
    frames = sorted(demo_line.frames_dir.glob("*.png"))
    for f in frames[:3]:
        (d / f.name).write_bytes(f.read_bytes())
    r, summary = _run_folder(tmp_path, d)
    assert r.returncode == 0 and summary["inspected"] == 3, r.stderr
    r, summary = _run_folder(tmp_path, d)  # nothing new: nothing inspected again
    assert r.returncode == 0 and summary["inspected"] == 0, r.stderr
    # A new part, and a new part under an old name (other content): both are inspected.
    (d / frames[3].name).write_bytes(frames[3].read_bytes())
    (d / frames[0].name).write_bytes(frames[4].read_bytes())
    r, summary = _run_folder(tmp_path, d)
    assert r.returncode == 0 and summary["inspected"] == 2, r.stderr
    assert _names_stored(tmp_path / "data") == sorted([f.name for f in frames[:4]] + [frames[0].name])
    # after: keep is the old way: every file again at every start.
    r, summary = _run_folder(tmp_path, d, **{"cameras": [{"id": "cam1", "roi": [108, 84, 532, 396], "source": {
        "type": "folder", "path": str(d), "after": "keep"}}]})
    assert r.returncode == 0 and summary["inspected"] == 4, r.stderr


def test_after_move_moves_each_file_once_its_verdict_is_stored(tmp_path, demo_line):
    d, done = tmp_path / "incoming", tmp_path / "done"
    d.mkdir()
    frames = sorted(demo_line.frames_dir.glob("*.png"))[:3]
    for f in frames:
        (d / f.name).write_bytes(f.read_bytes())
    cam = {"id": "cam1", "roi": [108, 84, 532, 396],
           "source": {"type": "folder", "path": str(d), "after": "move", "move_to": str(done)}}
    r, summary = _run_folder(tmp_path, d, cameras=[cam])
    assert r.returncode == 0 and summary["inspected"] == 3, r.stderr
    assert not list(d.iterdir()) and sorted(p.name for p in done.iterdir()) == [f.name for f in frames]
    # The same name arriving again is a new part; the one moved earlier is not overwritten.
    (d / frames[0].name).write_bytes(frames[0].read_bytes())
    r, summary = _run_folder(tmp_path, d, cameras=[cam])
    assert r.returncode == 0 and summary["inspected"] == 1, r.stderr
    assert sorted(p.name for p in done.iterdir()) == sorted([f.name for f in frames] + [f"{frames[0].stem}.1.png"])
    r, summary = _run_folder(tmp_path, d, cameras=[cam])  # an empty incoming folder is nothing new
    assert r.returncode == 0 and summary["inspected"] == 0, r.stderr
    (tmp_path / "a-file").write_text("")
    cam["source"]["move_to"] = str(tmp_path / "a-file" / "done")
    r, _ = _run_folder(tmp_path, d, cameras=[cam])
    assert r.returncode == 2 and "move_to" in r.stderr and "cannot make the folder: Not a directory" in r.stderr


def test_after_needs_its_folder_and_defaults_by_loop():
    from inspector.config import ConfigError

    def src(**s):
        return parse_config({"cameras": [{"source": {"type": "folder", "path": "x", **s}}]}).cameras[0].source

    assert src().after == "remember" and src(loop=True).after == "keep" and src(loop=True, after="remember").after == "remember"
    with pytest.raises(ConfigError, match="after: move needs move_to"):
        src(after="move")
    with pytest.raises(ConfigError, match="move_to is only for after: move"):
        src(move_to="done")
    assert parse_config({}).cameras[0].source.type == "demo"  # the demo line has no `after`: it replays


def test_a_watched_folder_picks_up_new_files_and_skips_what_it_took(tmp_path):
    """loop with after: remember watches the folder: new files come, taken ones do not again."""
    d = tmp_path / "in"
    d.mkdir()
    cv2.imwrite(str(d / "a.png"), np.full((20, 20, 3), 10, np.uint8))
    src = _source(tmp_path, type="folder", path=str(d), loop=True, after="remember")
    import os
    import threading
    import time

    old = time.time() - 10  # settled files (a file changed within the last second may still be written)
    os.utime(d / "a.png", (old, old))
    assert src.read()[1] == "a.png"

    def arrive():
        time.sleep(0.3)
        cv2.imwrite(str(d / "b.png"), np.full((20, 20, 3), 20, np.uint8))
        os.utime(d / "b.png", (old, old))

    threading.Thread(target=arrive).start()
    assert src.read()[1] == "b.png"  # waited for it; a.png was not replayed
    threading.Timer(0.5, src.stop_event.set).start()
    assert src.read() is None  # nothing new until the stop


def test_a_video_whose_frames_exceed_the_limit_fails_its_camera_in_one_line(tmp_path):
    video = _video(tmp_path / "line.avi")  # 160x120 = 19200 pixels a frame
    r, summary = _run_folder(tmp_path, tmp_path, limits={"max_image_pixels": 19199},
                             cameras=[{"id": "cam1", "source": {"type": "video", "path": str(video)}}])
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert summary["inspected"] == 0
    assert "160x120 frames, more than limits.max_image_pixels (19199)" in summary["cameras_failed"]["cam1"]
