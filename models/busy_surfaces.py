"""Busy real surfaces for evaluating the pre-filter: GIMP's photographed patterns, 512x512 parts.

    apt-get install gimp-data          # Debian's package; the patterns are photographs
    .venv/bin/python models/busy_surfaces.py --out /tmp/surfaces granite1 burlap

For each surface it writes `good/` (parts to calibrate or train on), `test/` (other parts: half
good, half with one or two defects) and `test/labels.jsonl` (`inspector eval`'s format, with
each defect's kind), as a plant would collect them. A part is the pattern scaled up 2-3x (the
patterns are small tiles), tiled with a random offset and flip, under a light gradient and
sensor noise, so no two parts are the same crop.

The defects come from `eval_defects.py`, written for evaluation only: not the demo's painters nor
the calibration's synthetic anomalies, which training and calibration see. A detector that only
learnt our own painters' strokes does not score here.

TUNE_SURFACES may be looked at while choosing anything; HELD_OUT_SURFACES only measure the result
(stone, fabric, wood grain, leather, paper, cork: where the pre-filter failed, issue 24).
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.eval_defects import KINDS, paint  # noqa: E402

PATTERNS = Path("/usr/share/gimp/2.0/patterns")
SIZE = 512
HELD_OUT_SURFACES = ["granite1", "rock", "stone33", "ground1", "marble1", "slate", "burlap", "leather",
                     "crinklepaper", "walnut", "pine", "corkboard"]
TUNE_SURFACES = ["fibers", "java", "leaves", "ice", "rain", "Craters", "Moonfoot", "amethyst", "terra",
                 "bark", "burlwood", "leopard"]


class SurfaceError(Exception):
    pass


def read_pattern(path: Path) -> np.ndarray:
    """A GIMP .pat file as BGR uint8: a big-endian header (size, version, width, height, bytes per
    pixel, magic 'GPAT', then the name) followed by raw gray/RGB(A) pixels."""
    data = path.read_bytes()
    header, version, w, h, bpp = struct.unpack(">5I", data[:20])
    if data[20:24] != b"GPAT" or bpp not in (1, 2, 3, 4) or w * h * bpp > len(data) - header:
        raise SurfaceError(f"{path}: not a GIMP pattern")
    px = np.frombuffer(data, np.uint8, w * h * bpp, header).reshape(h, w, bpp)
    if bpp <= 2:
        return cv2.cvtColor(px[..., 0], cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(np.ascontiguousarray(px[..., :3]), cv2.COLOR_RGB2BGR)


def find_pattern(name: str) -> Path:
    hits = sorted(PATTERNS.glob(f"*/{name}.pat"))
    if not hits:
        raise SurfaceError(f"no GIMP pattern {name!r} under {PATTERNS} (apt-get install gimp-data)")
    return hits[0]


def render_part(tile: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    s = rng.uniform(2.0, 3.0)
    t = cv2.resize(tile, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.5:
        t = t[:, ::-1]
    if rng.random() < 0.5:
        t = t[::-1]
    reps = (SIZE // t.shape[0] + 2, SIZE // t.shape[1] + 2, 1)
    big = np.tile(t, reps)
    oy, ox = int(rng.integers(t.shape[0])), int(rng.integers(t.shape[1]))
    part = big[oy:oy + SIZE, ox:ox + SIZE].astype(np.float32)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    a = rng.uniform(-1, 1, 2)
    light = 1.0 + rng.uniform(0.03, 0.10) * (a[0] * (xx - 0.5) + a[1] * (yy - 0.5))
    part = part * light[..., None] * rng.uniform(0.92, 1.08) + rng.normal(0, 2.0, part.shape)
    return np.clip(part, 0, 255).astype(np.uint8)


def build(surface: str, out: Path, good: int = 40, test: int = 40, seed: int = 24) -> Path:
    tile = read_pattern(find_pattern(surface))
    rng = np.random.default_rng([seed, sum(surface.encode())])
    root = out / surface
    (root / "good").mkdir(parents=True, exist_ok=True)
    (root / "test").mkdir(parents=True, exist_ok=True)
    for i in range(good):
        cv2.imwrite(str(root / "good" / f"{i:03d}.png"), render_part(tile, rng))
    lines = []
    for i in range(test):
        img = render_part(tile, rng)
        boxes, kinds = [], []
        if i % 2:
            for kind in rng.choice(KINDS, size=int(rng.integers(1, 3)), replace=False):
                box = paint(str(kind), img, rng)
                boxes.append(box)
                kinds.append(str(kind))
        name = f"{i:03d}.png"
        cv2.imwrite(str(root / "test" / name), img)
        lines.append(json.dumps({"image": name, "boxes": boxes, "kinds": kinds}))
    (root / "test" / "labels.jsonl").write_text("\n".join(lines) + "\n")
    return root


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("surfaces", nargs="*", help="pattern names (default: the held-out ones)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=24)
    a = ap.parse_args()
    try:
        for s in a.surfaces or HELD_OUT_SURFACES:
            print(build(s, a.out, seed=a.seed))
    except SurfaceError as e:
        print(f"busy_surfaces: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
