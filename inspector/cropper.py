"""Cut a padded crop around each candidate, sized for the VLM, with the transform back to the frame."""

from __future__ import annotations

import cv2
import numpy as np

from inspector.config import CropperConfig
from inspector.messages import Box, Candidate, Crop, CropTransform


def make_crops(image: np.ndarray, candidates: list[Candidate], cfg: CropperConfig) -> list[Crop]:
    best = sorted(candidates, key=lambda c: c.score, reverse=True)[: cfg.max_crops]
    # Context matters to the VLM (is this line a scratch or the part's edge?), so pad by a share
    # of the box and never go below a minimum side.
    return [crop_around(image, c, i, padding=cfg.padding, min_side=cfg.min_side_px,
                        out_side=cfg.max_side_px, upscale=False) for i, c in enumerate(best)]


def crop_around(image: np.ndarray, cand: Candidate, index: int, *, padding: float, min_side: int,
                out_side: int, upscale: bool) -> Crop:
    """A crop of `image` around `cand.box`, its longer side scaled down to `out_side` (and, with
    `upscale`, up to it too: a closer look shows a small region at higher resolution)."""
    H, W = image.shape[:2]
    x1, y1, x2, y2 = cand.box
    pw, ph = (x2 - x1) * padding, (y2 - y1) * padding
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w = max((x2 - x1) / 2 + pw, min_side / 2)
    half_h = max((y2 - y1) / 2 + ph, min_side / 2)
    cx1, cy1 = int(max(0, np.floor(cx - half_w))), int(max(0, np.floor(cy - half_h)))
    cx2, cy2 = int(min(W, np.ceil(cx + half_w))), int(min(H, np.ceil(cy + half_h)))
    crop = image[cy1:cy2, cx1:cx2]
    scale = out_side / max(crop.shape[:2])
    if scale < 1.0 or (upscale and scale > 1.0):
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
        crop = cv2.resize(crop, size, interpolation=interp)
        # Exact per-axis scale after rounding, so mapping back lands on the right pixels.
        scale = crop.shape[1] / (cx2 - cx1)
    else:
        scale = 1.0
    return Crop(cand, index, np.ascontiguousarray(crop), CropTransform(cx1, cy1, scale))


def region_of(crop: Crop) -> Box:
    """The frame pixels a crop shows."""
    h, w = crop.image.shape[:2]
    return crop.transform.to_frame((0.0, 0.0, float(w), float(h)))
