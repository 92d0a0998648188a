"""`inspector bench line`: time from frame to line decision, in one run.

Demo parts (640x480, 40% defective) pass the camera at `fps` parts per second, as a line feeds
them. Three measurements on the same frames:
1. the bare pre-filter: `detect` on each frame, nothing else (the floor);
2. the line with the detector only: capture -> pre-filter -> judge -> line decision;
3. the line with a VLM that takes 2 s per crop and a 300 ms decision deadline (late policy
   reject): flagged parts must still be decided by the deadline, every one of them.
Printed: p50/p99 of capture-to-decision per run, the deadline hit rate (the bar: 100%), how the
flagged parts were decided, and each p50 as a ratio of the bare pre-filter's median.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

DEADLINE_MS = 300
VLM_S = 2.0


def _config(frames_dir: Path, data: Path, fps: float, **extra):
    from inspector.config import parse_config
    from inspector.demo.line import ROI

    return parse_config({"data_dir": str(data), "web": {"enabled": False},
                         "cameras": [{"id": "bench", "roi": list(ROI),
                                      "source": {"type": "folder", "path": str(frames_dir), "fps": fps}}],
                         **extra})


def bare_prefilter(frames_dir: Path, data: Path) -> list[float]:
    import cv2

    from inspector.demo.line import ROI
    from inspector.prefilter import build_detector

    cfg = _config(frames_dir, data, 1.0)
    det = build_detector(cfg.detector)
    imgs = [cv2.imread(str(p)) for p in sorted(frames_dir.glob("*.png"))]
    det.detect(imgs[0], ROI)  # warm-up: the first run allocates
    out = []
    for img in imgs:
        t = time.perf_counter()
        det.detect(img, ROI)
        out.append((time.perf_counter() - t) * 1000)
    return out


def run_line(frames_dir: Path, data: Path, fps: float, vlm_url: str | None = None) -> dict:
    from inspector.line.pipeline import Pipeline

    extra = {}
    if vlm_url:
        extra = {"reasoner": {"type": "openai", "base_url": vlm_url, "server": "llama_cpp_python",
                              "timeout_s": 30, "workers": 4, "queue_size": 64},
                 "products": [{"name": "demo-tile", "decision_deadline_ms": DEADLINE_MS,
                               "late_policy": "reject"}]}
    pipe = Pipeline(_config(frames_dir, data, fps, **extra))
    told = []
    pipe.on_decision.append(told.append)
    pipe.start()
    try:
        if not pipe.done.wait(600):
            raise RuntimeError("the line did not finish within 600 s")
    finally:
        pipe.stop()
    ms = [d.elapsed_ms for d in told]
    by = {}
    for d in told:
        by[d.basis] = by.get(d.basis, 0) + 1
    return {"decisions": len(told), "parts": pipe.cameras["bench"].frames_inspected,
            "p50_ms": round(float(np.percentile(ms, 50)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "max_ms": round(max(ms), 1), "on_time": sum(d.on_time for d in told),
            "by_basis": by, "ng": sum(d.answer.value == "ng" for d in told)}


def main(parts: int = 60, fps: float = 4.0, as_json: bool = False) -> int:
    from inspector.demo.line import generate
    from inspector.reasoner.scripted_server import ScriptedVLM, answer, completion

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        line = generate(d / "demo", parts=parts, seed=11, defect_rate=0.4)
        bare = bare_prefilter(line.frames_dir, d / "bare")
        det = run_line(line.frames_dir, d / "det", fps)
        with ScriptedVLM(lambda body: (200, completion(answer("ok")), VLM_S)) as vlm:
            slow = run_line(line.frames_dir, d / "vlm", fps, vlm.base_url)
    base = statistics.median(bare)
    hit = slow["on_time"] / slow["decisions"] if slow["decisions"] else 0.0
    res = {"bench": "line", "parts": parts, "fps": fps, "deadline_ms": DEADLINE_MS, "vlm_s": VLM_S,
           "prefilter_median_ms": round(base, 2), "detector_only": det, "slow_vlm": slow,
           "deadline_hit_rate": round(hit, 4),
           "detector_only_p50_ratio": round(det["p50_ms"] / base, 2),
           "slow_vlm_p50_ratio": round(slow["p50_ms"] / base, 2)}
    print(f"line bench: {parts} demo parts at {fps:g} parts/s; capture to line decision")
    print(f"  bare pre-filter (detect only)        median {base:7.1f} ms")
    print(f"  line, detector only                  p50 {det['p50_ms']:7.1f} ms  p99 {det['p99_ms']:7.1f} ms  "
          f"(p50 {res['detector_only_p50_ratio']:.2f}x the pre-filter), {det['decisions']} decisions "
          f"for {det['parts']} parts")
    print(f"  line, VLM {VLM_S:g} s, deadline {DEADLINE_MS} ms   p50 {slow['p50_ms']:7.1f} ms  "
          f"p99 {slow['p99_ms']:7.1f} ms  max {slow['max_ms']:.1f} ms, {slow['decisions']} decisions for "
          f"{slow['parts']} parts, by {slow['by_basis']}")
    print(f"  deadline hit rate {hit:.1%} ({slow['on_time']}/{slow['decisions']}; bar 100%)")
    if as_json:
        print(json.dumps(res))
    return 0 if hit == 1.0 and slow["decisions"] == slow["parts"] else 1
