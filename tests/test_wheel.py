"""Plants deploy wheels: the package built with `pip wheel .` and installed in a fresh virtualenv,
run from a folder outside the checkout, finds its bundled files (default model and manifest, demo
calibration, systemd units, example config, deployment guide) in the package, not the checkout."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools builds in the source tree, and a build/ left in the checkout
    # would put stale files into later wheels.
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                             "inspector-data", "test-artifacts", ".pytest_cache"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True, timeout=600,
                           cwd=tmp)
    assert built.returncode == 0, built.stderr[-3000:]
    (whl,) = (tmp / "dist").glob("inspector-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c",
                                "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # The dependencies come from the test environment (a path entry, not a site dir: its .pth
    # files, the checkout's editable install among them, are not read), the package from the wheel.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                           "--no-deps", str(whl)], capture_output=True, text=True, timeout=600)
    assert inst.returncode == 0, inst.stderr[-3000:]
    work = tmp / "elsewhere"
    work.mkdir()
    return venv, work


def _run(venv: Path, work: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "inspector"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=work)


def test_the_wheel_carries_its_files_and_runs_outside_the_checkout(wheel_venv):
    venv, work = wheel_venv
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import inspector, inspector.config as c; print(inspector.__file__); "
                            "print(c.MODELS_DIR); print(c.Config().calibration_dir)"],
                           capture_output=True, text=True, cwd=work, check=True).stdout.split()
    assert all(p.startswith(str(venv)) for p in where), where  # nothing from the checkout

    demo = _run(venv, work, "demo", "--exit-when-done", "--fast", "--no-web")
    assert demo.returncode == 0, demo.stderr[-3000:]
    summary = json.loads(demo.stdout.strip().splitlines()[-1])
    assert summary["inspected"] == 24 and summary["fail"] >= 1 and summary["processing_errors"] == 0
    assert "threshold" in demo.stderr and str(venv) in demo.stderr  # the demo calibration, bundled

    # detect: the same candidates as the checkout's own install finds on the same frame
    frames = sorted((work / "inspector-data" / "demo-line" / "frames").glob("*.png"))
    def found(out: str) -> list:
        return [json.loads(line)["candidates"] for line in out.splitlines()]  # not "ms": a timing
    wheel_out = found(_run(venv, work, "detect", *map(str, frames), "--json").stdout)
    here_out = found(subprocess.run([sys.executable, "-m", "inspector", "detect", *map(str, frames), "--json"],
                                    capture_output=True, text=True, cwd=ROOT).stdout)
    assert len(wheel_out) == len(frames) and wheel_out == here_out and any(wheel_out)


def test_install_from_the_wheel_renders_its_own_units(wheel_venv, tmp_path):
    venv, work = wheel_venv
    dry = _run(venv, work, "install", "--dry-run")
    assert dry.returncode == 0 and "nothing changed (dry run)" in dry.stdout, dry.stderr[-2000:]
    root = tmp_path / "root"
    done = _run(venv, work, "install", "--root", str(root))
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    unit = (root / "etc" / "systemd" / "system" / "inspector.service").read_text()
    assert f"{venv}/bin/inspector run" in unit
    guide = next(line for line in unit.splitlines() if line.startswith("Documentation="))
    assert str(venv) in guide and Path(guide.split("file://", 1)[1].split()[0]).is_file()
    assert (root / "etc" / "inspector" / "inspector.yaml").read_text().startswith("# Example /etc/inspector")
