"""How candidate regions are cut out for the VLM."""

from __future__ import annotations

from pydantic import Field

from inspector.config.base import _Model


class CropperConfig(_Model):
    padding: float = Field(0.5, ge=0, le=4, description="context added around a box, x its size")
    min_side_px: int = Field(96, ge=8)
    max_side_px: int = Field(448, ge=32, description="crops are downscaled to this for the VLM")
    max_crops: int = Field(4, ge=1, description="per frame; the highest-scoring candidates win")
