"""Aravis' own GigE Vision camera simulator (`arv-fake-gv-camera-0.8`, Debian's aravis-tools) on the
loopback interface: the real GVCP control and GVSP stream protocols over UDP. One at a time (the
GigE Vision control port is fixed). Opened by address only: discovery would broadcast."""

from __future__ import annotations

import shutil
import subprocess
import time

BINARY = "arv-fake-gv-camera-0.8"


def available() -> bool:
    if shutil.which(BINARY) is None:
        return False
    try:
        import gi

        gi.require_version("Aravis", "0.8")
        from gi.repository import Aravis
    except (ImportError, ValueError):
        return False
    return hasattr(Aravis, "Camera")


class FakeGvCamera:
    address = "127.0.0.1"

    def __init__(self, serial: str | None = None, lost_per_thousand: int = 0):
        import os

        # a serial of its own: the probe below must find this simulator, not one a test left behind
        self.serial = serial or f"T{os.getpid() % 10000}{id(self) % 100000}"
        self.lost = lost_per_thousand
        self.proc: subprocess.Popen | None = None

    def start(self) -> FakeGvCamera:
        cmd = [BINARY, "-i", self.address, "-s", self.serial]
        if self.lost:
            cmd += ["-r", str(self.lost)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import gi

        gi.require_version("Aravis", "0.8")
        from gi.repository import Aravis, GLib

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{BINARY} exited with {self.proc.returncode}")
            try:
                found = Aravis.Camera.new(self.address).get_device_id()  # dropped at once
            except GLib.Error:
                time.sleep(0.2)
                continue
            if found == self.serial:
                return self
            self.kill()
            raise RuntimeError(f"another camera answers on {self.address} ({found}): a simulator left running?")
        self.kill()
        raise RuntimeError(f"{BINARY} did not answer on {self.address}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> FakeGvCamera:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()
