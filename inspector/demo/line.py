"""Generate the demo line: tiles of real photographed surfaces passing a triggered camera.

One frame per part (as a triggered line-scan or area camera takes them). Surfaces are real
photographs shipped inside scikit-image (brick, gravel, grass, moon regolith), tinted to plausible
materials; some parts carry synthetic defects. Reproducible from the seed; ground truth is written
next to the frames as JSON lines: {"image", "part", "surface", "defects": [{"type", "box"}]}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inspector.demo.defects import DEMO_DEFECTS, PAINTERS, mask_box

FRAME_W, FRAME_H = 640, 480
TILE = (96, 72, 544, 408)  # nominal tile position; parts jitter a few pixels around it
JITTER = 6
# The camera's inspection ROI: the tile inset past the jitter, so the fixture edge is not a defect
# but a chip (which bites >= 22 px into the tile) still shows inside it.
ROI = (TILE[0] + 12, TILE[1] + 12, TILE[2] - 12, TILE[3] - 12)
BELT_BGR = (58, 62, 60)
FORMAT_VERSION = 1

SURFACES = {
    # name: (photograph inside scikit-image's wheel, BGR tint applied to it in grey)
    "brick": ("brick", (0.55, 0.70, 1.00)),
    "gravel": ("gravel", (0.95, 0.95, 0.92)),
    "grass": ("grass", (0.75, 0.95, 0.80)),
    "moon": ("moon", (0.90, 0.92, 0.98)),
    # More real surfaces for training the default detector (never on the demo line):
    "cells": ("cell", (0.90, 0.90, 0.90)),
    "tissue": ("immunohistochemistry", (0.85, 0.80, 0.95)),
    "beans": ("coffee", (0.60, 0.75, 0.95)),
    "fur": ("chelsea", (0.80, 0.88, 1.00)),
    "retina": ("retina", (0.70, 0.85, 1.00)),
    "metal": ("rocket", (0.95, 0.95, 0.95)),
    "street": ("camera", (0.92, 0.92, 0.92)),
    "suit": ("astronaut", (0.95, 0.93, 0.90)),
    "engine": ("stereo_motorcycle", (0.90, 0.90, 0.95)),
    "vessels": ("microaneurysms", (0.85, 0.90, 0.95)),
}
DEMO_SURFACES = ["brick", "gravel", "grass", "moon"]
# The default detector never sees these in training; its reported numbers are measured on them.
HELD_OUT_SURFACES = ["gravel", "tissue", "vessels"]
TRAIN_SURFACES = [s for s in SURFACES if s not in HELD_OUT_SURFACES]


@dataclass(frozen=True)
class DemoLine:
    frames_dir: Path
    ground_truth: Path
    roi: tuple[int, int, int, int]


def load_surface(name: str) -> np.ndarray:
    import skimage.data as data

    img = getattr(data, SURFACES[name][0])()
    if isinstance(img, tuple):  # stereo_motorcycle: (left, right, disparity)
        img = img[0]
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return img


def _belt(rng: np.random.Generator) -> np.ndarray:
    belt = np.empty((FRAME_H, FRAME_W, 3), np.float32)
    belt[:] = BELT_BGR
    belt += rng.normal(0, 3, (FRAME_H, 1, 1))  # belt weave runs along the line
    belt += rng.normal(0, 2, belt.shape)
    return belt


def _tile_texture(gray: np.ndarray, tint, rng, w: int, h: int) -> np.ndarray:
    k = int(rng.integers(4))
    g = np.rot90(gray, k)
    scale = rng.uniform(0.9, 1.2)
    cw, ch = min(int(w / scale), g.shape[1]), min(int(h / scale), g.shape[0])
    x0 = int(rng.integers(0, g.shape[1] - cw + 1))
    y0 = int(rng.integers(0, g.shape[0] - ch + 1))
    patch = cv2.resize(np.ascontiguousarray(g[y0:y0 + ch, x0:x0 + cw]), (w, h),
                       interpolation=cv2.INTER_LINEAR).astype(np.float32)
    patch = (patch - patch.mean()) * rng.uniform(0.8, 1.0) + rng.uniform(120, 150)
    return np.stack([patch * t for t in tint], axis=-1)


def render_part(rng: np.random.Generator, surfaces: dict[str, np.ndarray], defect_types: list[str]):
    """One frame: belt, a jittered tile of one of `surfaces` (at random), then the defects.
    Returns (frame, surface name, defects [{type, box}], mask of every defect pixel)."""
    img = _belt(rng)
    name = list(surfaces)[int(rng.integers(len(surfaces)))]
    dx, dy = rng.integers(-JITTER, JITTER + 1, 2)
    x1, y1, x2, y2 = TILE[0] + dx, TILE[1] + dy, TILE[2] + dx, TILE[3] + dy
    img[y1:y2, x1:x2] = _tile_texture(surfaces[name], SURFACES[name][1], rng, x2 - x1, y2 - y1)
    # Soft top light: a little vignetting across the tile, as a ring light gives.
    yy, xx = np.mgrid[0:FRAME_H, 0:FRAME_W]
    r2 = ((xx - FRAME_W / 2) / FRAME_W) ** 2 + ((yy - FRAME_H / 2) / FRAME_H) ** 2
    img *= (1.0 - 0.25 * r2)[..., None]
    frame = np.clip(img, 0, 255).astype(np.uint8)
    defects = []
    union = np.zeros(frame.shape[:2], np.uint8)
    on_tile = np.zeros(frame.shape[:2], bool)
    on_tile[y1:y2, x1:x2] = True
    for kind in defect_types:
        painted = frame.copy()
        mask = PAINTERS[kind](painted, rng, (x1, y1, x2, y2), BELT_BGR)
        # A chip takes material away at the edge; every other defect lives on the tile only.
        region = np.ones_like(on_tile) if kind == "chip" else on_tile
        frame[region] = painted[region]
        mask = np.where(region, mask, 0).astype(np.uint8)
        box = mask_box(mask)
        if box is not None:
            defects.append({"type": kind, "box": box})
            union |= mask
    frame = np.clip(frame.astype(np.int16) + rng.normal(0, 2.0, frame.shape), 0, 255).astype(np.uint8)
    return frame, name, defects, union


CODE_AT = (2, 180)  # where a part's QR code is printed: on the carrier left of the tile, outside the ROI


def part_code_id(seed: int, part: int) -> str:
    return f"DEMO-{seed}-{part:05d}"


def print_code(frame: np.ndarray, text: str) -> None:
    """A QR code of `text` on the part's carrier, 3 px a module, with a white quiet zone."""
    q = cv2.QRCodeEncoder.create().encode(text)
    q = cv2.copyMakeBorder(q, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=255)
    q = cv2.resize(q, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
    x, y = CODE_AT
    h, w = q.shape
    frame[y:y + h, x:x + w] = q[..., None]


def generate(out_dir: Path, parts: int = 24, seed: int = 7, defect_rate: float = 0.4,
             surfaces: list[str] | None = None, defects: list[str] | None = None,
             codes: bool = False) -> DemoLine:
    """Write frames + ground truth into out_dir (idempotent for the same arguments).

    `surfaces` and `defects` default to the demo line's; the detector's training and evaluation
    sets are made by the same renderer with other choices (e.g. surfaces held out of training).
    `codes`: each part carries a QR code with its part id (`part_code_id`), left of the tile."""
    surfaces = surfaces or DEMO_SURFACES
    kinds = defects or DEMO_DEFECTS
    unknown = (set(surfaces) - set(SURFACES)) | (set(kinds) - set(PAINTERS))
    if unknown:
        raise ValueError(f"unknown surface or defect type(s): {sorted(unknown)}")
    out_dir = Path(out_dir)
    frames_dir = out_dir / "frames"
    gt_path = out_dir / "ground_truth.jsonl"
    meta_path = out_dir / "line.json"
    meta = {"format": FORMAT_VERSION, "parts": parts, "seed": seed, "defect_rate": defect_rate,
            "roi": list(ROI), "frame_size": [FRAME_W, FRAME_H], "surfaces": surfaces,
            "defects": kinds}
    if codes:
        meta["codes"] = True
    line = DemoLine(frames_dir, gt_path, ROI)
    if meta_path.exists() and gt_path.exists():
        try:
            if json.loads(meta_path.read_text()) == meta:
                return line
        except (OSError, ValueError):
            pass  # unreadable metadata: regenerate
    frames_dir.mkdir(parents=True, exist_ok=True)
    for old in frames_dir.glob("*.png"):
        old.unlink()
    rng = np.random.default_rng(seed)
    textures = {name: load_surface(name) for name in surfaces}
    rows = []
    for i in range(parts):
        n = 0
        if rng.random() < defect_rate:
            n = 1 if rng.random() < 0.75 else 2
        chosen = [kinds[int(k)] for k in rng.choice(len(kinds), size=n, replace=False)]
        frame, surface, found, _ = render_part(rng, textures, chosen)
        name = f"part_{i + 1:04d}.png"
        row = {"image": name, "part": i + 1, "surface": surface, "defects": found}
        if codes:
            row["part_id"] = part_code_id(seed, i + 1)
            print_code(frame, row["part_id"])
        if not cv2.imwrite(str(frames_dir / name), frame):
            raise OSError(f"could not write demo frame {frames_dir / name}")
        rows.append(row)
    gt_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    meta_path.write_text(json.dumps(meta))  # written last: marks the line complete
    return line


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--parts", type=int, default=24)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--defect-rate", type=float, default=0.4, help="share of parts with defects")
    ap.add_argument("--surfaces", nargs="+", choices=list(SURFACES), help="default: the demo's")
    ap.add_argument("--defects", nargs="+", choices=list(PAINTERS), help="default: the demo's")
    ap.add_argument("--codes", action="store_true", help="print a QR code with its part id on each part")
    a = ap.parse_args()
    print(generate(a.out_dir, a.parts, a.seed, a.defect_rate, a.surfaces, a.defects, a.codes))
