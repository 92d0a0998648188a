from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# pylon's camera emulator (two emulated Basler cameras) for the pylon source's tests; read when
# pypylon's transport layer factory starts, so before any test imports it
os.environ.setdefault("PYLON_CAMEMU", "2")

import pytest

from inspector.demo.line import generate
from inspector.reasoner.test_model import ensure_test_model

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def demo_line(tmp_path_factory):
    """A small demo line (12 parts, fixed seed) shared by the tests that only read it."""
    return generate(tmp_path_factory.mktemp("demo") / "demo-line", parts=12, seed=7)


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory):
    return ensure_test_model(tmp_path_factory.mktemp("vlm"))


def need(what: str, ok: bool, how: str) -> None:
    """A test that needs a system piece: fails in CI (bootstrap installs it), skips elsewhere."""
    if not ok:
        why = f"{what} is not installed ({how})"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="session")
def tiny_ernie(tmp_path_factory):
    """The tiny random-weight ERNIE-4.5-VL (seed 0), converted by our converter to F32 GGUFs for the
    patched llama.cpp. Fails (skips outside CI) on a llama-cpp-python without patches/llama.cpp."""
    import os

    from inspector.reasoner import ernie_vl
    from inspector.reasoner.ernie_vl.convert import convert
    from inspector.reasoner.ernie_vl.tiny import make_tiny

    if not ernie_vl.build_has_patches():
        why = f"llama-cpp-python {ernie_vl.llama_build()} lacks patches/llama.cpp (./bootstrap.sh builds it)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    d = tmp_path_factory.mktemp("ernie")
    ckpt = make_tiny(d / "ckpt", seed=0)
    return convert(ckpt, d / "gguf", outtype="f32")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def wait_for(cond, timeout: float = 30.0) -> bool:
    """Poll `cond` until it holds (True) or `timeout` seconds pass (False)."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def run_cli(*args: str, timeout: float = 300, cwd: Path | None = None,
            input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspector", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, input=input)


@pytest.fixture(scope="session")
def llama_server(tiny_vlm, tmp_path_factory):
    """The real `python -m llama_cpp.server` on a loopback port, serving the tiny pair."""
    from inspector.reasoner.local_server import LocalLlamaServer

    log = tmp_path_factory.mktemp("server") / "llama_cpp.server.log"
    with LocalLlamaServer(tiny_vlm.model, tiny_vlm.mmproj, log_path=log) as srv:
        yield srv


@pytest.fixture(scope="session")
def demo_crops(demo_line):
    """(frame image, crop) pairs cut by the real pre-filter from the demo line."""
    import cv2

    from inspector.config import CropperConfig, DetectorConfig
    from inspector.cropper import make_crops
    from inspector.demo.line import ROI
    from inspector.prefilter import build_detector

    det = build_detector(DetectorConfig())
    out = []
    for f in sorted(demo_line.frames_dir.iterdir()):
        img = cv2.imread(str(f))
        out += [(img, c) for c in make_crops(img, det.detect(img, ROI), CropperConfig(max_crops=2))]
    assert len(out) >= 6
    return out[:12]


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the session (skipped, with the reason, where none can run)."""
    from tests.pg_server import PostgresServer, Unavailable

    srv = PostgresServer()
    try:
        srv.start()
    except Unavailable as e:
        srv.stop()
        pytest.skip(f"no PostgreSQL server: {e}")
    yield srv
    srv.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """The store's database: each test that takes it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'line.db'}"
    return request.getfixturevalue("postgres_server").new_database()


def authorize(client, store, role: str = "admin"):
    """Give a TestClient a machine token of `role` (the dashboard lets no anonymous request in)."""
    import secrets

    from inspector.web.accounts import Accounts

    token = Accounts(store.engine).add_token(f"test-{role}-{secrets.token_hex(4)}", role)
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def judged_demo_line(data_dir, parts: int = 8, **extra):
    """A real pipeline over `parts` generated demo parts (detector only unless `extra` says
    otherwise), run until every part is judged. The caller stops it."""
    from inspector.config import parse_config
    from inspector.line.pipeline import Pipeline

    cfg = parse_config({"data_dir": str(data_dir),
                        "cameras": [{"id": "cam1", "source": {"type": "demo", "parts": parts, "seed": 5,
                                                              "fps": None, "loop": False}}], **extra})
    pipe = Pipeline(cfg)
    pipe.start()
    if not pipe.done.wait(60):
        pipe.stop()
        raise AssertionError("the demo line did not finish within 60 s")
    return pipe


def replay_line(data_dir, frames_dir, vlm_url: str, fps: float, reasoner: dict | None = None, **extra) -> dict:
    """The config of one camera replaying demo frames (with the demo ROI) into a VLM at `vlm_url`
    on loopback, no dashboard: the fault tests' line. `reasoner` adds reasoner keys."""
    from inspector.demo.line import ROI

    return {"data_dir": str(data_dir),
            "cameras": [{"id": "cam1", "roi": list(ROI),
                         "source": {"type": "folder", "path": str(frames_dir), "fps": fps}}],
            "reasoner": {"type": "openai", "base_url": vlm_url, "server": "llama_cpp_python", **(reasoner or {})},
            "web": {"enabled": False}, **extra}
