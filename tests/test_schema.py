"""Schema migrations: new databases at head, old ones adopted by `inspector db upgrade`, unknown
ones refused with the fix in the message."""

import sqlite3

import pytest
import yaml
from sqlalchemy import create_engine

from inspector.store import Store, schema
from alembic import command
from tests.conftest import run_cli


def _config(tmp_path):
    cfg = tmp_path / "line.yaml"
    cfg.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"),
                                   "store": {"url": f"sqlite:///{tmp_path / 'line.db'}"}}))
    return cfg


def test_a_new_database_is_created_at_head(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'new.db'}", tmp_path)
    try:
        assert schema.current(store.engine) == schema.head()
    finally:
        store.close()


def test_a_database_from_before_migrations_is_refused_then_adopted(tmp_path):
    url = f"sqlite:///{tmp_path / 'line.db'}"
    old = create_engine(url)
    with old.begin() as c:  # what versions before migrations made: revision 0001's tables, unversioned
        command.upgrade(schema._config(c), schema.FIRST)
        c.exec_driver_sql("DROP TABLE alembic_version")
        c.exec_driver_sql("INSERT INTO inspections (camera_id, product, seq, source_name, captured_at, "
                          "width, height, reasoner_mode) VALUES ('cam', 'p', 1, 'x', '2026-01-01', 8, 8, 'none')")
    old.dispose()
    with pytest.raises(schema.SchemaError, match="made before schema migrations existed: run `inspector db upgrade`"):
        Store(url, tmp_path)
    p = run_cli("run", "--config", str(_config(tmp_path)), "--no-web", "--exit-when-done")
    assert p.returncode == 2 and "cannot start" in p.stderr and "inspector db upgrade" in p.stderr

    p = run_cli("db", "upgrade", "--config", str(_config(tmp_path)))
    assert p.returncode == 0, p.stderr
    assert f"none (made before migrations) -> {schema.head()}" in p.stdout
    Store(url, tmp_path).close()  # now accepted
    with sqlite3.connect(tmp_path / "line.db") as c:  # and the old row is still there
        assert c.execute("SELECT camera_id FROM inspections").fetchall() == [("cam",)]
    p = run_cli("db", "upgrade", "--config", str(_config(tmp_path)))
    assert p.returncode == 0 and "already at schema revision" in p.stdout


def test_a_revision_this_version_does_not_know_is_left_alone(tmp_path):
    url = f"sqlite:///{tmp_path / 'line.db'}"
    Store(url, tmp_path).close()
    with sqlite3.connect(tmp_path / "line.db") as c:
        c.execute("UPDATE alembic_version SET version_num = 'f00dcafe'")
    with pytest.raises(schema.SchemaError, match="revision f00dcafe, which this inspector version does not know"):
        Store(url, tmp_path)
    p = run_cli("db", "upgrade", "--config", str(_config(tmp_path)))
    assert p.returncode == 2 and "will not touch it" in p.stderr
    with sqlite3.connect(tmp_path / "line.db") as c:
        assert c.execute("SELECT version_num FROM alembic_version").fetchone() == ("f00dcafe",)
    p = run_cli("db", "current", "--config", str(_config(tmp_path)))
    assert "schema revision f00dcafe" in p.stdout


def test_a_database_older_than_any_adoptable_one_is_named(tmp_path):
    with sqlite3.connect(tmp_path / "line.db") as c:
        c.execute("CREATE TABLE inspections (id INTEGER PRIMARY KEY, camera_id TEXT)")
    p = run_cli("db", "upgrade", "--config", str(_config(tmp_path)))
    assert p.returncode == 2 and "table inspections lacks column(s)" in p.stderr and "move it aside" in p.stderr


def test_an_older_revision_is_refused_until_upgraded(tmp_path):
    url = f"sqlite:///{tmp_path / 'line.db'}"
    eng = create_engine(url)
    with eng.begin() as c:
        command.upgrade(schema._config(c), schema.FIRST)
    eng.dispose()
    assert schema.FIRST != schema.head()
    with pytest.raises(schema.SchemaError, match=f"revision {schema.FIRST}, this inspector needs {schema.head()}: "
                                                 "run `inspector db upgrade`"):
        Store(url, tmp_path)
    p = run_cli("db", "upgrade", "--config", str(_config(tmp_path)))
    assert p.returncode == 0 and f"{schema.FIRST} -> {schema.head()}" in p.stdout, p.stderr
    Store(url, tmp_path).close()


def test_revision_0004_carries_older_rows_over(tmp_path):
    """A database at 0003 with a saved frame: after the upgrade the frame is an image row, the
    inspection has a uid, and its camera and product have rows of their own."""
    url = f"sqlite:///{tmp_path / 'line.db'}"
    eng = create_engine(url)
    with eng.begin() as c:
        command.upgrade(schema._config(c), "0003")
        c.exec_driver_sql("INSERT INTO inspections (camera_id, product, seq, source_name, captured_at, width, "
                          "height, reasoner_mode, frame_path) VALUES ('cam', 'tile', 1, 'x', '2026-01-01', 8, 8, "
                          "'none', 'frames/2026-01-01/cam/a.jpg'), ('cam', 'tile', 2, 'y', '2026-01-02', 8, 8, "
                          "'none', NULL)")
    eng.dispose()
    (tmp_path / "frames/2026-01-01/cam").mkdir(parents=True)
    (tmp_path / "frames/2026-01-01/cam/a.jpg").write_bytes(b"x" * 1234)
    assert run_cli("db", "upgrade", "--config", str(_config(tmp_path))).returncode == 0
    store = Store(url, tmp_path)
    try:
        with store.engine.connect() as c:
            assert c.exec_driver_sql("SELECT uid FROM inspections ORDER BY id").scalars().all() == \
                ["legacy-1", "legacy-2"]
            assert c.exec_driver_sql("SELECT inspection_id, kind, path, bytes FROM images").all() == \
                [(1, "frame", "frames/2026-01-01/cam/a.jpg", None)]
            assert c.exec_driver_sql("SELECT id, product FROM cameras").all() == [("cam", "tile")]
            assert c.exec_driver_sql("SELECT name FROM products").scalars().all() == ["tile"]
        assert store.frame_file(1) == (tmp_path / "frames/2026-01-01/cam/a.jpg").resolve()
        store.retention.run_once()  # measures what older versions did not record
        assert store.status()["images_bytes"] == 1234
    finally:
        store.close()


def test_the_migrations_make_exactly_the_models(db_url, tmp_path):
    """At head, the database the migrations built and the SQLAlchemy models agree (on SQLite and
    PostgreSQL alike): no model change without its migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from inspector.store.models import Base

    store = Store(db_url, tmp_path)
    try:
        with store.engine.connect() as c:
            diff = compare_metadata(MigrationContext.configure(c), Base.metadata)
        assert diff == []
    finally:
        store.close()


def test_downgrade_and_upgrade_again(db_url, tmp_path):
    store = Store(db_url, tmp_path)
    store.close()
    eng = create_engine(db_url)
    with eng.begin() as c:
        command.downgrade(schema._config(c), "0003")
    with eng.begin() as c:
        command.upgrade(schema._config(c), "head")
    assert schema.current(eng) == schema.head()
    eng.dispose()


def test_a_start_says_the_revision_in_one_line_and_a_migration_in_alembic_s_words(tmp_path, demo_line):
    cfg = tmp_path / "line.yaml"
    cfg.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "web": {"enabled": False},
                                   "cameras": [{"id": "c", "source": {"type": "folder",
                                                                      "path": str(demo_line.frames_dir)}}]}))
    first = run_cli("run", "--config", str(cfg), "--exit-when-done")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "Running upgrade  -> 0001" in first.stderr  # a migration ran: Alembic says what it did
    assert "created at schema revision" in first.stderr
    again = run_cli("run", "--config", str(cfg), "--exit-when-done")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "alembic" not in again.stderr, again.stderr[-2000:]  # nothing ran: no chatter
    said = [line for line in again.stderr.splitlines() if "schema revision" in line]
    assert len(said) == 1 and said[0].endswith(f"at schema revision {schema.head()}"), said
