"""Which pictures go, and when: by age, and by the disk budget when space runs short.

Order of sacrifice, oldest first within each: pictures of passed parts; then everything else
(review verdicts, reviewed fails); last, fails nobody has reviewed yet, and those only once they
are older than `keep_unreviewed_fail_days` - before that they are kept even if it means the
store stops writing new pictures (a fail nobody has looked at is the picture someone will ask for).
Verdict rows are never deleted here: only files and their `images` rows.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, case, delete, exists, func, or_, select, update

from inspector.store import models as m

log = logging.getLogger(__name__)
BATCH = 500


class Retention:
    def __init__(self, engine, images, cfg, lock: threading.Lock):
        self.engine, self.images, self.cfg, self.lock = engine, images, cfg, lock
        self.deleted_files = 0
        self.freed_bytes = 0
        self.last_run: float | None = None
        self._measured = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- policy ---------------------------------------------------------------------------------

    def _classes(self):
        reviewed = exists().where(m.Review.inspection_id == m.Image.inspection_id)
        unreviewed_fail = and_(m.Verdict.kind == "fail", ~reviewed)
        # 0: pass, 1: the rest, 2: unreviewed fail - deleted in that order.
        rank = case((m.Verdict.kind == "pass", 0), (unreviewed_fail, 2), else_=1)
        return rank, unreviewed_fail

    def _candidates(self, conn, where, limit: int):
        rank, _ = self._classes()
        q = (select(m.Image.id, m.Image.path, m.Image.bytes)
             .join(m.Verdict, m.Verdict.inspection_id == m.Image.inspection_id)
             .where(where).order_by(rank, m.Image.created_at, m.Image.id).limit(limit))
        return conn.execute(q).all()

    def run_once(self, now: float | None = None) -> dict:
        """One pass: the age rule, then the budget rule. Returns what it removed."""
        now_dt = datetime.fromtimestamp(now or time.time(), tz=timezone.utc).replace(tzinfo=None)
        _, unreviewed_fail = self._classes()
        protect = or_(~unreviewed_fail,
                      m.Image.created_at < now_dt - timedelta(days=self.cfg.keep_unreviewed_fail_days))
        if not self._measured:  # sizes unknown only in rows older versions wrote: once per start
            self._measure_unknown()
            self._measured = True
        n_age = bytes_age = 0
        if self.cfg.max_age_days is not None:
            old = and_(m.Image.created_at < now_dt - timedelta(days=self.cfg.max_age_days), protect)
            while True:
                with self.engine.connect() as conn:
                    rows = self._candidates(conn, old, BATCH)
                if not rows:
                    break
                n, b = self._delete(rows)
                n_age, bytes_age = n_age + n, bytes_age + b
        n_budget = bytes_budget = 0
        while (need := self.images.shortfall()) > 0:
            with self.engine.connect() as conn:
                rows = self._candidates(conn, protect, 200)
            if not rows:
                log.warning("retention: over the picture budget or short of disk, but only pictures "
                            "of unreviewed fails younger than %g days are left; they are kept",
                            self.cfg.keep_unreviewed_fail_days)
                break
            take, acc = [], 0
            for r in rows:  # just enough of the first in line, not the whole page
                take.append(r)
                acc += r[2] or 0
                if acc >= need:
                    break
            n, b = self._delete(take)
            n_budget, bytes_budget = n_budget + n, bytes_budget + b
        self.last_run = time.time()
        if n_age or n_budget:
            log.info("retention: removed %d pictures by age (%.1f MB) and %d for space (%.1f MB)",
                     n_age, bytes_age / 1e6, n_budget, bytes_budget / 1e6)
        self.images.recheck()
        return {"by_age": n_age, "by_budget": n_budget, "bytes": bytes_age + bytes_budget}

    def _delete(self, rows) -> tuple[int, int]:
        freed = 0
        for _, path, _ in rows:
            freed += self.images.delete(path)
        ids = [r[0] for r in rows]
        with self.lock, self.engine.begin() as conn:
            conn.execute(delete(m.Image).where(m.Image.id.in_(ids)))
        self.images.freed(sum(r[2] or 0 for r in rows))
        self.deleted_files += len(rows)
        self.freed_bytes += freed
        return len(rows), freed

    def _measure_unknown(self) -> None:
        """Pictures from before sizes were recorded get their size once, from the file."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(m.Image.id, m.Image.path).where(m.Image.bytes.is_(None))).all()
        if not rows:
            return
        sizes = []
        for iid, path in rows:
            p = self.images.resolve(path)
            sizes.append((iid, p.stat().st_size if p is not None and p.is_file() else 0))
        with self.lock, self.engine.begin() as conn:
            for iid, n in sizes:
                conn.execute(update(m.Image).where(m.Image.id == iid).values(bytes=n))
        self.images.freed(-sum(n for _, n in sizes))

    # --- the thread -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="store-retention", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """The picture guard tripped: make room now rather than at the next interval."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """A pass still running past `timeout` (a locked database) is left to the process's exit:
        it deletes nothing it has not first committed."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("retention pass failed; trying again at the next interval")
            self._wake.wait(self.cfg.interval_s)
            self._wake.clear()

    def status(self) -> dict:
        return {"retention_deleted_files": self.deleted_files, "retention_freed_bytes": self.freed_bytes,
                "retention_last_run": self.last_run}


def used_bytes(engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.coalesce(func.sum(m.Image.bytes), 0))) or 0)
