"""Photographs of a checkerboard through a known camera: for testing and trying camera calibration.

Each view is rendered exactly, pixel by pixel: every image pixel is undistorted (OpenCV's own model,
`cv2.undistortPoints`), its ray is intersected with the board plane at the given pose, and the
board pattern is sampled there. So a calibration that recovers the camera recovers these numbers.

    python -m inspector.demo.checkerboard OUT_DIR [--views 12]   # writes view_XX.png + camera.json
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

# A 1280x1024 machine-vision camera with a 12 mm lens and some barrel distortion.
DEFAULT_K = np.array([[1400.0, 0.0, 652.0], [0.0, 1400.0, 508.0], [0.0, 0.0, 1.0]])
DEFAULT_DIST = np.array([-0.18, 0.09, 0.0008, -0.0005, 0.0])
DEFAULT_SIZE = (1280, 1024)


def board_texture(board: tuple[int, int], square_px: int = 40, margin: int = 1):
    """A board with `board` inner corners (OpenCV's convention: 9x6 has 10x7 squares) and a white
    margin of `margin` squares; returns (image, pixels per square)."""
    cols, rows = board[0] + 1 + 2 * margin, board[1] + 1 + 2 * margin
    yy, xx = np.mgrid[0:rows * square_px, 0:cols * square_px] // square_px
    img = np.where((xx + yy) % 2 == 0, 30, 225).astype(np.uint8)
    inner = (slice(0, margin * square_px), slice(-margin * square_px, None))
    for s in inner:
        img[s, :] = 225
        img[:, s] = 225
    return img, square_px


def render_view(K, dist, rvec, tvec, board: tuple[int, int], square_mm: float,
                size=DEFAULT_SIZE, background: int = 120) -> np.ndarray:
    """The board (inner corner (0, 0) at the board origin, x along `board[0]`) seen at pose
    (rvec, tvec) in millimetres, as a BGR image."""
    tex, spx = board_texture(board)
    w, h = size
    uv = np.stack(np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)), -1).reshape(-1, 1, 2)
    norm = cv2.undistortPoints(uv, K, dist, criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-10))
    norm = norm.reshape(-1, 2)
    d = np.column_stack([norm, np.ones(len(norm))])
    R, _ = cv2.Rodrigues(np.asarray(rvec, np.float64))
    t = np.asarray(tvec, np.float64).reshape(3)
    n = R[:, 2]
    s = (n @ t) / (d @ n)  # ray length to the board plane
    pts = (s[:, None] * d - t) @ R  # board coordinates, mm (z ~ 0)
    # Texture pixel of board mm (x, y): inner corner (0, 0) sits 1 square + margin in.
    mx = (pts[:, 0] / square_mm + 2) * spx - 0.5
    my = (pts[:, 1] / square_mm + 2) * spx - 0.5
    mx[s <= 0] = -1e6  # behind the camera
    img = cv2.remap(tex, mx.reshape(h, w).astype(np.float32), my.reshape(h, w).astype(np.float32),
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=background)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)


def poses(n: int, board: tuple[int, int], square_mm: float, seed: int = 0, K=DEFAULT_K,
          dist=DEFAULT_DIST, size=DEFAULT_SIZE):
    """n varied poses (rvec, tvec) of the board, each wholly inside the image and together
    reaching into its corners (where distortion shows)."""
    rng = np.random.default_rng(seed)
    cx, cy = board[0] * square_mm / 2, board[1] * square_mm / 2
    # The board's outline, margin included: it must be in the picture.
    m = 2 * square_mm
    outline = np.array([[-m, -m, 0], [2 * cx + m, -m, 0], [2 * cx + m, 2 * cy + m, 0], [-m, 2 * cy + m, 0]])
    out = []
    while len(out) < n:
        angles = np.radians(rng.uniform(-30, 30, 3)) * np.array([1, 1, 0.6])
        R, _ = cv2.Rodrigues(angles)
        centre = np.array([rng.uniform(-200, 200), rng.uniform(-160, 160), rng.uniform(420, 560)])
        t = centre - R @ np.array([cx, cy, 0.0])  # the board's middle at `centre`
        rvec = cv2.Rodrigues(R)[0].ravel()
        px = cv2.projectPoints(outline, rvec, t, K, dist)[0].reshape(-1, 2)
        if px.min() >= 4 and (px[:, 0].max() < size[0] - 4) and (px[:, 1].max() < size[1] - 4):
            out.append((rvec, t))
    return out


def write_views(out_dir: Path, views: int = 12, board=(9, 6), square_mm: float = 25.0, seed: int = 0,
                K=DEFAULT_K, dist=DEFAULT_DIST, size=DEFAULT_SIZE) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (r, t) in enumerate(poses(views, board, square_mm, seed, K, dist, size)):
        p = out_dir / f"view_{i:02d}.png"
        cv2.imwrite(str(p), render_view(K, dist, r, t, board, square_mm, size))
        paths.append(p)
    (out_dir / "camera.json").write_text(json.dumps({
        "camera_matrix": np.asarray(K).tolist(), "dist_coeffs": np.asarray(dist).tolist(),
        "image_size": list(size), "board": list(board), "square_mm": square_mm}))
    return paths


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--views", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print("\n".join(str(p) for p in write_views(a.out_dir, a.views, seed=a.seed)))
