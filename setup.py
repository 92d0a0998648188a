"""Only what pyproject.toml cannot say: the files of the top-level folders models/, calibration/,
systemd/ and docs/ that the package needs at run time go into the wheel as package data under
inspector/_bundled/ (see inspector/util/bundled.py). Training scripts, evaluations and pictures stay
out: a plant's box needs the model, not how it was made."""

from pathlib import Path
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
BUNDLE = {
    "models": ["default-anomaly.onnx", "manifest.json"],
    "calibration": ["*.yaml"],
    "systemd": ["*.service", "*.yaml", "*.json"],
    "docs": ["deployment.md"],
}


class BuildWithBundle(build_py):
    def run(self):
        super().run()
        for folder, patterns in BUNDLE.items():
            out = Path(self.build_lib) / "inspector" / "_bundled" / folder
            out.mkdir(parents=True, exist_ok=True)
            for pattern in patterns:
                found = sorted((HERE / folder).glob(pattern))
                if not found:
                    raise SystemExit(f"setup.py: {folder}/{pattern} matches no file")
                for f in found:
                    shutil.copy2(f, out / f.name)


setup(cmdclass={"build_py": BuildWithBundle})
