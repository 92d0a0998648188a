"""One line per database: a second line pointed at a database another line writes is refused at
start, by name, whatever its data directory; the lock goes with the process however it ends."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import run_cli, wait_for


def _config(tmp_path, name: str, frames_dir, db) -> str:
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / name), "web": {"enabled": False}, "store": {"url": f"sqlite:///{db}"},
        "cameras": [{"id": f"cam-{name}", "source": {"type": "folder", "path": str(frames_dir), "fps": 2,
                                                     "loop": True}}]}))
    return str(cfg)


def test_a_second_line_on_the_same_sqlite_database_is_refused(demo_line, tmp_path):
    db = tmp_path / "shared" / "inspector.db"
    first = subprocess.Popen([sys.executable, "-m", "inspector", "run", "--config",
                              _config(tmp_path, "a", demo_line.frames_dir, db)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: db.exists() and (tmp_path / "a" / "line.lock").exists(), 60)
        time.sleep(1.0)  # running: verdicts being written
        second = run_cli("run", "--config", _config(tmp_path, "b", demo_line.frames_dir, db), timeout=60)
        assert second.returncode == 2, second.stderr[-2000:]
        msg = second.stderr.strip().splitlines()[-1]
        assert f"another line is writing to database {db}" in msg and f"pid {first.pid}" in msg
        assert str(tmp_path / "a") in msg  # which line: its data directory
        assert "Traceback" not in second.stderr
        # The first line is unharmed: its database holds only its own camera.
        import sqlite3

        con = sqlite3.connect(db)
        assert {c for (c,) in con.execute("SELECT DISTINCT camera_id FROM inspections")} == {"cam-a"}
        con.close()
    finally:
        first.send_signal(signal.SIGKILL)  # the lock goes with the process, however it ends
        first.communicate(timeout=30)
    third = subprocess.Popen([sys.executable, "-m", "inspector", "run", "--config",
                              _config(tmp_path, "b", demo_line.frames_dir, db)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: third.poll() is not None or _has_camera(db, "cam-b"), 60)
        assert third.poll() is None, third.communicate()[1][-2000:]
    finally:
        third.send_signal(signal.SIGTERM)
        third.communicate(timeout=30)


def _has_camera(db, cam: str) -> bool:
    import sqlite3

    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT 1 FROM inspections WHERE camera_id = ?", (cam,)).fetchone() is not None
    finally:
        con.close()


def test_on_postgresql_one_line_per_box(postgres_server, tmp_path):
    from inspector.store.line_lock import LineLock, LineLockError

    url = postgres_server.new_database()
    a = LineLock(url, "press-3", tmp_path / "a").acquire()
    try:
        with pytest.raises(LineLockError, match="a line of box 'press-3' is already running"):
            LineLock(url, "press-3", tmp_path / "b").acquire()
        other = LineLock(url, "press-4", tmp_path / "c").acquire()  # boxes share a plant database
        other.release()
    finally:
        a.release()
    LineLock(url, "press-3", tmp_path / "b").acquire().release()  # free once the first let go
