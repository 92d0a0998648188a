"""The store's files against a tampered database, wide permissions and damaged input: pictures
are served only from the picture folders, the database and data directory are private, and
every known failure of a command is one line, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.conftest import authorize, judged_demo_line, run_cli

MODELS = Path(__file__).parent.parent / "models"


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    pipe = judged_demo_line(tmp_path_factory.mktemp("safety") / "data", 6)
    yield pipe
    pipe.stop()


@pytest.mark.parametrize("path", ["inspector.db", "frames/../inspector.db", "thumbs/../../data/inspector.db",
                                  "vlm-spool/x.json", "frames/2026-01-01/cam1/a.png", "line.lock",
                                  "/etc/passwd", "thumbs/\x00.jpg", "frames/link.jpg"])
def test_a_tampered_picture_path_reaches_no_other_file(line, path):
    from inspector.web import create_app

    store = line.store
    frames = store.data_dir / "frames"
    frames.mkdir(exist_ok=True)
    link = frames / "link.jpg"  # a symlink inside the picture folder, pointing at the database
    if not link.is_symlink():
        link.symlink_to(store.data_dir / "inspector.db")
    with store.engine.begin() as c:
        iid = c.execute(text("SELECT max(id) FROM inspections")).scalar()
        c.execute(text("INSERT INTO images (inspection_id, kind, path, bytes, created_at) "
                       "VALUES (:i, 'thumb', :p, 1, '2026-01-01'), (:i, 'frame', :p, 1, '2026-01-01')"),
                  {"i": iid, "p": path})
    try:
        assert store.image_file(iid, "thumb") is None and store.image_file(iid, "frame") is None
        with TestClient(create_app(store, line.status, line.trigger)) as client:
            authorize(client, store, role="viewer")
            for url in (f"/inspections/{iid}/thumb.jpg", f"/inspections/{iid}/frame.jpg"):
                r = client.get(url)
                assert r.status_code == 404 and b"SQLite format" not in r.content
        before = (store.data_dir / "inspector.db").stat().st_size
        assert store.images.delete(path) == 0  # retention cannot be made to delete it either
        assert (store.data_dir / "inspector.db").stat().st_size == before
    finally:
        with store.engine.begin() as c:
            c.execute(text("DELETE FROM images WHERE path = :p"), {"p": path})


def test_a_real_picture_is_still_served(line):
    from inspector.web import create_app

    iid = next(i["id"] for i in line.store.feed(limit=50) if i["has_thumb"])
    with TestClient(create_app(line.store, line.status, line.trigger)) as client:
        authorize(client, line.store, role="viewer")
        r = client.get(f"/inspections/{iid}/thumb.jpg")
        assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"


def test_the_database_and_data_directory_are_private_whatever_the_umask(tmp_path):
    from inspector.store import Store

    old = os.umask(0o022)
    try:
        data = tmp_path / "data"
        store = Store(f"sqlite:///{data / 'inspector.db'}", data)
        store.close()
        # An existing database left readable by everyone (an older version, a copy) is narrowed.
        (data / "inspector.db").chmod(0o644)
        data.chmod(0o755)
        Store(f"sqlite:///{data / 'inspector.db'}", data).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((data / "inspector.db").stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for side in ("inspector.db-wal", "inspector.db-shm"):
        if (data / side).exists():
            assert stat.S_IMODE((data / side).stat().st_mode) & 0o077 == 0


def _cfg(tmp_path, **extra) -> str:
    p = tmp_path / "line.yaml"
    p.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "web": {"enabled": False},
                                 "cameras": [{"id": "c", "source": {"type": "folder", "path": str(tmp_path)}}],
                                 **extra}))
    return str(p)


def _one_line_error(r, says: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert says in r.stderr, r.stderr[-2000:]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_database_file_is_one_line_for_run_and_users(tmp_path, line, damage):
    db = tmp_path / "data" / "inspector.db"
    db.parent.mkdir()
    if damage == "garbage":
        db.write_bytes(os.urandom(8192))
    else:
        line.store.flush()
        src = sqlite3.connect(line.store.data_dir / "inspector.db")
        dst = sqlite3.connect(db)
        src.backup(dst)
        src.close()
        dst.close()
        size = db.stat().st_size
        with open(db, "r+b") as f:
            f.truncate(size // 3)
    cfg = _cfg(tmp_path)
    for args in (("run", "--config", cfg, "--exit-when-done"), ("users", "list", "--config", cfg)):
        r = run_cli(*args, timeout=120)
        _one_line_error(r, "cannot use database")
        assert "restore it from a backup, or move it aside" in r.stderr
    _one_line_error(run_cli("db", "current", "--config", cfg, timeout=120), "cannot use the database")


@pytest.mark.parametrize("url, says", [("not a url", "store.url: Value error, not a database URL"),
                                       ("mysql://u@h/db", "database 'mysql' is not supported"),
                                       ("postgresql+pg8000://u@h/db", "driver 'pg8000' is not supported")])
def test_an_unusable_database_url_is_named_by_its_key(tmp_path, url, says):
    cfg = _cfg(tmp_path, store={"url": url})
    for cmd in ("run", "doctor"):
        _one_line_error(run_cli(cmd, "--config", cfg, timeout=120), says)


def test_a_config_that_is_not_utf8_is_one_line(tmp_path):
    p = tmp_path / "line.yaml"
    p.write_bytes(b"data_dir: data\n# Pr\xfcfstand 3\n")
    _one_line_error(run_cli("run", "--config", str(p)), "is not UTF-8 text (byte 19 is 0xfc)")


def test_a_manifest_entry_without_sha256_is_one_line(tmp_path, demo_line):
    manifest = json.loads((MODELS / "manifest.json").read_text())
    del manifest["models"][0]["sha256"]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    shutil.copy(MODELS / "default-anomaly.onnx", tmp_path / "default-anomaly.onnx")
    cfg = _cfg(tmp_path, detector={"model": str(tmp_path / "default-anomaly.onnx"),
                                   "manifest": str(tmp_path / "manifest.json")})
    image = next(demo_line.frames_dir.glob("*.png"))
    for args in (("detect", str(image), "--config", cfg), ("run", "--config", cfg)):
        r = run_cli(*args, timeout=120)
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
        assert "has no valid sha256" in r.stderr


def test_adding_a_user_without_a_terminal_says_how(tmp_path):
    cfg = _cfg(tmp_path)
    r = run_cli("users", "add", "bob", "--config", cfg, input="")
    _one_line_error(r, "no terminal to ask for the password on: pipe it in with --password-stdin")
    ok = run_cli("users", "add", "bob", "--config", cfg, "--password-stdin", input="a long enough pass\n")
    assert ok.returncode == 0, ok.stderr
