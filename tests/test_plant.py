"""A plant with two boxes: two `inspector run` processes, started together on a new PostgreSQL
database, write their verdicts side by side; each box's parts stay its own, both complete, a
third box that claims one of their cameras is refused with the reason, and a plant-wide
dashboard shows both boxes' verdicts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx
import yaml
from sqlalchemy import create_engine, text

from inspector.demo.line import ROI
from inspector.reasoner.local_server import free_port
from tests.conftest import run_cli, wait_for


def _box_config(tmp_path, name: str, url: str, frames_dir, cameras: list[str]) -> tuple:
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump({
        "box": name, "data_dir": str(tmp_path / name),
        "cameras": [{"id": c, "roi": list(ROI), "source": {"type": "folder", "path": str(frames_dir), "fps": 12}}
                    for c in cameras],
        "store": {"url": url}, "web": {"enabled": False}}))
    return cfg, tmp_path / f"{name}.jsonl"


def test_two_boxes_share_one_postgresql_and_keep_their_parts_apart(postgres_server, demo_line, tmp_path):
    url = postgres_server.new_database()
    frames = len(list(demo_line.frames_dir.glob("*.png")))
    boxes = {"line-a": ["a-top", "a-side"], "line-b": ["b-top"]}
    procs = {}
    for name, cams in boxes.items():
        cfg, out = _box_config(tmp_path, name, url, demo_line.frames_dir, cams)
        procs[name] = (subprocess.Popen(
            [sys.executable, "-m", "inspector", "run", "--config", str(cfg), "--no-web", "--exit-when-done",
             "--verdicts-out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), out)
    for name, (p, _) in procs.items():
        stdout, stderr = p.communicate(timeout=180)
        assert p.returncode == 0, f"{name}: {stderr[-3000:]}"
        summary = json.loads(stdout.strip().splitlines()[-1])
        assert summary["inspected"] == frames * len(boxes[name]) and summary["store_errors"] == 0

    engine = create_engine(url)
    with engine.connect() as c:
        rows = c.execute(text("SELECT i.uid, i.camera_id FROM inspections i JOIN verdicts v ON v.inspection_id = i.id")
                         ).all()
        owner = dict(c.execute(text("SELECT id, box FROM cameras")).all())
        rollup = dict(c.execute(text("SELECT camera_id, SUM(n) FROM verdict_rollup GROUP BY camera_id")).all())
    engine.dispose()
    assert len(rows) == len({u for u, _ in rows}) == frames * 3
    assert owner == {"a-top": "line-a", "a-side": "line-a", "b-top": "line-b"}
    for name, (_, out) in procs.items():
        reported = [json.loads(x) for x in out.read_text().splitlines()]
        mine = {u for u, cam in rows if owner[cam] == name}
        # Every verdict this box reported is stored under its own cameras, and nothing else is.
        assert {r["uid"] for r in reported} == mine and len(reported) == len(mine)
        assert {r["camera_id"] for r in reported} == set(boxes[name])
    assert rollup == {c: frames for cams in boxes.values() for c in cams}

    # A third box configured with one of line-a's camera ids is refused before it writes a row.
    cfg, _ = _box_config(tmp_path, "line-c", url, demo_line.frames_dir, ["c-top", "a-side"])
    p = run_cli("run", "--config", str(cfg), "--no-web", "--exit-when-done", timeout=120)
    assert p.returncode == 2
    assert "camera 'a-side' in this database belongs to box 'line-a', and this box is 'line-c'" in p.stderr
    engine = create_engine(url)
    with engine.connect() as c:
        assert c.execute(text("SELECT COUNT(*) FROM inspections")).scalar() == frames * 3
        assert c.execute(text("SELECT COUNT(*) FROM cameras WHERE id = 'c-top'")).scalar() == 0
    engine.dispose()

    # The plant-wide dashboard (a central box: no line, the shared database).
    port = free_port()
    central = tmp_path / "central.yaml"
    central.write_text(yaml.safe_dump({"box": "central", "data_dir": str(tmp_path / "central"),
                                       "store": {"url": url}, "web": {"port": port, "plant_wide": True}}))
    web = subprocess.Popen([sys.executable, "-m", "inspector", "web", "--config", str(central)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: _answers(base), 60), web.stderr.read()[-2000:] if web.poll() is not None else ""
        from inspector.web.accounts import Accounts

        engine = create_engine(url)
        token = Accounts(engine).add_token("central-test", "operator")
        engine.dispose()
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        st = api.get("/api/status").json()
        assert {(c["id"], c["box"]) for c in st["cameras"]} == {
            ("a-top", "line-a"), ("a-side", "line-a"), ("b-top", "line-b")}
        shown = api.get("/api/verdicts", params={"limit": 500}).json()
        assert {r["uid"] for r in shown} == {u for u, _ in rows}
        page = api.get("/").text
        assert "Plant-wide dashboard" in page and 'id="line-banner" role="alert" hidden' in page
        assert api.get("/api/health").json()["ok"] is True
        r = api.post("/api/cameras/a-top/trigger")
        assert r.status_code == 503 and "no line" in r.json()["detail"]
    finally:
        web.send_signal(signal.SIGTERM)
        web.wait(30)
    assert web.returncode == 0


def _answers(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
