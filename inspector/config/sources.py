"""Where a camera's frames come from: files for replay, the demo line, live cameras."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from inspector.config.base import _Model
from inspector.config.plugins import PluginConfigs

SOURCE_CONFIGS = PluginConfigs("source")


@SOURCE_CONFIGS.add("folder")
class FolderSourceConfig(_Model):
    type: Literal["folder"]
    path: Path
    fps: float | None = Field(None, gt=0, description="replay rate; None = as fast as processed")
    loop: bool = Field(False, description="start over after the last file (with after: remember or "
                                          "move: keep watching the folder for new files)")
    after: Literal["keep", "remember", "move"] | None = Field(
        None, description="a file whose verdict is stored: keep (inspected again at the next start), "
                          "remember (left in place; <data_dir>/inspected/<camera>.jsonl skips it from "
                          "then on), move (to move_to); None = remember, or keep when loop is true")
    move_to: Path | None = Field(None, description="after: move: the folder inspected files go to")

    @model_validator(mode="after")
    def _after(self):
        if self.after is None:
            self.after = "keep" if self.loop else "remember"
        if (self.after == "move") != (self.move_to is not None):
            raise ValueError("after: move needs move_to (a folder), and move_to is only for after: move")
        return self


@SOURCE_CONFIGS.add("video")
class VideoSourceConfig(_Model):
    type: Literal["video"]
    path: Path
    fps: float | None = Field(None, gt=0, description="replay rate; None = as fast as processed")
    loop: bool = False


@SOURCE_CONFIGS.add("demo")
class DemoSourceConfig(_Model):
    """The bundled demo line: generated into the data directory on first use, then replayed."""

    type: Literal["demo"] = "demo"
    parts: int = Field(24, ge=1, le=500)
    seed: int = 7
    fps: float | None = Field(2.0, gt=0)
    loop: bool = True
    codes: bool = Field(False, description="print a QR code with its part id on each part "
                                           "(read it with products[].part_code)")


class ReconnectConfig(_Model):
    initial_s: float = Field(0.5, gt=0, description="first wait after a camera fails; doubles each time")
    max_s: float = Field(30.0, gt=0, description="longest wait between reconnect attempts")


class _LiveSource(_Model):
    width: int | None = Field(None, gt=0, description="resolution to ask the camera for")
    height: int | None = Field(None, gt=0)
    fps: float | None = Field(None, gt=0, description="frame rate to ask the camera for")
    exposure: float | None = Field(None, description="manual exposure, in the backend's units")
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)


@SOURCE_CONFIGS.add("usb")
class UsbSourceConfig(_LiveSource):
    type: Literal["usb"]
    device: int | str = Field(0, description="V4L2 index (0) or path (/dev/video0, /dev/v4l/by-id/...)")


@SOURCE_CONFIGS.add("rtsp")
class RtspSourceConfig(_LiveSource):
    type: Literal["rtsp"]
    url: str = Field(pattern=r"^rtsps?://", description="rtsp://user:password@host:554/stream")
    timeout_s: float = Field(5.0, gt=0, description="open and read timeout")


@SOURCE_CONFIGS.add("mjpeg")
class MjpegSourceConfig(_LiveSource):
    type: Literal["mjpeg"]
    url: str = Field(pattern=r"^https?://", description="an HTTP multipart MJPEG stream")
    timeout_s: float = Field(5.0, gt=0, description="open and read timeout")


@SOURCE_CONFIGS.add("gstreamer")
class GStreamerSourceConfig(_LiveSource):
    type: Literal["gstreamer"]
    pipeline: str = Field(description="a GStreamer pipeline ending in appsink (GigE/industrial cameras)")


class _GenicamSource(_Model):
    """What the GenICam cameras share (inspector/capture/sources/genicam.py)."""

    features: dict[str, str | bool | int | float] = Field(
        default_factory=dict,
        description="GenICam nodes to set at start, in this order, by the camera's own names "
                    "(ExposureTime, Gain, PixelFormat, Width, ...); each is checked against the camera's "
                    "node map first. Triggering is set by `trigger`, not here")
    trigger: Literal["free_run", "software", "hardware"] = Field(
        "free_run", description="free_run: the camera streams; software: each image is taken when the line "
                                "asks (trigger.acquisition: triggered); hardware: the camera waits for "
                                "trigger_line (a light barrier, the PLC)")
    trigger_line: str = Field("Line1", description="hardware: the TriggerSource input")
    trigger_activation: str = Field("RisingEdge", description="hardware: TriggerActivation")
    timeout_s: float = Field(5.0, gt=0, description="free_run/software: a frame must come within this, "
                                                    "else the camera is reconnected")
    buffers: int = Field(8, ge=2, le=256, description="stream buffers the driver receives into")
    packet_size: int | None = Field(
        None, ge=576, le=16384, description="GigE Vision: bytes per stream packet (8192+ needs jumbo frames "
                                            "on the NIC and switch); None: the camera's")
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)

    @field_validator("features")
    @classmethod
    def _no_trigger_nodes(cls, v):
        clash = [k for k in v if k in ("TriggerSelector", "TriggerMode", "TriggerSource", "TriggerActivation")]
        if clash:
            raise ValueError(f"{', '.join(clash)}: set by `trigger` (free_run, software, hardware) and "
                             "`trigger_line`, not in features")
        return v


@SOURCE_CONFIGS.add("aravis")
class AravisSourceConfig(_GenicamSource):
    type: Literal["aravis"]
    camera: str = Field(min_length=1, description="the camera's IP address (opened directly, no discovery "
                                                  "broadcast), or its Aravis device id as `arv-tool-0.8` lists it")
    packet_resend: bool = Field(True, description="GigE Vision: ask the camera again for lost packets")


@SOURCE_CONFIGS.add("pylon")
class PylonSourceConfig(_GenicamSource):
    type: Literal["pylon"]
    serial: str | None = Field(None, description="the camera's serial number; None: the first one found")
    device_class: Literal["BaslerGigE", "BaslerUsb", "BaslerCamEmu"] | None = Field(
        None, description="only cameras of this transport (BaslerCamEmu: pylon's emulator, PYLON_CAMEMU=N)")


SourceConfig = SOURCE_CONFIGS.union()
