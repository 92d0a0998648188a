"""Generic synthetic anomalies, painted on a product's good parts at calibration time.

They tell the normal statistics which directions of the feature space departures from *this*
surface take (normal.weigh_by_anomalies). They are deliberately not the demo's defect painters
(inspector/demo/defects.py, which also make the evaluation's defects): a blob of thresholded
smooth noise, of a random scale from specks to patches, filled with something foreign to the
surface - a flat tone, the surface itself turned and rescaled, its lightness inverted or
stretched, or a colour cast - as DRAEM does to learn anomalies without seeing real ones.
"""

from __future__ import annotations

import cv2
import numpy as np

SCALE_PX = (1.5, 24.0)  # the noise's feature size: specks to patches


def paint_anomaly(img: np.ndarray, rng: np.random.Generator, area: tuple[int, int, int, int]) -> np.ndarray:
    """Paint one anomaly into `img` (BGR uint8, in place) inside `area` (x0, y0, x1, y1);
    returns its mask (uint8 0/255, the image's size)."""
    x0, y0, x1, y1 = (int(v) for v in area)
    H, W = img.shape[:2]
    s = float(np.exp(rng.uniform(*np.log(SCALE_PX))))
    win = int(np.clip(s * rng.uniform(4, 10), 16, min(160, x1 - x0, y1 - y0)))
    cx = int(rng.uniform(x0 + win / 2, x1 - win / 2))
    cy = int(rng.uniform(y0 + win / 2, y1 - win / 2))
    grid = max(2, int(win / s) + 1)
    field = cv2.resize(rng.normal(size=(grid, grid)).astype(np.float32), (win, win), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:win, 0:win]
    # A Gaussian envelope keeps the anomaly local: one place on the part, not a texture change.
    field *= np.exp(-((xx - win / 2) ** 2 + (yy - win / 2) ** 2) / (2 * (win / 4) ** 2)).astype(np.float32)
    m = (field > np.quantile(field, rng.uniform(0.8, 0.97))).astype(np.float32)
    m = cv2.GaussianBlur(m, (0, 0), max(0.5, s / 8))
    mask = np.zeros((H, W), np.float32)
    ax, ay = cx - win // 2, cy - win // 2
    mask[ay:ay + win, ax:ax + win] = m
    f = img.astype(np.float32)
    kind = int(rng.integers(4))
    if kind == 0:  # a flat foreign tone, most often very dark or very bright
        tone = rng.uniform(0, 255, 3).astype(np.float32)
        if rng.random() < 0.6:
            tone[:] = rng.uniform(0, 50) if rng.random() < 0.5 else rng.uniform(205, 255)
        content = np.broadcast_to(tone, f.shape)
    elif kind == 1:  # the surface from elsewhere, turned and rescaled: structure that does not fit
        rot = cv2.getRotationMatrix2D((W / 2, H / 2), float(rng.uniform(0, 360)), float(rng.uniform(0.5, 2.0)))
        rot[:, 2] += rng.uniform(-100, 100, 2)
        content = cv2.warpAffine(f, rot, (W, H), borderMode=cv2.BORDER_REFLECT)
    elif kind == 2:  # lightness inverted, or contrast stretched
        content = 255 - f if rng.random() < 0.5 else np.clip((f - f.mean()) * rng.uniform(1.8, 3.0) + f.mean(), 0, 255)
    else:  # a colour cast
        content = np.clip(f * rng.uniform(0.4, 1.6, 3).astype(np.float32), 0, 255)
    a = (mask * rng.uniform(0.6, 1.0))[..., None]
    img[:] = np.clip(f * (1 - a) + content * a, 0, 255).astype(np.uint8)
    return (mask > 0.25).astype(np.uint8) * 255
