"""The part of a frame a detector looks at, checked once for every detector."""

from __future__ import annotations

import numpy as np

from inspector.messages import Box


def clip_roi(image: np.ndarray, roi: Box | None) -> tuple[int, int, int, int]:
    """`roi` clipped to the frame (the whole frame for None), as integer pixel bounds; ValueError
    for a picture that is not BGR uint8 or an ROI that leaves less than 8x8 pixels."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"detector needs a BGR uint8 image, got shape {image.shape} {image.dtype}")
    H, W = image.shape[:2]
    x0, y0, x1, y1 = (0, 0, W, H) if roi is None else (
        max(0, int(roi[0])), max(0, int(roi[1])), min(W, int(roi[2])), min(H, int(roi[3])))
    if x1 - x0 < 8 or y1 - y0 < 8:
        raise ValueError(f"ROI {roi} leaves less than 8x8 pixels of a {W}x{H} frame")
    return x0, y0, x1, y1
