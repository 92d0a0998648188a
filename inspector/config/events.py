"""Outbound events: one message per verdict to webhooks and MQTT brokers."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from inspector.config.base import _Model
from inspector.config.judge import VerdictKindName
from inspector.config.plugins import PluginConfigs

SINK_CONFIGS = PluginConfigs("sink")


class _EventSinkCommon(_Model):
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                             description="names the sink in logs, metrics and its cursor file; default: type")
    on: list[VerdictKindName] = Field(["fail"], min_length=1, description="verdict kinds sent")
    backlog_max: int = Field(10000, ge=1, description="events waiting while the receiver is down, at "
                                                      "most; older ones are skipped (counted, logged)")
    retry_initial_s: float = Field(1.0, gt=0, description="first wait after a failed send; doubles")
    retry_max_s: float = Field(60.0, gt=0, description="longest wait between attempts")
    timeout_s: float = Field(5.0, gt=0, description="per attempt")


@SINK_CONFIGS.add("webhook")
class WebhookSinkConfig(_EventSinkCommon):
    """POST one JSON event per verdict (an MES, a ticketing system, a chat bot)."""

    type: Literal["webhook"]
    url: str = Field(..., pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict, description="sent with every request")
    secret_env: str | None = Field(None, description="environment variable holding a shared secret; "
                                                     "the body's HMAC-SHA256 goes in X-Inspector-Signature")
    verify_tls: bool = True


@SINK_CONFIGS.add("mqtt")
class MqttSinkConfig(_EventSinkCommon):
    """Publish one JSON event per verdict to an MQTT broker (PLCs, SCADA, Node-RED)."""

    type: Literal["mqtt"]
    host: str
    port: int = Field(1883, ge=1, le=65535)
    topic: str = Field("inspector/{camera}/{verdict}", description="{camera} {product} {verdict} are filled in")
    qos: Literal[0, 1, 2] = Field(1, description="1 or 2: an event counts as sent once the broker has it")
    retain: bool = False
    client_id: str | None = Field(None, description="default: inspector-<sink name>-<host name>")
    username: str | None = None
    password_env: str | None = Field(None, description="environment variable holding the password")
    tls: bool = False
    ca_file: Path | None = Field(None, description="CA bundle for tls (default: the system's)")
    keepalive_s: int = Field(30, ge=5)


EventSinkConfig = SINK_CONFIGS.union()


class EventsConfig(_Model):
    sinks: list[EventSinkConfig] = Field(default_factory=list, description="none by default")
    dashboard_url: str | None = Field(None, pattern=r"^https?://",
                                      description="where operators reach the dashboard; events link to "
                                                  "the inspection there")

    @model_validator(mode="after")
    def _unique_names(self):
        names = [s.name or s.type for s in self.sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"events.sinks: names must be unique (two of a type need a name), got {names}")
        return self
