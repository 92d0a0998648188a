"""The model manifest: which model files are expected, with their sha256, input and labels."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from inspector.util.filehash import sha256_of  # noqa: F401  (re-exported: plugins import it from here)
from inspector.prefilter import ModelError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    path: Path
    sha256: str
    kind: str
    labels: tuple[str, ...]
    default_threshold: float
    output_stride: int
    version: str
    input: dict  # how the model wants its image: layout, dtype, channels, scale, max_side
    output_name: str | None = None
    normal_statistics: dict | None = None  # outputs/inputs for per-product normal statistics


def load_entry(manifest: Path, model: Path) -> ModelEntry:
    """Find `model` in `manifest` and check the file against its recorded sha256."""
    try:
        doc = json.loads(Path(manifest).read_text(encoding="utf-8"))
        entries = doc["models"]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise TypeError
    except OSError as e:
        raise ModelError(f"cannot read model manifest {manifest}: {e.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise ModelError(f"model manifest {manifest} is not valid: expected JSON with a 'models' list "
                         f"of entries") from None
    model = Path(model)
    entry = next((e for e in entries if e.get("file") == model.name), None)
    if entry is None:
        listed = [e.get("file") for e in entries]
        raise ModelError(f"model {model.name} is not listed in manifest {manifest} (listed: {listed})")
    if not model.is_file():
        raise ModelError(f"model file {model} is missing (expected by manifest {manifest})")
    want = entry.get("sha256")
    if not isinstance(want, str) or len(want) != 64:
        # Without it nothing says this is the file the thresholds were calibrated for.
        raise ModelError(f"manifest {manifest} entry for {model.name} has no valid sha256 (64 hex "
                         f"digits): add the file's `sha256sum`")
    actual = sha256_of(model)
    if actual != entry["sha256"]:
        raise ModelError(f"model file {model} does not match its manifest: sha256 is {actual}, "
                         f"manifest {manifest} expects {entry['sha256']}")
    try:
        return ModelEntry(
            name=entry["name"], path=model, sha256=actual, kind=entry["kind"],
            labels=tuple(entry["labels"]), default_threshold=float(entry["default_threshold"]),
            output_stride=int(entry["output"]["stride"]), version=str(entry.get("version", "")),
            input=dict(entry.get("input", {})), output_name=entry["output"].get("name"),
            normal_statistics=entry.get("normal_statistics"),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"manifest {manifest} entry for {model.name} lacks a valid field: {e}") from None
