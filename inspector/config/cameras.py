"""A camera: its source, what is inspected of its picture, and when."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from inspector.config.base import _Model
from inspector.config.sources import DemoSourceConfig, SourceConfig


class BufferConfig(_Model):
    policy: Literal["auto", "latest", "drop_oldest", "block"] = Field(
        "auto", description="when processing falls behind: latest (keep the newest frame), "
                            "drop_oldest, or block (offline replay only); auto = block for files "
                            "and folders, latest for live cameras")
    size: int | None = Field(None, ge=1, description="frames held (drop_oldest, block); default frame_queue")


class TriggerConfig(_Model):
    mode: Literal["continuous", "every_n", "part_presence", "software"] = Field(
        "continuous", description="which frames are inspected (POST /api/cameras/{id}/trigger "
                                  "also fires under every mode)")
    n: int = Field(5, ge=1, description="every_n: inspect one frame in n")
    enter_fraction: float = Field(0.05, gt=0, le=1, description="part_presence: share of the ROI "
                                  "that must differ from the empty belt for a part to be there")
    leave_fraction: float = Field(0.02, gt=0, le=1, description="part_presence: below this the belt is empty again")
    pixel_threshold: float = Field(25, gt=0, description="part_presence: grey-level difference that counts")
    settle_frames: int = Field(2, ge=1, description="part_presence: frames a change must last")
    background_rate: float = Field(0.02, gt=0, le=1, description="part_presence: how fast the empty "
                                   "belt's picture follows slow light changes")
    analysis_width: int = Field(160, ge=16, description="part_presence: ROI width analysed, px")
    acquisition: Literal["free_running", "triggered"] = Field(
        "free_running", description="software mode only: triggered takes an image only when a trigger "
                                    "asks (a triggered camera's exposure; a replay reads its next file), "
                                    "instead of picking the next frame of a camera that runs on its own")

    @model_validator(mode="after")
    def _hysteresis(self):
        if self.leave_fraction > self.enter_fraction:
            raise ValueError("leave_fraction must not exceed enter_fraction")
        if self.acquisition == "triggered" and self.mode != "software":
            raise ValueError("acquisition: triggered needs mode: software (only a trigger takes an image)")
        return self


class CameraConfig(_Model):
    id: str = Field("demo-cam", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    product: str = "demo-tile"
    source: SourceConfig = Field(default_factory=DemoSourceConfig)
    roi: tuple[int, int, int, int] | None = Field(
        None, description="inspection rectangle x1,y1,x2,y2 in frame pixels; None = whole frame")
    mm_per_px: float | None = Field(
        None, gt=0, description="millimetres per pixel on the part plane; findings get mm boxes "
                                "(default: from calibration/<id>.yaml when it was measured)")
    buffer: BufferConfig = Field(default_factory=BufferConfig)
    trigger: TriggerConfig = Field(default_factory=TriggerConfig)
    undistort: bool = Field(
        True, description="remove lens distortion when calibration/<id>.yaml exists "
                          "(`inspector calibrate camera`)")

    roi_polygon: list[tuple[float, float]] | None = Field(
        None, description="inspection area as [[x, y], ...] in frame pixels (after rotation); "
                          "candidates outside it are dropped; roi defaults to its bounding box")
    rotate: Literal[0, 90, 180, 270] = Field(0, description="degrees clockwise, applied after undistortion")
    flip: Literal["none", "horizontal", "vertical", "both"] = "none"

    @field_validator("roi")
    @classmethod
    def _roi_ordered(cls, v):
        if v is not None and (v[0] >= v[2] or v[1] >= v[3] or min(v) < 0):
            raise ValueError("roi must be x1,y1,x2,y2 with x1 < x2, y1 < y2, all >= 0")
        return v

    @field_validator("roi_polygon")
    @classmethod
    def _polygon(cls, v):
        if v is not None:
            if len(v) < 3:
                raise ValueError("roi_polygon needs at least 3 points")
            if min(min(p) for p in v) < 0:
                raise ValueError("roi_polygon points must be >= 0")
            xs, ys = [p[0] for p in v], [p[1] for p in v]
            if max(xs) - min(xs) < 8 or max(ys) - min(ys) < 8:
                raise ValueError("roi_polygon encloses less than 8x8 pixels")
        return v

    def inspection_roi(self):
        """The rectangle the pre-filter looks at: roi, else the polygon's bounding box."""
        if self.roi is not None or self.roi_polygon is None:
            return self.roi
        xs, ys = [p[0] for p in self.roi_polygon], [p[1] for p in self.roi_polygon]
        return (int(min(xs)), int(min(ys)), int(max(xs)) + 1, int(max(ys)) + 1)
