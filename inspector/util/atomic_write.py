"""Files that are either the old version or the new one, never half written (a crash or a full
disk mid-write must not leave a calibration the line cannot read)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel


def write_atomic(path: Path, data: bytes | str, mode: int | None = None) -> Path:
    """`mode`, when given, is set before the file takes its name, so it is never readable wider."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        if mode is not None:
            tmp.chmod(mode)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_yaml_model(path: Path, model: BaseModel, header: str) -> Path:
    """`model` as YAML (keys in field order) under a `# header` comment line."""
    return write_atomic(path, f"# {header}\n" + yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False))
