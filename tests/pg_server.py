"""A real PostgreSQL server for the store's tests: Debian's postgresql package (installed by
`./bootstrap.sh test`), a throwaway cluster in a temp dir, listening on a unix socket only.

PostgreSQL refuses to run as root; as root (CI, containers) the cluster runs as the `postgres`
user the Debian package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


class Unavailable(Exception):
    """Why no server could be started (the tests that need one are skipped with this reason)."""


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path:
        return path
    raise Unavailable(f"PostgreSQL's {name} not found (install Debian's postgresql package: "
                      f"./bootstrap.sh test does)")


class PostgresServer:
    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="inspector-pg-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self._n = 0
        self.proc = None

    def _as_owner(self, cmd: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return cmd
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and there is no postgres user to run the server as") from None
        return ["runuser", "-u", "postgres", "--", *cmd]

    def start(self) -> "PostgresServer":
        initdb, postgres = _bin("initdb"), _bin("postgres")
        self.sock.mkdir(parents=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chmod(self.root, 0o755)
            for p in (self.root, self.sock):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        r = subprocess.run(self._as_owner([initdb, "-D", str(self.data), "-U", "inspector", "--auth=trust",
                                           "-E", "UTF8", "--no-sync"]), capture_output=True, text=True)
        if r.returncode:
            raise Unavailable(f"initdb failed: {r.stderr.strip()[-500:]}")
        self.proc = subprocess.Popen(
            self._as_owner([postgres, "-D", str(self.data), "-k", str(self.sock), "-c", "listen_addresses=",
                            "-c", "fsync=off", "-c", "max_connections=50"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Unavailable(f"postgres exited: {self.proc.stderr.read()[-500:]}")
            if list(self.sock.glob(".s.PGSQL.*")) and self._psql("SELECT 1").returncode == 0:
                return self
            time.sleep(0.1)
        self.stop()
        raise Unavailable("postgres did not accept connections within 30 s")

    def _psql(self, sql: str, db: str = "postgres"):
        return subprocess.run(["psql", "-h", str(self.sock), "-U", "inspector", "-d", db, "-v", "ON_ERROR_STOP=1",
                               "-qAtc", sql], capture_output=True, text=True)

    def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        self._n += 1
        name = f"t{os.getpid()}_{self._n}"
        r = self._psql(f"CREATE DATABASE {name}")
        if r.returncode:
            raise RuntimeError(f"CREATE DATABASE failed: {r.stderr}")
        return f"postgresql+psycopg://inspector@/{name}?host={self.sock}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.root, ignore_errors=True)
