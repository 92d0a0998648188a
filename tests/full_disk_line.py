"""Run a command with its data directory on a small filesystem of its own, which the test fills
and frees: a real full disk (ENOSPC, SQLITE_FULL), not a simulated one.

Run inside a private mount namespace (`unshare -rm python tests/full_disk_line.py ...`), so the
tmpfs is nobody else's business and vanishes with the namespace. The test steers it with flag
files in CONTROL: `fill` (fill the disk to the last byte; answers `filled`), `free` (delete the
ballast; answers `freed`). When the command has ended, the data directory is copied to COPY_TO
(the tmpfs dies with this process) and the command's exit status is ours.

usage: full_disk_line.py MOUNT SIZE_MB CONTROL COPY_TO -- COMMAND...
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def fill(ballast: Path) -> int:
    written = 0
    block = b"\0" * 65536
    with open(ballast, "wb", buffering=0) as f:
        for size in (65536, 4096, 512, 1):
            chunk = block[:size]
            while True:
                try:
                    f.write(chunk)
                    written += size
                except OSError:
                    break
    return written


def main() -> int:
    sep = sys.argv.index("--")
    mount, size_mb, control, copy_to = sys.argv[1:sep]
    command = sys.argv[sep + 1:]
    mount_p, control_p = Path(mount), Path(control)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", mount], check=True)
    child = subprocess.Popen(command)
    ballast = mount_p / "ballast"
    state = "running"
    while child.poll() is None:
        if state == "running" and (control_p / "fill").exists():
            n = fill(ballast)
            (control_p / "filled").write_text(str(n))
            state = "full"
        elif state == "full" and (control_p / "free").exists():
            ballast.unlink()
            (control_p / "freed").write_text("")
            state = "freed"
        time.sleep(0.02)
    if ballast.exists():
        ballast.unlink()
    shutil.copytree(mount_p, copy_to, symlinks=True,
                    ignore=lambda d, names: [n for n in names if (Path(d) / n).is_socket()])
    return child.returncode


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
