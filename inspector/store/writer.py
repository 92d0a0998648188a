"""The one writer: verdicts queued by the line, written in batched transactions by one thread.

Why one thread: SQLite has one writer at a time, and a transaction per verdict costs an fsync-ish
WAL commit each; batching hundreds of verdicts per transaction is what makes thousands per second
possible. The stages never wait on the database: they hand a `Pending` over and go on; the
callback runs once the verdict is committed, and only then is the verdict "reported" (counted,
printed, acknowledged to the spool).

Idempotent by uid: a verdict whose uid is already stored (re-sent after a crash) is not written
again; its callback gets the stored row's id.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from sqlalchemy import insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from inspector.messages import Crop, Verdict
from inspector.store import models as m
from inspector.store import rollup
from inspector.store.rollup import bucket_of
from inspector.store.images import ImageStore, thumbnail
from inspector.store.rows import answer_rows, finding_row

log = logging.getLogger(__name__)
RETRY_MAX_S = 10.0


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc).replace(tzinfo=None)


@dataclass
class Pending:
    uid: str
    verdict: Verdict
    product: str
    reasoner_mode: str
    versions: dict[str, int] = field(default_factory=dict)
    crops: tuple[Crop, ...] = ()
    on_commit: Callable[[int], None] | None = None
    done: threading.Event | None = None  # for callers that wait (Store.save)
    inspection_id: int | None = None
    error: Exception | None = None


_STOP = object()


class Writer:
    def __init__(self, engine, images: ImageStore, *, save_frames=(), save_crops=(), save_thumbnails=(),
                 thumbnail_px: int = 320, batch_max: int = 500, batch_wait_s: float = 0.02,
                 queue_size: int = 20000, lock: threading.Lock | None = None):
        self.engine = engine
        self.images = images
        self.save_frames, self.save_crops = set(save_frames), set(save_crops)
        self.save_thumbnails, self.thumbnail_px = set(save_thumbnails), thumbnail_px
        self.batch_max, self.batch_wait_s = batch_max, batch_wait_s
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.lock = lock or threading.Lock()
        self.committed = 0
        self.batches = 0
        self.duplicates = 0  # re-sent verdicts recognised by uid
        self.failed = 0  # verdicts the database refused outright (logged with the reason)
        self.last_error: str | None = None  # while the database cannot be written (cleared on success)
        self.last_refused: str | None = None  # the last verdict refused outright, and why
        self._known_cameras: set[str] = set()
        self._known_products: set[str] = set()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._idle = threading.Condition()
        self._in_flight = 0

    def submit(self, p: Pending, timeout: float | None = None) -> None:
        """Queue one verdict. Waits only when the queue is full (the database is far behind)."""
        self._ensure_thread()
        with self._idle:
            self._in_flight += 1
        try:
            self.queue.put(p, timeout=timeout)
        except queue.Full:
            with self._idle:
                self._in_flight -= 1
            raise

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is committed (or refused)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float = 30.0) -> None:
        if self._thread is None:
            return
        self.flush(timeout)
        self.queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def status(self) -> dict:
        return {"writer_queue": self.queue.qsize(), "writer_committed": self.committed,
                "writer_batches": self.batches, "writer_duplicates": self.duplicates,
                "writer_failed": self.failed, "writer_last_error": self.last_error,
                "writer_last_refused": self.last_refused}

    # --- the thread -----------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is _STOP:
                return
            batch = [item]
            stop = False
            # Group commit: everything already waiting goes in this transaction; under load the
            # batches grow by themselves while the previous one commits. batch_wait adds a pause
            # to gather more (fewer, larger commits) at the cost of that much latency.
            deadline = time.monotonic() + self.batch_wait_s
            while len(batch) < self.batch_max:
                try:
                    left = deadline - time.monotonic()
                    nxt = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._write_batch(batch)
            if stop:
                return

    def _write_batch(self, batch: list[Pending]) -> None:
        pictures = {id(p): self._pictures(p) for p in batch}
        self.images.make_durable()
        delay = 0.2
        while True:
            try:
                self._commit(batch, pictures)
                self.last_error = None
                break
            except IntegrityError as e:
                if len(batch) == 1:  # this verdict itself is refused: say which and why, go on
                    self._refuse(batch[0], e)
                    return
                # One bad row must not hold back the rest: write them one by one.
                for p in batch:
                    self._write_batch([p])
                return
            except (OperationalError, DBAPIError) as e:
                # Locked, disk full, server gone: the verdicts wait in memory and are retried; the
                # queue in front of us is bounded, so a long outage slows the stages, never drops.
                self.last_error = f"{type(e).__name__}: {e.orig if hasattr(e, 'orig') else e}"
                log.error("store: writing %d verdicts failed (%s); retrying in %.1f s",
                          len(batch), self.last_error, delay)
                time.sleep(delay)
                delay = min(RETRY_MAX_S, delay * 2)
        for p in batch:
            self._finish(p)

    def _refuse(self, p: Pending, e: Exception) -> None:
        self.failed += 1
        p.error = e
        why = f"{type(e).__name__}: {e.orig if hasattr(e, 'orig') else e}"
        self.last_refused = f"{p.uid}: {why}"
        log.error("store: verdict %s (camera %s frame %d) refused by the database: %s",
                  p.uid, p.verdict.frame.camera_id, p.verdict.frame.seq, why)
        self._finish(p)

    def _finish(self, p: Pending) -> None:
        if p.inspection_id is not None and p.on_commit is not None:
            try:
                p.on_commit(p.inspection_id)
            except Exception:
                log.exception("store: after-commit callback of %s failed", p.uid)
        if p.done is not None:
            p.done.set()
        with self._idle:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.notify_all()

    def _pictures(self, p: Pending) -> list[dict]:
        """Write the verdict's pictures (before its rows: a row never points at a missing file)."""
        kind = p.verdict.kind.value
        f = p.verdict.frame
        when = utc(f.captured_wall)
        stem = f"{when:%H%M%S%f}_{f.seq:08d}"
        day = f"{when:%Y-%m-%d}"
        out = []

        def put(image, sub: str, name: str, img_kind: str, crop_index=None):
            w = self.images.write_jpeg(Path(sub) / day / _safe(f.camera_id) / name, image)
            if w is not None:
                out.append({"kind": img_kind, "crop_index": crop_index, "path": w.path, "bytes": w.bytes,
                            "created_at": when})

        if kind in self.save_frames:
            put(f.image, "frames", f"{stem}.jpg", "frame")
        if kind in self.save_thumbnails:
            put(thumbnail(f.image, self.thumbnail_px), "thumbs", f"{stem}.jpg", "thumb")
        if kind in self.save_crops:
            for c in p.crops:
                put(c.image, "crops", f"{stem}_c{c.index}.jpg", "crop", c.index)
        return out

    def _commit(self, batch: list[Pending], pictures: dict[int, list[dict]]) -> None:
        with self.lock, self.engine.begin() as conn:
            new_parents = self._ensure_parents(conn, batch)
            uids = [p.uid for p in batch]
            stored = dict(conn.execute(select(m.Inspection.uid, m.Inspection.id)
                                       .where(m.Inspection.uid.in_(uids))).all())
            fresh, repeated, fresh_uids = [], [], set()
            for p in batch:
                if p.uid in stored:
                    p.inspection_id = stored[p.uid]
                    self.duplicates += 1
                elif p.uid in fresh_uids:  # twice in one batch: the first is written
                    repeated.append(p)
                    self.duplicates += 1
                else:
                    fresh.append(p)
                    fresh_uids.add(p.uid)
            if not fresh:
                return
            rows = [_inspection_row(p) for p in fresh]
            ids = conn.execute(insert(m.Inspection).returning(m.Inspection.id, sort_by_parameter_order=True),
                               rows).scalars().all()
            verdicts, cands, finds, answers, images = [], [], [], [], []
            for p, iid in zip(fresh, ids):
                p.inspection_id = iid
                v = p.verdict
                verdicts.append({"inspection_id": iid, "kind": v.kind.value, "why": v.why,
                                 "explanation": v.explanation, "decided_at": utc(v.decided_wall)})
                cands += [{"inspection_id": iid, "idx": i, "x1": c.box[0], "y1": c.box[1], "x2": c.box[2],
                           "y2": c.box[3], "score": c.score, "label": c.label, "model_id": c.model_id}
                          for i, c in enumerate(v.candidates)]
                finds += [{**finding_row(f), "inspection_id": iid} for f in v.findings]
                answers += [{**a, "inspection_id": iid} for r in v.reports for a in answer_rows(r)]
                images += [{**img, "inspection_id": iid} for img in pictures.get(id(p), [])]
            conn.execute(insert(m.Verdict), verdicts)
            counted, defects = Counter(), Counter()
            for p, row in zip(fresh, rows):
                key = (bucket_of(row["captured_at"]), row["camera_id"], row["product"])
                counted[(*key, p.verdict.kind.value, p.verdict.why)] += 1
                for t in {f.defect_type for f in p.verdict.findings}:
                    defects[(*key, t)] += 1
            rollup.bump(conn, counted, defects)
            for table, values in ((m.CandidateRow, cands), (m.FindingRow, finds), (m.VlmAnswer, answers),
                                  (m.Image, images)):
                if values:
                    conn.execute(insert(table), values)
            new_ids = {p.uid: p.inspection_id for p in fresh}
            for p in repeated:
                p.inspection_id = new_ids[p.uid]
        self._known_cameras |= new_parents[0]  # only now: a rolled-back insert must be made again
        self._known_products |= new_parents[1]
        self.committed += len(fresh)
        self.batches += 1

    def _ensure_parents(self, conn, batch: list[Pending]) -> tuple[set[str], set[str]]:
        """Cameras and products the rows point at exist (a camera seen first in a verdict gets a
        bare row; `Store.sync_config` fills in what the config says)."""
        now = utc(time.time())
        cams = {p.verdict.frame.camera_id: p.product for p in batch}.items()
        new_cams = [(c, prod) for c, prod in cams if c not in self._known_cameras]
        new_prods = {p.product for p in batch} - self._known_products
        if new_prods:
            have = set(conn.scalars(select(m.Product.name).where(m.Product.name.in_(new_prods))))
            if new_prods - have:
                conn.execute(insert(m.Product), [{"name": n, "description": "", "defect_types": [],
                                                  "updated_at": now} for n in sorted(new_prods - have)])
        if new_cams:
            have = set(conn.scalars(select(m.Camera.id).where(m.Camera.id.in_([c for c, _ in new_cams]))))
            missing = [{"id": c, "product": prod, "source": "", "updated_at": now}
                       for c, prod in new_cams if c not in have]
            if missing:
                conn.execute(insert(m.Camera), missing)
        return {c for c, _ in new_cams}, new_prods

    def forget_parents(self) -> None:
        self._known_cameras.clear()
        self._known_products.clear()


def _inspection_row(p: Pending) -> dict:
    f = p.verdict.frame
    return {"uid": p.uid, "camera_id": f.camera_id, "product": p.product, "seq": f.seq,
            "source_name": f.source_name, "captured_at": utc(f.captured_wall), "width": f.size[0],
            "height": f.size[1], "roi": list(f.roi) if f.roi else None, "reasoner_mode": p.reasoner_mode,
            "detector_version_id": p.versions.get("detector"), "vlm_version_id": p.versions.get("vlm")}


def _safe(name: str) -> str:
    """A camera id as a directory name (ids are config keys, but a path must never escape)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip(".") or "camera"
