"""`inspector run` as systemd runs it: the notify protocol on a socket the test owns, and SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import yaml

from inspector.reasoner.local_server import free_port
from tests.conftest import replay_line
from tests.scripted_vlm import ScriptedVLM, answer, completion

HERE = Path(__file__).parent
STAIN = {"type": "stain", "severity": "major", "confidence": 0.9, "box": [100, 100, 900, 900], "reason": "tint"}



class NotifySocket:
    """The systemd side of sd_notify: a datagram socket that records every message with its time."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict]] = []

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))

    def wait_for(self, key: str, seconds: float) -> dict:
        end = time.monotonic() + seconds
        seen = len(self.messages)
        while time.monotonic() < end:
            for _, m in self.messages[seen:]:
                if key in m:
                    return m
            seen = len(self.messages)
            self.pump(0.2)
        raise AssertionError(f"no {key} within {seconds} s; got {[m for _, m in self.messages]}")

    def since(self, t: float, key: str) -> list[dict]:
        return [m for at, m in self.messages if at >= t and key in m]

    def close(self):
        self.sock.close()


def test_ready_after_start_up_watchdog_while_the_loop_beats_and_not_once_it_hangs(tmp_path):
    port = free_port()
    data = tmp_path / "data"
    cfg = tmp_path / "line.yaml"
    cfg.write_text(yaml.safe_dump({
        "data_dir": str(data), "web": {"port": port},
        "cameras": [{"id": "cam1", "source": {"type": "demo", "parts": 6, "seed": 3, "fps": 5.0, "loop": True}}]}))
    notify = NotifySocket(tmp_path / "notify.sock")
    flag = tmp_path / "hang"
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"}
    env.pop("WATCHDOG_PID", None)
    p = subprocess.Popen([sys.executable, str(HERE / "hang_line.py"), str(flag), "run", "--config", str(cfg)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ready = notify.wait_for("READY", 60)
        assert ready["READY"] == "1" and ready["STATUS"].startswith("running: 1 camera(s)")
        # READY=1 only once the line really runs: the dashboard answers and the database is there.
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200
        assert (data / "inspector.db").exists()
        t0 = time.monotonic()
        notify.pump(3.0)
        pings = notify.since(t0, "WATCHDOG")
        assert len(pings) >= 5, pings  # every quarter of the 1 s watchdog time
        status = notify.wait_for("STATUS", 8)["STATUS"]
        assert "cam1" in status and "fps" in status and "VLM queue" in status and "pass" in status
        # The pre-filter loop hangs: the pings stop within half the watchdog time, and the status says why.
        flag.touch()
        notify.pump(1.0)  # the frame in hand when the flag appeared, then the loop stops
        t1 = time.monotonic()
        notify.pump(3.0)
        assert notify.since(t1, "WATCHDOG") == []
        assert any("stalled" in m["STATUS"] for m in notify.since(t1, "STATUS"))
        # ... and start again when it comes back.
        flag.unlink()
        t2 = time.monotonic()
        notify.pump(2.0)
        assert len(notify.since(t2, "WATCHDOG")) >= 2
        assert p.poll() is None
    finally:
        flag.unlink(missing_ok=True)
        p.send_signal(signal.SIGTERM)
        p.wait(15)
        notify.pump(0.5)
        notify.close()
    assert p.returncode == 0, p.stderr.read()[-2000:]
    assert notify.since(0, "STOPPING")[-1]["STOPPING"] == "1"


def test_sigterm_exits_without_waiting_for_the_vlm_and_keeps_the_crops_in_flight(demo_line, tmp_path):
    """The VLM takes 120 s per crop: on SIGTERM the line stops capturing, commits what it judged,
    leaves the crops it was still asking about in the spool, and exits without waiting for the
    answer. The next start asks about them first; nothing reported is lost or recorded twice.
    (How long the stop takes, against systemd's 10 s: `inspector bench stop`.)"""
    data = tmp_path / "data"
    reported = tmp_path / "verdicts.jsonl"
    slow = {"s": 120.0}
    with ScriptedVLM(lambda body: (200, completion(answer("defect", [STAIN])), slow["s"])) as vlm:
        cfg = tmp_path / "line.yaml"
        cfg.write_text(yaml.safe_dump(replay_line(data, demo_line.frames_dir, vlm.base_url, 8,
                                                  {"queue_size": 4, "timeout_s": 60})))
        cmd = [sys.executable, "-m", "inspector", "run", "--config", str(cfg), "--no-web", "--exit-when-done",
               "--verdicts-out", str(reported)]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not vlm.requests and time.monotonic() < deadline:  # a crop is with the VLM
            time.sleep(0.1)
        assert vlm.requests, "the line asked the VLM"
        time.sleep(0.5)
        p.send_signal(signal.SIGTERM)
        try:  # the VLM answers after 120 s: a line that waits for it is still running at 100 s
            out, err = p.communicate(timeout=100)
        except subprocess.TimeoutExpired:
            p.kill()
            raise AssertionError("SIGTERM: the line waited for the VLM's answer instead of leaving it in the spool")
        assert vlm.replies == 0
        assert p.returncode in (0, 1), err[-2000:]
        spooled = {json.loads(f.read_text())["uid"] for f in (data / "vlm-spool").glob("*.json")}
        assert spooled, "the crops being asked about stay in the spool"
        first = [json.loads(line)["uid"] for line in reported.read_text().splitlines()] if reported.exists() else []
        assert not set(first) & spooled  # a judged part is not also waiting
        # The next start (a quick VLM now) asks about the spooled parts first and judges everything.
        slow["s"] = 0.0
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        assert p.returncode == 0, p.stderr[-2000:]
    uids = [json.loads(line)["uid"] for line in reported.read_text().splitlines()]
    assert spooled <= set(uids) and len(uids) == len(set(uids))
    assert not list((data / "vlm-spool").glob("*.json"))


def _journal_entries(sock: socket.socket) -> list[dict]:
    """Read datagrams of the journal's native protocol (KEY=value lines; KEY, newline, 64-bit LE
    length, bytes for values with newlines)."""
    import struct

    out = []
    while True:
        try:
            data = sock.recv(1 << 16)
        except (TimeoutError, BlockingIOError):
            return out
        fields, i = {}, 0
        while i < len(data):
            nl = data.index(b"\n", i)
            line = data[i:nl]
            if b"=" in line:
                k, v = line.split(b"=", 1)
                fields[k.decode()] = v.decode()
                i = nl + 1
            else:
                (n,) = struct.unpack("<Q", data[nl + 1:nl + 9])
                fields[line.decode()] = data[nl + 9:nl + 9 + n].decode()
                i = nl + 9 + n + 1
        out.append(fields)


def test_logs_go_to_journald_as_entries_with_fields(tmp_path):
    import logging

    from inspector.service.journal import JournalHandler

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "journal.sock"))
    sock.settimeout(0.5)
    log = logging.getLogger("inspector.test_journal")
    handler = JournalHandler(str(tmp_path / "journal.sock"))
    log.addHandler(handler)
    try:
        try:
            raise OSError("camera unplugged")
        except OSError:
            log.error("camera %s failed", "line1-top", exc_info=True, extra={"camera_id": "line1-top"})
        log.warning("VLM slow")
    finally:
        log.removeHandler(handler)
        handler.close()
    err, warn = _journal_entries(sock)
    sock.close()
    assert err["PRIORITY"] == "3" and warn["PRIORITY"] == "4"
    assert err["MESSAGE"].startswith("camera line1-top failed\nTraceback") and "OSError: camera unplugged" in err["MESSAGE"]
    assert err["CAMERA_ID"] == "line1-top" and err["LOGGER"] == "inspector.test_journal"
    assert err["SYSLOG_IDENTIFIER"] == "inspector" and err["CODE_FUNC"].startswith("test_logs_go_to_journald")
    assert warn["MESSAGE"] == "VLM slow" and "CAMERA_ID" not in warn


def test_under_systemd_the_line_logs_to_the_journal_not_stderr(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "journal.sock"))
    sock.settimeout(0.5)
    cfg = tmp_path / "line.yaml"
    cfg.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "web": {"enabled": False},
                                   "cameras": [{"id": "cam1", "source": {"type": "folder",
                                                                         "path": str(tmp_path / "gone")}}]}))
    env = {**os.environ, "JOURNAL_STREAM": "8:12345", "INSPECTOR_JOURNAL_SOCKET": str(tmp_path / "journal.sock")}
    entries: list[dict] = []
    stop = threading.Event()

    def read():  # as journald does: at once (a datagram socket queues only a few unread)
        while not stop.is_set():
            entries.extend(_journal_entries(sock))
    reader = threading.Thread(target=read)
    reader.start()
    try:
        p = subprocess.run([sys.executable, "-m", "inspector", "run", "--config", str(cfg), "--exit-when-done"],
                           env=env, capture_output=True, text=True, timeout=60)
    finally:
        stop.set()
        reader.join()
        sock.close()
    assert p.returncode != 0  # a folder that is not there stops the start ...
    assert "gone" in p.stderr  # ... with the reason where an operator running it by hand sees it
    assert entries and all({"MESSAGE", "PRIORITY", "LOGGER", "CODE_LINE"} <= set(e) for e in entries)
    assert not any(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (INFO|WARNING|ERROR) ", line)
                   for line in p.stderr.splitlines())  # no log lines on stderr: journald has them


def test_a_stalled_journald_does_not_stall_the_line(tmp_path, capsys):
    import logging

    from inspector.service.journal import JournalHandler

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "journal.sock"))  # bound, never read: its queue fills
    log = logging.getLogger("inspector.test_stalled")
    handler = JournalHandler(str(tmp_path / "journal.sock"))
    log.addHandler(handler)
    t = time.monotonic()
    try:
        for n in range(14):
            log.warning("entry %d", n)
    finally:
        log.removeHandler(handler)
        handler.close()
    took = time.monotonic() - t
    queued = len(_journal_entries_nowait(sock))
    sock.close()
    spilled = [line for line in capsys.readouterr().err.splitlines() if "entry" in line]
    assert queued + len(spilled) == 14 and spilled  # every entry is somewhere, none lost
    assert spilled[-1] == "WARNING inspector.test_stalled: entry 13"
    assert took < 0.6 * len(spilled) + 1  # each waits at most half a second


def _journal_entries_nowait(sock):
    sock.setblocking(False)
    return _journal_entries(sock)


def test_sigterm_with_the_database_locked_keeps_the_deadline_and_loses_nothing(demo_line, tmp_path):
    """Another process holds the database's write lock (a backup, a sqlite3 shell left open): on
    SIGTERM the line still stops by its deadline instead of waiting out the busy timeout; what
    the database did not take is parked on disk and written at the next start, once each."""
    import sqlite3

    data = tmp_path / "data"
    reported = tmp_path / "verdicts.jsonl"
    line = replay_line(data, demo_line.frames_dir, "http://127.0.0.1:9/v1", 6, store={"busy_timeout_s": 600})
    line["reasoner"] = {"type": "none"}  # every frame judged at once by the detector
    cfg = tmp_path / "line.yaml"
    cfg.write_text(yaml.safe_dump(line))
    cmd = [sys.executable, "-m", "inspector", "run", "--config", str(cfg), "--no-web", "--exit-when-done",
           "--verdicts-out", str(reported)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (reported.exists() and reported.read_text().count("\n") >= 2):
        time.sleep(0.05)
    other = sqlite3.connect(data / "inspector.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # held: the line's writer now waits up to busy_timeout_s (600 s)
    try:
        time.sleep(1.0)  # a few more frames judged, none of them committed
        p.send_signal(signal.SIGTERM)
        # The stop did not wait for the database: it ends while the lock is still held, long before
        # the 600 s a write may wait for it (this timeout only guards against a hang).
        out, err = p.communicate(timeout=120)
    finally:
        other.execute("ROLLBACK")
        other.close()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["unwritten"] >= 1, (summary, err[-2000:])
    assert p.returncode == 1 and "verdict(s) not yet in the database" in err.strip().splitlines()[-1]
    parked = list((data / "unwritten").glob("*.jsonl"))
    assert parked and sum(f.read_text().count("\n") for f in parked) == summary["unwritten"]
    first = [json.loads(x)["uid"] for x in reported.read_text().splitlines()]
    # The next start writes the parked verdicts first, then goes on with the folder.
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stderr[-2000:]
    assert not list((data / "unwritten").glob("*.jsonl"))
    con = sqlite3.connect(data / "inspector.db")
    try:
        rows = con.execute("SELECT uid, source_name FROM inspections").fetchall()
    finally:
        con.close()
    uids = [u for u, _ in rows]
    assert len(uids) == len(set(uids))
    assert set(first) <= set(uids)
    frames = sorted(f.name for f in demo_line.frames_dir.glob("*.png"))
    assert sorted(n for _, n in rows) == frames, "every part recorded exactly once"
