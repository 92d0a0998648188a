"""Labelled images from detection datasets: what `inspector export --format coco|yolo` writes, and
any COCO or YOLO (Ultralytics) dataset laid out the same way, for `inspector eval`.

COCO: `annotations.json` with `images` (file_name relative to the folder), `annotations`
(`bbox` as x, y, width, height in pixels) and `categories`; an image without annotations is a
defect-free part. YOLO: `images/`, `labels/<stem>.txt` (class, centre x, centre y, width, height,
all 0-1) and `data.yaml` naming the classes; a missing or empty label file is a defect-free part.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from inspector.prefilter.evaluate import EvalError, Labelled
from inspector.util.image_file import ImageError, image_size

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_dataset(folder: Path) -> tuple[list[Labelled], list[str]]:
    """(images with their boxes and defect types, what was skipped and why)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvalError(f"--dataset {folder}: not a folder")
    if (folder / "annotations.json").is_file():
        items, skipped = _coco(folder / "annotations.json", folder), []
    elif (folder / "labels").is_dir() and (folder / "images").is_dir():
        items, skipped = _yolo(folder)
    else:
        raise EvalError(f"--dataset {folder}: neither a COCO dataset (annotations.json) nor a YOLO one "
                        f"(images/ and labels/, as `inspector export --format coco|yolo` writes them)")
    if not items:
        raise EvalError(f"--dataset {folder}: no images")
    return items, skipped


def _coco(path: Path, folder: Path) -> list[Labelled]:
    try:
        doc = json.loads(path.read_text())
        names = {int(c["id"]): str(c["name"]) for c in doc["categories"]}
        by_image: dict[int, list] = {int(im["id"]): [] for im in doc["images"]}
        for a in doc.get("annotations", []):
            x, y, w, h = (float(v) for v in a["bbox"])
            if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
                raise ValueError(f"annotation {a.get('id')}: bbox {str(a['bbox'])[:80]} is not a box with an area")
            by_image[int(a["image_id"])].append(((x, y, x + w, y + h), names[int(a["category_id"])]))
        out = []
        for im in doc["images"]:
            found = by_image[int(im["id"])]
            out.append(Labelled(folder / str(im["file_name"]), [b for b, _ in found], [k for _, k in found] or None))
        return out
    except OSError as e:
        raise EvalError(f"cannot read {path}: {e.strerror}") from None
    except (ValueError, KeyError, TypeError, OverflowError, AttributeError) as e:
        raise EvalError(f"{path}: not a COCO detection file: {type(e).__name__}: {str(e)[:160]}") from None
    except RecursionError:
        raise EvalError(f"{path}: not a COCO detection file: nested too deeply") from None


def _yolo(folder: Path) -> tuple[list[Labelled], list[str]]:
    names: list[str] | dict = []
    if (folder / "data.yaml").is_file():
        try:
            names = (yaml.safe_load((folder / "data.yaml").read_text()) or {}).get("names", [])
        except (OSError, ValueError, yaml.YAMLError, AttributeError) as e:
            raise EvalError(f"{folder / 'data.yaml'}: cannot read the class names: {str(e)[:160]}") from None
        if not isinstance(names, (list, dict)):
            raise EvalError(f"{folder / 'data.yaml'}: 'names' must list the classes, got {type(names).__name__}")
    name = (lambda k: str(names.get(k, k))) if isinstance(names, dict) else \
        (lambda k: str(names[k]) if 0 <= k < len(names) else str(k))
    out, skipped = [], []
    for img in sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        label = folder / "labels" / f"{img.stem}.txt"
        try:
            rows = label.read_text().split("\n") if label.is_file() else []
        except (OSError, UnicodeDecodeError) as e:
            skipped.append(f"{label}: cannot read: {getattr(e, 'strerror', None) or 'not text'}")
            continue
        rows = [r.split() for r in rows if r.strip()]
        if not rows:
            out.append(Labelled(img, []))
            continue
        try:
            w, h = image_size(img)
        except ImageError as e:
            skipped.append(str(e))
            continue
        boxes, kinds = [], []
        for n, r in enumerate(rows, 1):
            try:
                k, cx, cy, bw, bh = int(r[0]), *(float(v) for v in r[1:5])
                if len(r) != 5 or not all(math.isfinite(v) for v in (cx, cy, bw, bh)) or bw <= 0 or bh <= 0:
                    raise ValueError
            except (ValueError, IndexError):
                raise EvalError(f"{label} line {n}: expected `class centre_x centre_y width height` "
                                f"(0-1 of the image)") from None
            boxes.append(((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h))
            kinds.append(name(k))
        out.append(Labelled(img, boxes, kinds))
    return out, skipped
