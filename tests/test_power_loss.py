"""Power loss: the data directory lives on a filesystem that, at the cut, forgets every write that
was not fsynced and every name whose directory was not (tests/power_cut.py, over FUSE). The line
runs there as a real `inspector run`, loses power at random moments and boots again on what the
disk kept. With store.synchronous: full, every verdict it reported is still in the database under
the id it reported, every crop it had spooled for the VLM is still waiting (and later judged),
no stored row points at a picture the disk forgot, and the database is intact. With `normal`, the
same cut does lose reported verdicts, as documented: the proof that the cut is real.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from tests.conftest import replay_line, wait_for
from tests.scripted_vlm import ScriptedVLM, answer, completion

HERE = Path(__file__).resolve().parent
STAIN = {"type": "stain", "severity": "major", "confidence": 0.9, "box": [100, 100, 900, 900], "reason": "tint"}
CUTS = 3


def _fuse_works() -> str | None:
    if not ctypes.util.find_library("fuse3"):
        return "libfuse3 is not installed (./bootstrap.sh test installs Debian's libfuse3-3)"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "no usable /dev/fuse"
    p = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if p.returncode != 0:
        return "needs a private mount namespace (unshare -rm)"
    return None


pytestmark = pytest.mark.skipif(_fuse_works() is not None, reason=str(_fuse_works()))


class PowerCutBox:
    """COMMAND booted on the forgetful filesystem by tests/power_cut.py, steered through CONTROL."""

    def __init__(self, tmp_path: Path, command: list[str]):
        self.lower, self.mount, self.control = tmp_path / "disk", tmp_path / "mnt", tmp_path / "control"
        for d in (self.lower, self.mount, self.control):
            d.mkdir()
        self.p = subprocess.Popen(["unshare", "-rm", sys.executable, str(HERE / "power_cut.py"), "line",
                                   str(self.lower), str(self.mount), str(self.control), "--", *command],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err: list[str] = []
        threading.Thread(target=lambda: self.err.extend(self.p.stderr), daemon=True).start()
        self.boot = 0

    def log(self) -> str:
        return "".join(self.err)[-3000:]

    def wait_up(self) -> None:
        assert wait_for(lambda: (self.control / f"up-{self.boot}").exists() or self.p.poll() is not None, 60), \
            self.log()
        assert self.p.poll() is None, f"ended before boot {self.boot} was up: {self.log()}"

    def cut(self) -> list[str]:
        """Cut the power; returns the spool's sidecars as the program saw them at that instant."""
        (self.control / f"cut-{self.boot}").touch()
        assert wait_for(lambda: (self.control / f"down-{self.boot}").exists() or self.p.poll() is not None, 60), \
            self.log()
        assert self.p.poll() is None, self.log()
        return json.loads((self.control / f"boot-{self.boot}" / "volatile-spool.json").read_text())

    def power_on(self) -> None:
        (self.control / f"power-on-{self.boot}").touch()
        self.boot += 1

    def finish(self, timeout: float = 300) -> str:
        out, _ = self.p.communicate(timeout=timeout)
        return out

    def kill(self) -> None:
        if self.p.poll() is None:  # the test failed midway: power_cut.py stops the line and the mount
            self.p.terminate()
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def test_the_cut_forgets_exactly_what_was_not_synced(tmp_path):
    """The harness itself: what it keeps and what it drops at a cut, on small files and SQLite."""
    prog = tmp_path / "writes.py"
    prog.write_text(textwrap.dedent("""
        import os, sqlite3, sys, time
        m = sys.argv[1]
        if os.path.exists(m + "/t.db"):
            sys.exit(0)  # the boot after the cut: leave the disk as it was found
        def sync(p):
            fd = os.open(p, os.O_RDONLY); os.fsync(fd); os.close(fd)
        os.mkdir(m + "/d"); os.mkdir(m + "/e"); sync(m)
        for name in ("kept", "old"):
            open(m + "/d/" + name, "w").write(name); sync(m + "/d/" + name)
        sync(m + "/d")
        open(m + "/d/kept", "a").write(" and more")         # appended, never synced
        open(m + "/d/new", "w").write("new"); sync(m + "/d/new")
        os.replace(m + "/d/new", m + "/d/old")              # renamed, the folder never synced again
        open(m + "/e/nameless", "w").write("x"); sync(m + "/e/nameless")  # data synced, name never
        for name, mode in (("t.db", "FULL"), ("n.db", "NORMAL")):
            c = sqlite3.connect(m + "/" + name)
            c.execute("PRAGMA journal_mode=WAL"); c.execute(f"PRAGMA synchronous={mode}")
            c.execute("CREATE TABLE t (x)"); c.commit()
            for i in range(20):
                c.execute("INSERT INTO t VALUES (?)", (i,)); c.commit()
        open(m + "/../control/written", "w").write("")
        time.sleep(60)
    """))
    box = PowerCutBox(tmp_path, [sys.executable, str(prog), str(tmp_path / "mnt")])
    try:
        box.wait_up()
        assert wait_for(lambda: (tmp_path / "control" / "written").exists(), 60), box.log()
        box.cut()
        disk = box.lower
        assert (disk / "e").is_dir() and not list((disk / "e").iterdir())
        assert sorted(p.name for p in (disk / "d").iterdir()) == ["kept", "old"]  # as at its sync
        assert (disk / "d" / "kept").read_text() == "kept"
        assert (disk / "d" / "old").read_text() == "old"
        full = sqlite3.connect(disk / "t.db")
        assert full.execute("SELECT count(*) FROM t").fetchone()[0] == 20  # every commit was synced
        full.close()
        normal = sqlite3.connect(disk / "n.db")
        with pytest.raises(sqlite3.OperationalError, match="no such table"):  # none were
            normal.execute("SELECT count(*) FROM t")
        normal.close()
        box.power_on()
        box.finish(60)
    finally:
        box.kill()
    assert box.p.returncode == 0, box.log()


def _line(tmp_path: Path, demo_line, vlm_url: str, synchronous: str) -> tuple[list[str], Path]:
    reported = tmp_path / "verdicts.jsonl"
    cfg = tmp_path / "line.yaml"
    line = replay_line(tmp_path / "mnt", demo_line.frames_dir, vlm_url, 8, {"queue_size": 4},
                       store={"synchronous": synchronous})
    line["cameras"][0]["source"]["after"] = "keep"  # every boot replays the whole folder: frames to cut over
    cfg.write_text(yaml.safe_dump(line))
    return ([sys.executable, "-m", "inspector", "run", "--config", str(cfg), "--no-web", "--exit-when-done",
             "--verdicts-out", str(reported)], reported)


def _reported(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _look_at_the_disk(disk: Path) -> dict:
    """What the next boot will find: the stored inspections, the spooled jobs, dangling pictures.
    (Opening the database recovers its WAL, as the next boot's first connection would.)"""
    db = sqlite3.connect(disk / "inspector.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = dict(db.execute("SELECT uid, id FROM inspections").fetchall())
        pictures = [p for (p,) in db.execute("SELECT path FROM images")]
    finally:
        db.close()
    spool = disk / "vlm-spool"
    jobs = {}
    for side in spool.glob("*.json"):
        meta = json.loads(side.read_text())  # whole, or the next boot could not resume it
        frame = np.load(side.with_suffix(".npy"), allow_pickle=False)
        assert frame.ndim == 3 and frame.size, side.name
        jobs[side.name] = meta["uid"]
    forgotten = [p for p in pictures if cv2.imread(str(disk / p)) is None]
    return {"stored": stored, "jobs": jobs, "forgotten_pictures": forgotten, "n_pictures": len(pictures)}


def test_power_cuts_lose_no_reported_verdict_and_no_waiting_crop(demo_line, tmp_path):
    rnd = random.Random(20261124)
    n_frames = len(list(demo_line.frames_dir.glob("*.png")))
    with ScriptedVLM(lambda body: (200, completion(answer("defect", [STAIN])), 0.15)) as vlm:
        command, reported = _line(tmp_path, demo_line, vlm.base_url, "full")
        box = PowerCutBox(tmp_path, command)
        ever_spooled: set[str] = set()
        cuts = []
        try:
            for k in range(CUTS):
                box.wait_up()
                before = len(_reported(reported))
                target = before + rnd.randint(1, 5)
                assert wait_for(lambda: len(_reported(reported)) >= target, 90), box.log()
                time.sleep(rnd.uniform(0, 0.4))  # somewhere between two verdicts
                seen_in_spool = box.cut()
                lines = _reported(reported)
                disk = _look_at_the_disk(box.lower)
                # 1. every verdict reported so far survived, under the id it was reported with
                lost = [r["uid"] for r in lines if disk["stored"].get(r["uid"]) != r["id"]]
                assert not lost, f"cut {k + 1}: reported but gone after the power cut: {lost}"
                # 2. every crop the line had spooled is still waiting: at most the one being spooled
                #    at the instant of the cut (its name not yet synced) is not on the disk
                not_kept = set(seen_in_spool) - set(disk["jobs"])
                assert len(not_kept) <= 1, f"cut {k + 1}: spooled jobs the disk forgot: {not_kept}"
                # 3. no stored row points at a picture the disk forgot
                assert not disk["forgotten_pictures"], disk["forgotten_pictures"][:5]
                ever_spooled |= set(disk["jobs"].values())
                cuts.append({"reported": len(lines) - before, "spooled": len(disk["jobs"]),
                             "pictures": disk["n_pictures"]})
                box.power_on()
            out = box.finish()
        finally:
            box.kill()
        assert box.p.returncode == 0, box.log()
        assert vlm.requests
    print("per cut", cuts)
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["inspected"] == n_frames and summary["store_errors"] == 0
    lines = _reported(reported)
    disk = _look_at_the_disk(box.lower)
    assert sum(c["reported"] for c in cuts) >= CUTS and ever_spooled, cuts
    # All the cuts' reported verdicts are there, none twice, and the spool drained into verdicts.
    lost = [r["uid"] for r in lines if disk["stored"].get(r["uid"]) != r["id"]]
    assert not lost and len({r["uid"] for r in lines}) == len(lines)
    assert disk["jobs"] == {} and ever_spooled <= set(disk["stored"])
    db = sqlite3.connect(box.lower / "inspector.db")
    try:
        twice = db.execute("SELECT substr(uid, 1, instr(uid, ':') - 1) AS run, source_name, count(*) "
                           "FROM inspections GROUP BY run, source_name HAVING count(*) > 1").fetchall()
        assert twice == []
        last_run = lines[-1]["uid"].split(":")[0]
        assert db.execute("SELECT count(*) FROM inspections WHERE uid LIKE ?", (last_run + ":%",)).fetchone()[0] \
            == n_frames
        assert db.execute("SELECT count(*) FROM inspections i LEFT JOIN verdicts v ON v.inspection_id = i.id "
                          "WHERE v.id IS NULL").fetchone()[0] == 0
    finally:
        db.close()
    assert not disk["forgotten_pictures"] and disk["n_pictures"] > 0


def test_with_synchronous_normal_the_same_cut_loses_reported_verdicts(demo_line, tmp_path):
    with ScriptedVLM(lambda body: (200, completion(answer("defect", [STAIN])), 0.15)) as vlm:
        command, reported = _line(tmp_path, demo_line, vlm.base_url, "normal")
        box = PowerCutBox(tmp_path, command)
        try:
            box.wait_up()
            assert wait_for(lambda: len(_reported(reported)) >= 4, 90), box.log()
            box.cut()
            lines = _reported(reported)
            db_file = box.lower / "inspector.db"
            stored = set()
            if db_file.exists() and db_file.stat().st_size:
                db = sqlite3.connect(db_file)
                try:
                    stored = {u for (u,) in db.execute("SELECT uid FROM inspections")}
                except sqlite3.OperationalError:
                    pass  # not even the schema was synced
                finally:
                    db.close()
            box.power_on()
            box.finish()
        finally:
            box.kill()
    lost = [r["uid"] for r in lines if r["uid"] not in stored]
    assert len(lines) >= 4 and lost, "synchronous=normal kept every reported verdict: the cut forgot nothing"
