"""What systemd hears from `inspector run` as a Type=notify service (sd_notify over the socket in
$NOTIFY_SOCKET): READY=1 once the line really runs, WATCHDOG=1 while the pre-filter loop keeps
beating, and a STATUS= line with fps and queue depths that `systemctl status` shows. Outside
systemd (no $NOTIFY_SOCKET) every call is a no-op.

The watchdog is fed from a thread, but only while the processing loop's heartbeat is fresh: a loop
stuck in a driver call, a deadlock or an endless model run stops the pings, and systemd restarts
the service (the spool brings back the frames it was holding)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping

import sdnotify

from inspector.line.status import LineStatus

log = logging.getLogger(__name__)
STATUS_EVERY_S = 5.0


def status_line(st: LineStatus) -> str:
    """One line for `systemctl status`: per camera fps, then the queues and verdicts."""
    cams = ", ".join(f"{c.id} {c.fps or 0:.1f} fps" + (f" {c.dropped} dropped" if c.dropped else "")
                     + ("" if c.state == "running" else f" ({c.state})") for c in st.cameras)
    return (f"{cams}; frame queue {st.frame_queue}, VLM queue {st.vlm_queue}, "
            f"backlog {st.vlm_backlog}, spool {st.vlm_spool}; {st.verdict_count('pass')} pass, "
            f"{st.verdict_count('fail')} fail, {st.verdict_count('review')} review"
            + "".join(f"; PLC {p.kind} {p.clients} client(s), {p.triggers} trigger(s)"
                      + (f", {p.overruns} overrun(s)" if p.overruns else "")
                      + ("" if p.ready else f", {p.state or 'NOT READY'}") for p in st.plc))


class ServiceNotifier:
    def __init__(self, env: Mapping[str, str] = os.environ):
        self.enabled = bool(env.get("NOTIFY_SOCKET"))
        self._sd = sdnotify.SystemdNotifier() if self.enabled else None
        usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
        # WATCHDOG_PID names the process the watchdog is for; a child that inherited it is not.
        mine = not pid or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if self.enabled and usec and usec.isdigit() and mine else None
        self._thread: threading.Thread | None = None

    def send(self, *fields: str) -> None:
        if self._sd is not None:
            self._sd.notify("\n".join(fields))

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def stopping(self, status: str) -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    def start(self, stalled_for: Callable[[], float], status: Callable[[], str], stop: threading.Event,
              what: str = "pre-filter loop") -> None:
        """Ping the watchdog while `stalled_for()` (seconds since `what` last beat) stays under
        half the watchdog time, and refresh STATUS= every few seconds."""
        if not self.enabled:
            return
        self._thread = threading.Thread(target=self._run, args=(stalled_for, status, stop, what),
                                        name="systemd-notify", daemon=True)
        self._thread.start()

    def _run(self, stalled_for, status, stop, what) -> None:
        limit = self.watchdog_s / 2 if self.watchdog_s else None
        tick = min(limit / 2, STATUS_EVERY_S) if limit else STATUS_EVERY_S
        last_status = 0.0
        while not stop.wait(tick):
            stalled = stalled_for()
            fields = []
            if limit is not None and stalled < limit:
                fields.append("WATCHDOG=1")
            now = time.monotonic()
            if limit is not None and stalled >= limit:
                fields.append(f"STATUS={what} stalled for {stalled:.0f} s: the watchdog will restart the service")
                if now - last_status >= STATUS_EVERY_S:
                    log.error("%s stalled for %.0f s; no longer feeding the systemd watchdog", what, stalled)
                    last_status = now
            elif now - last_status >= STATUS_EVERY_S:
                try:
                    fields.append(f"STATUS={status()}")
                except Exception as e:  # a status that cannot be built must not starve the watchdog
                    fields.append(f"STATUS=status unavailable: {e}")
                last_status = now
            if fields:
                self.send(*fields)
