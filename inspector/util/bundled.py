"""Files that ship with the inspector: the default detector and its manifest, the demo line's
calibration, the systemd units with the example configs, and the deployment guide.

Installed from a wheel they are package data under `inspector/_bundled/<folder>` (setup.py copies
them there from the project's top-level folders when the wheel is built); in a checkout (the
editable install `bootstrap.sh` makes) they are those top-level folders themselves. Either way
code asks `bundled("models")` and never walks up from its own file.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

FOLDERS = ("models", "calibration", "systemd", "docs")


def bundled(folder: str) -> Path:
    if folder not in FOLDERS:
        raise ValueError(f"no bundled folder {folder!r}; there are {FOLDERS}")
    packaged = Path(str(files("inspector"))) / "_bundled" / folder
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / folder
