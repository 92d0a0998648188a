"""Synthetic surface defects painted onto real textures.

Each painter draws one defect into a BGR image in place and returns the mask of pixels it changed,
from which the ground-truth box is taken. Shared by the demo line and (later) detector training.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

Painter = Callable[[np.ndarray, np.random.Generator, tuple[int, int, int, int], tuple[int, int, int]], np.ndarray]


def _polyline(rng: np.random.Generator, start: np.ndarray, length: float, angle: float,
              steps: int, wobble: float) -> np.ndarray:
    pts = [start]
    for _ in range(steps):
        angle += rng.normal(0, wobble)
        step = length / steps
        pts.append(pts[-1] + step * np.array([np.cos(angle), np.sin(angle)]))
    return np.array(pts, np.int32)


def _inside(rng, area, margin):
    x1, y1, x2, y2 = area
    return np.array([rng.uniform(x1 + margin, x2 - margin), rng.uniform(y1 + margin, y2 - margin)])


def scratch(img, rng, area, belt):
    mask = np.zeros(img.shape[:2], np.uint8)
    pts = _polyline(rng, _inside(rng, area, 50), rng.uniform(70, 150), rng.uniform(0, np.pi),
                    steps=6, wobble=0.05)
    cv2.polylines(mask, [pts], False, 255, thickness=int(rng.integers(2, 4)), lineType=cv2.LINE_AA)
    bright = rng.random() < 0.7  # most scratches expose brighter material
    tone = np.array([235, 235, 240] if bright else [25, 25, 30], np.float32)
    _blend(img, mask, tone, rng.uniform(0.75, 0.95))
    return mask


def crack(img, rng, area, belt):
    mask = np.zeros(img.shape[:2], np.uint8)
    trunk = _polyline(rng, _inside(rng, area, 50), rng.uniform(60, 130), rng.uniform(0, 2 * np.pi),
                      steps=10, wobble=0.45)
    cv2.polylines(mask, [trunk], False, 255, thickness=int(rng.integers(2, 4)))
    for _ in range(int(rng.integers(1, 3))):  # branches
        start = trunk[int(rng.integers(2, len(trunk) - 1))].astype(float)
        br = _polyline(rng, start, rng.uniform(20, 45), rng.uniform(0, 2 * np.pi), steps=5, wobble=0.5)
        cv2.polylines(mask, [br], False, 255, thickness=2)
    _blend(img, mask, np.array([12, 12, 15], np.float32), 0.9)
    return mask


def stain(img, rng, area, belt):
    soft = _soft_ellipse(img, rng, area, 45, (14, 32), (10, 26), 4)
    tints = [np.array([20, 60, 120], np.float32),   # rust
             np.array([30, 30, 25], np.float32),    # oil
             np.array([150, 60, 160], np.float32)]  # dye
    _blend(img, soft, tints[int(rng.integers(len(tints)))], rng.uniform(0.65, 0.85))
    return (soft > 40).astype(np.uint8) * 255


def hole(img, rng, area, belt):
    mask = np.zeros(img.shape[:2], np.uint8)
    c = tuple(_inside(rng, area, 35).astype(int))
    r = int(rng.integers(6, 14))
    cv2.circle(mask, c, r + 2, 255, -1)
    cv2.circle(img, c, r + 2, (200, 200, 205), -1, lineType=cv2.LINE_AA)  # bright bevel
    cv2.circle(img, c, r, (8, 8, 10), -1, lineType=cv2.LINE_AA)
    return mask


def chip(img, rng, area, belt):
    """Material missing at an edge: the belt shows through a bite taken out of the tile."""
    x1, y1, x2, y2 = area
    side = int(rng.integers(4))
    depth = rng.uniform(22, 40)
    width = rng.uniform(40, 80)
    if side in (0, 1):  # top / bottom edge
        cx = rng.uniform(x1 + 60, x2 - 60)
        ey = y1 if side == 0 else y2
        sgn = 1 if side == 0 else -1
        poly = [(cx - width / 2, ey - sgn * 5), (cx + width / 2, ey - sgn * 5),
                (cx + width * rng.uniform(0.0, 0.3), ey + sgn * depth),
                (cx - width * rng.uniform(0.0, 0.3), ey + sgn * depth * rng.uniform(0.5, 1))]
    else:  # left / right edge
        cy = rng.uniform(y1 + 60, y2 - 60)
        ex = x1 if side == 2 else x2
        sgn = 1 if side == 2 else -1
        poly = [(ex - sgn * 5, cy - width / 2), (ex - sgn * 5, cy + width / 2),
                (ex + sgn * depth, cy + width * rng.uniform(0.0, 0.3)),
                (ex + sgn * depth * rng.uniform(0.5, 1), cy - width * rng.uniform(0.0, 0.3))]
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.array(poly, np.int32)], 255)
    img[mask > 0] = belt
    return mask


def particles(img, rng, area, belt):
    """Contamination: a cluster of small dark or bright specks (swarf, dust, paint droplets)."""
    mask = np.zeros(img.shape[:2], np.uint8)
    c = _inside(rng, area, 40)
    spread = rng.uniform(8, 22)
    dark = rng.random() < 0.6
    tone = (20, 20, 24) if dark else (230, 232, 236)
    for _ in range(int(rng.integers(4, 12))):
        p = c + rng.normal(0, spread, 2)
        cv2.circle(mask, (int(p[0]), int(p[1])), int(rng.integers(1, 4)), 255, -1, lineType=cv2.LINE_AA)
    _blend(img, mask, np.array(tone, np.float32), rng.uniform(0.7, 0.95))
    return mask


def blob(img, rng, area, belt):
    """A bright or dark blob with soft edges: a dent catching the light, a burn, a pit in shadow."""
    soft = _soft_ellipse(img, rng, area, 35, (5, 14), (5, 14), 2.0)
    bright = rng.random() < 0.5
    _blend(img, soft, np.array([245, 245, 250] if bright else [15, 15, 18], np.float32),
           rng.uniform(0.6, 0.85))
    return (soft > 60).astype(np.uint8) * 255


def discolour(img, rng, area, belt):
    """A large faint change of colour: heat tint, bleaching, a coating that did not take."""
    soft = _soft_ellipse(img, rng, area, 60, (25, 55), (20, 45), 8)
    tints = [np.array([140, 90, 40], np.float32),    # blue heat tint
             np.array([40, 140, 190], np.float32),   # straw heat tint
             np.array([210, 210, 210], np.float32)]  # bleached
    _blend(img, soft, tints[int(rng.integers(len(tints)))], rng.uniform(0.35, 0.55))
    return (soft > 80).astype(np.uint8) * 255


def _soft_ellipse(img, rng, area, margin, ax, ay, sigma) -> np.ndarray:
    """A randomly placed, sized and turned filled ellipse with blurred edges (uint8 0..255)."""
    mask = np.zeros(img.shape[:2], np.uint8)
    c = tuple(_inside(rng, area, margin).astype(int))
    axes = (int(rng.integers(*ax)), int(rng.integers(*ay)))
    cv2.ellipse(mask, c, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    return cv2.GaussianBlur(mask, (0, 0), sigma)


def _blend(img: np.ndarray, mask: np.ndarray, tone: np.ndarray, strength: float) -> None:
    a = (mask.astype(np.float32) / 255.0 * strength)[..., None]
    img[:] = np.clip(img * (1 - a) + tone * a, 0, 255).astype(np.uint8)


PAINTERS: dict[str, Painter] = {
    "scratch": scratch, "crack": crack, "stain": stain, "hole": hole, "chip": chip,
    "particles": particles, "blob": blob, "discolour": discolour,
}
DEMO_DEFECTS = ["scratch", "crack", "stain", "hole", "chip"]  # the demo product's taxonomy


def mask_box(mask: np.ndarray) -> list[int] | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
