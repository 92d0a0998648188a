"""The line decisions' log, and what they are measured by: escapes and false rejects.

A decision is handed to the line first and written here after, by a thread of its own: the
deadline thread must never wait for the database (SQLite's single writer may be busy with a
batch of verdicts). The final verdict (the VLM's answer, or an operator's review) is on the
inspection with the same uid; the two together say whether the line was right:
- escape: the line passed the part, and the final verdict says it is defective;
- false reject: the line rejected the part, and the final verdict says it is good.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import datetime

from sqlalchemy import case, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from inspector.messages import LineDecision
from inspector.store.models import Inspection, LineDecisionRow, Review
from inspector.store.models import Verdict as VerdictRow
from inspector.store.rows import decision_row as _row

log = logging.getLogger(__name__)


class DecisionLog:
    def __init__(self, engine, lock: threading.Lock, queue_size: int = 10_000):
        self.engine = engine
        self._lock = lock
        self._q: queue.Queue[LineDecision | None] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._unwritten = 0  # added and not yet written (or given up on)
        self._closing = False
        self._cv = threading.Condition()
        self.failed = 0

    def add(self, d: LineDecision) -> None:
        """Never blocks the caller: a full queue (the database gone for minutes) loses the row,
        not the line's time, and says so."""
        with self._cv:
            if self._thread is None:  # under the lock: the timer and the stages both add
                self._thread = threading.Thread(target=self._run, name="line-decision-log", daemon=True)
                self._thread.start()
            self._unwritten += 1
        try:
            self._q.put_nowait(d)
        except queue.Full:
            self._written(1)
            self.failed += 1
            log.error("line decision for %s not stored: the decision log is %d behind", d.uid, self._q.qsize())

    @property
    def unwritten(self) -> int:
        return self._unwritten

    def flush(self, timeout: float = 10.0) -> bool:
        if self._thread is None:
            return True
        with self._cv:
            return self._cv.wait_for(lambda: self._unwritten == 0, timeout)

    def _written(self, n: int) -> None:
        with self._cv:
            self._unwritten -= n
            self._cv.notify_all()

    def close(self, timeout: float = 5.0) -> None:
        if self._thread is None:
            return
        end = time.monotonic() + timeout
        self.flush(timeout)
        self._closing = True  # a write still failing now gives up instead of retrying
        try:
            self._q.put_nowait(None)
        except queue.Full:
            pass  # the thread is a daemon; what it could not write is counted in `failed`
        self._thread.join(max(0.0, end - time.monotonic()))

    def _run(self) -> None:
        while True:
            d = self._q.get()
            if d is None:
                return
            batch = [d]
            while len(batch) < 200:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._write(batch)
                    return
                batch.append(nxt)
            self._write(batch)

    def _write(self, batch: list[LineDecision]) -> None:
        try:
            self._write_batch(batch)
        finally:
            self._written(len(batch))

    def _write_batch(self, batch: list[LineDecision]) -> None:
        """Retried while the line runs (a database away for a while), as the verdicts are;
        given up only when closing, and counted."""
        wait = 0.2
        while True:
            try:
                with self._lock, self.engine.begin() as conn:
                    conn.execute(insert(LineDecisionRow), [_row(d) for d in batch])
                return
            except IntegrityError:  # one of them is there already (a resumed part): one at a time
                self._write_each(batch)
                return
            except Exception as e:
                if self._closing:
                    self.failed += len(batch)
                    log.error("could not store %d line decision(s): %s", len(batch), e)
                    return
                log.warning("line decisions not stored yet (%s); retrying in %.1f s", e, wait)
                time.sleep(wait)
                wait = min(wait * 2, 10.0)

    def _write_each(self, batch: list[LineDecision]) -> None:
        for d in batch:
            try:
                with self._lock, self.engine.begin() as conn:
                    conn.execute(insert(LineDecisionRow), [_row(d)])
            except IntegrityError:
                pass
            except Exception as e:
                self.failed += 1
                log.error("could not store the line decision for %s: %s", d.uid, e)

    # --- reading ------------------------------------------------------------------------------

    def has(self, uid: str) -> bool:
        with Session(self.engine) as s:
            return s.scalar(select(LineDecisionRow.id).where(LineDecisionRow.uid == uid)) is not None

    def agreement(self, since: datetime | None = None, until: datetime | None = None,
                  camera: str | None = None, product: str | None = None) -> dict:
        return agreement(self.engine, since, until, camera, product)

    def answers(self, uids: list[str]) -> dict[str, tuple[str, str]]:
        """uid -> (answer, basis) for those of `uids` that have a line decision."""
        if not uids:
            return {}
        with Session(self.engine) as s:
            return {u: (a, b) for u, a, b in s.execute(
                select(LineDecisionRow.uid, LineDecisionRow.answer, LineDecisionRow.basis)
                .where(LineDecisionRow.uid.in_(uids)))}

    def for_uid(self, uid: str) -> dict | None:
        with Session(self.engine) as s:
            r = s.scalar(select(LineDecisionRow).where(LineDecisionRow.uid == uid))
            if r is None:
                return None
            return {"answer": r.answer, "basis": r.basis, "policy": r.policy, "verdict_kind": r.verdict_kind,
                    "decided_at": r.decided_at.isoformat() + "Z", "elapsed_ms": r.elapsed_ms,
                    "deadline_ms": r.deadline_ms, "on_time": r.on_time}


def agreement(engine, since: datetime | None = None, until: datetime | None = None,
              camera: str | None = None, product: str | None = None) -> dict:
    """The line decisions of parts captured in [since, until) against their final verdicts (the
    latest review, else the machine's), counted by the database: a month is one query."""
    d = LineDecisionRow
    latest = (select(Review.inspection_id, func.max(Review.id).label("rid"))
              .group_by(Review.inspection_id).subquery())
    final = case((Review.to_verdict.is_not(None), Review.to_verdict), else_=VerdictRow.kind)
    q = (select(d.answer, d.basis, d.on_time, final, func.count())
         .select_from(d)
         .outerjoin(Inspection, Inspection.uid == d.uid)
         .outerjoin(VerdictRow, VerdictRow.inspection_id == Inspection.id)
         .outerjoin(latest, latest.c.inspection_id == Inspection.id)
         .outerjoin(Review, Review.id == latest.c.rid)
         .group_by(d.answer, d.basis, d.on_time, final))
    if since is not None:
        q = q.where(d.captured_at >= since)
    if until is not None:
        q = q.where(d.captured_at < until)
    if camera:
        q = q.where(d.camera_id == camera)
    if product:
        q = q.where(d.product == product)
    out = {"decisions": 0, "ok": 0, "ng": 0, "verdict": 0, "deadline": 0, "overrun": 0, "error": 0, "late": 0,
           "escapes": 0, "false_rejects": 0, "agreed": 0, "open": 0}
    with engine.connect() as c:
        for answer, basis, on_time, fin, n in c.execute(q):
            out["decisions"] += n
            out[answer] = out.get(answer, 0) + n
            out[basis] = out.get(basis, 0) + n
            out["late"] += 0 if on_time else n
            if fin is None or fin == "review":
                out["open"] += n  # no final verdict yet, or a person still has to look
            elif answer == "ok" and fin == "fail":
                out["escapes"] += n
            elif answer == "ng" and fin == "pass":
                out["false_rejects"] += n
            else:
                out["agreed"] += n
    return out
