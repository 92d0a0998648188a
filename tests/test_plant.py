"""A plant with two boxes: two `inspector run` processes, started together on a new PostgreSQL
database, write their verdicts side by side; each box's parts stay its own, both complete, and a
third box that claims one of their cameras is refused with the reason."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml
from sqlalchemy import create_engine, text

from inspector.demo.line import ROI
from tests.conftest import run_cli


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
