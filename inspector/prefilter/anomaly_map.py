"""`default` detector: an ONNX model that outputs an anomaly map; map -> threshold -> blobs -> boxes."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort

from inspector.config import DetectorConfig
from inspector.messages import Box, Candidate
from inspector.prefilter import ModelError, register
from inspector.prefilter.manifest import load_entry

HYSTERESIS = 0.6


@register("default")
class AnomalyMapDetector:
    def __init__(self, cfg: DetectorConfig):
        self.entry = load_entry(cfg.manifest, cfg.model)
        if self.entry.kind != "anomaly_map":
            raise ModelError(f"{cfg.model}: manifest kind is {self.entry.kind!r}, "
                             f"the default detector needs 'anomaly_map'")
        self.model_id = f"{self.entry.name}@{self.entry.sha256[:12]}"
        self.threshold = cfg.threshold or self.entry.default_threshold
        self.min_area = cfg.min_area_px
        self.max_candidates = cfg.max_candidates
        self.label = self.entry.labels[0]
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(cfg.model), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own untyped errors for corrupt files
            raise ModelError(f"onnxruntime cannot load {cfg.model}: {e}") from None
        self._check_io(cfg)

    def _check_io(self, cfg: DetectorConfig) -> None:
        ins, outs = self.session.get_inputs(), self.session.get_outputs()
        if len(ins) != 1 or len(ins[0].shape) != 4 or ins[0].shape[1] != 3:
            got = [(i.name, i.shape) for i in ins]
            raise ModelError(f"{cfg.model}: expected one input of shape [1, 3, H, W], got {got}")
        if len(outs) < 1 or len(outs[0].shape) != 4 or outs[0].shape[1] != 1:
            got = [(o.name, o.shape) for o in outs]
            raise ModelError(f"{cfg.model}: expected an anomaly map output [1, 1, h, w], got {got}")
        self.input_name = ins[0].name
        self.output_name = outs[0].name

    def anomaly_map(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        stride = self.entry.output_stride
        # Pad to a multiple of the stride so the map's cells line up with pixels exactly.
        ph, pw = (-h) % stride, (-w) % stride
        if ph or pw:
            image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_REFLECT)
        x = image.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        return self.session.run([self.output_name], {self.input_name: x})[0][0, 0]

    def detect(self, image: np.ndarray, roi: Box | None = None) -> list[Candidate]:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"detector needs a BGR uint8 image, got shape {image.shape} {image.dtype}")
        H, W = image.shape[:2]
        x0, y0, x1, y1 = (0, 0, W, H) if roi is None else (
            max(0, int(roi[0])), max(0, int(roi[1])), min(W, int(roi[2])), min(H, int(roi[3])))
        if x1 - x0 < 8 or y1 - y0 < 8:
            raise ValueError(f"ROI {roi} leaves less than 8x8 pixels of a {W}x{H} frame")
        amap = self.anomaly_map(np.ascontiguousarray(image[y0:y1, x0:x1]))
        stride = self.entry.output_stride
        # Hysteresis: a blob is seeded where the map reaches the threshold and grown over the
        # surrounding region above HYSTERESIS x threshold, so a thin crack is boxed whole.
        mask = (amap >= self.threshold * HYSTERESIS).astype(np.uint8)
        # Close small gaps so one crack or scratch becomes one candidate, not a string of beads.
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if n > 1:
            peaks = np.zeros(n, np.float32)
            np.maximum.at(peaks, labels.ravel(), amap.ravel())
        cands = []
        min_cells = max(1, self.min_area // (stride * stride))
        for i in range(1, n):
            cx, cy, cw, ch, area = stats[i]
            peak = float(peaks[i])
            if area < min_cells or peak < self.threshold:
                continue
            box = (float(x0 + cx * stride), float(y0 + cy * stride),
                   float(min(x1, x0 + (cx + cw) * stride)), float(min(y1, y0 + (cy + ch) * stride)))
            # Squash the peak z-score to 0..1: 0.5 at the threshold, rising towards 1.
            cands.append(Candidate(box, peak / (peak + self.threshold), self.label, self.model_id))
        cands.sort(key=lambda c: c.score, reverse=True)
        return cands[: self.max_candidates]
