"""`inspector install` into a directory the test owns, and the units it installs checked by
systemd's own verifier."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_cli

ANALYZE = shutil.which("systemd-analyze")
UNITS = ("inspector.service", "inspector-web.service", "inspector-reasoner.service")


def test_dry_run_prints_every_step_and_changes_nothing(tmp_path):
    p = run_cli("install", "--dry-run", "--reasoner", "--root", str(tmp_path))
    assert p.returncode == 0, p.stderr
    steps = [line for line in p.stdout.splitlines() if line.startswith("[")]
    assert len(steps) >= 12 and all("] would " in s for s in steps)
    text = "\n".join(steps)
    for what in ("create system user inspector ", "create system user inspector-vlm", "/etc/inspector (mode 750",
                 "/etc/inspector/credentials (mode 700", "/var/lib/inspector (mode 750", "inspector.yaml",
                 "inspector.env", "inspector.service", "inspector-web.service", "inspector-reasoner.service",
                 "reasoner.json",
                 "systemd-analyze verify", "systemctl daemon-reload"):
        assert what in text, what
    assert list(tmp_path.iterdir()) == []  # nothing written
    assert "nothing changed (dry run)" in p.stdout


def test_install_writes_config_and_units_that_systemd_accepts_and_keeps_edits(tmp_path):
    assert ANALYZE, "systemd-analyze is missing (./bootstrap.sh test installs Debian's systemd)"
    p = run_cli("install", "--reasoner", "--root", str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    etc, units = tmp_path / "etc/inspector", tmp_path / "etc/systemd/system"
    assert (etc / "inspector.yaml").stat().st_mode & 0o777 == 0o640
    assert (etc / "credentials").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "var/lib/inspector").is_dir()
    assert "skipped (--root): create system user inspector" in p.stdout  # the running system is left alone
    for name in UNITS:
        text = (units / name).read_text()
        exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
        assert exec_start.split("=", 1)[1].split()[0].startswith(sys.prefix)  # this installation's venv
        r = subprocess.run([ANALYZE, "verify", str(units / name)], capture_output=True, text=True)
        assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    line = (units / "inspector.service").read_text()
    for must in ("Type=notify", "WatchdogSec=", "NotifyAccess=main", "Restart=on-failure", "User=inspector",
                 "ProtectSystem=strict", "ReadWritePaths=/var/lib/inspector", "ProtectHome=yes", "PrivateTmp=yes",
                 "NoNewPrivileges=yes", "DevicePolicy=closed", "DeviceAllow=char-video4linux rw",
                 "EnvironmentFile=-/etc/inspector/inspector.env", "LoadCredential=", "StandardError=journal",
                 "TimeoutStopSec=10"):
        assert must in line, must
    # The only capability: the PLC's Modbus port 502.
    assert "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n" in line and "AmbientCapabilities=CAP_NET_BIND_SERVICE\n" in line
    # The OPC UA server's certificate is made at install, its key readable by nobody else.
    own = tmp_path / "var/lib/inspector/opcua/own"
    cert = (own / "cert.der").read_bytes()
    assert (own / "key.pem").stat().st_mode & 0o077 == 0 and (tmp_path / "var/lib/inspector/opcua/trusted").is_dir()
    assert "inspector run --no-web --config /etc/inspector/inspector.yaml" in line  # the dashboard is its own unit
    web = (units / "inspector-web.service").read_text()
    for must in ("inspector web --config /etc/inspector/inspector.yaml", "Type=notify", "WatchdogSec=",
                 "Restart=on-failure", "User=inspector", "ProtectSystem=strict", "ReadWritePaths=/var/lib/inspector",
                 "PrivateDevices=yes", "NoNewPrivileges=yes", "TimeoutStopSec=10"):
        assert must in web, must
    assert "Documentation=" + (Path(__file__).parent.parent / "docs/deployment.md").resolve().as_uri() in web
    # The reasoner's settings are llama-cpp-python's own config file format.
    from llama_cpp.server.settings import ConfigFileSettings

    ConfigFileSettings.model_validate_json((etc / "reasoner.json").read_text())
    # Re-running (an upgrade) keeps what the plant edited, and writes the units afresh.
    (etc / "inspector.yaml").write_text("# edited by the plant\n")
    (units / "inspector.service").write_text("stale")
    p = run_cli("install", "--root", str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert (etc / "inspector.yaml").read_text() == "# edited by the plant\n" and "exists, kept" in p.stdout
    assert (own / "cert.der").read_bytes() == cert and "OPC UA server certificate exists, kept" in p.stdout
    assert (units / "inspector.service").read_text().startswith("# The line on the edge box")


def test_the_verifier_does_refuse_a_broken_unit(tmp_path):
    """So that the checks above mean something: a bad value is reported on stderr (systemd only
    warns and ignores it, which is why the test above wants stderr empty, not just exit 0)."""
    assert ANALYZE
    text = (Path(__file__).parent.parent / "systemd/inspector.service").read_text()
    bad = tmp_path / "inspector.service"
    bad.write_text(text.replace("ExecStart=/opt/inspector/.venv/bin/inspector", f"ExecStart={sys.prefix}/bin/inspector")
                   .replace("WatchdogSec=30", "WatchdogSec=thirty"))
    r = subprocess.run([ANALYZE, "verify", str(bad)], capture_output=True, text=True)
    assert "Failed to parse sec value, ignoring: thirty" in r.stderr


def test_the_reasoner_unit_settings_serve_a_model_our_client_can_use(tiny_ernie, demo_crops, tmp_path):
    """systemd/reasoner.json (ERNIE-4.5-VL), with the tiny ERNIE's paths, started the way the unit
    starts it: the line's openai backend gets a structurally valid answer from it."""
    import time

    import httpx

    from inspector.config import parse_config
    from inspector.messages import CropAnswer
    from inspector.reasoner import build_reasoner
    from tests.test_reasoner_openai import PRODUCT
    from inspector.reasoner.local_server import free_port

    settings = json.loads((Path(__file__).parent.parent / "systemd/reasoner.json").read_text())
    port = free_port()
    settings.update(host="127.0.0.1", port=port)
    settings["models"][0].update(model=str(tiny_ernie.model), clip_model_path=str(tiny_ernie.mmproj), n_ctx=4096,
                                 n_gpu_layers=0)
    cfg = tmp_path / "reasoner.json"
    cfg.write_text(json.dumps(settings))
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--config_file", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read()[-2000:]
                time.sleep(0.1)
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()
        assert [m["id"] for m in models["data"]] == [settings["models"][0]["model_alias"]]
        line = parse_config({"cameras": [{"id": "cam1", "source": {"type": "demo"}}],
                             "reasoner": {"type": "openai", "base_url": f"http://127.0.0.1:{port}/v1",
                                          "server": "llama_cpp_python", "model": "ernie-4.5-vl",
                                          "profile": "ernie-4.5-vl", "max_tokens": 64}})
        r = build_reasoner(line.reasoner, tmp_path)
        try:
            assert r.probe() is None  # the endpoint answers as the line expects
            rep = r.analyze(demo_crops[0][1], PRODUCT)
            assert rep.answer is not CropAnswer.unavailable, rep.error  # a real answer, validated
            assert rep.raw and r.breaker.state == "closed"
        finally:
            r.close()
    finally:
        proc.terminate()
        proc.wait(15)
