"""Replay sources: a folder of images and a video file, read by the real OpenCV."""

import cv2
import numpy as np
import pytest

from inspector.config import parse_config
from inspector.sources import SourceError, open_source


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
