"""The durable spool: every frame waiting for the VLM is on disk before the line moves on.

A job is the frame (raw .npy: lossless and the fastest to write), plus a JSON sidecar written last
as the commit marker (a frame without one is debris from a crash and is removed). The job leaves
the spool only once its verdict is committed to the database. After a crash or restart the line
resumes the jobs still here; the job's uid is the inspection's uid, so a job whose verdict did make
it in before the crash is recognised and not recorded twice. Crops are not stored: they are cut
again from the frame and the stored candidates, exactly as the first time.

With store.synchronous = full the files are fsynced (survives power loss); with normal they
survive a crash of the process, like the database.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspector.errors import InspectorError
from inspector.util import durable
from inspector.messages import Candidate, Frame

log = logging.getLogger(__name__)


class SpoolError(InspectorError):
    """The job could not be made durable (disk full, I/O error): the caller must not drop it."""


@dataclass(frozen=True)
class SpooledJob:
    uid: str
    product: str
    frame: Frame
    candidates: tuple[Candidate, ...]
    queued_wall: float


class Spool:
    def __init__(self, directory: Path, *, fsync: bool = False):
        self.dir = Path(directory)
        self.fsync = fsync
        durable.makedirs(self.dir, sync=fsync)  # a job synced into a folder the disk forgot is lost too
        self.write_errors = 0
        self._lock = threading.Lock()
        for npy in self.dir.glob("*.npy"):
            if not npy.with_suffix(".json").exists():
                npy.unlink(missing_ok=True)
        for tmp in self.dir.glob("*.tmp"):
            tmp.unlink(missing_ok=True)

    def __len__(self) -> int:
        return sum(1 for _ in self.dir.glob("*.json"))

    def put(self, uid: str, product: str, frame: Frame, candidates) -> None:
        """Make the job durable; raises SpoolError if it could not be."""
        npy, side = self._paths(uid)
        meta = {"uid": uid, "product": product, "queued_wall": time.time(),
                "frame": {"camera_id": frame.camera_id, "seq": frame.seq, "source_name": frame.source_name,
                          "roi": list(frame.roi) if frame.roi else None, "mm_per_px": frame.mm_per_px,
                          "captured_wall": frame.captured_wall, "part_id": frame.part_id},
                "candidates": [{"box": list(c.box), "score": c.score, "label": c.label, "model_id": c.model_id}
                               for c in candidates]}
        try:
            with open(npy, "wb") as f:
                np.save(f, np.ascontiguousarray(frame.image), allow_pickle=False)
                self._sync(f)
            tmp = side.with_suffix(".tmp")
            with open(tmp, "w") as f:
                json.dump(meta, f)
                self._sync(f)
            tmp.replace(side)
            if self.fsync:
                durable.fsync_dir(self.dir)
        except OSError as e:
            self.write_errors += 1
            npy.unlink(missing_ok=True)
            side.with_suffix(".tmp").unlink(missing_ok=True)
            raise SpoolError(f"could not spool frame {frame.seq} of camera {frame.camera_id}: {e}") from e

    def done(self, uid: str) -> None:
        """The job's verdict is committed: it leaves the spool (sidecar first: no half job left)."""
        npy, side = self._paths(uid)
        side.unlink(missing_ok=True)
        npy.unlink(missing_ok=True)

    def pending(self) -> list[SpooledJob]:
        """Jobs left by an earlier run, oldest first; a damaged one is set aside, not retried."""
        out = []
        for side in sorted(self.dir.glob("*.json"), key=lambda p: p.stat().st_mtime_ns):
            try:
                meta = json.loads(side.read_text())
                image = np.load(side.with_suffix(".npy"), allow_pickle=False)
                fm = meta["frame"]
                frame = Frame(fm["camera_id"], fm["seq"], image, roi=tuple(fm["roi"]) if fm["roi"] else None,
                              source_name=fm["source_name"], mm_per_px=fm["mm_per_px"],
                              captured_wall=fm["captured_wall"], part_id=fm.get("part_id"),
                              # on this run's monotonic clock: its deadline long passed
                              captured_mono=time.monotonic() - max(0.0, time.time() - fm["captured_wall"]))
                cands = tuple(Candidate(tuple(c["box"]), c["score"], c["label"], c["model_id"])
                              for c in meta["candidates"])
                out.append(SpooledJob(meta["uid"], meta["product"], frame, cands, meta["queued_wall"]))
            except (OSError, ValueError, KeyError, TypeError) as e:
                bad = side.with_suffix(".damaged")
                log.error("spool: job %s cannot be read (%s); moved to %s", side.stem, e, bad.name)
                side.replace(bad)
        return out

    def _paths(self, uid: str) -> tuple[Path, Path]:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in uid)
        return self.dir / f"{safe}.npy", self.dir / f"{safe}.json"

    def _sync(self, f) -> None:
        if self.fsync:
            f.flush()
            os.fsync(f.fileno())
