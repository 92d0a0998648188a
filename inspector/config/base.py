"""What every config section shares: the error, the strict model base, and where the bundled
models are."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from inspector.errors import InspectorError
from inspector.util.bundled import bundled

MODELS_DIR = bundled("models")


class ConfigError(InspectorError):
    """A config file that cannot be used; the message names the file and the key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")
