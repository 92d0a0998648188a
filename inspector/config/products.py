"""A product recipe: what a good part looks like and the defects that matter."""

from __future__ import annotations

from pydantic import Field, field_validator

from inspector.config.base import _Model


DEFAULT_TAXONOMY = {
    "scratch": "a thin straight or curved line cut into the surface",
    "crack": "a jagged dark fracture line that may branch",
    "stain": "a discoloured patch: oil, rust or a tint that does not belong to the surface",
    "hole": "a round pit or hole through or into the surface",
    "chip": "material missing at an edge or corner",
}


class ProductConfig(_Model):
    # It names files in calibration_dir (<name>.yaml, .normal.npz, .model.onnx): no path separators.
    name: str = Field("demo-tile", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    good_part: str = (
        "a flat tile with an even natural surface texture (stone, brick or gravel) and intact edges")
    defects: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_TAXONOMY))

    @field_validator("defects")
    @classmethod
    def _taxonomy(cls, v):
        if not v:
            raise ValueError("the defect taxonomy needs at least one defect type")
        if "other" in v:
            raise ValueError("'other' is reserved for findings outside the taxonomy")
        return v
