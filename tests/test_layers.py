"""The layering of docs/architecture.md, checked: import-linter's contract in pyproject.toml
(a module imports only from its own layer and those below it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_layers_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    r = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in r.stdout


def test_the_contract_does_catch_an_import_from_above(tmp_path):
    """The same contract on a copy of the package with one import turned upside down."""
    import shutil

    pkg = tmp_path / "inspector"
    shutil.copytree(ROOT / "inspector", pkg, ignore=shutil.ignore_patterns("__pycache__", "_bundled"))
    (pkg / "messages.py").write_text((pkg / "messages.py").read_text() + "\nfrom inspector.line import judge  # noqa\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    lint = Path(sys.executable).parent / "lint-imports"
    r = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                       env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert r.returncode != 0 and "inspector.messages is not allowed to import inspector.line" in r.stdout, r.stdout[-3000:]


def test_the_contract_does_catch_two_modules_that_import_each_other(tmp_path):
    """The cycle prefilter/normal.py and anomaly_map.py had (a helper each needed from the other,
    imported inside a function to dodge the loop) is refused by the acyclic contract."""
    import shutil

    pkg = tmp_path / "inspector"
    shutil.copytree(ROOT / "inspector", pkg, ignore=shutil.ignore_patterns("__pycache__", "_bundled"))
    normal = pkg / "prefilter" / "normal.py"
    normal.write_text(normal.read_text() + "\n\ndef _late():\n    from inspector.prefilter.anomaly_map import AnomalyMapDetector  # noqa\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    lint = Path(sys.executable).parent / "lint-imports"
    r = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                       env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert r.returncode != 0 and "No cycles are allowed in inspector.prefilter" in r.stdout, r.stdout[-3000:]
