"""One line per database (and per box on a shared PostgreSQL database).

Two lines writing one SQLite file interleave their sequence numbers, count every part twice in
the rollups, and point at pictures in each other's data directories. The data directory's lock
(`line.lock`) does not see it: each line has its own. So the line also takes a lock that belongs
to the database itself, held for as long as the process lives and let go by the kernel or the
server however the process ends (kill -9 included):
- SQLite: an flock on `<database>.line-lock` beside the file;
- PostgreSQL: a session advisory lock keyed by the box's name, on a connection of its own (many
  boxes share a plant database by design; two processes of the same box must not).
The dashboard (`inspector web`) and the admin commands only read, or write their own rows, and
take no such lock.
"""

from __future__ import annotations

import fcntl
import os
import zlib
from pathlib import Path

from sqlalchemy import create_engine, text

from inspector.errors import InspectorError
from inspector.util.redact import redact_url

LINE_LOCK_KEY = 0x1A5EC8  # pg_advisory_lock's first key; the second is the box's name hashed


class LineLockError(InspectorError):
    """Another line writes to this database; the message says which and what to do."""


class LineLock:
    def __init__(self, url: str, box: str, data_dir: Path):
        self.url, self.box, self.data_dir = url, box, Path(data_dir)
        self._file = None
        self._conn = None
        self._engine = None

    def acquire(self) -> LineLock:
        if self.url.startswith("sqlite:///"):
            self._sqlite(Path(self.url.removeprefix("sqlite:///")))
        elif self.url.startswith("postgresql"):
            self._postgresql()
        return self

    def _sqlite(self, db: Path) -> None:
        db.parent.mkdir(parents=True, exist_ok=True)
        path = db.with_name(db.name + ".line-lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        f = os.fdopen(fd, "r+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = f.read().strip() or "another process"
            f.close()
            raise LineLockError(
                f"another line is writing to database {db} ({holder}); two lines on one database "
                f"would mix their verdicts: stop it, or give this line its own store.url") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}, data_dir {self.data_dir.resolve()}\n")
        f.flush()
        self._file = f

    def _postgresql(self) -> None:
        self._engine = create_engine(self.url, pool_size=1, max_overflow=0)
        conn = self._engine.connect()
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k, :b)"),
                           {"k": LINE_LOCK_KEY, "b": _box_key(self.box)}).scalar()
        conn.commit()
        if not got:
            conn.close()
            self._engine.dispose()
            raise LineLockError(
                f"a line of box {self.box!r} is already running on database {redact_url(self.url)}; "
                f"stop it, or give this box its own name (`box:` in its config)")
        self._conn = conn

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._conn is not None:
            self._conn.close()
            self._engine.dispose()
            self._conn = None


def _box_key(box: str) -> int:
    return zlib.crc32(box.encode()) - (1 << 31)  # a signed int4, as the function takes
