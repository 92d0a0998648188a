"""Cut a padded crop around each candidate, sized for the VLM, with the transform back to the frame."""

from __future__ import annotations

import cv2
import numpy as np

from inspector.config import CropperConfig
from inspector.messages import Candidate, Crop, CropTransform


def make_crops(image: np.ndarray, candidates: list[Candidate], cfg: CropperConfig) -> list[Crop]:
    H, W = image.shape[:2]
    crops = []
    for i, cand in enumerate(sorted(candidates, key=lambda c: c.score, reverse=True)[: cfg.max_crops]):
        x1, y1, x2, y2 = cand.box
        # Context matters to the VLM (is this line a scratch or the part's edge?), so pad by a share
        # of the box and never go below a minimum side.
        pw, ph = (x2 - x1) * cfg.padding, (y2 - y1) * cfg.padding
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        half_w = max((x2 - x1) / 2 + pw, cfg.min_side_px / 2)
        half_h = max((y2 - y1) / 2 + ph, cfg.min_side_px / 2)
        cx1, cy1 = int(max(0, np.floor(cx - half_w))), int(max(0, np.floor(cy - half_h)))
        cx2, cy2 = int(min(W, np.ceil(cx + half_w))), int(min(H, np.ceil(cy + half_h)))
        crop = image[cy1:cy2, cx1:cx2]
        scale = min(1.0, cfg.max_side_px / max(crop.shape[:2]))
        if scale < 1.0:
            size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
            crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
            # Exact per-axis scale after rounding, so mapping back lands on the right pixels.
            scale = crop.shape[1] / (cx2 - cx1)
        crops.append(Crop(cand, i, np.ascontiguousarray(crop), CropTransform(cx1, cy1, scale)))
    return crops
