"""Reading a config file: YAML in, a validated Config out, every error naming the file and key."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from inspector.config.base import ConfigError
from inspector.config.detector import DETECTOR_CONFIGS
from inspector.config.events import SINK_CONFIGS
from inspector.config.reasoner import REASONER_CONFIGS
from inspector.config.root import Config
from inspector.config.sources import SOURCE_CONFIGS

# Where pydantic puts a union member's tag in an error's path, by the key that holds the union.
_UNIONS = {"detector": DETECTOR_CONFIGS, "reasoner": REASONER_CONFIGS, "source": SOURCE_CONFIGS,
           "sinks": SINK_CONFIGS}


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        parts = [str(p) for p in e["loc"]]
        # pydantic puts the union member's tag in the path (detector.yolo.model); the user wrote
        # detector.model, so that is the key to name.
        def union_tag(i: int) -> bool:
            owner = parts[i - 2] if i >= 2 and parts[i - 1].isdigit() else parts[i - 1] if i else ""
            return owner in _UNIONS and parts[i] in _UNIONS[owner].names()  # sinks.0.webhook: after the index
        parts = [p for i, p in enumerate(parts) if not union_tag(i)]
        loc = ".".join(parts) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see `inspector config` for all keys)"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def parse_config(data: dict | None, source: str = "<defaults>", base_dir: Path | None = None) -> Config:
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {source}: the top level must be a mapping of keys")
    try:
        cfg = Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None
    if base_dir is not None:
        _resolve_paths(cfg, base_dir)
    return cfg


def load_config(path: Path | None) -> Config:
    """Load and validate a YAML config; relative paths in it are relative to the file."""
    if path is None:
        return parse_config({})
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config {path} is not UTF-8 text (byte {e.start} is {e.object[e.start]:#04x}): "
                          f"save it as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        raise ConfigError(f"config {path} is not valid YAML{at}: {getattr(e, 'problem', e)}") from None
    return parse_config(data, str(path), base_dir=path.resolve().parent)


def _resolve_paths(model: BaseModel, base: Path) -> None:
    """Every relative path of every section, the plugins' too (a source's folder, a model file, an
    MQTT CA bundle): from the file's folder, not from wherever the service happens to start."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Path) and not value.is_absolute():
            setattr(model, name, base / value)
        elif isinstance(value, BaseModel):
            _resolve_paths(value, base)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, BaseModel):
                    _resolve_paths(item, base)


def defaults_yaml() -> str:
    """The full default config as YAML: the configuration reference a user can start from."""
    data = Config().model_dump(mode="json")
    data["detector"]["model"] = "models/default-anomaly.onnx"  # not this machine's absolute path
    data["detector"]["manifest"] = "models/manifest.json"
    data["calibration_dir"] = "calibration"
    return yaml.safe_dump(data, sort_keys=False)
