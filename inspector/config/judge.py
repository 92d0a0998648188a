"""How findings become a verdict."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from inspector.config.base import _Model


class JudgeConfig(_Model):
    fail_score: float = Field(
        0.0, ge=0, description="detector-only mode: candidates scoring at least this fail the part, "
                               "weaker ones send it to review (0 = every candidate fails)")
    min_confidence: float = Field(0.5, ge=0, le=1,
                                  description="VLM findings below this confidence give review")


VerdictKindName = Literal["pass", "fail", "review"]
