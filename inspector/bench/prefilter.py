"""`inspector bench prefilter`: frames/s of the whole pre-filter stage on 1280x1024 frames against a
bare `session.run` on pre-made input tensors of the same model, in the same run.

The stage is what the pipeline calls per frame: `detector.inspect(frame)` = preprocess (resize,
layout) + session.run + postprocess (threshold, blobs, boxes). The difference to the bare run is our
overhead; the issue's bar is under 25% of the stage's time.
"""

from __future__ import annotations

import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

W, H = 1280, 1024


def frames(n: int) -> list[np.ndarray]:
    """Demo-line parts (with defects) upscaled to 1280x1024, as a higher-resolution camera sees them."""
    from inspector.demo.line import generate

    with tempfile.TemporaryDirectory() as d:
        line = generate(Path(d), parts=n, seed=99, defect_rate=0.5)
        imgs = [cv2.imread(str(p)) for p in sorted(line.frames_dir.glob("*.png"))]
    return [cv2.resize(i, (W, H), interpolation=cv2.INTER_LINEAR) for i in imgs]


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(detector_cfg, frames: int = 20, as_json: bool = False, rounds: int = 5) -> int:
    from inspector.prefilter import build_detector

    det = build_detector(detector_cfg)
    imgs = globals()["frames"](max(4, frames))
    rss0 = _peak_mib()
    tensors = [det.tensor(i)[0] for i in imgs]
    sess, name = det.session, det.session.get_inputs()[0].name
    out = [det.session.get_outputs()[0].name]
    det.inspect(imgs[0])  # warm-up
    stage, bare = [], []
    for _ in range(rounds):  # interleaved rounds, so drift hits both cases alike
        t = time.perf_counter()
        for i in imgs:
            det.inspect(i)
        stage.append((time.perf_counter() - t) / len(imgs))
        t = time.perf_counter()
        for x in tensors:
            sess.run(out, {name: x})
        bare.append((time.perf_counter() - t) / len(imgs))
    s, b = statistics.median(stage), statistics.median(bare)
    res = {"bench": "prefilter", "model": det.model_id, "frame": [W, H], "frames": len(imgs),
           "rounds": rounds, "input": list(tensors[0].shape),
           "stage_ms": round(s * 1000, 2), "stage_fps": round(1 / s, 1),
           "session_run_ms": round(b * 1000, 2), "session_run_fps": round(1 / b, 1),
           "ratio": round(s / b, 3), "outside_session_run": round(1 - b / s, 3),
           "peak_rss_mib": round(_peak_mib(), 1), "rss_before_runs_mib": round(rss0, 1)}
    print(f"prefilter bench: {det.model_id}, {W}x{H} frames ({len(imgs)} distinct, median of "
          f"{rounds} rounds), model input {res['input']}")
    print(f"  whole stage (preprocess + run + postprocess) {res['stage_ms']:8.2f} ms  {res['stage_fps']:7.1f} frames/s")
    print(f"  bare session.run on pre-made tensors        {res['session_run_ms']:8.2f} ms  {res['session_run_fps']:7.1f} frames/s")
    print(f"  ratio stage / bare {res['ratio']:.3f}: {res['outside_session_run']:.1%} of the stage is "
          f"outside session.run")
    print(f"  peak memory (max RSS) {res['peak_rss_mib']:.0f} MiB")
    if as_json:
        print(json.dumps(res))
    return 0
