"""Bounds on what the inspector accepts from outside."""

from __future__ import annotations

from pydantic import Field, field_validator

from inspector import MAX_IMAGE_PIXELS
from inspector.config.base import _Model


class LimitsConfig(_Model):
    max_image_pixels: int = Field(
        MAX_IMAGE_PIXELS, ge=1, description="an image file whose header claims more pixels is refused "
                                       "before decoding (a decompression bomb); counted as unreadable")

    @field_validator("max_image_pixels")
    @classmethod
    def _within_opencv(cls, v: int) -> int:
        from inspector import opencv_limit

        if v > opencv_limit():
            raise ValueError(f"{v} is above OpenCV's own limit in this process ({opencv_limit()}); set "
                             f"the environment variable OPENCV_IO_MAX_IMAGE_PIXELS={v} as well")
        return v
