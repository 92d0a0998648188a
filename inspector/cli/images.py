"""`inspector detect` and `reason`: images through the pre-filter, or one image (or box) to the VLM."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from inspector.cli.common import _detector_for, _fail, _load, _parse_roi


def cmd_detect(args) -> int:
    from inspector.util.image_file import ImageError, read_image
    from inspector.capture.sources.files import list_images

    cfg = _load(args)
    det = _detector_for(cfg)
    roi = _parse_roi(args.roi) if args.roi else None
    failures = 0
    for arg in args.paths:
        p = Path(arg)
        if p.is_dir():
            files = list_images(p)
            if not files:
                print(f"inspector: {p}: folder holds no images", file=sys.stderr)
                failures += 1
        elif p.exists() or p.is_symlink():
            files = [p]  # the reader names what it is if not an image (a FIFO, a symlink loop)
        else:
            print(f"inspector: {p}: no such file or folder", file=sys.stderr)
            failures += 1
            continue
        for f in files:
            try:
                img = read_image(f, cfg.limits.max_image_pixels)
            except ImageError as e:
                print(f"inspector: {e}", file=sys.stderr)
                failures += 1
                continue
            t0 = time.perf_counter()
            try:
                cands = det.detect(img, roi)
            except ValueError as e:
                print(f"inspector: {f}: {e}", file=sys.stderr)
                failures += 1
                continue
            ms = (time.perf_counter() - t0) * 1000
            rec = {"image": str(f), "candidates": [
                {"box": [round(v, 1) for v in c.box], "score": round(c.score, 4), "label": c.label}
                for c in cands], "ms": round(ms, 2)}
            if args.json:
                print(json.dumps(rec), flush=True)
            else:
                print(f"{f}: {len(cands)} candidate(s) in {ms:.1f} ms")
                for c in rec["candidates"]:
                    print(f"  {c['label']} {c['score']:.2f} at {c['box']}")
    return 1 if failures else 0


def _parse_box(text: str, what: str) -> tuple[float, float, float, float]:
    try:
        box = tuple(float(v) for v in text.split(","))
        assert len(box) == 4 and box[0] < box[2] and box[1] < box[3] and min(box) >= 0
    except (ValueError, AssertionError):
        _fail(f"{what} must be x1,y1,x2,y2 (pixels, x1<x2, y1<y2, all >= 0), got {text!r}")
    return box


def cmd_reason(args) -> int:
    from inspector.config import LlamaCppReasonerConfig
    from inspector.cropper import crop_around
    from inspector.util.image_file import ImageError, read_image
    from inspector.messages import Candidate, CropAnswer, Frame
    from inspector.reasoner import ReasonerConfigError, build_reasoner

    cfg = _load(args)
    if args.test_vlm:
        cfg.reasoner = LlamaCppReasonerConfig(type="llama_cpp", test_model=True)
    if cfg.reasoner.type == "none":
        _fail("no VLM configured: set `reasoner` in the config (see README) or use --test-vlm")
    try:
        img = read_image(args.image, cfg.limits.max_image_pixels)
    except ImageError as e:
        _fail(str(e))
    h, w = img.shape[:2]
    box = _parse_box(args.box, "--box") if args.box else (0.0, 0.0, float(w), float(h))
    if box[2] > w or box[3] > h:
        _fail(f"--box {list(box)} reaches outside the {w}x{h} image")
    cam = next((c for c in cfg.cameras if c.id == args.camera), None) if args.camera else cfg.cameras[0]
    if cam is None:
        _fail(f"--camera {args.camera!r} is not in the config (cameras: {[c.id for c in cfg.cameras]})")
    product_name = args.product or cam.product
    if product_name not in {p.name for p in cfg.products}:
        _fail(f"--product {product_name!r} is not in the config")
    try:
        reasoner = build_reasoner(cfg.reasoner, cfg.data_dir)
    except (ReasonerConfigError, ValueError, OSError) as e:
        _fail(f"cannot start the reasoner: {e}")
    try:
        cand = Candidate(box, 1.0, "manual", "cli")
        crop = crop_around(img, cand, 0, padding=cfg.cropper.padding if args.box else 0.0,
                           min_side=cfg.cropper.min_side_px, out_side=cfg.cropper.max_side_px,
                           upscale=False)
        from inspector.capture.camera_calibration import for_camera

        # The image is taken as the line stores frames: already undistorted; only the scale applies.
        frame = Frame(cam.id, 0, img, roi=cam.inspection_roi(), source_name=str(args.image),
                      mm_per_px=for_camera(cfg.calibration_dir, cam)[1])
        rep = reasoner.analyze(crop, cfg.product(product_name), frame)
    finally:
        reasoner.close()
    r1 = lambda b: [round(v, 1) for v in b] if b else None  # noqa: E731
    out = {
        "image": str(args.image), "box": list(box), "answer": rep.answer.value,
        "findings": [{"type": f.defect_type, "severity": f.severity.value,
                      "confidence": round(f.confidence, 3), "box": r1(f.box), "box_mm": r1(f.box_mm),
                      "reason": f.reason, "look": f.look} for f in rep.findings],
        "latency_ms": round(rep.latency_ms, 1), "model_id": rep.model_id,
        "backend": reasoner.backend, "profile": reasoner.profile.name,
        "error": rep.error, "rejected": list(rep.rejected), "raw": rep.raw,
        "looks": [{"look": lk.index, "region": r1(lk.region), "answer": lk.answer.value,
                   "latency_ms": round(lk.latency_ms, 1), "raw": lk.raw, "thinking": lk.thinking,
                   "error": lk.error, "tokens": lk.tokens,
                   "zooms": [{"asked": list(z.asked), "region": r1(z.region), "label": z.label,
                              "thinking": z.thinking, "error": z.error} for z in lk.zooms]}
                  for lk in rep.looks],
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.image}: {rep.answer.value} in {rep.latency_ms:.0f} ms "
              f"({len(rep.looks)} look(s), {reasoner.backend} / {reasoner.profile.name})")
        for f in out["findings"]:
            mm = f" = {f['box_mm']} mm" if f["box_mm"] else ""
            print(f"  {f['type']} {f['severity']} {f['confidence']:.2f} at {f['box']} px{mm}: {f['reason']}")
        for r in rep.rejected:
            print(f"  refused: {r}")
        for lk in rep.looks:
            for n, z in enumerate(lk.zooms, 1):
                shown = f"shown frame region {r1(z.region)} px" if z.region else f"not served: {z.error}"
                print(f"  look {lk.index} zoom {n}: asked {list(z.asked) or '?'}: {shown}")
        print(f"raw answer: {rep.raw}")
    if rep.answer in (CropAnswer.unavailable, CropAnswer.invalid):
        print(f"inspector: no usable answer: {rep.error}", file=sys.stderr)
        return 1
    return 0
