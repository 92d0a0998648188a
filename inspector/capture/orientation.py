"""A camera's frames turned the way the part lies: rotation (clockwise) and flips, then the
inspection polygon that keeps candidates inside the part's area."""

from __future__ import annotations

import cv2
import numpy as np

_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
_FLIP = {"horizontal": 1, "vertical": 0, "both": -1}


def orienter(rotate: int, flip: str):
    """A function frame -> oriented frame, or None when there is nothing to do."""
    if not rotate and flip == "none":
        return None

    def apply(image: np.ndarray) -> np.ndarray:
        if rotate:
            image = cv2.rotate(image, _ROTATE[rotate])
        if flip != "none":
            image = cv2.flip(image, _FLIP[flip])
        return image

    return apply


def inside(polygon, candidates):
    """The candidates whose box centre lies inside the polygon (on the edge counts)."""
    if polygon is None:
        return candidates
    poly = np.asarray(polygon, np.float32).reshape(-1, 1, 2)
    return [c for c in candidates
            if cv2.pointPolygonTest(poly, ((c.box[0] + c.box[2]) / 2, (c.box[1] + c.box[3]) / 2), False) >= 0]
