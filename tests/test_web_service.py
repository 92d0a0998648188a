"""The dashboard as its own service (`inspector web`, inspector-web.service) beside the line
(`inspector run --no-web`): both real processes on one SQLite file; the web reaches the line only
through the line's socket. It starts before the line, outlives it, and says so while it is gone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import httpx
import numpy as np
import yaml
from sqlalchemy import create_engine

from inspector.demo.line import ROI
from inspector.reasoner.local_server import free_port
from tests.conftest import run_cli, wait_for
from tests.test_service import NotifySocket


def _config(tmp_path, demo_line, port: int):
    cfg = tmp_path / "line.yaml"
    cfg.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / "data"),
        "products": [{"name": "demo-tile", "recipe": 1}, {"name": "other-tile", "recipe": 2}],
        "cameras": [{"id": "cam1", "roi": list(ROI),
                     "source": {"type": "folder", "path": str(demo_line.frames_dir), "fps": 4, "loop": True}}],
        "web": {"port": port}}))
    return cfg


def _token(tmp_path) -> str:
    from inspector.web.accounts import Accounts

    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'inspector.db'}")
    try:
        return Accounts(engine).add_token("test", "operator")
    finally:
        engine.dispose()


def test_the_dashboard_runs_on_its_own_and_outlives_the_line(demo_line, tmp_path):
    port = free_port()
    cfg = _config(tmp_path, demo_line, port)
    notify = NotifySocket(tmp_path / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "2000000"}
    web = subprocess.Popen([sys.executable, "-m", "inspector", "web", "--config", str(cfg)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = None
    try:
        ready = notify.wait_for("READY", 60)
        assert "serving" in ready.get("STATUS", "")
        t0 = time.monotonic()
        notify.pump(2.5)
        assert len(notify.since(t0, "WATCHDOG")) >= 2, "the web service's watchdog is not fed"
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {_token(tmp_path)}"},
                           timeout=10)

        # No line yet: the dashboard is up, and says the line is not.
        st = api.get("/api/status").json()
        assert st["line"]["up"] is False and "line.sock" in st["line"]["error"]
        assert [c["state"] for c in st["cameras"]] == ["stopped"]
        health = api.get("/api/health").json()
        assert not health["ok"] and any("The line is not running" in p for p in health["problems"])
        r = api.post("/api/cameras/cam1/trigger")
        assert r.status_code == 503 and "not running" in r.json()["detail"]
        assert api.get("/api/cameras/cam1/snapshot.jpg").status_code == 503
        page = api.get("/").text
        assert 'id="line-banner"' in page and "The line is not running" in page
        assert "inspector_line_up 0.0" in api.get("/metrics").text

        # The line starts: status, live pictures with the pre-filter's view, triggers, verdicts.
        line = subprocess.Popen([sys.executable, "-m", "inspector", "run", "--config", str(cfg), "--no-web",
                                 "--verdicts-out", str(tmp_path / "verdicts.jsonl")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert wait_for(lambda: api.get("/api/status").json()["line"]["up"], 60), line.stderr.read()[-2000:] \
            if line.poll() is not None else "the web never saw the line"
        assert wait_for(lambda: api.get("/api/status").json()["cameras"][0]["frames_inspected"] >= 3, 30)
        st = api.get("/api/status").json()
        assert st["cameras"][0]["state"] == "running" and st["detector_model"]
        snap = api.get("/api/cameras/cam1/snapshot.jpg")
        assert snap.status_code == 200 and snap.headers["content-type"] == "image/jpeg"
        img = cv2.imdecode(np.frombuffer(snap.content, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[0] > 100
        cams = api.get("/api/cameras").json()
        assert cams[0]["live"]["size"] and cams[0]["live"]["inspected_seq"] > 0
        with api.stream("GET", "/api/cameras/cam1/stream.mjpg", params={"frames": 2, "fps": 10}) as s:
            body = b"".join(s.iter_bytes())
        assert body.count(b"Content-Type: image/jpeg") == 2
        r = api.post("/api/cameras/cam1/trigger", json={"part_id": "SN-0042"})
        assert r.status_code == 202 and r.json()["pending"] >= 1
        assert api.post("/api/cameras/nope/trigger").status_code == 404
        # ... its part id reaches the inspection through the line's socket
        assert wait_for(lambda: api.get("/api/verdicts", params={"part_id": "SN-0042"}).json(), 30)
        # A changeover through the line's socket, and a refused one that changes nothing.
        r = api.post("/api/cameras/cam1/recipe", json={"product": "nope"})
        assert r.status_code == 422 and "no recipe 'nope'" in r.json()["detail"]
        r = api.post("/api/cameras/cam1/recipe", json={"product": "demo-tile"})
        assert r.status_code == 200 and r.json()["to"] == "demo-tile"
        assert api.get("/api/recipes").json() == []  # the same recipe again: no changeover
        r = api.post("/api/cameras/cam1/recipe", json={"recipe": 2})
        assert r.status_code == 200 and (r.json()["from"], r.json()["to"]) == ("demo-tile", "other-tile")
        assert wait_for(lambda: api.get("/api/status").json()["cameras"][0]["product"] == "other-tile", 5)
        assert [(c["to"], c["by"]) for c in api.get("/api/recipes").json()] == [("other-tile", "token:test")]
        assert wait_for(lambda: len(api.get("/api/verdicts", params={"limit": 500}).json()) >= 5, 30)
        assert "inspector_line_up 1.0" in api.get("/metrics").text
        assert '<div class="banner banner-stop" id="line-banner" role="alert" hidden></div>' in api.get("/").text

        # A second line on the same data directory is refused, and names the first.
        p = run_cli("run", "--config", str(cfg), "--no-web", timeout=60)
        assert p.returncode == 2 and f"another line is running on data directory {tmp_path / 'data'}" in p.stderr
        assert f"pid {line.pid}" in p.stderr

        # The line stops (SIGTERM): the dashboard stays, shows the history, says the line is gone.
        line.send_signal(signal.SIGTERM)
        out, err = line.communicate(timeout=30)
        assert line.returncode == 0, err[-2000:]
        assert not (tmp_path / "data" / "line.sock").exists()  # gone with the line
        reported = [json.loads(x) for x in (tmp_path / "verdicts.jsonl").read_text().splitlines()]
        assert wait_for(lambda: not api.get("/api/status").json()["line"]["up"], 10)
        feed = api.get("/api/verdicts", params={"limit": 500}).json()
        assert {i["uid"] for i in feed} == {r["uid"] for r in reported}
        assert api.get("/api/cameras/cam1/snapshot.jpg").status_code == 503
        assert web.poll() is None
    finally:
        for p in (line, web):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        if line is not None:
            line.wait(30)
        web.wait(30)
        notify.close()
    assert web.returncode == 0
