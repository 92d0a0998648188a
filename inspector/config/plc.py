"""The line's controller (PLC): the interfaces it triggers parts, names recipes and reads
results through, and the reject gate's output."""

from __future__ import annotations

from pathlib import Path
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
    acquire_timeout_ms: int = Field(2000, ge=50, le=60_000, description="a trigger whose image is not taken "
                                                                        "this soon is answered NG (error 5)")


class OpcUaConfig(_Model):
    """An OPC UA server modelled on OPC 40100-1 (Machine Vision): one VisionSystem per camera."""

    enabled: bool = False
    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0: every interface)")
    port: int = Field(4840, ge=1, le=65535)
    security: list[Literal["SignAndEncrypt", "Sign", "None"]] = Field(
        ["SignAndEncrypt", "Sign"], min_length=1,
        description="message security modes offered, all with Basic256Sha256; None only on a closed test bench")
    pki_dir: Path | None = Field(None, description="own/ (the server's certificate and key, made by "
                                                   "`inspector install` or at first start), trusted/ (client "
                                                   "certificates allowed in), rejected/ (refused ones, to be moved "
                                                   "to trusted/ by an administrator); default <data_dir>/opcua")
    anonymous: bool = Field(False, description="let clients in without a user name (read-only even then)")
    cameras: list[str] | None = Field(None, description="cameras with a VisionSystem (default: all)")
    acquire_timeout_ms: int = Field(2000, ge=50, le=60_000, description="a job whose image is not taken this "
                                                                        "soon gets an NG result (ResultState 4)")
    application_uri: str | None = Field(None, description="default urn:<hostname>:inspector")


class RejectOutputConfig(_Model):
    """The reject gate's coil on a remote I/O module, pulsed over Modbus TCP (inspector is the client)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(502, ge=1, le=65535)
    device_id: int = Field(1, ge=0, le=255, description="the module's unit id")
    coil: int = Field(0, ge=0, le=65535, description="the coil wired to the gate (0-based)")
    camera: str | None = Field(None, description="the camera whose NG parts are rejected (default: the first)")
    delay_ms: int = Field(0, ge=0, le=600_000, description="from the part's image to the gate: the pulse "
                                                          "starts this long after the part was taken")
    pulse_ms: int = Field(100, ge=1, le=60_000, description="how long the coil stays on")


class PlcConfig(_Model):
    modbus: ModbusConfig = Field(default_factory=ModbusConfig)
    opcua: OpcUaConfig = Field(default_factory=OpcUaConfig)
    reject_output: RejectOutputConfig = Field(default_factory=RejectOutputConfig)
