"""kill -9 at random moments: every verdict the process reported is in the database, nothing is
recorded twice, the spool drains, and the database is intact.

The line runs as a real `inspector run` subprocess (replaying demo frames, asking a VLM on
loopback that takes its time, so frames wait in the spool), reporting each committed verdict on
--verdicts-out. It is killed with SIGKILL at random moments, six times, restarted each time, and
finally left to finish.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import yaml

from tests.conftest import replay_line
from tests.scripted_vlm import ScriptedVLM, answer, completion

STAIN = {"type": "stain", "severity": "major", "confidence": 0.9, "box": [100, 100, 900, 900], "reason": "tint"}
KILLS = 6


def _spooled(data) -> set[str]:
    d = data / "vlm-spool"
    return {json.loads(p.read_text())["uid"] for p in d.glob("*.json")} if d.exists() else set()


def test_kill_9_loses_no_reported_verdict_and_records_none_twice(demo_line, tmp_path):
    rnd = random.Random(20261124)
    data = tmp_path / "data"
    reported = tmp_path / "verdicts.jsonl"
    with ScriptedVLM(lambda body: (200, completion(answer("defect", [STAIN])), 0.15)) as vlm:
        cfg = tmp_path / "line.yaml"
        line = replay_line(data, demo_line.frames_dir, vlm.base_url, 8, {"queue_size": 4})
        # Every run replays the whole folder (the old default), so that there are frames to kill
        # it over six times; test_kill_9_and_restart_inspects_no_part_twice is the default's.
        line["cameras"][0]["source"]["after"] = "keep"
        cfg.write_text(yaml.safe_dump(line))
        cmd = [sys.executable, "-m", "inspector", "run", "--config", str(cfg), "--no-web",
               "--exit-when-done", "--verdicts-out", str(reported)]
        ever_spooled: set[str] = set()
        kills = []
        for k in range(KILLS):
            before = len(reported.read_text().splitlines()) if reported.exists() else 0
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            # Mostly while verdicts are flowing; sometimes during start-up or the spool's resume.
            wait = rnd.uniform(0.3, 1.5) if k % 3 == 0 else None
            deadline = time.monotonic() + 60
            if wait is None:
                target = before + rnd.randint(1, 6)
                while time.monotonic() < deadline and p.poll() is None:
                    if reported.exists() and len(reported.read_text().splitlines()) >= target:
                        break
                    time.sleep(0.01)
                time.sleep(rnd.uniform(0, 0.3))
            else:
                time.sleep(wait)
            assert p.poll() is None, f"the line ended before kill {k + 1}: {p.stderr.read()[-2000:]}"
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            p.stderr.close()
            ever_spooled |= _spooled(data)
            kills.append(len(reported.read_text().splitlines()) - before if reported.exists() else 0)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-3000:]
        assert vlm.requests, "the VLM was asked"
    lines = [json.loads(line) for line in reported.read_text().splitlines()]
    print("reported per kill", kills, "spooled at kills", len(ever_spooled), "reported", len(lines))
    assert sum(kills) > 0 and len(kills) == KILLS
    db = sqlite3.connect(data / "inspector.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = dict(db.execute("SELECT uid, id FROM inspections").fetchall())
        # 1. every verdict reported before any kill is in the database, under the id reported
        missing = [r["uid"] for r in lines if stored.get(r["uid"]) != r["id"]]
        assert not missing, f"reported but not stored: {missing}"
        # 2. no inspection twice: one row per frame per run (a resumed frame keeps its first run's
        #    uid, so a frame stored before the crash and again after it would show up here)
        twice = db.execute("SELECT substr(uid, 1, instr(uid, ':') - 1) AS run, source_name, count(*) "
                           "FROM inspections GROUP BY run, source_name HAVING count(*) > 1").fetchall()
        assert twice == []
        assert len({r["uid"] for r in lines}) == len(lines)  # and none reported twice
        # 3. the spool drained: everything that was waiting at any kill got its verdict
        assert _spooled(data) == set()
        assert ever_spooled, "some frames were waiting for the VLM at a kill"
        assert ever_spooled <= set(stored)
        n_frames = len(list(demo_line.frames_dir.glob("*.png")))
        runs = db.execute("SELECT count(DISTINCT substr(uid, 1, instr(uid, ':') - 1)) FROM inspections").fetchone()[0]
        assert runs >= 2
        last_run = lines[-1]["uid"].split(":")[0]
        assert db.execute("SELECT count(*) FROM inspections WHERE uid LIKE ?", (last_run + ":%",)).fetchone()[0] \
            == n_frames  # the run that was left alone judged every frame
        # every verdict row has its inspection's children intact
        assert db.execute("SELECT count(*) FROM inspections i LEFT JOIN verdicts v ON v.inspection_id = i.id "
                          "WHERE v.id IS NULL").fetchone()[0] == 0
    finally:
        db.close()


def _kill_at_random_then_finish(cmd, reported, rnd, kills: int):
    """Start the line, SIGKILL it while verdicts flow (or while it starts up), `kills` times;
    then let it run to the end. Returns the last run's result."""
    for k in range(kills):
        before = len(reported.read_text().splitlines()) if reported.exists() else 0
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if k % 2:
            time.sleep(rnd.uniform(0.3, 1.5))
        else:
            target, deadline = before + rnd.randint(1, 4), time.monotonic() + 60
            while time.monotonic() < deadline and p.poll() is None:
                if reported.exists() and len(reported.read_text().splitlines()) >= target:
                    break
                time.sleep(0.01)
            time.sleep(rnd.uniform(0, 0.2))
        assert p.poll() is None, f"the line ended before kill {k + 1}: {p.stderr.read()[-2000:]}"
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        p.stderr.close()
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)


def test_kill_9_and_restart_inspects_no_part_twice(demo_line, tmp_path):
    """The folder remembers what it inspected (cameras[].source.after: remember, the default): after
    kill -9 and a restart it goes on where it was. Every part ends up recorded exactly once, over
    all runs, including parts that were waiting for the VLM in the spool at a kill."""
    rnd = random.Random(20261130)
    data = tmp_path / "data"
    reported = tmp_path / "verdicts.jsonl"
    with ScriptedVLM(lambda body: (200, completion(answer("defect", [STAIN])), 0.15)) as vlm:
        cfg = tmp_path / "line.yaml"
        cfg.write_text(yaml.safe_dump(replay_line(data, demo_line.frames_dir, vlm.base_url, 8, {"queue_size": 4})))
        cmd = [sys.executable, "-m", "inspector", "run", "--config", str(cfg), "--no-web",
               "--exit-when-done", "--verdicts-out", str(reported)]
        last = _kill_at_random_then_finish(cmd, reported, rnd, 4)
        assert last.returncode == 0, last.stderr[-3000:]
        again = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
        assert again.returncode == 0 and json.loads(again.stdout.splitlines()[-1])["inspected"] == 0
    db = sqlite3.connect(data / "inspector.db")
    try:
        runs = db.execute("SELECT count(DISTINCT substr(uid, 1, instr(uid, ':') - 1)) FROM inspections").fetchone()[0]
        names = [n for (n,) in db.execute("SELECT source_name FROM inspections")]
    finally:
        db.close()
    assert runs >= 3, "parts were recorded by several runs"
    frames = sorted(p.name for p in demo_line.frames_dir.glob("*.png"))
    assert sorted(names) == frames, "every part recorded exactly once"
    assert not list((data / "vlm-spool").glob("*.json"))
