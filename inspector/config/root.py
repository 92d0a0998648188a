"""The whole config: every section, and the checks that span sections."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from inspector.config.base import _Model
from inspector.config.cameras import CameraConfig
from inspector.config.cropper import CropperConfig
from inspector.config.detector import AnyDetectorConfig, DetectorConfig
from inspector.config.events import EventsConfig
from inspector.config.judge import JudgeConfig
from inspector.config.limits import LimitsConfig
from inspector.config.plc import PlcConfig
from inspector.config.products import ProductConfig
from inspector.config.reasoner import NoReasonerConfig, ReasonerConfig
from inspector.config.store import StoreConfig
from inspector.config.web import WebConfig
from inspector.util.bundled import bundled


def _hostname() -> str:
    import re
    import socket

    return re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:64] or "box"


class Config(_Model):
    box: str = Field(default_factory=_hostname, pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                     description="this box's name where several share one database (default: the "
                                 "host name); a camera id belongs to one box")
    data_dir: Path = Path("inspector-data")
    cameras: list[CameraConfig] = Field(default_factory=lambda: [CameraConfig()], min_length=1)
    products: list[ProductConfig] = Field(default_factory=lambda: [ProductConfig()])
    detector: AnyDetectorConfig = Field(default_factory=DetectorConfig)
    calibration_dir: Path = Field(
        bundled("calibration"),
        description="per-product calibration files <product>.yaml (`inspector calibrate thresholds`)")
    cropper: CropperConfig = Field(default_factory=CropperConfig)
    reasoner: ReasonerConfig = Field(default_factory=NoReasonerConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    plc: PlcConfig = Field(default_factory=PlcConfig)
    frame_queue: int = Field(8, ge=1, description="frames buffered per camera between capture and "
                                                  "pre-filter (cameras[].buffer.size overrides)")
    limits: LimitsConfig = Field(default_factory=LimitsConfig)

    @model_validator(mode="after")
    def _cross_refs(self):
        ids = [c.id for c in self.cameras]
        if len(set(ids)) != len(ids):
            raise ValueError(f"camera ids must be unique, got {ids}")
        names = [p.name for p in self.products]
        if len(set(names)) != len(names):
            raise ValueError(f"product names must be unique, got {names}")
        recipes = [p.recipe for p in self.products if p.recipe is not None]
        if len(set(recipes)) != len(recipes):
            raise ValueError(f"products[].recipe numbers must be unique, got {sorted(recipes)}")
        names = set(names)
        for key, section in (("modbus", self.plc.modbus), ("reject_output", self.plc.reject_output)):
            if section.enabled and section.camera is not None and section.camera not in ids:
                raise ValueError(f"plc.{key}.camera {section.camera!r} is not among cameras {ids}")
        for cam_id in self.plc.opcua.cameras or []:
            if self.plc.opcua.enabled and cam_id not in ids:
                raise ValueError(f"plc.opcua.cameras: {cam_id!r} is not among cameras {ids}")
        for cam in self.cameras:
            if cam.product not in names:
                raise ValueError(f"camera {cam.id!r} uses product {cam.product!r}, "
                                 f"which is not among products {sorted(names)}")
        return self

    def product(self, name: str) -> ProductConfig:
        return next(p for p in self.products if p.name == name)

    def recipe(self, which: str | int) -> ProductConfig:
        """A product by name or by its recipe number (what a PLC sends); KeyError if none."""
        for p in self.products:
            if (isinstance(which, int) and p.recipe == which) or p.name == which:
                return p
        raise KeyError(which)

    @property
    def database_url(self) -> str:
        return self.store.url or f"sqlite:///{(self.data_dir / 'inspector.db').resolve()}"

    @property
    def line_socket(self) -> Path:
        return self.web.line_socket or self.data_dir / "line.sock"
