"""Train the bundled default detector and export it as models/default-anomaly.onnx.

    .venv/bin/pip install -e '.[train]'      # torch (CPU) and onnx
    .venv/bin/python models/train_default_detector.py   # about 12 minutes on 2 cores

What it learns: a per-pixel "defect here" probability at 1/4 of the input resolution, from real
photographed surfaces (scikit-image's bundled photographs, tiled on a conveyor belt by the demo
renderer) with synthetic defects painted on them (scratches, cracks, stains, holes, chips,
particles, bright/dark blobs, discolouration). The surfaces in HELD_OUT_SURFACES are never used
for training; the numbers reported in models/README.md are measured on them.

The network is small on purpose (the pre-filter runs on every frame on the edge box's CPU): a
strided stem, depthwise-separable blocks with growing dilation for context, and a head that sees
each position's features both as they are and minus the image's mean features (how unusual this
place is for this part), which is what lets it generalise to surfaces it never saw. The input is
uint8 BGR NHWC, so the caller does no per-pixel work; the output is a probability map in 0..1.

Everything is seeded; the recipe (surfaces, defects, sizes, steps) is written into the manifest.
At the end, models/normal_head.py adds the per-product normal-statistics outputs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inspector.demo.defects import PAINTERS  # noqa: E402
from inspector.prefilter.train import defect_loss  # noqa: E402
from inspector.demo.line import (HELD_OUT_SURFACES, ROI, TRAIN_SURFACES, load_surface,  # noqa: E402
                                 render_part)

STRIDE = 4
PATCH = 160


def render_pool(surfaces: list[str], n: int, seed: int, defect_rate: float = 0.75):
    """n frames of the given surfaces with 0-3 random defects: (frames, masks, defect lists)."""
    rng = np.random.default_rng(seed)
    tex = {s: load_surface(s) for s in surfaces}
    kinds = list(PAINTERS)
    frames, masks, defects = [], [], []
    for _ in range(n):
        k = 0
        if rng.random() < defect_rate:
            k = int(rng.choice([1, 1, 2, 3]))
        chosen = [kinds[int(i)] for i in rng.choice(len(kinds), size=k, replace=False)]
        f, _, d, m = render_part(rng, {s: tex[s] for s in [surfaces[int(rng.integers(len(surfaces)))]]},
                                 chosen)
        frames.append(f)
        masks.append(m)
        defects.append(d)
    return frames, masks, defects


def build_model():
    import torch
    from torch import nn

    def sep(cin, cout, stride=1, dilation=1):
        return nn.Sequential(
            nn.Conv2d(cin, cin, 3, stride, dilation, dilation=dilation, groups=cin, bias=False),
            nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
            nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class Net(nn.Module):
        def __init__(self, c: int = 32):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16),
                                      nn.ReLU(inplace=True))
            self.down = sep(16, c, stride=2)
            self.blocks = nn.ModuleList([sep(c, c, dilation=d) for d in (1, 2, 4, 8)])
            self.head = nn.Sequential(nn.Conv2d(2 * c, c, 1), nn.ReLU(inplace=True), nn.Conv2d(c, 1, 1))

        def forward(self, x):  # x: uint8 [N, H, W, 3] BGR
            x = x.permute(0, 3, 1, 2).float() * (1.0 / 255.0)
            f = self.down(self.stem(x))
            for b in self.blocks:
                f = f + b(f)
            g = f - f.mean(dim=(2, 3), keepdim=True)  # unusual for this image?
            return torch.sigmoid(self.head(torch.cat([f, g], 1)))

    return Net()


def sample_batch(rng, frames, masks, n):
    """Random patches at random scale, flipped and colour-jittered; targets at 1/STRIDE."""
    xs = np.empty((n, PATCH, PATCH, 3), np.uint8)
    ys = np.empty((n, 1, PATCH // STRIDE, PATCH // STRIDE), np.float32)
    for i in range(n):
        j = int(rng.integers(len(frames)))
        s = rng.uniform(0.5, 1.1)
        f = cv2.resize(frames[j], None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        m = cv2.resize(masks[j], (f.shape[1], f.shape[0]), interpolation=cv2.INTER_NEAREST)
        # Mostly on the tile (where defects are), sometimes across its edge and the belt.
        x1, y1, x2, y2 = (int(v * s) for v in ROI)
        if rng.random() < 0.8:
            cx = int(rng.integers(x1, max(x1 + 1, x2 - PATCH)))
            cy = int(rng.integers(y1, max(y1 + 1, y2 - PATCH)))
        else:
            cx = int(rng.integers(0, f.shape[1] - PATCH))
            cy = int(rng.integers(0, f.shape[0] - PATCH))
        cx, cy = min(cx, f.shape[1] - PATCH), min(cy, f.shape[0] - PATCH)
        p = f[cy:cy + PATCH, cx:cx + PATCH].astype(np.float32)
        t = m[cy:cy + PATCH, cx:cx + PATCH]
        if rng.random() < 0.5:
            p, t = p[:, ::-1], t[:, ::-1]
        if rng.random() < 0.5:
            p, t = p[::-1], t[::-1]
        p = p * rng.uniform(0.8, 1.2, 3) + rng.uniform(-25, 25)  # light and white balance
        xs[i] = np.clip(p, 0, 255).astype(np.uint8)
        ys[i, 0] = t.reshape(PATCH // STRIDE, STRIDE, PATCH // STRIDE, STRIDE).max(axis=(1, 3)) > 0
    return xs, ys


def image_scores(model, frames, batch=8):
    import torch

    roi = ROI
    out = []
    with torch.no_grad():
        for i in range(0, len(frames), batch):
            x = np.stack([f[roi[1]:roi[3], roi[0]:roi[2]] for f in frames[i:i + batch]])
            out += model(torch.from_numpy(x)).amax(dim=(1, 2, 3)).tolist()
    return np.array(out)


def auroc(scores, labels) -> float:
    from inspector.prefilter.metrics import roc_auc

    return roc_auc(scores, labels)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "models")
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--frames", type=int, default=2000, help="rendered training frames")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import torch

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(a.seed)
    t0 = time.time()
    frames, masks, _ = render_pool(TRAIN_SURFACES, a.frames, a.seed)
    val_frames, _, val_defects = render_pool(HELD_OUT_SURFACES, 240, a.seed + 1, defect_rate=0.5)
    val_labels = np.array([bool(d) for d in val_defects])
    print(f"rendered {len(frames)} training + {len(val_frames)} held-out frames in {time.time() - t0:.0f} s",
          flush=True)

    model = build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=a.steps, pct_start=0.1)
    for step in range(1, a.steps + 1):
        model.train()
        xs, ys = sample_batch(rng, frames, masks, a.batch)
        y = torch.from_numpy(ys)
        loss = defect_loss(model(torch.from_numpy(xs)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == a.steps:
            model.eval()
            auc = auroc(image_scores(model, val_frames), val_labels)
            print(f"step {step}/{a.steps} loss {loss.item():.4f} held-out image AUROC {auc:.4f} "
                  f"({time.time() - t0:.0f} s)", flush=True)
    model.eval()
    export(model, a, time.time() - t0)
    return 0


def export(model, a, seconds: float) -> None:
    import torch

    out = a.out / "default-anomaly.onnx"
    tmp = out.with_suffix(".tmp")
    dummy = torch.zeros(1, 320, 416, 3, dtype=torch.uint8)
    torch.onnx.export(model, (dummy,), str(tmp), input_names=["image"], output_names=["anomaly_map"],
                      dynamic_axes={"image": {1: "height", 2: "width"},
                                    "anomaly_map": {2: "map_height", 3: "map_width"}},
                      opset_version=17, dynamo=False)
    tmp.replace(out)
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    manifest_path = a.out / "manifest.json"
    doc = json.loads(manifest_path.read_text())
    entry = {
        "name": "default-anomaly",
        "file": out.name,
        "sha256": sha,
        "kind": "anomaly_map",
        "input": {"name": "image", "layout": "NHWC", "dtype": "uint8", "channels": "BGR",
                  "scale": "0..255 (the model scales)", "size": "any height x width",
                  "max_side": 640},
        "output": {"name": "anomaly_map", "stride": STRIDE,
                   "meaning": "probability that a defect covers the cell, 0..1"},
        "labels": ["defect"],
        "default_threshold": 0.5,
        "version": "1.0 (trained)",
        "recipe": {
            "script": "models/train_default_detector.py", "seed": a.seed, "frames": a.frames,
            "steps": a.steps, "batch": a.batch, "patch": PATCH, "scale_jitter": [0.5, 1.1],
            "train_surfaces": TRAIN_SURFACES, "held_out_surfaces": HELD_OUT_SURFACES,
            "defects": list(PAINTERS), "source": "scikit-image bundled photographs, demo renderer",
            "train_seconds": round(seconds), "torch": torch.__version__,
        },
    }
    doc["models"] = [m for m in doc["models"] if m["name"] != entry["name"]] + [entry]
    manifest_path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB, sha256 {sha[:12]}) in {seconds:.0f} s")
    # The per-product normal-statistics head is added to the trained network (and its manifest
    # entry updated) by its own script, which can also be re-run alone on an exported model.
    from models import normal_head

    sys.argv = [sys.argv[0], "--model", str(out), "--manifest", str(manifest_path)]
    normal_head.main()


if __name__ == "__main__":
    sys.exit(main())
