"""The line's controller (PLC): the interfaces it triggers parts, names recipes and reads
results through."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from inspector.config.base import _Model


class ModbusConfig(_Model):
    """A Modbus TCP server with the vision handshake (docs: the register map in the README)."""

    enabled: bool = False
    host: str = Field("127.0.0.1", description="address to listen on; 0.0.0.0 only on the line's own "
                                               "network (Modbus has no authentication)")
    port: int = Field(502, ge=1, le=65535)
    camera: str | None = Field(None, description="the camera the PLC triggers (default: the first)")
    result_ready: Literal["level", "toggle"] = Field(
        "level", description="level: ResultReady is 1 while a result waits for ResultAck; toggle: it "
                             "flips with every new result")
    result_queue: int = Field(8, ge=1, le=256, description="results kept while the PLC has not "
                                                           "acknowledged the one shown; beyond: an error code")
    heartbeat_ms: int = Field(500, ge=50, le=60_000, description="Heartbeat register increments this often")


class PlcConfig(_Model):
    modbus: ModbusConfig = Field(default_factory=ModbusConfig)
