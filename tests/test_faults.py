"""The database locked by another process, and the disk under the data directory filling up, while
the line runs: it keeps inspecting, says what is wrong, and once the fault is gone every part has
exactly one verdict in the database, every reported verdict among them, no crop left waiting.

(kill -9 is tests/test_crash.py, power loss tests/test_power_loss.py, SIGTERM and a hung loop
tests/test_service.py, the VLM down / slow / talking nonsense tests/test_reasoner_pipeline.py and
test_reasoner_openai.py, a camera that vanishes tests/test_live_sources.py.)
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import replay_line, wait_for
from tests.scripted_vlm import ScriptedVLM, answer, completion

STAIN = {"type": "stain", "severity": "major", "confidence": 0.9, "box": [100, 100, 900, 900], "reason": "tint"}
HERE = Path(__file__).resolve().parent


def _stored(db: Path) -> list[tuple[str, str]]:
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return con.execute("SELECT i.uid, v.kind FROM inspections i JOIN verdicts v ON v.inspection_id = i.id"
                           ).fetchall()
    finally:
        con.close()


def test_a_locked_database_holds_verdicts_back_and_loses_none(demo_line, tmp_path):
    from inspector.config import parse_config
    from inspector.line.pipeline import Pipeline

    frames = len(list(demo_line.frames_dir.glob("*.png")))
    with ScriptedVLM(lambda body: (200, completion(answer("defect", [STAIN])), 0.1)) as vlm:
        cfg = parse_config(replay_line(tmp_path / "data", demo_line.frames_dir, vlm.base_url, 6,
                                       store={"busy_timeout_s": 0.3}))
        pipe = Pipeline(cfg)
        reported: list[str] = []
        pipe.on_verdict.append(lambda iid, uid, v: reported.append(uid))
        pipe.start()
        try:
            assert wait_for(lambda: len(reported) >= 3, 30)
            other = sqlite3.connect(tmp_path / "data" / "inspector.db", isolation_level=None)
            other.execute("BEGIN EXCLUSIVE")  # another process's write transaction, held
            locked_at = len(reported)
            errors: list[str] = []
            stalls: list[float] = []

            def watch():
                while not stop_watch.is_set():
                    stalls.append(pipe.stalled_for())
                    err = pipe.status().store.writer_last_error
                    if err:
                        errors.append(err)
                    time.sleep(0.05)
            stop_watch = threading.Event()
            watcher = threading.Thread(target=watch)
            watcher.start()
            time.sleep(3.0)
            during = len(reported) - locked_at
            seen_by_then = pipe.status().cameras[0].frames_inspected
            other.execute("ROLLBACK")
            other.close()
            assert pipe.done.wait(60) and pipe.store.flush(30)
            stop_watch.set()
            watcher.join()
            st = pipe.status()
        finally:
            pipe.stop()

    # While locked: nothing was reported (a verdict is reported once committed), the line went on
    # inspecting to the last frame with its loop beating, and the writer said why it was waiting.
    assert during <= 1, f"{during} verdicts reported while the database was locked"
    assert locked_at < frames - 5 and seen_by_then == frames, (locked_at, seen_by_then, frames)
    assert max(stalls) < 2.0, f"the loop stalled {max(stalls):.1f} s"
    assert errors and "database is locked" in errors[0], errors[:3]
    # After: all there, once each, the error cleared, nothing waiting.
    assert st.store.writer_last_error is None and st.store_errors == 0
    rows = _stored(tmp_path / "data" / "inspector.db")
    uids = [u for u, _ in rows]
    assert len(uids) == len(set(uids)) == frames
    assert set(reported) == set(uids) and len(reported) == frames
    assert st.vlm_spool == 0 and not list((tmp_path / "data" / "vlm-spool").glob("*.json"))
    assert any(k == "fail" for _, k in rows)  # the VLM's answers made it through the lock too


def _unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    p = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                       capture_output=True)
    return p.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs a private mount namespace (unshare -rm) for a real small disk")
def test_a_full_disk_pauses_the_line_s_writes_and_loses_nothing_once_freed(demo_line, tmp_path):
    frames = len(list(demo_line.frames_dir.glob("*.png")))
    data, control, copy = tmp_path / "data", tmp_path / "control", tmp_path / "copy"
    data.mkdir()
    control.mkdir()
    reported = tmp_path / "verdicts.jsonl"

    def n_reported() -> int:
        return len(reported.read_text().splitlines()) if reported.exists() else 0

    with ScriptedVLM(lambda body: (200, completion(answer("defect", [STAIN])), 0.2)) as vlm:
        cfg = tmp_path / "line.yaml"
        # The guard that stops pictures before the disk is full would spare the database; here the
        # disk is to fill up for real.
        cfg.write_text(yaml.safe_dump(replay_line(data, demo_line.frames_dir, vlm.base_url, 6,
                                                  store={"retention": {"min_free_mb": 0}})))
        cmd = ["unshare", "-rm", sys.executable, str(HERE / "full_disk_line.py"), str(data), "24", str(control),
               str(copy), "--", sys.executable, "-m", "inspector", "run", "--config", str(cfg), "--no-web",
               "--exit-when-done", "--verdicts-out", str(reported)]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        err: list[str] = []
        t = threading.Thread(target=lambda: err.extend(p.stderr), daemon=True)
        t.start()
        try:
            assert wait_for(lambda: n_reported() >= 3, 60), "".join(err)[-3000:]
            (control / "fill").touch()
            assert wait_for(lambda: (control / "filled").exists(), 30)
            full_at = n_reported()
            # Full for a while: the writer cannot commit and says so; the line keeps going.
            assert wait_for(lambda: any("database or disk is full" in e for e in err), 30), "".join(err)[-3000:]
            time.sleep(2.0)
            during = n_reported() - full_at
            assert p.poll() is None, "the line died on a full disk: " + "".join(err)[-3000:]
            (control / "free").touch()
            out, _ = p.communicate(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
        t.join(5)
    log = "".join(err)
    assert p.returncode == 0, log[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["inspected"] == frames and summary["store_errors"] == 0
    assert during <= 2, f"{during} verdicts reported while the disk was full"
    rows = _stored(copy / "inspector.db")
    uids = [u for u, _ in rows]
    assert len(uids) == len(set(uids)) == frames
    lines = [json.loads(x) for x in reported.read_text().splitlines()]
    assert {x["uid"] for x in lines} == set(uids) and len(lines) == frames
    assert not list((copy / "vlm-spool").glob("*.json")), "crops left waiting"
    # Frames that could not be kept for the VLM while the disk was full were judged without it
    # (review), not dropped.
    assert "could not spool" in log and any(k == "review" for _, k in rows)
