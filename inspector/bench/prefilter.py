"""`inspector bench prefilter`: frames/s of the whole pre-filter stage on 1280x1024 frames against a
bare `session.run` on pre-made input tensors of the same model, in the same run.

The stage is what the pipeline calls per frame: `detector.inspect(frame)` = preprocess (resize,
layout) + session.run + postprocess (threshold, blobs, boxes). The difference to the bare run is our
overhead; the issue's bar is under 25% of the stage's time.

With `--product S` it also times that product's pre-filter as the line runs it (its own model from
`inspector train` when it has one, with its calibrated statistics) against the bundled model with
normal statistics on the same frames, interleaved: issue 24's bar is a ratio of at most 1.5.
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


def _measure(det, imgs, normal, rounds: int) -> tuple[float, float]:
    """Median seconds per frame of (the whole stage, bare session.run of the same output)."""
    tensors = [det.tensor(i)[0] for i in imgs]
    name = det.session.get_inputs()[0].name
    out = [det.map_name if normal is None else det.normal_spec.distance]
    extra = {} if normal is None else normal.feeds(det.normal_spec.inputs)
    det.inspect(imgs[0], normal=normal)  # warm-up
    stage, bare = [], []
    for _ in range(rounds):  # interleaved rounds, so drift hits both cases alike
        t = time.perf_counter()
        for i in imgs:
            det.inspect(i, normal=normal)
        stage.append((time.perf_counter() - t) / len(imgs))
        t = time.perf_counter()
        for x in tensors:
            det.session.run(out, {name: x, **extra})
        bare.append((time.perf_counter() - t) / len(imgs))
    return statistics.median(stage), statistics.median(bare)


def _row(s: float, b: float) -> dict:
    return {"stage_ms": round(s * 1000, 2), "stage_fps": round(1 / s, 1),
            "session_run_ms": round(b * 1000, 2), "session_run_fps": round(1 / b, 1),
            "ratio": round(s / b, 3), "outside_session_run": round(1 - b / s, 3)}


def _print(title: str, r: dict) -> None:
    print(f"  {title}")
    print(f"    whole stage (preprocess + run + postprocess) {r['stage_ms']:8.2f} ms  {r['stage_fps']:7.1f} frames/s")
    print(f"    bare session.run on pre-made tensors        {r['session_run_ms']:8.2f} ms  {r['session_run_fps']:7.1f} frames/s")
    print(f"    ratio stage / bare {r['ratio']:.3f}: {r['outside_session_run']:.1%} of the stage is "
          f"outside session.run")


PRODUCT_BAR = 1.5  # a product's pre-filter against the bundled model with statistics (issue 24)


def _versus(product_det, product_normal, base_det, base_normal, imgs, rounds: int) -> tuple[float, float]:
    """Median seconds per frame of (the product's stage, the bundled stage), rounds interleaved."""
    product_det.inspect(imgs[0], normal=product_normal)
    base_det.inspect(imgs[0], normal=base_normal)
    mine, base = [], []
    for _ in range(rounds):
        for det, normal, into in ((product_det, product_normal, mine), (base_det, base_normal, base)):
            t = time.perf_counter()
            for i in imgs:
                det.inspect(i, normal=normal)
            into.append((time.perf_counter() - t) / len(imgs))
    return statistics.median(mine), statistics.median(base)


def compare_product(cfg, product: str, imgs, rounds: int) -> dict:
    from inspector.prefilter import build_detector
    from inspector.prefilter.calibration import load_for
    from inspector.prefilter.normal import fit_on
    from inspector.prefilter.product_model import detector_for

    from inspector.config import DetectorConfig

    base = build_detector(DetectorConfig())  # today's bundled model, whatever the config says
    base_normal = fit_on(base, imgs, None)
    det = detector_for(cfg, product)
    tuning = load_for(cfg.calibration_dir, product, det)
    normal = tuning.normal if tuning else None
    mine, theirs = _versus(det, normal, base, base_normal, imgs, rounds)
    return {"product": product, "model": det.model_id, "calibrated": tuning is not None,
            "normal_statistics": normal is not None, "stage_ms": round(mine * 1000, 2),
            "bundled_stage_ms": round(theirs * 1000, 2), "ratio": round(mine / theirs, 3), "bar": PRODUCT_BAR,
            "over_bar": mine / theirs > PRODUCT_BAR}


def main(detector_cfg, frames: int = 20, as_json: bool = False, rounds: int = 5, cfg=None,
         product: str | None = None) -> int:
    from inspector.prefilter import build_detector

    det = build_detector(detector_cfg)
    imgs = globals()["frames"](max(4, frames))
    rss0 = _peak_mib()
    res = {"bench": "prefilter", "model": det.model_id, "frame": [W, H], "frames": len(imgs),
           "rounds": rounds, "input": list(det.tensor(imgs[0])[0].shape),
           **_row(*_measure(det, imgs, None, rounds))}
    print(f"prefilter bench: {det.model_id}, {W}x{H} frames ({len(imgs)} distinct, median of "
          f"{rounds} rounds), model input {res['input']}")
    _print("the model's map", res)
    if det.normal_spec is not None:
        # A product calibrated with normal statistics: the distance map is what runs per frame.
        from inspector.prefilter.normal import fit_on

        res["normal_statistics"] = _row(*_measure(det, imgs, fit_on(det, imgs, None), rounds))
        _print("with a product's normal statistics (distance from normal)", res["normal_statistics"])
    if product:
        r = res["product"] = compare_product(cfg, product, imgs, rounds)
        what = "its own model" if r["model"].startswith(f"{product}-anomaly@") else "the shared model"
        print(f"  product {product}: {what} {r['model']}"
              f"{' with its normal statistics' if r['normal_statistics'] else ''}"
              f"{'' if r['calibrated'] else ' (not calibrated: the model map)'}")
        print(f"    {r['stage_ms']:8.2f} ms per frame against {r['bundled_stage_ms']:.2f} ms for the bundled model with "
              f"statistics on the same frames: ratio {r['ratio']:.3f} (bar {PRODUCT_BAR}"
              f"{', OVER' if r['over_bar'] else ''})")
    res.update(peak_rss_mib=round(_peak_mib(), 1), rss_before_runs_mib=round(rss0, 1))
    print(f"  peak memory (max RSS) {res['peak_rss_mib']:.0f} MiB")
    if as_json:
        print(json.dumps(res))
    return 0
