"""Logs straight into journald, with fields, when systemd runs us with the journal on stderr
($JOURNAL_STREAM set): `journalctl -u inspector -p err`, `journalctl LOGGER=inspector.line.pipeline`,
`journalctl CAMERA_ID=line1-top` work, and a traceback stays one entry instead of one per line.

The native protocol (systemd.journal-fields(7), "Native Journal Protocol"): one datagram of
KEY=value lines per entry; a value with a newline in it is sent as KEY, newline, its length as a
64-bit little-endian integer, the bytes, newline."""

from __future__ import annotations

import logging
import os
import socket
import struct
import traceback

SOCKET = "/run/systemd/journal/socket"
MAX_MESSAGE = 48 * 1024  # one datagram; journald takes more through a memfd, a log line need not
PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def wanted(env=os.environ) -> str | None:
    """The journal socket to log to, or None to keep logging to stderr."""
    path = env.get("INSPECTOR_JOURNAL_SOCKET", SOCKET)
    return path if env.get("JOURNAL_STREAM") and os.path.exists(path) else None


def _field(key: str, value) -> bytes:
    k, v = key.encode(), str(value).encode("utf-8", "replace")
    if b"\n" in v:
        return k + b"\n" + struct.pack("<Q", len(v)) + v + b"\n"
    return k + b"=" + v + b"\n"


class JournalHandler(logging.Handler):
    def __init__(self, path: str = SOCKET, identifier: str = "inspector"):
        super().__init__()
        self.path, self.identifier = path, identifier
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        # A stalled journald must not stall the line: after a short wait the entry goes to stderr
        # (which systemd also collects) instead.
        self.sock.settimeout(0.5)
        self.fallback = logging.StreamHandler()
        self.fallback.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
            if record.exc_info:
                msg += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            fields = {"MESSAGE": msg[:MAX_MESSAGE], "PRIORITY": PRIORITY.get(record.levelno, 6),
                      "SYSLOG_IDENTIFIER": self.identifier, "LOGGER": record.name,
                      "THREAD_NAME": record.threadName, "CODE_FILE": record.pathname,
                      "CODE_LINE": record.lineno, "CODE_FUNC": record.funcName}
            # extra={"camera_id": "cam1"} becomes CAMERA_ID=cam1
            for k, v in vars(record).items():
                if k not in _STANDARD and not k.startswith("_") and k.replace("_", "").isalnum():
                    fields[k.upper()] = v
            entry = b"".join(_field(k, v) for k, v in fields.items())
        except Exception:
            self.handleError(record)
            return
        try:
            self.sock.sendto(entry, self.path)
        except OSError:
            self.fallback.emit(record)

    def close(self) -> None:
        self.sock.close()
        super().close()
