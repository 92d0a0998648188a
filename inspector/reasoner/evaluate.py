"""`inspector eval vlm`: VLM configs side by side on the same labelled crops, in the same order.

Crops: one around each labelled defect (a positive, its type and box known) and one around the
middle of each defect-free image (a negative), cut as the line cuts them. Each reasoner config asks
about every crop with the frame it came from (so closer looks and zooms work as on the line).
Numbers per config: defect recall and precision, type accuracy, box IoU (mean, share >= 0.5), answers
validation refused, VLM unavailable, zoom rounds per crop, latency p50/p95, and the share of crops
answered within the product's decision deadline, and generated tokens per second of answer time.

Negatives from operators' reviews (`--from-reviews`) are asked about where the machine raised its
false alarm, not the middle of the part: that is where a VLM has to be right.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspector.messages import Candidate, Crop, CropAnswer, Frame
from inspector.prefilter.evaluate import progress
from inspector.prefilter.metrics import iou


@dataclass
class Case:
    name: str
    path: Path  # the frame, read again when asked about: a plant's reviews are too many frames to hold
    crop: Crop
    box: tuple | None  # the labelled defect in frame pixels; None: a defect-free part
    kind: str | None


def cases(items, cropper, max_pixels: int) -> tuple[list[Case], list[str]]:
    """(the crops to ask about, the images that could not be read and why)."""
    from inspector.cropper import crop_around
    from inspector.util.image_file import ImageError, read_image

    out: list[Case] = []
    skipped: list[str] = []
    sizes = [(b[2] - b[0], b[3] - b[1]) for it in items for b in it.boxes]
    side = float(statistics.median([max(s) for s in sizes])) if sizes else 96.0
    for it in items:
        try:
            img = read_image(it.path, max_pixels)
        except ImageError as e:
            skipped.append(str(e))
            continue
        h, w = img.shape[:2]
        if it.boxes:
            regions, kinds = list(it.boxes), it.kinds or [None] * len(it.boxes)
        else:  # a negative: where the machine raised its false alarm, else the middle of the part
            regions = [tuple(b) for b in it.probes] or [((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)]
            kinds = [None] * len(regions)
        for i, (b, k) in enumerate(zip(regions, kinds)):
            b = (max(0.0, b[0]), max(0.0, b[1]), min(float(w), b[2]), min(float(h), b[3]))
            if b[2] - b[0] < 1 or b[3] - b[1] < 1:
                skipped.append(f"{it.path}: box {i} lies outside the {w}x{h} image")
                continue
            crop = crop_around(img, Candidate(b, 1.0, "label", "eval"), i, padding=cropper.padding,
                               min_side=cropper.min_side_px, out_side=cropper.max_side_px, upscale=False)
            out.append(Case(f"{it.path.name}#{i}", it.path, crop, b if it.boxes else None, k))
    return out, skipped


def evaluate(reasoner, cs: list[Case], product, max_pixels: int, what: str = "eval vlm") -> dict:
    """One config's numbers; an image that can no longer be read raises ImageError."""
    from inspector.util.image_file import read_image

    tp = fp = fn = tn = unavailable = invalid = refused = 0
    typed = typed_right = 0
    ious, lat, zooms, on_time = [], [], [], []
    tokens = counted_s = 0.0
    deadline = product.decision_deadline_ms
    frame_of = (None, None)  # the crops of one image come one after another: it is read once
    for i, c in enumerate(cs, 1):
        if frame_of[0] != c.path:
            frame_of = (c.path, read_image(c.path, max_pixels))
        rep = reasoner.analyze(c.crop, product, Frame("eval", 1, frame_of[1]))
        progress(i, len(cs), what)
        lat.append(rep.latency_ms)
        zooms.append(sum(len(lk.zoomed) for lk in rep.looks))  # regions shown; refused calls are not zooms
        n = sum(lk.tokens for lk in rep.looks)
        if n:  # only answers whose server counted tokens (a down VLM counts none)
            tokens += n
            counted_s += rep.latency_ms / 1000.0
        refused += len(rep.rejected)
        if deadline is not None:
            on_time.append(rep.latency_ms <= deadline)
        if rep.answer is CropAnswer.unavailable:
            unavailable += 1
        if rep.answer is CropAnswer.invalid:
            invalid += 1
        said_defect = rep.answer is CropAnswer.defect
        if c.box is None:
            fp += said_defect
            tn += not said_defect
            continue
        if not said_defect:
            fn += 1
            continue
        tp += 1
        best = max((iou(f.box, c.box) for f in rep.findings), default=0.0)
        ious.append(best)
        if c.kind:
            typed += 1
            typed_right += any(f.defect_type == c.kind for f in rep.findings)
    pct = lambda q: round(float(np.percentile(lat, q)), 1) if lat else None  # noqa: E731
    return {
        "model": reasoner.model_id, "profile": reasoner.profile.name, "crops": len(cs),
        "positives": tp + fn, "negatives": fp + tn,
        "recall": round(tp / (tp + fn), 3) if tp + fn else None,
        "precision": round(tp / (tp + fp), 3) if tp + fp else None,
        "type_accuracy": round(typed_right / typed, 3) if typed else None,
        "iou_mean": round(statistics.mean(ious), 3) if ious else None,
        "iou_ge_05": round(sum(i >= 0.5 for i in ious) / len(ious), 3) if ious else None,
        "invalid_answers": invalid, "refused_findings": refused, "unavailable": unavailable,
        "zoom_rounds_per_crop": round(statistics.mean(zooms), 2) if zooms else 0.0,
        "latency_p50_ms": pct(50), "latency_p95_ms": pct(95),
        # generated tokens over the whole answer time (prompt and image processing included)
        "tokens_per_s": round(tokens / counted_s, 1) if counted_s > 0 else None,
        "deadline_hit_rate": round(sum(on_time) / len(on_time), 3) if on_time else None,
    }


COLUMNS = [("recall", "recall"), ("precision", "precision"), ("type_accuracy", "type acc"),
           ("iou_mean", "IoU mean"), ("iou_ge_05", "IoU>=0.5"), ("invalid_answers", "invalid"),
           ("refused_findings", "refused"), ("unavailable", "unavail."), ("zoom_rounds_per_crop", "zooms/crop"),
           ("latency_p50_ms", "p50 ms"), ("latency_p95_ms", "p95 ms"), ("tokens_per_s", "tokens/s"),
           ("deadline_hit_rate", "on time")]


def table(results: list[dict], names: list[str]) -> str:
    width = max(12, *(len(n) for n in names))
    lines = [f"{'config':<{width}} " + " ".join(f"{h:>10}" for _, h in COLUMNS)]
    for name, r in zip(names, results):
        cells = ["-" if r[k] is None else f"{r[k]:g}" for k, _ in COLUMNS]
        lines.append(f"{name:<{width}} " + " ".join(f"{c:>10}" for c in cells))
    return "\n".join(lines)


def chart(results: list[dict], names: list[str], path: Path) -> Path:
    """Bars of recall, precision, type accuracy, IoU>=0.5 and on-time share per config (PNG), each
    with its value; a rate that could not be measured is marked n/a, not drawn as 0."""
    import cv2

    keys = [("recall", "recall"), ("precision", "precision"), ("type_accuracy", "type accuracy"),
            ("iou_ge_05", "IoU >= 0.5"), ("deadline_hit_rate", "on time")]
    colours = [(200, 120, 40), (40, 140, 220), (60, 170, 60), (150, 60, 180), (40, 40, 200), (120, 120, 120)]
    font = cv2.FONT_HERSHEY_SIMPLEX
    group = max(150, 36 * len(results) + 30)
    legend = 14 + 18 * len(names)
    W, pad, plot_h = group * len(keys) + 60, 40, 240
    H = legend + plot_h + 60
    img = np.full((H, W, 3), 255, np.uint8)
    for j, n in enumerate(names):
        y = 16 + 18 * j
        cv2.rectangle(img, (pad, y - 10), (pad + 12, y + 2), colours[j % len(colours)], -1)
        cv2.putText(img, n[:90], (pad + 18, y), font, 0.45, (30, 30, 30), 1, cv2.LINE_AA)
    top, base = legend + 20, legend + 20 + plot_h
    for v in (0.0, 0.5, 1.0):  # a scale: 0, half, all
        y = int(base - v * plot_h)
        cv2.line(img, (pad - 5, y), (W - 10, y), (225, 225, 225), 1)
        cv2.putText(img, f"{v:g}", (6, y + 4), font, 0.4, (90, 90, 90), 1, cv2.LINE_AA)
    bw = max(14, (group - 30) // max(1, len(results)))
    for i, (k, label) in enumerate(keys):
        x0 = pad + i * group
        cv2.putText(img, label, (x0, base + 22), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        for j, r in enumerate(results):
            x = x0 + j * bw
            v = r.get(k)
            if v is None:
                cv2.putText(img, "n/a", (x, base - 4), font, 0.35, (120, 120, 120), 1, cv2.LINE_AA)
                continue
            y = int(base - v * plot_h)
            cv2.rectangle(img, (x, y), (x + bw - 4, base), colours[j % len(colours)], -1)
            cv2.putText(img, f"{v:.2f}", (x, max(top - 6, y - 4)), font, 0.35, (30, 30, 30), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), img)
    return path


def short_names(paths: list) -> list[str]:
    """Config file names where they tell the configs apart, else the paths as given."""
    names = [Path(p).name if p else "default" for p in paths]
    return names if len(set(names)) == len(names) else [str(p) if p else "default" for p in paths]


def to_json(results: list[dict], names: list[str]) -> str:
    return json.dumps({"eval": "vlm", "configs": [{"config": n, **r} for n, r in zip(names, results)]})
