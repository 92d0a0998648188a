"""A product recipe: what a good part looks like and the defects that matter."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from inspector.config.base import _Model


DEFAULT_TAXONOMY = {
    "scratch": "a thin straight or curved line cut into the surface",
    "crack": "a jagged dark fracture line that may branch",
    "stain": "a discoloured patch: oil, rust or a tint that does not belong to the surface",
    "hole": "a round pit or hole through or into the surface",
    "chip": "material missing at an edge or corner",
}


class PartCodeConfig(_Model):
    """Where a part's identity comes from when the trigger does not give one."""

    type: Literal["none", "qr", "barcode", "any"] = Field(
        "none", description="read the part id from a QR code or 1D barcode in the frame")
    region: tuple[int, int, int, int] | None = Field(
        None, description="[x1, y1, x2, y2] frame pixels to look in (default: the whole frame)")

    @field_validator("region")
    @classmethod
    def _region(cls, v):
        if v is not None and (v[2] <= v[0] or v[3] <= v[1] or min(v) < 0):
            raise ValueError(f"region must be [x1, y1, x2, y2] with x2 > x1 >= 0 and y2 > y1 >= 0, got {list(v)}")
        return v


class ProductConfig(_Model):
    # It names files in calibration_dir (<name>.yaml, .normal.npz, .model.onnx): no path separators.
    name: str = Field("demo-tile", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    good_part: str = (
        "a flat tile with an even natural surface texture (stone, brick or gravel) and intact edges")
    defects: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_TAXONOMY))
    recipe: int | None = Field(None, ge=0, le=65535,
                               description="the number a PLC selects this product by at changeover")
    part_code: PartCodeConfig = Field(default_factory=PartCodeConfig)
    decision_deadline_ms: int | None = Field(
        None, ge=10, le=3_600_000,
        description="from capture to the moment the line needs OK/NG for a part (the reject gate's "
                    "distance over the belt speed). A part the VLM has not judged by then is decided "
                    "by late_policy and the VLM's answer is kept as the second opinion. None: the "
                    "line waits for the verdict, however long it takes")
    late_policy: Literal["reject", "pass", "detector"] = Field(
        "reject", description="the line decision when the deadline comes first: reject (fail-safe), "
                              "pass, or detector (NG when a candidate scores at least judge.fail_score)")
    decision_guard_ms: int = Field(
        20, ge=0, le=10_000,
        description="decide this much before the deadline, so the time the answer takes to reach the "
                    "line and a busy box's scheduling delay still fit inside it")

    @field_validator("defects")
    @classmethod
    def _taxonomy(cls, v):
        if not v:
            raise ValueError("the defect taxonomy needs at least one defect type")
        if "other" in v:
            raise ValueError("'other' is reserved for findings outside the taxonomy")
        return v

    @field_validator("decision_guard_ms")
    @classmethod
    def _guard(cls, v, info):
        deadline = info.data.get("decision_deadline_ms")
        if deadline is not None and v >= deadline:
            raise ValueError(f"decision_guard_ms ({v}) must be less than decision_deadline_ms ({deadline})")
        return v
