"""`yolo` detector: an Ultralytics YOLOv8 / YOLO11 detection model exported to ONNX.

Input [1, 3, S, S] float RGB 0..1, letterboxed (scaled to fit, padded with grey 114, centred), as
Ultralytics trains it. Output [1, 4 + nc, N]: per anchor, box centre/size in input pixels and one
score per class (no objectness). Boxes go through per-class thresholds and class-aware NMS, then
back through the letterbox to frame pixels.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inspector.config import YoloDetectorConfig
from inspector.messages import Box, Candidate
from inspector.prefilter import Inspection, ModelError, register
from inspector.prefilter.roi import clip_roi
from inspector.prefilter.manifest import sha256_of
from inspector.prefilter.session import describe, open_session

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    scale_x: float  # input pixels per image pixel (equal up to rounding of the resized size)
    scale_y: float
    pad_x: int
    pad_y: int

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        """[n, 4] x1,y1,x2,y2 in model input pixels -> pixels of the image that was letterboxed."""
        out = boxes.astype(np.float64).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale_x
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale_y
        return out

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        out = boxes.astype(np.float64).copy()
        out[:, [0, 2]] = out[:, [0, 2]] * self.scale_x + self.pad_x
        out[:, [1, 3]] = out[:, [1, 3]] * self.scale_y + self.pad_y
        return out


def letterbox(img: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """Scale `img` to fit (w, h) keeping its aspect, centred on a grey canvas."""
    w, h = size
    ih, iw = img.shape[:2]
    s = min(w / iw, h / ih)
    nw, nh = max(1, round(iw * s)), max(1, round(ih * s))
    px, py = (w - nw) / 2, (h - nh) / 2
    canvas = np.full((h, w, 3), PAD_VALUE, np.uint8)
    left, top = int(round(px - 0.1)), int(round(py - 0.1))
    canvas[top:top + nh, left:left + nw] = cv2.resize(
        img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    return canvas, Letterbox(nw / iw, nh / ih, left, top)


def read_labels(cfg: YoloDetectorConfig, session) -> list[str]:
    if cfg.labels is not None:
        try:
            names = [ln.strip() for ln in Path(cfg.labels).read_text().splitlines() if ln.strip()]
        except OSError as e:
            raise ModelError(f"detector.labels: cannot read {cfg.labels}: {e.strerror}") from None
        if not names:
            raise ModelError(f"detector.labels: {cfg.labels} lists no class names")
        return names
    meta = session.get_modelmeta().custom_metadata_map.get("names")
    if not meta:
        raise ModelError(f"{cfg.model}: no class names in the model's metadata; give "
                         f"detector.labels (a file with one name per line)")
    try:
        names = ast.literal_eval(meta)  # Ultralytics writes "{0: 'scratch', 1: 'dent'}"
        return [names[i] for i in sorted(names)]
    except (ValueError, SyntaxError, TypeError, KeyError):
        raise ModelError(f"{cfg.model}: cannot read class names from metadata {meta[:80]!r}") from None


@register("yolo")
class YoloDetector:
    def __init__(self, cfg: YoloDetectorConfig):
        self.session = open_session(cfg.model, cfg.sha256)
        self.model_id = f"{cfg.model.stem}@{sha256_of(cfg.model)[:12]}"
        ins, outs = self.session.get_inputs(), self.session.get_outputs()
        if (len(ins) != 1 or len(ins[0].shape) != 4 or ins[0].shape[1] not in (3, "3")
                or not all(isinstance(d, int) for d in ins[0].shape[2:])):
            raise ModelError(f"{cfg.model}: expected one input [1, 3, S, S] of fixed size (an "
                             f"Ultralytics export), got {describe(ins)}")
        self.size = (ins[0].shape[3], ins[0].shape[2])
        self.labels = read_labels(cfg, self.session)
        nc = len(self.labels)
        out = outs[0]
        if len(out.shape) != 3 or out.shape[1] != 4 + nc:
            raise ModelError(f"{cfg.model}: expected output [1, {4 + nc}, N] (4 box values + "
                             f"{nc} classes from the labels), got {describe(outs)}")
        unknown = set(cfg.class_thresholds) - set(self.labels)
        if unknown:
            raise ModelError(f"detector.class_thresholds: unknown class(es) {sorted(unknown)}; "
                             f"the model's classes are {self.labels}")
        self.threshold = cfg.threshold or 0.25
        self.class_thr = np.array([cfg.class_thresholds.get(n, np.nan) for n in self.labels], np.float32)
        self.iou = cfg.iou_threshold
        self.min_area = cfg.min_area_px
        self.max_candidates = cfg.max_candidates
        self.input_name, self.output_name = ins[0].name, out.name

    def tensor(self, roi_img: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        img, lb = letterbox(roi_img, self.size)
        x = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) * (1 / 255.0)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), lb

    normal_spec = None  # a detection head has no per-product normal statistics

    def inspect(self, image: np.ndarray, roi: Box | None = None, threshold: float | None = None,
                normal=None) -> Inspection:
        if normal is not None:
            raise ValueError(f"detector {self.model_id} takes no normal statistics")
        x0, y0, x1, y1 = clip_roi(image, roi)
        x, lb = self.tensor(np.ascontiguousarray(image[y0:y1, x0:x1]))
        pred = self.session.run([self.output_name], {self.input_name: x})[0][0]  # [4+nc, N]
        scores_all = pred[4:]
        cls = scores_all.argmax(axis=0)
        conf = scores_all[cls, np.arange(pred.shape[1])]
        image_score = float(conf.max()) if conf.size else 0.0
        base = threshold or self.threshold
        thr = np.where(np.isnan(self.class_thr), base, self.class_thr)[cls]
        keep = conf >= thr
        if not keep.any():
            return Inspection(image_score, [])
        cx, cy, w, h = pred[:4, keep]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        conf, cls = conf[keep], cls[keep]
        # Class-aware NMS: a scratch box does not suppress an overlapping dent box.
        idx = cv2.dnn.NMSBoxesBatched([[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]
                                       for b in boxes], conf.tolist(), cls.tolist(), 0.0, self.iou)
        idx = np.array(idx, int).reshape(-1)
        frame_boxes = lb.to_image(boxes[idx])
        frame_boxes[:, [0, 2]] = np.clip(frame_boxes[:, [0, 2]] + x0, x0, x1)
        frame_boxes[:, [1, 3]] = np.clip(frame_boxes[:, [1, 3]] + y0, y0, y1)
        cands = []
        for b, i in zip(frame_boxes, idx):
            if (b[2] - b[0]) * (b[3] - b[1]) < self.min_area:
                continue
            cands.append(Candidate(tuple(float(v) for v in b), float(conf[i]), self.labels[cls[i]],
                                   self.model_id))
        cands.sort(key=lambda c: c.score, reverse=True)
        return Inspection(image_score, cands[: self.max_candidates])

    def detect(self, image: np.ndarray, roi: Box | None = None, threshold: float | None = None,
               normal=None) -> list[Candidate]:
        return self.inspect(image, roi, threshold, normal).candidates
