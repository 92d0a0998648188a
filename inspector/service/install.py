"""`inspector install`: puts this installation under systemd on an on-prem box.

Every step is listed first; `--dry-run` prints them and changes nothing. `--root DIR` writes the
files under DIR instead of / (an image being built, or a test) and leaves the running system
alone: no user is created and systemd is not reloaded. Existing config and secrets are never
overwritten: an upgrade re-runs install and keeps them.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inspector.errors import InspectorError
from inspector.util.atomic_write import write_atomic
from inspector.util.bundled import bundled

UNITS_SRC = bundled("systemd")
PREFIX_IN_UNITS = "/opt/inspector/.venv"


class InstallError(InspectorError):
    pass


@dataclass
class Step:
    what: str
    do: Callable[[], None] | None  # None: only said (with --root, acting on this system is skipped)


def _run(*cmd: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise InstallError(f"{' '.join(cmd)} failed ({r.returncode}): {(r.stderr or r.stdout).strip()}")


def _exists(lookup: Callable, name: str) -> bool:
    """pwd.getpwnam / grp.getgrnam as a yes or no."""
    try:
        lookup(name)
        return True
    except KeyError:
        return False


def plan(root: Path, reasoner: bool, venv: Path = Path(sys.prefix)) -> list[Step]:
    """The steps, in order."""
    live = root == Path("/")
    etc, state = root / "etc/inspector", root / "var/lib/inspector"
    units_dir = root / "etc/systemd/system"
    steps: list[Step] = []

    def user(name: str, home: str, groups: list[str]) -> None:
        have = [g for g in groups if _exists(grp.getgrnam, g)]
        cmd = ["useradd", "--system", "--user-group", "--home-dir", home, "--shell", "/usr/sbin/nologin"]
        cmd += ["--groups", ",".join(have)] if have else []
        if live and _exists(pwd.getpwnam, name):
            steps.append(Step(f"user {name}: exists, kept", lambda: None))
        else:
            steps.append(Step(f"create system user {name} ({' '.join(cmd + [name])})",
                              (lambda: _run(*cmd, name)) if live else None))

    def directory(path: Path, mode: int, owner: str | None = None) -> None:
        def do():
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(mode)
            if owner and live:
                shutil.chown(path, "root" if owner == "root" else owner, owner)
        steps.append(Step(f"make directory {path} (mode {mode:o}{', owner ' + owner if owner else ''})", do))

    def file(dest: Path, text: str, mode: int, keep: bool, group: str | None = None) -> None:
        if keep and dest.exists():
            steps.append(Step(f"{dest}: exists, kept (install never overwrites config or secrets)", lambda: None))
            return

        def do():
            write_atomic(dest, text, mode)
            if group and live:
                shutil.chown(dest, "root", group)
        steps.append(Step(f"write {dest} (mode {mode:o})", do))

    def opcua_certificate(pki_dir: Path) -> None:
        from inspector.plc import pki

        if (pki_dir / "own" / "cert.der").exists():
            steps.append(Step(f"{pki_dir}/own: the OPC UA server certificate exists, kept (PLCs trust it)",
                              lambda: None))
            return

        def do():
            pki.ensure_server_certificate(pki_dir, pki.default_application_uri())
            if live:
                for p in [pki_dir, *pki_dir.rglob("*")]:
                    shutil.chown(p, "inspector", "inspector")
        steps.append(Step(f"make the OPC UA server certificate and key in {pki_dir}/own (Basic256Sha256, "
                          f"{pki.CERT_DAYS // 365} years); PLC certificates go to {pki_dir}/trusted", do))

    def unit(name: str) -> None:
        text = (UNITS_SRC / name).read_text().replace(PREFIX_IN_UNITS, str(venv)).replace(
            "file:///opt/inspector/docs/deployment.md", (bundled("docs") / "deployment.md").as_uri())
        file(units_dir / name, text, 0o644, keep=False)

    exe = venv / "bin" / "inspector"
    if not exe.exists():
        raise InstallError(f"{exe} does not exist: run install from the installation's own virtualenv "
                           f"(for example /opt/inspector/.venv/bin/inspector install)")
    user("inspector", "/var/lib/inspector", ["video"])
    if reasoner:
        user("inspector-vlm", "/var/cache/inspector-vlm", ["video", "render"])
    directory(etc, 0o750, "inspector")
    directory(etc / "credentials", 0o700, "root")
    directory(state, 0o750, "inspector")
    directory(units_dir, 0o755)
    file(etc / "inspector.yaml", (UNITS_SRC / "inspector.yaml").read_text(), 0o640, keep=True, group="inspector")
    file(etc / "inspector.env", "# secrets for inspector.service, KEY=value (INSPECTOR_VLM_KEY=...)\n", 0o640,
         keep=True, group="inspector")
    opcua_certificate(state / "opcua")
    unit("inspector.service")
    unit("inspector-web.service")
    if reasoner:
        file(etc / "reasoner.json", (UNITS_SRC / "reasoner.json").read_text(), 0o644, keep=True)
        unit("inspector-reasoner.service")
    names = ["inspector.service", "inspector-web.service"] + (["inspector-reasoner.service"] if reasoner else [])
    if shutil.which("systemd-analyze"):
        steps.append(Step(f"check the units (systemd-analyze verify {' '.join(names)})",
                          lambda: _run("systemd-analyze", "verify", *(str(units_dir / n) for n in names))))
    steps.append(Step("reload systemd (systemctl daemon-reload)", (lambda: _run("systemctl", "daemon-reload"))
                      if live else None))
    return steps


def main(root: Path, reasoner: bool, dry_run: bool, out=sys.stdout) -> int:
    if not dry_run and root == Path("/") and os.geteuid() != 0:
        raise InstallError("installing under / needs root (sudo); --dry-run shows what it would do")
    steps = plan(root, reasoner)
    for n, step in enumerate(steps, 1):
        skipped = step.do is None
        tag = "would " if dry_run else ("skipped (--root): " if skipped else "")
        print(f"[{n}/{len(steps)}] {tag}{step.what}", file=out)
        if not dry_run and not skipped:
            step.do()
    units = "inspector inspector-web" + (" inspector-reasoner" if reasoner else "")
    print(("nothing changed (dry run). " if dry_run else "installed. ") +
          f"Next: edit {root / 'etc/inspector/inspector.yaml'}, run `inspector doctor --config "
          f"/etc/inspector/inspector.yaml`, then `systemctl enable --now {units}`.", file=out)
    return 0
