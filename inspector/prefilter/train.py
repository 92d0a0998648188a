"""`inspector train`: fine-tune the bundled detector on one product's good parts.

The bundled network was trained on a dozen photographed surfaces; on a busy surface it never saw
(coarse stone, woven fabric, dark wood grain) its features cannot tell a speck or a thin scratch
from the surface's own grain (issue 24). Industrial tools and anomalib answer this the same way:
one small model per product, taught on that product's good parts with synthetic defects painted
on them. Here that model is the bundled network itself, fine-tuned for a few hundred steps on
patches of the product's good parts, 60% of them with defects painted by the demo's painters
and the calibration's generic anomalies, at random strength from faint to plain. It keeps the
bundled graph (see onnx_torch.py), so the per-product model costs the same per frame and plugs
into the same normal statistics, threshold calibration and pipeline.

Needs PyTorch and onnx (`pip install 'inspector[train]'`); running a trained model does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inspector.errors import InspectorError
from inspector.prefilter.roi import clip_roi

STEPS = 400
BATCH = 16
PATCH = 160
LR = 3e-4  # 1e-3 lost 0.2 AUROC on a surface (rain) that 3e-4 kept within 0.02: the shared features must survive
SEED = 20261201
MAX_PARTS = 400  # good parts kept in memory for sampling patches
DEFECT_SHARE = 0.6  # patches that get one or two painted defects; the rest teach "normal"


class TrainError(InspectorError):
    pass


def require_torch():
    import importlib

    try:
        importlib.import_module("onnx")
        torch = importlib.import_module("torch")
    except ImportError:
        raise TrainError("inspector train needs PyTorch and onnx, which this install lacks: "
                         "pip install 'inspector[train]' (running a trained model does not need them)") from None
    return torch


@dataclass
class Trained:
    onnx_bytes: bytes
    sha256: str
    seconds: float
    steps: int
    parts: int
    loss_first: float  # mean loss over the first and last 10% of steps
    loss_last: float
    seed: int


def _canvases(detector, images, roi, max_pixels, progress) -> list[np.ndarray]:
    """Each good part's ROI as the network sees it (scaled, with mirrored context), uint8 BGR."""
    from inspector.util.image_file import ImageError, read_image

    out = []
    for i, p in enumerate(images[:MAX_PARTS], 1):
        try:
            img = read_image(p, max_pixels)
            x0, y0, x1, y1 = clip_roi(img, roi)
        except (ImageError, ValueError):
            continue
        canvas = detector.fitted(np.ascontiguousarray(img[y0:y1, x0:x1]))[0]
        if min(canvas.shape[:2]) < PATCH:
            pad_y, pad_x = max(0, PATCH - canvas.shape[0]), max(0, PATCH - canvas.shape[1])
            canvas = cv2.copyMakeBorder(canvas, 0, pad_y, 0, pad_x, cv2.BORDER_REFLECT)
        out.append(canvas)
        if progress:
            progress(i, min(len(images), MAX_PARTS), "reading good parts")
    return out


def _paint(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One or two defects on `patch` (in place), each at a random strength; returns the mask."""
    from inspector.demo.defects import PAINTERS
    from inspector.prefilter.synthetic import paint_anomaly

    h, w = patch.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    kinds = list(PAINTERS)
    for _ in range(int(rng.integers(1, 3))):
        before = patch.copy()
        if rng.random() < 0.6:
            belt = tuple(int(v) for v in rng.uniform(20, 90, 3))
            m = PAINTERS[kinds[int(rng.integers(len(kinds)))]](patch, rng, (0, 0, w, h), belt)
        else:
            m = paint_anomaly(patch, rng, (0, 0, w, h))
        # Faint defects exist: blend the painted one back towards the surface at random strength.
        a = rng.uniform(0.35, 1.0)
        patch[:] = np.clip(before * (1 - a) + patch.astype(np.float32) * a, 0, 255).astype(np.uint8)
        if a >= 0.5 or rng.random() < 0.5:  # the faintest are still defects, but not always marked
            mask |= (m > 0).astype(np.uint8)
    return mask


def _batch(canvases, rng, stride: int):
    xs = np.empty((BATCH, PATCH, PATCH, 3), np.uint8)
    ys = np.zeros((BATCH, 1, PATCH // stride, PATCH // stride), np.float32)
    for i in range(BATCH):
        c = canvases[int(rng.integers(len(canvases)))]
        y = int(rng.integers(c.shape[0] - PATCH + 1))
        x = int(rng.integers(c.shape[1] - PATCH + 1))
        p = c[y:y + PATCH, x:x + PATCH]
        if rng.random() < 0.5:
            p = p[:, ::-1]
        if rng.random() < 0.5:
            p = p[::-1]
        # Light varies a little from part to part on a line.
        p = np.clip(p.astype(np.float32) * rng.uniform(0.92, 1.08) + rng.uniform(-8, 8), 0, 255).astype(np.uint8)
        if rng.random() < DEFECT_SHARE:
            m = _paint(p, rng)
            ys[i, 0] = m.reshape(PATCH // stride, stride, PATCH // stride, stride).max(axis=(1, 3))
        xs[i] = p
    return xs, ys


def fine_tune(detector, model_path: Path, images: list[Path], roi, *, steps: int = STEPS, seed: int = SEED,
              threads: int | None = None, max_pixels: int | None = None, progress=None) -> Trained:
    """Fine-tune `detector`'s network (the bundled default, read from `model_path`) on patches of
    the good parts in `images`; returns the new ONNX file's bytes."""
    torch = require_torch()
    import onnx

    from inspector import MAX_IMAGE_PIXELS
    from inspector.prefilter.onnx_torch import GraphError, build, write_back

    if steps < 1:
        raise TrainError(f"--steps must be at least 1, got {steps}")
    t0 = time.monotonic()
    try:
        base = onnx.load_from_string(Path(model_path).read_bytes())
        net, names = build(base, detector.map_name)
    except (OSError, GraphError, KeyError) as e:
        raise TrainError(f"cannot fine-tune {model_path}: {e}") from None
    canvases = _canvases(detector, images, roi, max_pixels or MAX_IMAGE_PIXELS, progress)
    if not canvases:
        raise TrainError("none of the good parts could be read")
    stride = detector.feed.multiple
    torch.manual_seed(seed)
    torch.set_num_threads(threads or os.cpu_count() or 1)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    net.train()
    try:
        losses = _loop(net, opt, sched, canvases, rng, stride, steps, progress, torch)
    except RuntimeError as e:  # e.g. out of memory
        raise TrainError(f"training stopped: {e}") from None
    net.eval()
    out = write_back(base, net, names).SerializeToString()
    try:
        _check_export(out, net, detector, canvases[0])
    except RuntimeError as e:  # onnxruntime's own failures (Fail, InvalidGraph) derive from it
        raise TrainError(f"the exported model does not run: {e}") from None
    tenth = max(1, steps // 10)
    return Trained(out, hashlib.sha256(out).hexdigest(), time.monotonic() - t0, steps, len(canvases),
                   float(np.mean(losses[:tenth])), float(np.mean(losses[-tenth:])), seed)


def defect_loss(p, y):
    """The bundled detector's training loss, also used by models/train_default_detector.py: BCE
    with defect cells weighed up 10x (they are rare) plus half a soft Dice. p, y: [N, 1, h, w]."""
    import torch

    p = p.clamp(1e-6, 1 - 1e-6)
    bce = (torch.nn.functional.binary_cross_entropy(p, y, reduction="none") * (1 + 9 * y)).mean()
    inter = (p * y).sum(dim=(1, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum(dim=(1, 2, 3)) + y.sum(dim=(1, 2, 3)) + 1)
    return bce + 0.5 * dice.mean()


def _loop(net, opt, sched, canvases, rng, stride, steps, progress, torch) -> list[float]:
    losses = []
    for step in range(1, steps + 1):
        xs, ys = _batch(canvases, rng, stride)
        y = torch.from_numpy(ys)
        loss = defect_loss(net(torch.from_numpy(xs))[0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if progress:
            progress(step, steps, "training")
    return losses


def _check_export(onnx_bytes: bytes, net, detector, canvas: np.ndarray) -> None:
    """The exported file computes what the trained network computes (onnxruntime vs torch)."""
    import onnxruntime as ort
    import torch

    x = np.ascontiguousarray(canvas[:PATCH * 2, :PATCH * 2])[None]
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    got = sess.run([detector.map_name], {detector.input_name: x})[0]
    with torch.no_grad():
        want = net(torch.from_numpy(x))[0].numpy()
    if got.shape != want.shape or float(np.abs(got - want).max()) > 1e-3:
        raise TrainError("the exported model does not compute what was trained (onnxruntime and torch "
                         "disagree); nothing was written")


def save(directory: Path, product: str, trained: Trained, base_entry, base_manifest: Path,
         good_folder: Path) -> tuple[Path, Path]:
    """Write the model and a one-entry manifest (the base entry's contract, this file's hash and
    how it was made), atomically, the manifest last."""
    from inspector.prefilter.product_model import paths
    from inspector.util.atomic_write import write_atomic

    onnx_path, manifest_path = paths(directory, product)
    base = json.loads(Path(base_manifest).read_text(encoding="utf-8"))
    entry = dict(next(e for e in base["models"] if e.get("file") == base_entry.path.name))
    entry.update({
        "name": f"{product}-anomaly",
        "file": onnx_path.name,
        "sha256": trained.sha256,
        "version": f"fine-tuned for product {product} from {base_entry.name}@{base_entry.sha256[:12]}",
        "recipe": {
            "command": "inspector train", "base_model": f"{base_entry.name}@{base_entry.sha256[:12]}",
            "good_parts": trained.parts, "good_folder": str(good_folder), "steps": trained.steps,
            "batch": BATCH, "patch": PATCH, "lr": LR, "seed": trained.seed,
            "defects": "inspector.demo.defects painters and inspector.prefilter.synthetic anomalies",
            "loss_first_tenth": round(trained.loss_first, 4), "loss_last_tenth": round(trained.loss_last, 4),
            "train_seconds": round(trained.seconds, 1),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    })
    Path(directory).mkdir(parents=True, exist_ok=True)
    write_atomic(onnx_path, trained.onnx_bytes)
    write_atomic(manifest_path, (json.dumps({"models": [entry]}, indent=2) + "\n").encode())
    return onnx_path, manifest_path
