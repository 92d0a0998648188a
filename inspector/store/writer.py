"""The one writer: verdicts queued by the line, written in batched transactions by one thread.

Why one thread: SQLite has one writer at a time, and a transaction per verdict costs an fsync-ish
WAL commit each; batching hundreds of verdicts per transaction is what makes thousands per second
possible. The stages never wait on the database: they hand a `Pending` over and go on; the
callback runs once the verdict is committed, and only then is the verdict "reported" (counted,
printed, acknowledged to the spool).

Idempotent by uid: a verdict whose uid is already stored (re-sent after a crash) is not written
again; its callback gets the stored row's id.

Stopping honours one deadline: what the database has not taken by then (locked by another
process, server gone) is parked in `unwritten/` under the data directory as the rows it would
have become, fsynced, and written first thing at the next start. Nothing waits on the database
past the deadline and nothing is lost.
"""

from __future__ import annotations

import json
import logging
import os
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

from inspector.util import durable
from inspector.messages import Crop, LineDecision, Verdict
from inspector.store import models as m
from inspector.store import rollup
from inspector.store.rollup import bucket_of
from inspector.store.images import PICTURE_DIRS, ImageStore, thumbnail
from inspector.store.rows import answer_rows, decision_row, finding_row

log = logging.getLogger(__name__)
RETRY_MAX_S = 10.0


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc).replace(tzinfo=None)


@dataclass
class Pending:
    uid: str
    verdict: Verdict | None  # None: a verdict parked by an earlier stop, `rows` made already
    product: str
    reasoner_mode: str
    versions: dict[str, int] = field(default_factory=dict)
    crops: tuple[Crop, ...] = ()
    on_commit: Callable[[int], None] | None = None
    done: threading.Event | None = None  # for callers that wait (Store.save)
    inspection_id: int | None = None
    error: Exception | None = None
    rows: dict | None = None  # what it becomes in the database, made with its pictures
    # The line decision this verdict made (in time): written in the same transaction, so a feed
    # row never shows without what the line was told. None: decided earlier, or not at all.
    decision: LineDecision | None = None


PARKED_DIR = "unwritten"


_STOP = object()


class Writer:
    def __init__(self, engine, images: ImageStore, *, save_frames=(), save_crops=(), save_thumbnails=(),
                 thumbnail_px: int = 320, batch_max: int = 500, batch_wait_s: float = 0.02,
                 queue_size: int = 20000, lock: threading.Lock | None = None,
                 park_dir: Path | None = None, fsync: bool = False):
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
        # The thread takes work from the queue only under _take, and never once parking began:
        # what the parker sees (the queue plus the batch in hand) is then all there is.
        self._take = threading.Lock()
        self._parking = False
        self._has_work = threading.Event()
        self._park_now = threading.Event()
        self._in_hand: list[Pending] = []
        self.park_dir, self.fsync = park_dir, fsync
        self.parked = 0  # verdicts parked at the last close (0: the database took everything)
        self.unparked = 0  # parked verdicts of an earlier stop handed back to the queue at start
        self.parked_uids: set[str] = set()  # of those, the ones not yet committed

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
        self._has_work.set()

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
        """Write what is queued within `timeout` seconds; what the database has not taken by
        then is parked on disk (with park_dir) for the next start. Returns within the timeout
        plus the time to park, whatever the database does."""
        if self._thread is None:
            return
        deadline = time.monotonic() + timeout
        # Parking costs about a picture write per verdict; keep a share of the time for it.
        if self.flush(max(0.0, timeout * 0.75)) or self.park_dir is None:
            self.flush(max(0.0, deadline - time.monotonic()))
            self._stop_thread(max(0.0, deadline - time.monotonic()))
            return
        self._park()

    def _stop_thread(self, timeout: float) -> None:
        self.queue.put(_STOP)
        self._has_work.set()
        self._thread.join(timeout)
        self._thread = None

    def _park(self) -> None:
        self._park_now.set()
        with self._take:
            self._parking = True
            waiting = list(self._in_hand)
            while True:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    waiting.append(item)
        if not waiting:
            return
        # The batch in hand may still commit while we park it: the next start recognises its
        # uids and writes it once.
        lines = []
        for p in waiting:
            if p.rows is None:
                p.rows = _rows(p, self._pictures(p))
            lines.append(json.dumps({"uid": p.uid, "rows": p.rows}, default=_encode))
        self.park_dir.mkdir(parents=True, exist_ok=True)
        path = self.park_dir / f"{time.time_ns()}.jsonl"
        tmp = path.with_suffix(".tmp")
        self.images.make_durable()
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())  # always: a stop is rare, and these verdicts exist nowhere else
        tmp.replace(path)
        durable.fsync_dir(self.park_dir)
        self.parked = len(waiting)
        log.warning("store: the database did not take %d verdict(s) before the stop deadline (%s); "
                    "kept in %s, written at the next start", len(waiting), self.last_error or "busy", path)

    def unpark(self) -> int:
        """Queue the verdicts an earlier stop parked; each file goes once all of its verdicts
        are in the database. Returns how many."""
        if self.park_dir is None or not self.park_dir.is_dir():
            return 0
        n = 0
        for path in sorted(self.park_dir.glob("*.jsonl")):
            try:
                entries = [json.loads(line, object_hook=_decode) for line in path.read_text().splitlines() if line]
            except (OSError, ValueError) as e:
                bad = path.with_suffix(".damaged")
                log.error("store: parked verdicts %s cannot be read (%s); moved to %s", path.name, e, bad.name)
                path.replace(bad)
                continue
            left = {"n": len(entries)}
            guard = threading.Lock()

            def one_done(uid: str, path=path, left=left, guard=guard):
                with guard:
                    self.parked_uids.discard(uid)
                    left["n"] -= 1
                    if left["n"] == 0:  # all of this file is in the database
                        path.unlink(missing_ok=True)
            for e in entries:
                ins = e["rows"]["inspection"]
                self.parked_uids.add(e["uid"])
                self.submit(Pending(e["uid"], None, ins["product"], ins["reasoner_mode"], rows=e["rows"],
                                    on_commit=lambda _iid, uid=e["uid"], f=one_done: f(uid)))
            n += len(entries)
        self.unparked += n
        return n

    def status(self) -> dict:
        return {"writer_queue": self.queue.qsize(), "writer_committed": self.committed,
                "writer_batches": self.batches, "writer_duplicates": self.duplicates,
                "writer_failed": self.failed, "writer_last_error": self.last_error,
                "writer_last_refused": self.last_refused, "writer_parked": self.parked,
                "writer_unparked": self.unparked}

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
            batch, stop = self._next_batch()
            if batch:
                self._write_batch(batch)
                with self._take:
                    self._in_hand = []
            if stop:
                return

    def _next_batch(self) -> tuple[list[Pending], bool]:
        while True:
            with self._take:
                if self._parking:
                    return [], True
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    item = None
                if item is _STOP:
                    return [], True
                if item is not None:
                    batch, stop = self._gather(item)
                    self._in_hand = batch
                    return batch, stop
            self._has_work.wait(1.0)
            self._has_work.clear()  # then look again: whatever came before the clear is queued

    def _gather(self, first: Pending) -> tuple[list[Pending], bool]:
        # Group commit: everything already waiting goes in this transaction; under load the
        # batches grow by themselves while the previous one commits. batch_wait adds a pause
        # to gather more (fewer, larger commits) at the cost of that much latency.
        batch = [first]
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.batch_max:
            try:
                left = deadline - time.monotonic()
                nxt = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                return batch, True
            batch.append(nxt)
        return batch, False

    def _write_batch(self, batch: list[Pending]) -> None:
        for p in batch:
            if p.rows is None:
                p.rows = _rows(p, self._pictures(p))
        self.images.make_durable()
        delay = 0.2
        while True:
            if self._parking:  # the stop deadline passed: the parker has this batch
                return
            try:
                self._commit(batch)
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
                self._park_now.wait(delay)  # woken early by a stop that parks the batch
                delay = min(RETRY_MAX_S, delay * 2)
        for p in batch:
            self._finish(p)

    def _refuse(self, p: Pending, e: Exception) -> None:
        self.failed += 1
        p.error = e
        why = f"{type(e).__name__}: {e.orig if hasattr(e, 'orig') else e}"
        self.last_refused = f"{p.uid}: {why}"
        ins = p.rows["inspection"]
        log.error("store: verdict %s (camera %s frame %d) refused by the database: %s",
                  p.uid, ins["camera_id"], ins["seq"], why)
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
            put(f.image, PICTURE_DIRS["frame"], f"{stem}.jpg", "frame")
        if kind in self.save_thumbnails:
            put(thumbnail(f.image, self.thumbnail_px), PICTURE_DIRS["thumb"], f"{stem}.jpg", "thumb")
        if kind in self.save_crops:
            for c in p.crops:
                put(c.image, PICTURE_DIRS["crop"], f"{stem}_c{c.index}.jpg", "crop", c.index)
        return out

    def _commit(self, batch: list[Pending]) -> None:
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
            rows = [{"part_id": None, **p.rows["inspection"]} for p in fresh]  # parked by an older version
            ids = conn.execute(insert(m.Inspection).returning(m.Inspection.id, sort_by_parameter_order=True),
                               rows).scalars().all()
            children: dict[str, list[dict]] = {k: [] for k in _CHILDREN}
            for p, iid in zip(fresh, ids):
                p.inspection_id = iid
                children["verdict"].append({**p.rows["verdict"], "inspection_id": iid})
                for k in _CHILDREN[1:]:
                    children[k] += [{**r, "inspection_id": iid} for r in p.rows[k]]
            conn.execute(insert(m.Verdict), children["verdict"])
            counted, defects = Counter(), Counter()
            for p, row in zip(fresh, rows):
                key = (bucket_of(row["captured_at"]), row["camera_id"], row["product"])
                v = p.rows["verdict"]
                counted[(*key, v["kind"], v["why"])] += 1
                for t in {f["defect_type"] for f in p.rows["findings"]}:
                    defects[(*key, t)] += 1
            rollup.bump(conn, counted, defects)
            for k, table in zip(_CHILDREN[1:], (m.CandidateRow, m.FindingRow, m.VlmAnswer, m.Image)):
                if children[k]:
                    conn.execute(insert(table), children[k])
            told = [p.rows["line_decision"] for p in fresh if p.rows.get("line_decision")]
            if told:
                conn.execute(insert(m.LineDecisionRow), told)
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
        cams = {p.rows["inspection"]["camera_id"]: p.product for p in batch}.items()
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


_CHILDREN = ("verdict", "candidates", "findings", "answers", "images")


def _rows(p: Pending, pictures: list[dict]) -> dict:
    """The verdict as the rows it becomes (without the inspection id, known once inserted)."""
    v = p.verdict
    return {"inspection": _inspection_row(p),
            "verdict": {"kind": v.kind.value, "why": v.why, "explanation": v.explanation,
                        "decided_at": utc(v.decided_wall)},
            "candidates": [{"idx": i, "x1": c.box[0], "y1": c.box[1], "x2": c.box[2], "y2": c.box[3],
                            "score": c.score, "label": c.label, "model_id": c.model_id}
                           for i, c in enumerate(v.candidates)],
            "findings": [finding_row(f) for f in v.findings],
            "answers": [a for r in v.reports for a in answer_rows(r)],
            "images": pictures,
            "line_decision": decision_row(p.decision) if p.decision is not None else None}


def _encode(value):
    if isinstance(value, datetime):
        return {"__datetime__": value.isoformat()}
    raise TypeError(f"cannot park a {type(value).__name__}")


def _decode(obj: dict):
    return datetime.fromisoformat(obj["__datetime__"]) if set(obj) == {"__datetime__"} else obj


def _inspection_row(p: Pending) -> dict:
    f = p.verdict.frame
    return {"uid": p.uid, "camera_id": f.camera_id, "product": p.product, "seq": f.seq, "part_id": f.part_id,
            "source_name": f.source_name, "captured_at": utc(f.captured_wall), "width": f.size[0],
            "height": f.size[1], "roi": list(f.roi) if f.roi else None, "reasoner_mode": p.reasoner_mode,
            "detector_version_id": p.versions.get("detector"), "vlm_version_id": p.versions.get("vlm")}


def _safe(name: str) -> str:
    """A camera id as a directory name (ids are config keys, but a path must never escape)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip(".") or "camera"
