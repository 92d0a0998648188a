"""Defects for evaluation only: the six kinds a line sees, drawn by code that neither training
(inspector.demo.defects, inspector.prefilter.synthetic) nor calibration uses, so a detector that
learnt our own painters' strokes gains nothing here. Nothing in inspector/ imports this module.

Each defect takes its tone from the surface under it (a scratch lighter than its surroundings by
a random margin, a stain a darkened/tinted copy of the surface), with soft edges, so contrast
ranges from faint to obvious as on real parts.
"""

from __future__ import annotations

import cv2
import numpy as np

KINDS = ["scratch", "crack", "stain", "hole", "particles", "chip"]
MARGIN = 40


def _centre(rng, img) -> np.ndarray:
    h, w = img.shape[:2]
    return np.array([rng.uniform(MARGIN, w - MARGIN), rng.uniform(MARGIN, h - MARGIN)])


def _apply(img: np.ndarray, alpha: np.ndarray, content: np.ndarray) -> list[int]:
    """Blend `content` over `img` by `alpha` (float 0..1); returns the box of alpha > 0.2."""
    a = alpha[..., None]
    img[:] = np.clip(img.astype(np.float32) * (1 - a) + content * a, 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(alpha > 0.2)
    if not len(xs):
        ys, xs = np.nonzero(alpha > 0)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def _local_mean(img, alpha) -> np.ndarray:
    w = cv2.dilate((alpha > 0.05).astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    return img[w].reshape(-1, 3).astype(np.float32).mean(0)


def _shifted(img, alpha, rng, lighter: bool, margin: tuple[float, float]) -> np.ndarray:
    base = _local_mean(img, alpha)
    d = rng.uniform(*margin) * (1 if lighter else -1)
    return np.broadcast_to(np.clip(base + d, 0, 255), img.shape).astype(np.float32)


def scratch(img, rng):
    h, w = img.shape[:2]
    p0 = _centre(rng, img)
    ang = rng.uniform(0, np.pi)
    length = rng.uniform(40, 180)
    # A gentle arc (a tool dragged across the part), drawn as a thin anti-aliased curve.
    bend = rng.uniform(-0.4, 0.4)
    t = np.linspace(-0.5, 0.5, 24)
    pts = np.stack([p0[0] + length * t * np.cos(ang) - bend * length * (t ** 2) * np.sin(ang),
                    p0[1] + length * t * np.sin(ang) + bend * length * (t ** 2) * np.cos(ang)], 1)
    pts = np.clip(pts, 2, [w - 3, h - 3])
    canvas = np.zeros((h * 4, w * 4), np.uint8)  # 4x supersampled for sub-pixel widths
    cv2.polylines(canvas, [(pts * 4).astype(np.int32)], False, 255, int(rng.integers(3, 10)), cv2.LINE_AA)
    alpha = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    alpha *= rng.uniform(0.55, 0.95)
    return _apply(img, alpha, _shifted(img, alpha, rng, rng.random() < 0.75, (45, 110)))


def crack(img, rng):
    h, w = img.shape[:2]
    canvas = np.zeros((h, w), np.uint8)
    p = _centre(rng, img)
    ang = rng.uniform(0, 2 * np.pi)
    branches = [(p, ang, rng.uniform(50, 140))]
    while branches:
        p, ang, left = branches.pop()
        while left > 0:
            step = rng.uniform(3, 8)
            ang += rng.normal(0, 0.35)
            q = np.clip(p + step * np.array([np.cos(ang), np.sin(ang)]), 1, [w - 2, h - 2])
            cv2.line(canvas, tuple(int(v) for v in p), tuple(int(v) for v in q), 255, int(rng.integers(1, 3)),
                     cv2.LINE_AA)
            if rng.random() < 0.04:
                branches.append((q, ang + rng.choice([-1, 1]) * rng.uniform(0.5, 1.1), left * 0.5))
            p, left = q, left - step
    alpha = cv2.GaussianBlur(canvas.astype(np.float32) / 255, (0, 0), 0.6) * rng.uniform(0.7, 1.0)
    return _apply(img, alpha, _shifted(img, alpha, rng, False, (60, 130)))


def stain(img, rng):
    h, w = img.shape[:2]
    c = _centre(rng, img)
    r = rng.uniform(10, 45)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = np.arctan2(yy - c[1], xx - c[0])
    # A ragged outline: the radius varies with a few random harmonics.
    rad = r * (1 + sum(rng.uniform(0, 0.18) * np.cos(k * ang + rng.uniform(0, 6.3)) for k in (2, 3, 5)))
    dist = np.hypot(xx - c[0], yy - c[1])
    alpha = np.clip((rad - dist) / max(2.0, r * 0.25), 0, 1) * rng.uniform(0.45, 0.85)
    f = img.astype(np.float32)
    tint = rng.uniform(0.45, 0.8, 3) if rng.random() < 0.6 else rng.uniform(0.9, 1.5, 3)
    return _apply(img, alpha, np.clip(f * tint.astype(np.float32), 0, 255))


def hole(img, rng):
    h, w = img.shape[:2]
    c = _centre(rng, img)
    r = rng.uniform(3, 12)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    e = rng.uniform(0.7, 1.0)
    dist = np.hypot((xx - c[0]) * e, yy - c[1])
    alpha = np.clip(r + 0.8 - dist, 0, 1)
    content = np.broadcast_to(np.float32(rng.uniform(5, 45)), img.shape).astype(np.float32)
    box = _apply(img, alpha, content)
    # A bright rim on one side, where light catches the hole's edge.
    rim = np.clip(1 - np.abs(dist - r - 1.2) / 1.2, 0, 1) * (np.cos(np.arctan2(yy - c[1], xx - c[0]) - rng.uniform(0, 6.3)) > 0.3)
    _apply(img, rim * rng.uniform(0.2, 0.5), np.broadcast_to(np.float32(230), img.shape).astype(np.float32))
    return box


def particles(img, rng):
    h, w = img.shape[:2]
    c = _centre(rng, img)
    alpha = np.zeros((h, w), np.float32)
    spread = rng.uniform(8, 30)
    for _ in range(int(rng.integers(4, 14))):
        p = np.clip(c + rng.normal(0, spread, 2), 2, [w - 3, h - 3])
        cv2.circle(alpha, (int(p[0]), int(p[1])), int(rng.integers(1, 4)), 1.0, -1, cv2.LINE_AA)
    alpha = np.clip(alpha, 0, 1) * rng.uniform(0.7, 1.0)
    return _apply(img, alpha, _shifted(img, alpha, rng, rng.random() < 0.4, (60, 140)))


def chip(img, rng):
    """A piece broken off at the part's edge: a polygon bitten into one side, showing the fixture
    (a flat tone) where the material is gone."""
    h, w = img.shape[:2]
    side = int(rng.integers(4))
    depth, width = rng.uniform(8, 28), rng.uniform(20, 60)
    along = rng.uniform(width, (w if side % 2 == 0 else h) - width)
    n = 7
    t = np.linspace(-1, 1, n)
    prof = depth * (1 - t ** 2) * rng.uniform(0.6, 1.2, n)
    pts = []
    for ti, d in zip(t, prof):
        a = along + ti * width / 2
        pts.append({0: (a, d), 1: (w - 1 - d, a), 2: (a, h - 1 - d), 3: (d, a)}[side])
    pts += {0: [(along + width / 2, -2), (along - width / 2, -2)], 1: [(w + 1, along + width / 2), (w + 1, along - width / 2)],
            2: [(along + width / 2, h + 1), (along - width / 2, h + 1)], 3: [(-2, along + width / 2), (-2, along - width / 2)]}[side]
    canvas = np.zeros((h, w), np.uint8)
    cv2.fillPoly(canvas, [np.array(pts, np.int32)], 255, cv2.LINE_AA)
    alpha = canvas.astype(np.float32) / 255
    content = np.broadcast_to(np.float32(rng.uniform(10, 60) if rng.random() < 0.7 else rng.uniform(190, 240)),
                              img.shape).astype(np.float32)
    return _apply(img, alpha, content)


PAINT = {"scratch": scratch, "crack": crack, "stain": stain, "hole": hole, "particles": particles, "chip": chip}


def paint(kind: str, img: np.ndarray, rng: np.random.Generator) -> list[int]:
    """Paint one defect of `kind` into `img` (BGR uint8, in place); returns its box."""
    return PAINT[kind](img, rng)
