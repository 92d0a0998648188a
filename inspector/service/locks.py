"""One line per data directory and per database, held for as long as the process lives."""

from __future__ import annotations

from pathlib import Path

from inspector.service.errors import StartError

_HELD: list = []  # open lock files: the locks last as long as the process


def hold_data_dir(data_dir: Path) -> None:
    """One line per data directory: a second would resume the same spool and answer on the same
    socket. The lock goes with the process, however it ends."""
    import fcntl
    import os

    data_dir.mkdir(parents=True, exist_ok=True)
    f = open(data_dir / "line.lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        raise StartError(f"another line is running on data directory {data_dir} (pid {f.read().strip() or '?'}); "
                         f"stop it first, or give this one its own data_dir") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    _HELD.append(f)


def hold_database(cfg) -> None:
    """One line per database too: two data directories on one database would mix their lines."""
    from sqlalchemy.exc import SQLAlchemyError

    from inspector.util.redact import redact_text
    from inspector.store.line_lock import LineLock, LineLockError

    try:
        _HELD.append(LineLock(cfg.database_url, cfg.box, cfg.data_dir).acquire())
    except LineLockError as e:
        raise StartError(str(e)) from e
    except (SQLAlchemyError, OSError) as e:
        raise StartError(redact_text(f"cannot start: database {cfg.database_url}: {getattr(e, 'orig', None) or e}")) from e
