from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def run_cli(*args: str, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspector", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)
