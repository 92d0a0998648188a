"""The line end to end through the CLI: real sources, ONNX, llama.cpp, SQLite and JPEG files."""

import json
import re
import sqlite3
from pathlib import Path

import cv2
import yaml

from tests.conftest import run_cli


def _config(tmp_path: Path, **extra) -> Path:
    cfg = {"data_dir": str(tmp_path / "data"),
           "cameras": [{"id": "cam1", "source": {"type": "demo", "parts": 8, "seed": 5, "fps": None}}],
           **extra}
    p = tmp_path / "line.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _db(tmp_path):
    return sqlite3.connect(tmp_path / "data" / "inspector.db")


def test_demo_line_detector_only(tmp_path):
    r = run_cli("run", "--config", str(_config(tmp_path)), "--exit-when-done", "--no-web")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["inspected"] == 8 and summary["reasoner_mode"] == "none"
    db = _db(tmp_path)
    assert db.execute("select count(*) from inspections").fetchone()[0] == 8
    kinds = dict(db.execute("select kind, count(*) from verdicts group by kind").fetchall())
    assert sum(kinds.values()) == 8 and kinds.get("fail", 0) == summary["fail"]
    assert set(kinds) <= {"pass", "fail"}  # detector-only with fail_score 0: flagged parts fail
    assert db.execute("select count(*) from findings").fetchone()[0] == 0
    # candidates are stored for every failed inspection
    assert db.execute("select count(distinct inspection_id) from candidates").fetchone()[0] == kinds.get("fail", 0)
    # exactly the fail/review frames are saved (frame, thumbnail and crops), as readable JPEGs
    # under date-partitioned folders next to the database, by relative path
    rows = db.execute("select i.id, im.kind, im.path, im.bytes, im.crop_index from images im "
                      "join inspections i on i.id = im.inspection_id join verdicts v on v.inspection_id = i.id "
                      "where v.kind in ('fail', 'review')").fetchall()
    frames = [r for r in rows if r[1] == "frame"]
    assert len(frames) == kinds.get("fail", 0) == len({r[0] for r in rows if r[1] == "thumb"})
    n_cands = db.execute("select count(*) from candidates").fetchone()[0]
    assert len([r for r in rows if r[1] == "crop"]) == n_cands  # one crop per candidate
    assert db.execute("select count(*) from images").fetchone()[0] == len(rows)  # nothing for passes
    for _, kind, rel, n_bytes, _ in rows:
        assert not rel.startswith("/") and rel.split("/")[0] == {"frame": "frames", "thumb": "thumbs",
                                                                 "crop": "crops"}[kind]
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", rel.split("/")[1])
        path = tmp_path / "data" / rel
        assert path.stat().st_size == n_bytes
        img = cv2.imread(str(path))
        assert img is not None
        if kind == "frame":
            assert img.shape == (480, 640, 3)
        if kind == "thumb":
            assert max(img.shape[:2]) == 320
    files = list((tmp_path / "data" / "frames").rglob("*.jpg"))
    assert len(files) == len(frames)
    assert db.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_demo_line_with_test_vlm(tmp_path):
    r = run_cli("run", "--config", str(_config(tmp_path)), "--exit-when-done", "--no-web", "--test-vlm")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["reasoner_mode"] == "test_model" and summary["inspected"] == 8
    db = _db(tmp_path)
    n_cand_frames = db.execute("select count(distinct inspection_id) from candidates").fetchone()[0]
    answers = db.execute("select count(*), count(distinct inspection_id) from vlm_answers").fetchone()
    assert answers[1] == n_cand_frames > 0, "every flagged frame went to the VLM"
    assert summary["vlm_crops"] == answers[0]
    assert db.execute("select count(*) from vlm_answers where raw = ''").fetchone()[0] == 0
    # whatever the random model said, nothing outside the frame was stored
    for x1, y1, x2, y2 in db.execute("select x1, y1, x2, y2 from findings"):
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480
    whys = {w for (w,) in db.execute("select why from verdicts")}
    assert "detector_only" not in whys
    assert db.execute("select distinct reasoner_mode from inspections").fetchall() == [("test_model",)]
    # The in-process VLM's text model and projector are recorded by content; verdicts point at them.
    roles = dict(db.execute("select role, sha256 from model_versions"))
    assert set(roles) == {"detector", "vlm", "mmproj"} and all(len(v) == 64 for v in roles.values())
    assert db.execute("select count(*) from inspections i join model_versions m on m.id = i.vlm_version_id "
                      "where m.role = 'vlm'").fetchone()[0] == summary["inspected"]


def test_missing_folder_source_fails_clearly(tmp_path):
    cfg = {"data_dir": str(tmp_path / "d"),
           "cameras": [{"id": "c", "source": {"type": "folder", "path": str(tmp_path / "nope")}}]}
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    r = run_cli("run", "--config", str(p), "--exit-when-done", "--no-web")
    assert r.returncode == 2 and "nope" in r.stderr and "does not exist" in r.stderr


def test_corrupt_frame_is_skipped_not_fatal(tmp_path, demo_line):
    src = tmp_path / "imgs"
    src.mkdir()
    for f in sorted(demo_line.frames_dir.iterdir())[:3]:
        (src / f.name).write_bytes(f.read_bytes())
    (src / "part_0002.png").write_bytes(b"\x89PNG truncated")
    cfg = {"data_dir": str(tmp_path / "d"),
           "cameras": [{"id": "c", "roi": [108, 84, 532, 396], "source": {"type": "folder", "path": str(src)}}]}
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    r = run_cli("run", "--config", str(p), "--exit-when-done", "--no-web")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["inspected"] == 2
    assert "part_0002.png" in r.stderr and "not a readable image" in r.stderr


def test_reasoner_crash_gives_review_and_the_line_goes_on(tmp_path, tiny_vlm, monkeypatch):
    """Fault injection: the backend raises something unexpected on every call."""
    from inspector.config import parse_config
    from inspector.line.pipeline import Pipeline
    from inspector.reasoner.llama_cpp import LlamaCppReasoner

    def boom(self, messages, schema):
        raise MemoryError("injected")

    monkeypatch.setattr(LlamaCppReasoner, "_call", boom)
    cfg = parse_config({"data_dir": str(tmp_path / "d"),
                        "reasoner": {"type": "llama_cpp", "model": str(tiny_vlm.model),
                                     "mmproj": str(tiny_vlm.mmproj)},
                        "cameras": [{"id": "c", "source": {"type": "demo", "parts": 6, "seed": 5,
                                                           "fps": None, "loop": False}}]})
    pipe = Pipeline(cfg)
    pipe.start()
    assert pipe.done.wait(60), "the reasoner thread must survive and drain its queue"
    st = pipe.status()
    pipe.stop()
    db = sqlite3.connect(tmp_path / "d" / "inspector.db")
    assert db.execute("select count(*) from verdicts").fetchone()[0] == 6
    flagged = db.execute("select count(distinct inspection_id) from candidates").fetchone()[0]
    assert flagged > 0
    assert db.execute("select count(*) from verdicts where why = 'vlm_unavailable'").fetchone()[0] == flagged
    assert st.verdict_count("review") == flagged


def test_the_line_on_postgresql(postgres_server, tmp_path):
    """A whole plant's database: the same line, migrations and export against a real server."""
    from sqlalchemy import create_engine, text

    url = postgres_server.new_database()
    cfg = _config(tmp_path, store={"url": url})
    r = run_cli("run", "--config", str(cfg), "--exit-when-done", "--no-web", "--test-vlm",
                "--verdicts-out", str(tmp_path / "v.jsonl"))
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    reported = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    eng = create_engine(url)
    with eng.connect() as c:
        rows = dict(c.execute(text("SELECT uid, id FROM inspections")).all())
        kinds = dict(c.execute(text("SELECT kind, count(*) FROM verdicts GROUP BY kind")).all())
        cams = c.execute(text("SELECT id, product FROM cameras")).all()
        rev = c.execute(text("SELECT version_num FROM alembic_version")).scalar()
    eng.dispose()
    assert len(rows) == summary["inspected"] == 8 == len(reported)
    assert all(rows[v["uid"]] == v["id"] for v in reported)
    assert sum(kinds.values()) == 8 and kinds.get("fail", 0) == summary["fail"]
    assert cams == [("cam1", "demo-tile")]
    from inspector.store import schema
    assert rev == schema.head()
    out = tmp_path / "export.jsonl"
    r = run_cli("export", "--config", str(cfg), "--since", "1d", "--format", "jsonl", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert sorted(json.loads(line)["uid"] for line in out.read_text().splitlines()) == sorted(rows)
