"""Measuring a detector on labelled images: `inspector eval` and `inspector calibrate thresholds`.

Labels file: one JSON object per line, `{"image": "<path relative to the images folder>",
"boxes": [[x1, y1, x2, y2], ...]}` with boxes in image pixels; an empty list marks a good part.
The demo renderer's ground truth (`{"image", "defects": [{"type", "box"}]}`) is read as well.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from inspector.errors import InspectorError
from inspector import MAX_IMAGE_PIXELS
from inspector.util.image_file import ImageError, read_image
from inspector.messages import Box
from inspector.prefilter.metrics import found, pr_curve, roc_auc, wilson


class EvalError(InspectorError):
    pass


@dataclass
class Labelled:
    path: Path
    boxes: list[Box]
    kinds: list[str] | None = None  # each box's defect kind, when the labels name them
    # A defect-free part's regions worth asking about (where the machine raised a false alarm);
    # none: the middle of the part.
    probes: list[Box] = field(default_factory=list)


@dataclass
class ImageResult:
    path: Path
    boxes: list[Box]
    score: float
    candidates: list[Box]
    kinds: list[str] | None = None


@dataclass
class Report:
    threshold: float
    images: int
    good: int
    defects: int
    image_auroc: float
    defect_recall: float
    defects_found: int
    defect_recall_ci95: tuple[float, float]  # Wilson: what the recall could be with this many defects
    false_candidates_per_good: float
    sent_to_vlm: float  # share of all frames with at least one candidate
    good_sent_to_vlm: float
    good_sent_to_vlm_ci95: tuple[float, float]  # Wilson, as the recall's: with this many good parts
    bad_sent_to_vlm: float
    unreadable: list[str] = field(default_factory=list)
    # Per defect kind, when the labels name kinds: {kind: [found, of]}. A quality engineer needs
    # "misses thin scratches" more than one pooled number.
    per_kind: dict[str, list[int]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        def r(v):
            if isinstance(v, float):
                return round(v, 4)
            return [r(x) for x in v] if isinstance(v, tuple) else v
        return {k: r(v) for k, v in vars(self).items()}


def read_labels(labels: Path, images_dir: Path) -> list[Labelled]:
    out = []
    try:
        lines = Path(labels).read_text().splitlines()
    except OSError as e:
        raise EvalError(f"cannot read labels {labels}: {e.strerror}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if "boxes" in row:
                boxes, kinds = row["boxes"], row.get("kinds")
            else:
                boxes, kinds = [d["box"] for d in row["defects"]], [d.get("type") for d in row["defects"]]
                kinds = kinds if all(isinstance(k, str) and k for k in kinds) else None
            boxes = [tuple(float(v) for v in b) for b in boxes]
            if any(len(b) != 4 or not all(math.isfinite(v) for v in b) or b[0] >= b[2] or b[1] >= b[3]
                   for b in boxes):
                raise ValueError("a box is not x1,y1,x2,y2 with x1<x2, y1<y2")
            if kinds is not None and (not isinstance(kinds, list) or len(kinds) != len(boxes)
                                      or not all(isinstance(k, str) and k for k in kinds)):
                raise ValueError("'kinds' must list one name per box")
            out.append(Labelled(Path(images_dir) / row["image"], boxes, kinds))
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as e:
            raise EvalError(f"{labels} line {n}: expected {{\"image\": ..., \"boxes\": "
                            f"[[x1, y1, x2, y2], ...], \"kinds\" (optional): [name, ...]}}: {e}") from None
    if not out:
        raise EvalError(f"{labels} lists no images")
    return out


def progress(i: int, n: int, what: str) -> None:
    """A progress bar on stderr (only when it is a terminal, so logs stay clean)."""
    if not sys.stderr.isatty():
        return
    w = 30
    done = int(w * i / n)
    sys.stderr.write(f"\r{what} [{'#' * done}{'.' * (w - done)}] {i}/{n}")
    if i == n:
        sys.stderr.write("\n")
    sys.stderr.flush()


def run(detector, items: list[Labelled], roi: Box | None, threshold: float, what: str = "eval",
        normal=None, max_pixels: int = MAX_IMAGE_PIXELS):
    results, unreadable = [], []
    for i, it in enumerate(items, 1):
        try:
            img = read_image(it.path, max_pixels)
        except ImageError as e:
            unreadable.append(str(e))
        else:
            try:
                ins = detector.inspect(img, roi, threshold, normal)
            except ValueError as e:  # e.g. an ROI that does not fit this image
                unreadable.append(f"{it.path}: {e}")
            else:
                results.append(ImageResult(it.path, it.boxes, ins.score, [c.box for c in ins.candidates], it.kinds))
        progress(i, len(items), what)
    return results, unreadable


def report(results: list[ImageResult], threshold: float, unreadable=()) -> Report:
    if not results:
        raise EvalError("no readable image to evaluate")
    labels = [bool(r.boxes) for r in results]
    good = [r for r in results if not r.boxes]
    bad = [r for r in results if r.boxes]
    defects = [(b, r.candidates) for r in bad for b in r.boxes]
    n_found = sum(found(b, c) for b, c in defects)
    recall = n_found / len(defects) if defects else float("nan")
    sent = [bool(r.candidates) for r in results]
    per_kind: dict[str, list[int]] = {}
    for r in bad:
        for b, k in zip(r.boxes, r.kinds or []):
            tally = per_kind.setdefault(k, [0, 0])
            tally[0] += bool(found(b, r.candidates))
            tally[1] += 1
    return Report(
        threshold=threshold, images=len(results), good=len(good), defects=len(defects),
        image_auroc=roc_auc([r.score for r in results], labels), defect_recall=recall,
        defects_found=n_found, defect_recall_ci95=wilson(n_found, len(defects)),
        false_candidates_per_good=(sum(len(r.candidates) for r in good) / len(good)) if good else float("nan"),
        sent_to_vlm=float(np.mean(sent)),
        good_sent_to_vlm=float(np.mean([bool(r.candidates) for r in good])) if good else float("nan"),
        good_sent_to_vlm_ci95=wilson(sum(bool(r.candidates) for r in good), len(good)),
        bad_sent_to_vlm=float(np.mean([bool(r.candidates) for r in bad])) if bad else float("nan"),
        unreadable=list(unreadable), per_kind=dict(sorted(per_kind.items())))


def draw_pr_curve(results: list[ImageResult], threshold: float, path: Path, title: str) -> None:
    """Image-level precision/recall as the threshold varies, with the operating point marked."""
    scores = [r.score for r in results]
    labels = [bool(r.boxes) for r in results]
    prec, rec, thr = pr_curve(scores, labels)
    W, H, m = 640, 480, 60
    img = np.full((H, W, 3), 255, np.uint8)

    def xy(r, p):
        return int(m + r * (W - 2 * m)), int(H - m - p * (H - 2 * m))

    cv2.rectangle(img, xy(0, 0), xy(1, 1), (200, 200, 200), 1)
    for t in np.linspace(0, 1, 6):
        cv2.putText(img, f"{t:.1f}", (xy(t, 0)[0] - 10, H - m + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (60, 60, 60), 1)
        cv2.putText(img, f"{t:.1f}", (m - 35, xy(0, t)[1] + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (60, 60, 60), 1)
    pts = np.array([xy(0, 1)] + [xy(r, p) for r, p in zip(rec, prec)], np.int32)
    cv2.polylines(img, [pts], False, (200, 90, 30), 2, cv2.LINE_AA)
    ap = float(np.sum(np.diff(np.r_[0, rec]) * prec))
    at = np.searchsorted(-thr, -threshold, side="right") - 1  # last point with thr >= threshold
    if 0 <= at < len(thr):
        cv2.circle(img, xy(rec[at], prec[at]), 6, (30, 30, 220), 2, cv2.LINE_AA)
    _fit_text(img, title, (m, 30), W - m - 8, 0.55, (0, 0, 0))
    # Inside the plot's lower left, where a useful curve never runs (and clear of the axis label).
    _fit_text(img, f"AP {ap:.3f}; circle: threshold {threshold:.3g}", (m + 8, H - m - 10), W - 2 * m - 16,
              0.45, (30, 30, 220))
    cv2.putText(img, "recall (defective images flagged)", (W // 2 - 120, H - 15),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "precision", (5, m - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise EvalError(f"could not write {path}")


def _fit_text(img: np.ndarray, text: str, at: tuple[int, int], width: int, scale: float, colour) -> None:
    """Put `text` at `at`, in a smaller font if it would run past `width` pixels, shortened with
    "..." if even the smallest readable one does (a long model id or surface name)."""
    font, smallest = cv2.FONT_HERSHEY_SIMPLEX, 0.35
    w = cv2.getTextSize(text, font, scale, 1)[0][0]
    if w > width:
        scale = max(smallest, scale * width / w)
        while len(text) > 4 and cv2.getTextSize(text, font, scale, 1)[0][0] > width:
            text = text[:-4] + "..."
    cv2.putText(img, text, at, font, scale, colour, 1, cv2.LINE_AA)
