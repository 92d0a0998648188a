"""The database schema's version: Alembic migrations, and the checks the store makes at start.

A new database is created at the newest revision. Anything else must be at exactly the revision
this version of inspector was built for; otherwise the store refuses to start and says what to do:
`inspector db upgrade` for an older database (and for one made before migrations existed), nothing
for one made by a newer version (it would be damaged by this one).
"""

from __future__ import annotations

import fcntl
import logging
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from inspector.errors import InspectorError

HERE = Path(__file__).resolve().parent
log = logging.getLogger(__name__)
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a line per plugin otherwise
# Alembic says "Context impl SQLiteImpl. Will assume non-transactional DDL." every time it looks at
# the revision: two lines per look, ten per start. Its words are kept for when a migration runs.
_MIGRATION_LOG = logging.getLogger("alembic.runtime.migration")
_MIGRATION_LOG.setLevel(logging.WARNING)


@contextmanager
def _migration_messages():
    level = _MIGRATION_LOG.level
    _MIGRATION_LOG.setLevel(logging.INFO)
    try:
        yield
    finally:
        _MIGRATION_LOG.setLevel(level)
SCHEMA_LOCK_KEY = 0x1A5EC7  # the pg_advisory_lock key the schema's creators take
FIRST = "0001"  # the schema as it was before migrations existed


class SchemaError(InspectorError, ValueError):
    """The database is not at the schema this version needs; the message says what to do."""


def _config(connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    return ScriptDirectory.from_config(_config(None)).get_current_head()


def known() -> set[str]:
    return {s.revision for s in ScriptDirectory.from_config(_config(None)).walk_revisions()}


def current(engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _has_tables(engine) -> bool:
    from inspector.store.models import Base

    return bool(set(inspect(engine).get_table_names()) & set(Base.metadata.tables))


@contextmanager
def one_at_a_time(engine, url: str):
    """Hold the database's schema lock: the line and its dashboard starting together at boot, or
    two boxes on a new plant database, must not both create it (SQLite's DDL is not
    transactional: interleaved, each would make half the tables)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": SCHEMA_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SCHEMA_LOCK_KEY})
                conn.commit()
    elif engine.url.database and engine.url.database != ":memory:":
        with open(f"{engine.url.database}.schema-lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield
    else:
        yield


def prepare(engine, url: str) -> None:
    """At start: create a new database, accept one at head, refuse anything else with the fix.
    `url` is the database as shown in messages (redacted)."""
    with one_at_a_time(engine, url):
        rev = current(engine)
        if rev is None and not _has_tables(engine):
            _, after = upgrade(engine)
            log.info("database %s created at schema revision %s", url, after)
            return
    if (why := problem(engine, url, rev)) is not None:
        raise SchemaError(why)
    log.info("database %s at schema revision %s", url, rev)


def is_new(engine) -> bool:
    """Empty (no tables of ours, no revision): the first start creates the schema."""
    return current(engine) is None and not _has_tables(engine)


def problem(engine, url: str, rev: str | None = None) -> str | None:
    """Why a line cannot start on this database as it is, with what to do; None when it can
    (at head, or new). The one diagnosis for the line's start and `inspector doctor`."""
    rev = current(engine) if rev is None else rev
    want = head()
    if rev == want or (rev is None and not _has_tables(engine)):
        return None
    if rev is None:
        return (f"database {url} was made before schema migrations existed: run "
                f"`inspector db upgrade` once to adopt it (nothing is lost)")
    if rev not in known():
        return (f"database {url} is at schema revision {rev}, which this inspector version "
                f"does not know (made by a newer version?); use that version, or another "
                f"database_url")
    return (f"database {url} is at schema revision {rev}, this inspector needs {want}: run "
            f"`inspector db upgrade` (back up the database first)")


def upgrade(engine) -> tuple[str | None, str]:
    """Bring the database to head; a pre-migration database is first stamped as FIRST.
    Returns (revision before, revision after)."""
    before = current(engine)
    with _migration_messages(), engine.begin() as conn:
        cfg = _config(conn)
        if before is None and _has_tables(engine):
            _check_first(engine)
            command.stamp(cfg, FIRST)
        elif before is not None and before not in known():
            raise SchemaError(f"database is at schema revision {before}, which this inspector "
                              f"version does not know; it will not touch it")
        command.upgrade(cfg, "head")
    return before, current(engine)


def _first_columns() -> dict[str, set[str]]:
    """Tables and columns as revision FIRST makes them (built in memory, so it stays true when
    later revisions change the models)."""
    from sqlalchemy import create_engine

    mem = create_engine("sqlite://")
    with mem.begin() as conn:
        command.upgrade(_config(conn), FIRST)
    insp = inspect(mem)
    return {t: {c["name"] for c in insp.get_columns(t)} for t in insp.get_table_names() if t != "alembic_version"}


def _check_first(engine) -> None:
    """A pre-migration database must have the first revision's columns to be adopted."""
    insp = inspect(engine)
    for table, cols in _first_columns().items():
        if table not in insp.get_table_names():
            continue
        missing = sorted(cols - {c["name"] for c in insp.get_columns(table)})
        if missing:
            raise SchemaError(f"table {table} lacks column(s) {missing}: this database is older "
                              f"than any version migrations can adopt; move it aside to start a new one")
