"""`inspector doctor` against real pieces: a good box passes every check; a broken one gets each
fault named and a non-zero exit."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml

from inspector.reasoner.local_server import free_port
from tests.conftest import run_cli

MODELS = Path(__file__).parent.parent / "models"


def _doctor(cfg: dict, tmp_path: Path):
    p = tmp_path / "line.yaml"
    p.write_text(yaml.safe_dump(cfg))
    r = run_cli("doctor", "--config", str(p), "--json", timeout=300)
    return r, {c["name"]: c for c in json.loads(r.stdout)}  # with --json, stdout is the JSON alone


def test_a_ready_box_passes_every_check(tmp_path, demo_line):
    r, checks = _doctor({"data_dir": str(tmp_path / "data"),
                         "cameras": [{"id": "cam1", "source": {"type": "folder", "path": str(demo_line.frames_dir)}}],
                         "reasoner": {"type": "llama_cpp", "test_model": True}}, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert set(checks) == {"database", "disk", "detector", "camera cam1", "VLM"}
    assert all(c["ok"] for c in checks.values())
    assert "a 640x480 frame" in checks["camera cam1"]["detail"] and "candidate(s)" in checks["camera cam1"]["detail"]
    assert "TEST model" in checks["VLM"]["detail"] and "answered" in checks["VLM"]["detail"]
    assert "a power cut may take back the last verdicts" in checks["disk"]["detail"]  # the default: normal
    assert "all checks passed" in r.stderr
    assert not (tmp_path / "data" / "inspector.db").exists()  # doctor changes nothing


def test_doctor_asks_ernie_in_process_and_names_the_llama_build(tmp_path, demo_line, tiny_ernie):
    r, checks = _doctor({"data_dir": str(tmp_path / "data"),
                         "cameras": [{"id": "cam1", "source": {"type": "folder", "path": str(demo_line.frames_dir)}}],
                         "reasoner": {"type": "llama_cpp", "model": str(tiny_ernie.model),
                                      "mmproj": str(tiny_ernie.mmproj), "profile": "ernie-4.5-vl",
                                      "max_tokens": 160}}, tmp_path)
    vlm = checks["VLM"]
    assert vlm["ok"], vlm
    assert vlm["detail"].startswith(f"{tiny_ernie.model.name}: answered")
    assert "llama-cpp-python 0.3.36+inspector." in vlm["detail"] and "(with patches/llama.cpp" in vlm["detail"]


def test_a_broken_box_gets_every_fault_named(tmp_path):
    # A model whose manifest no longer matches the file (a half-copied upgrade).
    (tmp_path / "models").mkdir()
    shutil.copy(MODELS / "default-anomaly.onnx", tmp_path / "models" / "default-anomaly.onnx")
    manifest = json.loads((MODELS / "manifest.json").read_text())
    manifest["models"][0]["sha256"] = "0" * 64
    (tmp_path / "models" / "manifest.json").write_text(json.dumps(manifest))
    # A database some newer version wrote.
    (tmp_path / "data").mkdir()
    db = sqlite3.connect(tmp_path / "data" / "inspector.db")
    db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    db.execute("INSERT INTO alembic_version VALUES ('9999')")
    db.commit()
    db.close()
    r, checks = _doctor({
        "data_dir": str(tmp_path / "data"),
        "detector": {"model": str(tmp_path / "models" / "default-anomaly.onnx"),
                     "manifest": str(tmp_path / "models" / "manifest.json")},
        "cameras": [{"id": "cam1", "source": {"type": "folder", "path": str(tmp_path / "unplugged")}}],
        "reasoner": {"type": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1", "server": "llama_cpp_python"},
        "store": {"retention": {"min_free_mb": 1e12}},  # more than any disk here has
    }, tmp_path)
    assert r.returncode == 1
    assert not any(c["ok"] for c in checks.values()), checks
    assert "schema revision 9999, which this inspector version does not know" in checks["database"]["detail"]
    assert "under store.retention.min_free_mb" in checks["disk"]["detail"]
    assert "does not match its manifest" in checks["detector"]["detail"]
    assert "unplugged" in checks["camera cam1"]["detail"] and "does not exist" in checks["camera cam1"]["detail"]
    assert "cannot reach the VLM server" in checks["VLM"]["detail"]
    assert "5 problem(s): database, disk, detector, camera cam1, VLM" in r.stderr
    assert r.stderr.count("FAIL ") == 5


def _database_at(path: Path, revision: str | None) -> None:
    """An SQLite file at an older schema revision; None: made before migrations existed."""
    from sqlalchemy import create_engine, text

    from inspector.store import schema
    from alembic import command

    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        command.upgrade(schema._config(conn), revision or schema.FIRST)
        if revision is None:
            conn.execute(text("DROP TABLE alembic_version"))
    engine.dispose()


@pytest.mark.parametrize("state, ok, says", [
    ("before migrations", False, "run `inspector db upgrade` once to adopt it"),
    ("older revision", False, "run `inspector db upgrade`"),
    ("empty file", True, "empty, the first start creates the schema"),
])
def test_doctor_judges_a_database_as_the_line_s_start_does(tmp_path, demo_line, state, ok, says):
    db = tmp_path / "data" / "inspector.db"
    db.parent.mkdir()
    if state == "empty file":
        db.touch()
    else:
        _database_at(db, None if state == "before migrations" else "0001")
    cfg = {"data_dir": str(tmp_path / "data"), "web": {"enabled": False},
           "cameras": [{"id": "cam1", "source": {"type": "folder", "path": str(demo_line.frames_dir)}}]}
    r, checks = _doctor(cfg, tmp_path)
    assert checks["database"]["ok"] is ok and says in checks["database"]["detail"], checks["database"]
    # `inspector run` agrees: it starts where doctor passes, and refuses with the same advice.
    run = run_cli("run", "--config", str(tmp_path / "line.yaml"), "--no-web", "--exit-when-done", timeout=300)
    if ok:
        assert run.returncode == 0, run.stderr[-2000:]
    else:
        assert run.returncode == 2 and says in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("synchronous,says", [("full", "survives a power cut"),
                                              ("normal", "a power cut may take back the last verdicts")])
def test_the_disk_check_says_whether_writes_survive_a_power_cut(tmp_path, synchronous, says):
    from inspector.config import parse_config
    from inspector.service.doctor import check_disk

    cfg = parse_config({"data_dir": str(tmp_path / "data"), "store": {"synchronous": synchronous},
                        "cameras": [{"id": "cam1", "source": {"type": "folder", "path": str(tmp_path)}}],
                        "reasoner": {"type": "llama_cpp", "test_model": True}})
    c = check_disk(cfg)
    assert c.ok and says in c.detail


def test_doctor_says_whether_a_plc_can_reach_the_opcua_server(tmp_path):
    from inspector.config import parse_config
    from inspector.plc import pki
    from inspector.service.doctor import check_opcua

    cfg = parse_config({"data_dir": str(tmp_path / "data"), "plc": {"opcua": {"enabled": True}}})
    first = check_opcua(cfg)
    assert first.ok and "the first start makes one" in first.detail
    pki_dir = tmp_path / "data" / "opcua"
    pki.ensure_server_certificate(pki_dir, "urn:box:inspector")
    lonely = check_opcua(cfg)
    assert not lonely.ok and "no PLC can connect" in lonely.detail and str(pki_dir / "trusted") in lonely.detail
    pki.make_client_certificate(pki_dir / "trusted" / "plc.der", tmp_path / "plc.pem", "urn:plc")
    ready = check_opcua(cfg)
    assert ready.ok and "1 trusted client certificate(s)" in ready.detail and "valid 18" in ready.detail
    (pki_dir / "own" / "cert.der").write_bytes(b"not a certificate")
    broken = check_opcua(cfg)
    assert not broken.ok and "unreadable" in broken.detail


def test_doctor_reads_a_gige_camera_and_names_a_dead_one(tmp_path):
    """The aravis source against Aravis' GigE Vision simulator: a frame read; a hardware-triggered
    camera is connected without waiting for a part; with the simulator gone, the reason is named."""
    from tests import fake_gv_camera
    from tests.conftest import need

    need("Aravis", fake_gv_camera.available(), "./bootstrap.sh test installs it")
    src = {"type": "aravis", "camera": "127.0.0.1", "timeout_s": 2, "reconnect": {"initial_s": 0.5, "max_s": 1}}
    cfg = {"data_dir": str(tmp_path / "data"), "reasoner": {"type": "none"},
           "cameras": [{"id": "free", "source": src},
                       {"id": "hw", "source": {**src, "trigger": "hardware", "trigger_line": "Line0"}}]}
    with fake_gv_camera.FakeGvCamera():
        r, checks = _doctor(cfg, tmp_path)
    assert checks["camera free"]["ok"] and "aravis:127.0.0.1: a 512x512 frame" in checks["camera free"]["detail"]
    assert checks["camera hw"]["ok"] and "waiting for parts on Line0" in checks["camera hw"]["detail"]
    r, checks = _doctor(cfg, tmp_path)
    assert not checks["camera free"]["ok"] and "last error" in checks["camera free"]["detail"]
    assert r.returncode == 1
