"""`inspector bench loop`: the camera loop on a generated 1280x1024 video, in one run.

1. bare: a `cv2.VideoCapture.read()` loop over the file (the ceiling).
2. capture: our capture worker alone (read, trigger, frame, buffer) over the same file.
3. line: the whole line with the pre-filter (frames judged per second, replay `block` policy),
   then the same as a live camera runs (`latest` policy: capture never waits, drops counted).
4. slow VLM: the live run again with a VLM that takes 2 s per crop (a loopback server that
   waits): the capture rate should not move against the live run, no crop may be lost (a crop
   the VLM cannot take now goes to the disk backlog), and the VLM queue depth is reported.
The bar: capture >= 0.9x bare.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import cv2

W, H = 1280, 1024


def make_video(path: Path, frames: int) -> Path:
    from inspector.demo.line import generate

    with tempfile.TemporaryDirectory() as d:
        line = generate(Path(d), parts=min(frames, 24), seed=11, defect_rate=0.4)
        imgs = [cv2.resize(cv2.imread(str(p)), (W, H)) for p in sorted(line.frames_dir.glob("*.png"))]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (W, H))
    if not out.isOpened():
        raise RuntimeError("OpenCV cannot write an MJPG video here")
    for i in range(frames):
        out.write(imgs[i % len(imgs)])
    out.release()
    return path


def bare(path: Path) -> float:
    cap = cv2.VideoCapture(str(path))
    n, t = 0, time.perf_counter()
    while cap.read()[0]:
        n += 1
    cap.release()
    return n / (time.perf_counter() - t)


def _config(path: Path, data: Path, **extra):
    from inspector.config import parse_config

    return parse_config({"data_dir": str(data), "web": {"enabled": False},
                         "cameras": [{"id": "bench", "roi": [160, 128, 1120, 896],
                                      "source": {"type": "video", "path": str(path)}, **extra.pop("camera", {})}],
                         **extra})


def capture_only(path: Path, data: Path) -> float:
    """Our capture worker into a `latest` buffer nobody drains (so it never waits)."""
    from inspector.line.pipeline import Pipeline

    pipe = Pipeline(_config(path, data, camera={"buffer": {"policy": "latest"}}))
    try:
        t = time.perf_counter()
        pipe._capture(pipe.cfg.cameras[0])  # the same function the capture thread runs
        dt = time.perf_counter() - t
        return pipe.cameras["bench"].frames_in / dt
    finally:
        pipe.stop()


def whole_line(path: Path, data: Path, vlm_url: str | None = None, policy: str = "block") -> dict:
    from inspector.line.pipeline import Pipeline

    extra = {"camera": {"buffer": {"policy": policy}}}
    if vlm_url:
        extra["reasoner"] = {"type": "openai", "base_url": vlm_url, "server": "llama_cpp_python",
                             "timeout_s": 30, "queue_size": 2, "workers": 1}
    pipe = Pipeline(_config(path, data, **extra))
    depth = []
    t = time.perf_counter()
    pipe.start()
    try:
        while pipe.cameras["bench"].state not in ("exhausted", "failed"):
            depth.append(pipe.status().vlm_queue)
            time.sleep(0.05)
        capture_s = time.perf_counter() - t
        while not pipe.done.wait(0.05):  # every frame judged, every crop answered or kept
            depth.append(pipe.status().vlm_queue)
        st = pipe.status()
        cam = st.cameras[0]
        line_s = time.perf_counter() - t
    finally:
        pipe.stop()
    return {"capture_fps": round(cam.frames_in / capture_s, 1),
            "judged_fps": round(cam.frames_inspected / line_s, 1),
            "frames_in": cam.frames_in, "frames_inspected": cam.frames_inspected,
            "dropped": cam.dropped, "vlm_queue_max": max(depth, default=0),
            "vlm_queue_median": statistics.median(depth) if depth else 0,
            "vlm_answered": st.vlm_crops, "vlm_backlog": st.vlm_backlog,
            "vlm_overflow": st.vlm_overflow, "candidates": st.candidates,
            "latency_p50_ms": cam.latency_p50_ms, "latency_p95_ms": cam.latency_p95_ms}


def main(frames: int = 200, as_json: bool = False, rounds: int = 3) -> int:
    from inspector.reasoner.scripted_server import ScriptedVLM, answer, completion

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        video = make_video(d / "line.avi", frames)
        b, c = [], []
        for r in range(rounds):  # interleaved, so drift hits both alike
            b.append(bare(video))
            c.append(capture_only(video, d / f"cap{r}"))
        line = whole_line(video, d / "line")
        # As a live camera runs (`latest`): the baseline for the slow-VLM run's capture rate.
        live = whole_line(video, d / "live", policy="latest")
        with ScriptedVLM(lambda body: (200, completion(answer("ok")), 2.0)) as vlm:
            slow = whole_line(video, d / "slow", vlm.base_url, policy="latest")
    res = {"bench": "loop", "frame": [W, H], "frames": frames, "rounds": rounds,
           "bare_read_fps": round(statistics.median(b), 1), "capture_fps": round(statistics.median(c), 1),
           "capture_ratio": round(statistics.median(c) / statistics.median(b), 3),
           "line": line, "live": live, "slow_vlm": slow,
           "slow_vlm_capture_ratio": round(slow["capture_fps"] / live["capture_fps"], 3)}
    print(f"loop bench: {frames} frames of {W}x{H} MJPG video, medians of {rounds} rounds")
    print(f"  bare cv2.VideoCapture.read() loop   {res['bare_read_fps']:8.1f} frames/s")
    print(f"  our capture worker                  {res['capture_fps']:8.1f} frames/s  "
          f"ratio {res['capture_ratio']:.3f} (bar >= 0.9)")
    print(f"  whole line with the pre-filter      {line['judged_fps']:8.1f} frames judged/s "
          f"(capture {line['capture_fps']:.1f}/s, p50 {line['latency_p50_ms']} ms, p95 {line['latency_p95_ms']} ms)")
    print(f"  as a live camera (`latest` buffer)  capture {live['capture_fps']:.1f} frames/s, "
          f"{live['frames_inspected']} judged, {live['dropped']} dropped")
    print(f"  same, VLM taking 2 s per crop       capture {slow['capture_fps']:.1f} frames/s "
          f"(ratio to the run above {res['slow_vlm_capture_ratio']:.3f}), {slow['frames_inspected']} judged, "
          f"{slow['dropped']} dropped")
    print(f"    crops: {slow['vlm_answered']} answered, {slow['vlm_backlog']} kept in the disk backlog, "
          f"{slow['vlm_overflow']} frames whose crops overflowed the VLM queue; queue depth max "
          f"{slow['vlm_queue_max']}, median {slow['vlm_queue_median']}")
    if as_json:
        print(json.dumps(res))
    return 0
