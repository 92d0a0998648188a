"""Secrets never shown: camera, database, webhook and VLM URLs are redacted by parsing them, in
every place a person or a log sees them (status, health, the dashboard, `inspector config`,
doctor, the cameras table)."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import authorize, run_cli

SECRET = "Hunter2x"


@pytest.mark.parametrize("url, shown", [
    ("rtsp://admin:s3cret@10.0.0.7:554/main", "rtsp://admin:***@10.0.0.7:554/main"),
    (f"rtsp://admin:p@{SECRET}@cam.local/h264", "rtsp://admin:***@cam.local/h264"),  # @ in the password
    (f"rtsp://admin:{SECRET}/x@cam.local/h264", "rtsp://admin:***@cam.local/h264"),  # / in the password
    (f"rtsp://admin:{SECRET}?#@cam.local/h264", "rtsp://admin:***@cam.local/h264"),  # ? and # in it
    (f"http://cam/snap.cgi?user=admin&pwd={SECRET}", "http://cam/snap.cgi?user=admin&pwd=***"),
    (f"http://cam/v?User=admin&PassWord={SECRET}&ch=1", "http://cam/v?User=admin&PassWord=***&ch=1"),
    (f"http://cam/v?api_key={SECRET}#top", "http://cam/v?api_key=***#top"),
    (f"http://cam/v?access%5Ftoken={SECRET}", "http://cam/v?access%5Ftoken=***"),  # encoded name
    (f"https://{SECRET}@hooks.example/x", "https://***@hooks.example/x"),  # a token as userinfo
    (f"postgresql+psycopg://line:{SECRET}@db:5432/insp", "postgresql+psycopg://line:***@db:5432/insp"),
    (f"rtsp://admin:{SECRET}", "rtsp://admin:***"),  # no host at all
    ("rtsp://10.0.0.7:554/main", "rtsp://10.0.0.7:554/main"),
    ("rtsp://[::1]:8554/a?ch=1", "rtsp://[::1]:8554/a?ch=1"),
    ("http://cam.local/stream.mjpg", "http://cam.local/stream.mjpg"),
    ("sqlite:////var/lib/inspector/inspector.db", "sqlite:////var/lib/inspector/inspector.db"),
])
def test_urls_are_redacted_by_parsing(url, shown):
    from inspector.util.redact import redact_url

    assert redact_url(url) == shown
    assert SECRET not in redact_url(url) and "s3cret" not in redact_url(url)


def test_urls_inside_error_text_and_config_dumps_are_redacted():
    from inspector.util.redact import redact_config, redact_text

    assert redact_text(f"cannot open rtsp://a:{SECRET}@cam/x (timeout)") == "cannot open rtsp://a:***@cam/x (timeout)"
    dumped = redact_config({"reasoner": {"api_key": SECRET, "api_key_env": "VLM_KEY"},
                            "cameras": [{"source": {"url": f"http://c/x?pwd={SECRET}"}}]})
    assert SECRET not in json.dumps(dumped)
    assert dumped["reasoner"]["api_key_env"] == "VLM_KEY"  # the name of a variable is no secret


def _line_cfg(tmp_path):
    return {"data_dir": str(tmp_path / "data"), "web": {"enabled": False},
            "cameras": [
                {"id": "gate", "source": {"type": "rtsp", "url": f"rtsp://admin:p@{SECRET}@127.0.0.1:9/live",
                                          "timeout_s": 0.5, "reconnect": {"initial_s": 0.2, "max_s": 0.5}}},
                {"id": "snap", "source": {"type": "mjpeg", "url": f"http://127.0.0.1:9/v.mjpg?user=admin&pwd={SECRET}",
                                          "timeout_s": 0.5, "reconnect": {"initial_s": 0.2, "max_s": 0.5}}}],
            "events": {"sinks": [{"type": "webhook", "url": f"http://127.0.0.1:9/hook?token={SECRET}"}]},
            "reasoner": {"type": "openai", "base_url": f"http://vlm:{SECRET}@127.0.0.1:9/v1", "timeout_s": 1}}


def test_no_page_or_api_shows_a_camera_password(tmp_path):
    from fastapi.testclient import TestClient

    from inspector.config import parse_config
    from inspector.line.pipeline import Pipeline
    from inspector.web import create_app
    from tests.conftest import wait_for

    pipe = Pipeline(parse_config(_line_cfg(tmp_path)))
    pipe.start()
    try:
        # Both cameras fail to connect (nothing listens on port 9): their errors are shown too.
        assert wait_for(lambda: all(c.reconnects >= 1 for c in pipe.status().cameras), 30)
        with TestClient(create_app(pipe.store, pipe.status, pipe.trigger)) as c:
            authorize(c, pipe.store, role="viewer")
            seen = {path: c.get(path) for path in ("/api/status", "/api/health", "/", "/health", "/live",
                                                   "/metrics")}
            for path, r in seen.items():
                assert r.status_code == 200, path
                assert SECRET not in r.text, f"{path} shows the password"
            assert "rtsp://admin:***@127.0.0.1:9/live" in seen["/api/status"].text
            assert "pwd=***" in seen["/api/status"].text
        for row in pipe.store.cameras():
            assert SECRET not in row["source"]
    finally:
        pipe.stop()


def test_config_and_doctor_output_carry_no_secret(tmp_path, demo_line):
    cfg = tmp_path / "line.yaml"
    data = _line_cfg(tmp_path)
    data["reasoner"]["api_key"] = SECRET
    data["store"] = {"url": f"postgresql+psycopg://line:{SECRET}@127.0.0.1:9/insp"}
    cfg.write_text(yaml.safe_dump(data))
    shown = run_cli("config", "--config", str(cfg))
    assert shown.returncode == 0, shown.stderr
    assert SECRET not in shown.stdout and "postgresql+psycopg://line:***@127.0.0.1:9/insp" in shown.stdout
    assert "rtsp://admin:***@127.0.0.1:9/live" in shown.stdout and "token=***" in shown.stdout
    # doctor: a camera that answers (the live ones would each take its 20 s camera timeout)
    data["cameras"] = [{"id": "files", "source": {"type": "folder", "path": str(demo_line.frames_dir)}}]
    cfg.write_text(yaml.safe_dump(data))
    doctor = run_cli("doctor", "--config", str(cfg), "--json", timeout=120)
    assert SECRET not in doctor.stdout + doctor.stderr
    checks = {c["name"]: c for c in json.loads(doctor.stdout)}
    assert not checks["database"]["ok"] and "line:***@127.0.0.1:9" in checks["database"]["detail"]
