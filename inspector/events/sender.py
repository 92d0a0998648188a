"""One thread per sink: read the verdicts after the sink's cursor, send them in order, move on.

The cursor (the last inspection id delivered) lives in `<data_dir>/events/<sink>.cursor` and is
written after each delivery, so a restart resends at most the one event in flight. A sink that
starts with no cursor begins at the newest inspection: history is not replayed into a new
receiver. While the receiver is down the backlog is what the database holds after the cursor;
when that grows past `backlog_max` the oldest are skipped, counted and logged, so a receiver back
after a week gets the recent events, not a week of stale ones first.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from inspector.util.atomic_write import write_atomic
from inspector.events.sinks import SinkError, build_sink
from inspector.util.redact import redact_text

log = logging.getLogger(__name__)
BATCH = 100


class EventSender:
    def __init__(self, store, cfg, cursor_dir: Path, cameras: list[str] | None,
                 dashboard_url: str | None = None, poll_s: float = 2.0):
        self.store, self.cfg = store, cfg
        self.name = cfg.name or cfg.type
        self.kinds = list(cfg.on)
        self.cameras = cameras
        self.dashboard_url = dashboard_url.rstrip("/") if dashboard_url else None
        self.poll_s = poll_s
        self.cursor_path = Path(cursor_dir) / f"{self.name}.cursor"
        self.sink = build_sink(cfg, self.name)
        self.wake = threading.Event()
        self.sent = self.failures = self.dropped = 0
        self.pending = 0
        self.last_error: str | None = None
        self.failing_since: float | None = None
        self.cursor = self._load_cursor()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def _load_cursor(self) -> int:
        try:
            return int(self.cursor_path.read_text().strip())
        except FileNotFoundError:
            start = self.store.last_inspection_id()
            self._save_cursor(start)
            return start
        except ValueError:
            raise ValueError(f"events sink {self.name}: cursor file {self.cursor_path} is not an "
                             f"inspection id; fix or delete it (deleting starts at the newest)") from None

    def _save_cursor(self, value: int) -> None:
        write_atomic(self.cursor_path, f"{value}\n")

    # --- running --------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"events-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.sink.close()

    def notify(self, *_args) -> None:
        """A verdict was stored: look now instead of at the next poll."""
        self.wake.set()

    def _run(self) -> None:
        backoff = self.cfg.retry_initial_s
        while not self._stop.is_set():
            try:
                delivered = self._round()
            except Exception as e:  # the database away for a moment (the writer retries too), a full disk
                log.debug("events %s: round failed", self.name, exc_info=True)
                self._failed(f"{type(e).__name__}: {e}")
                delivered = False
            if delivered is None:  # nothing waiting
                self.wake.wait(self.poll_s)
                self.wake.clear()
            elif delivered:
                backoff = self.cfg.retry_initial_s
            else:
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.cfg.retry_max_s)

    def _round(self) -> bool | None:
        """Send what waits after the cursor, oldest first: None when nothing waits, False at the
        first failure (the backlog is trimmed then), True when all went."""
        ids = self.store.verdict_ids(after_id=self.cursor, kinds=self.kinds, cameras=self.cameras, limit=BATCH)
        self.pending = len(ids) if len(ids) < BATCH else self._count()
        if not ids:
            return None
        for iid in ids:
            if self._stop.is_set():
                return True
            if not self._deliver(iid):
                self._trim()
                return False
        return True

    def _deliver(self, iid: int) -> bool:
        try:
            event = self.event(iid)
            if event is not None:
                self.sink.send(event)
        except (SinkError, ValueError, OSError) as e:
            self._failed(str(e))
            return False
        except Exception as e:  # a sink library's surprise must not kill the thread
            log.exception("events %s: sending inspection %d", self.name, iid)
            self._failed(f"{type(e).__name__}: {e}")
            return False
        if self.failing_since is not None:
            log.warning("events %s: delivering again after %.0f s of failures", self.name,
                        time.monotonic() - self.failing_since)
        self.failing_since, self.last_error = None, None
        self.cursor = iid
        self._save_cursor(iid)
        self.sent += int(event is not None)
        self.pending = max(0, self.pending - 1)
        return True

    def _failed(self, why: str) -> None:
        why = redact_text(why)  # an HTTP error may quote the webhook's URL and its token
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log.error("events %s: cannot deliver (%s); retrying, events wait in the database", self.name, why)
        self.last_error = why

    def _count(self) -> int:
        return self.store.count_verdicts(after_id=self.cursor, kinds=self.kinds, cameras=self.cameras)

    def _trim(self) -> None:
        """Keep the backlog bounded: skip past all but the newest `backlog_max` waiting events."""
        keep = self.store.verdict_ids(after_id=self.cursor, kinds=self.kinds, cameras=self.cameras,
                                      limit=self.cfg.backlog_max + 1, newest_first=True)
        if len(keep) <= self.cfg.backlog_max:
            return
        new_cursor = keep[-1]  # the newest event that no longer fits
        skipped = self.store.count_verdicts(after_id=self.cursor, kinds=self.kinds, cameras=self.cameras,
                                            up_to_id=new_cursor)
        self.dropped += skipped
        log.error("events %s: backlog over %d; skipped %d event(s) up to inspection %d", self.name,
                  self.cfg.backlog_max, skipped, new_cursor)
        self.cursor = new_cursor
        self._save_cursor(new_cursor)
        self.pending = self.cfg.backlog_max

    # --- the event --------------------------------------------------------------------------------

    def event(self, iid: int) -> dict | None:
        d = self.store.inspection(iid)
        if d is None:
            return None
        return {
            "event": "verdict", "id": d["id"], "uid": d.get("uid"), "verdict": d["verdict"],
            "why": d["why"], "explanation": d["explanation"], "camera": d["camera_id"],
            "product": d["product"], "seq": d["seq"], "part_id": d.get("part_id"), "source_name": d["source_name"],
            "captured_at": d["captured_at"],
            "findings": [{k: f[k] for k in ("type", "severity", "confidence", "box", "box_mm", "reason")}
                         for f in d["findings"]],
            "candidates": [{"box": c["box"], "score": c["score"], "label": c["label"]} for c in d["candidates"]],
            "models": {role: m["name"] for role, m in d["models"].items()},
            "url": f"{self.dashboard_url}/inspections/{d['id']}" if self.dashboard_url else None,
        }

    def status(self) -> dict:
        return {"name": self.name, "type": self.cfg.type, "on": self.kinds, "sent": self.sent,
                "failures": self.failures, "dropped": self.dropped, "pending": self.pending,
                "cursor": self.cursor, "last_error": self.last_error,
                "failing_for_s": round(time.monotonic() - self.failing_since, 1) if self.failing_since else None}


def build_senders(cfg, store) -> list[EventSender]:
    """The configured sinks, each reading only this line's cameras (several boxes may share one
    PostgreSQL database, and each box announces its own verdicts)."""
    cams = [c.id for c in cfg.cameras]
    return [EventSender(store, s, cfg.data_dir / "events", cams, cfg.events.dashboard_url) for s in cfg.events.sinks]
