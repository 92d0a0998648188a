"""Secrets by name: from the environment (an EnvironmentFile=), or from a systemd credential of the
same name (LoadCredential=NAME:/etc/inspector/credentials/NAME, read from $CREDENTIALS_DIRECTORY,
which only this service's user can read and which never shows in `systemctl show`)."""

from __future__ import annotations

import os
from pathlib import Path


def secret(name: str, key: str) -> str:
    """The secret called `name`; `key` is the config key that named it, for the error."""
    v = os.environ.get(name)
    if v:
        return v
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / name).is_file():
        v = (Path(creds) / name).read_text().strip()
        if v:
            return v
    where = f" nor a credential in {creds}" if creds else " (nor a systemd credential: no LoadCredential)"
    raise ValueError(f"{key}: no environment variable {name}{where}")
