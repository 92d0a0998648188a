"""The pre-filter: decides which regions of a frame deserve the VLM's attention.

Detector plugins are registered by the `type` name used in config (`detector.type`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from inspector.config import DetectorConfig
from inspector.messages import Box, Candidate


class Detector(Protocol):
    model_id: str

    def detect(self, image: np.ndarray, roi: Box | None = None) -> list[Candidate]:
        """Candidates in pixels of `image` (BGR uint8); only `roi` is inspected when given."""


class ModelError(Exception):
    """A detector model that cannot be used: missing, wrong hash, wrong shape."""


DETECTORS: dict[str, Callable[[DetectorConfig], Detector]] = {}


def register(type_name: str):
    def deco(factory):
        DETECTORS[type_name] = factory
        return factory
    return deco


def build_detector(cfg: DetectorConfig) -> Detector:
    from inspector.prefilter import anomaly_map  # noqa: F401  (registers the built-in plugin)

    try:
        factory = DETECTORS[cfg.type]
    except KeyError:
        raise ModelError(f"unknown detector type {cfg.type!r}; known: {sorted(DETECTORS)}") from None
    return factory(cfg)
