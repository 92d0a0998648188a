"""`inspector export`: verdicts as tables (csv, jsonl), reviewed defects as datasets (coco, yolo).

Tables have one row per inspection in the time window, with the machine verdict and the verdict in
force after operators' reviews. The datasets hold the inspections an operator reviewed as `fail`
that have a stored frame: the image and its defect boxes (the VLM's findings, else the detector's
candidates), by defect type, ready to retrain or fine-tune the pre-filter on.
"""

from __future__ import annotations

import csv
import json
import shutil
from datetime import datetime
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from inspector.store.models import Inspection

FIELDS = ["id", "uid", "captured_at", "camera_id", "product", "seq", "part_id", "source_name", "line_decision",
          "line_basis", "verdict", "why",
          "verdict_in_force", "reviews", "defect_types", "findings", "candidates", "explanation",
          "frame_path"]


def _rows(store, since: datetime, until: datetime | None):
    q = (select(Inspection).where(Inspection.captured_at >= since)
         .options(selectinload(Inspection.verdict), selectinload(Inspection.findings),
                  selectinload(Inspection.candidates), selectinload(Inspection.reviews),
                  selectinload(Inspection.images), selectinload(Inspection.line_decision))
         .order_by(Inspection.id))
    if until is not None:
        q = q.where(Inspection.captured_at < until)
    with Session(store.engine) as s:
        for i in s.scalars(q).yield_per(500):
            if i.verdict is not None:
                yield i


def _table_row(i: Inspection) -> dict:
    return {"id": i.id, "uid": i.uid, "captured_at": i.captured_at.isoformat() + "Z", "camera_id": i.camera_id,
            "product": i.product, "seq": i.seq, "part_id": i.part_id or "", "source_name": i.source_name,
            "line_decision": i.line_decision.answer if i.line_decision else "",
            "line_basis": i.line_decision.basis if i.line_decision else "", "verdict": i.verdict.kind,
            "why": i.verdict.why, "verdict_in_force": i.reviews[-1].to_verdict if i.reviews else i.verdict.kind,
            "reviews": len(i.reviews), "defect_types": " ".join(sorted({f.defect_type for f in i.findings})),
            "findings": len(i.findings), "candidates": len(i.candidates), "explanation": i.verdict.explanation,
            "frame_path": next((im.path for im in i.images if im.kind == "frame"), "")}


def _boxes(i: Inspection) -> list[tuple[str, list[float]]]:
    if i.findings:
        return [(f.defect_type, f.box) for f in i.findings]
    return [(c.label, c.box) for c in i.candidates]


def export(store, out: Path, fmt: str, since: datetime, until: datetime | None = None,
           include_good: bool = False) -> dict:
    """Write the export to `out` (a file for csv/jsonl, a folder for coco/yolo); returns counts.
    `include_good` adds the parts reviewed `pass` to a dataset as images without boxes (background
    images: the machine's false alarms among them), so that it measures precision too."""
    out = Path(out)
    if fmt in ("csv", "jsonl"):
        out.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        tmp = out.with_name(out.name + ".part")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, FIELDS) if fmt == "csv" else None
            if w:
                w.writeheader()
            for i in _rows(store, since, until):
                row = _table_row(i)
                w.writerow(row) if w else f.write(json.dumps(row) + "\n")
                n += 1
        tmp.replace(out)
        return {"rows": n}
    if fmt not in ("coco", "yolo"):
        raise ValueError(f"format must be csv, jsonl, coco or yolo, got {fmt!r}")
    items = []
    for i in _rows(store, since, until):
        in_force = i.reviews[-1].to_verdict if i.reviews else None
        wanted = in_force == "fail" or (include_good and in_force == "pass")
        frame = store.frame_file(i.id) if wanted else None
        if frame is None:
            continue
        if in_force == "pass":
            items.append((i, frame, []))
        elif _boxes(i):
            items.append((i, frame, _boxes(i)))
    names = sorted({t for _, _, boxes in items for t, _ in boxes})
    (out / "images").mkdir(parents=True, exist_ok=True)
    if fmt == "coco":
        doc = {"info": {"description": "inspector: reviewed defects", "date_created": datetime.now().isoformat()},
               "categories": [{"id": k + 1, "name": n} for k, n in enumerate(names)], "images": [], "annotations": []}
    else:
        (out / "labels").mkdir(exist_ok=True)
    n_boxes = 0
    for i, frame, boxes in items:
        name = f"{i.id:08d}.jpg"
        shutil.copyfile(frame, out / "images" / name)
        if fmt == "coco":
            doc["images"].append({"id": i.id, "file_name": f"images/{name}", "width": i.width, "height": i.height})
        lines = []
        for t, (x1, y1, x2, y2) in boxes:
            n_boxes += 1
            if fmt == "coco":
                doc["annotations"].append({"id": n_boxes, "image_id": i.id, "category_id": names.index(t) + 1,
                                           "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                           "iscrowd": 0})
            else:
                lines.append(f"{names.index(t)} {(x1 + x2) / 2 / i.width:.6f} {(y1 + y2) / 2 / i.height:.6f} "
                             f"{(x2 - x1) / i.width:.6f} {(y2 - y1) / i.height:.6f}")
        if fmt == "yolo":
            (out / "labels" / f"{i.id:08d}.txt").write_text("\n".join(lines) + "\n")
    if fmt == "coco":
        (out / "annotations.json").write_text(json.dumps(doc, indent=1))
    else:
        # Ultralytics' dataset file; train and val are the same images until someone splits them.
        (out / "data.yaml").write_text(yaml.safe_dump({"path": str(out.resolve()), "train": "images",
                                                       "val": "images", "names": names}, sort_keys=False))
    return {"images": len(items), "good": sum(not b for _, _, b in items), "boxes": n_boxes, "classes": names}


def reviewed_labels(store, since: datetime, until: datetime | None = None):
    """Operators' reviews as ground truth, for `inspector eval vlm --from-reviews`: each inspection
    whose review in force is `fail` or `pass` and whose frame is kept, as a labelled image.

    A part reviewed `fail` is labelled with its defect boxes (the VLM's findings, else the
    detector's candidates: the operator confirmed that part, not redrew its boxes) and the defect
    type the operator named, else the VLM's. A part reviewed `pass` is defect-free, and the regions
    the machine flagged on it are the ones worth asking about again (its false alarm)."""
    from inspector.prefilter.evaluate import Labelled

    out = []
    for i in _rows(store, since, until):
        if not i.reviews or i.reviews[-1].to_verdict not in ("fail", "pass"):
            continue
        frame = store.frame_file(i.id)
        if frame is None:
            continue
        review = i.reviews[-1]
        flagged = _boxes(i)
        if review.to_verdict == "pass":
            out.append(Labelled(Path(frame), [], None, [tuple(b) for _, b in flagged]))
        elif flagged:
            kinds = [review.defect_type or (t if i.findings else None) for t, _ in flagged]
            out.append(Labelled(Path(frame), [tuple(b) for _, b in flagged], kinds if all(kinds) else None))
    return out
