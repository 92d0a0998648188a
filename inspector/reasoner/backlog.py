"""Crops kept on disk to reason later, when the VLM was down or could not keep up.

The verdict for such a part is already stored (`review - VLM unavailable`) and the line moved on;
the backlog lets the VLM's answer join that inspection once it is back, so the person reviewing the
part sees it. Each item is a PNG of the crop plus a JSON sidecar written last (the sidecar is the
commit marker: a PNG without one is debris from a crash and is removed). Bounded: when full, the
oldest items go first, since their parts are the most likely to have been reviewed already.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inspector.messages import Candidate, Crop, CropTransform

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BacklogItem:
    path: Path  # the JSON sidecar
    inspection_id: int
    product: str
    camera_id: str
    queued_wall: float
    crop: Crop


class Backlog:
    def __init__(self, directory: Path, max_items: int):
        self.dir = Path(directory)
        self.max_items = max_items
        self.dropped = 0
        self.write_errors = 0
        self._lock = threading.Lock()
        self._n = 0
        if max_items:
            self.dir.mkdir(parents=True, exist_ok=True)
            for png in self.dir.glob("*.png"):
                if not png.with_suffix(".json").exists():
                    png.unlink(missing_ok=True)

    def __len__(self) -> int:
        return len(self._sidecars()) if self.max_items else 0

    def _sidecars(self) -> list[Path]:
        return sorted(self.dir.glob("*.json"))

    def put(self, inspection_id: int, product: str, camera_id: str, crop: Crop) -> bool:
        if not self.max_items:
            return False
        with self._lock:
            self._n += 1
            stem = f"{time.time_ns():020d}-{self._n:06d}-i{inspection_id}-c{crop.index}"
            png, side = self.dir / f"{stem}.png", self.dir / f"{stem}.json"
            meta = {"inspection_id": inspection_id, "product": product, "camera_id": camera_id,
                    "crop_index": crop.index, "queued_wall": time.time(),
                    "candidate": {"box": list(crop.candidate.box), "score": crop.candidate.score,
                                  "label": crop.candidate.label, "model_id": crop.candidate.model_id},
                    "transform": {"offset_x": crop.transform.offset_x,
                                  "offset_y": crop.transform.offset_y, "scale": crop.transform.scale}}
            try:
                ok, buf = cv2.imencode(".png", crop.image)
                if not ok:
                    raise OSError("PNG encoding failed")
                png.write_bytes(buf.tobytes())
                tmp = side.with_suffix(".tmp")
                tmp.write_text(json.dumps(meta))
                tmp.replace(side)
            except OSError as e:  # disk full: the verdict is stored; only the late answer is lost
                self.write_errors += 1
                png.unlink(missing_ok=True)
                log.error("VLM backlog: could not keep crop %d of inspection %d: %s",
                          crop.index, inspection_id, e)
                return False
            sidecars = self._sidecars()
            for old in sidecars[: max(0, len(sidecars) - self.max_items)]:
                self._remove(old)
                self.dropped += 1
            return True

    def oldest(self) -> BacklogItem | None:
        for side in self._sidecars() if self.max_items else []:
            try:
                meta = json.loads(side.read_text())
                img = cv2.imdecode(np.fromfile(side.with_suffix(".png"), np.uint8), cv2.IMREAD_COLOR)
                if img is None:
                    raise ValueError("crop image unreadable")
                c, t = meta["candidate"], meta["transform"]
                crop = Crop(Candidate(tuple(c["box"]), c["score"], c["label"], c["model_id"]),
                            meta["crop_index"], img,
                            CropTransform(t["offset_x"], t["offset_y"], t["scale"]))
                return BacklogItem(side, meta["inspection_id"], meta["product"], meta["camera_id"],
                                   meta["queued_wall"], crop)
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.error("VLM backlog: dropping unreadable item %s: %s", side.name, e)
                self._remove(side)
                self.dropped += 1
        return None

    def done(self, item: BacklogItem) -> None:
        self._remove(item.path)

    def _remove(self, side: Path) -> None:
        side.with_suffix(".png").unlink(missing_ok=True)
        side.unlink(missing_ok=True)
