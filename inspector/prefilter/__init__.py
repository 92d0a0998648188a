"""The pre-filter: decides which regions of a frame deserve the VLM's attention.

Detector plugins are registered by the `type` name used in config (`detector.type`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from inspector.errors import InspectorError
from inspector.util.registry import Registry
from inspector.messages import Box, Candidate


@dataclass(frozen=True)
class Inspection:
    """What the pre-filter saw in one frame: the image-level score (the highest evidence of a
    defect anywhere, thresholds aside) and the candidates above the threshold."""

    score: float
    candidates: list[Candidate]


class Detector(Protocol):
    model_id: str
    threshold: float  # the model's own default; a product's calibration may override it
    normal_spec: object | None  # set when the model can use per-product normal statistics

    def inspect(self, image: np.ndarray, roi: Box | None = None, threshold: float | None = None,
                normal=None) -> Inspection:
        """Score and candidates in pixels of `image` (BGR uint8); only `roi` is inspected.
        `normal`: the product's NormalStatistics, for a model that has a normal_spec."""

    def detect(self, image: np.ndarray, roi: Box | None = None, threshold: float | None = None,
               normal=None) -> list[Candidate]:
        """The candidates of `inspect`."""


class ModelError(InspectorError):
    """A detector model that cannot be used: missing, wrong hash, wrong shape."""


DETECTORS: Registry[Callable[..., Detector]] = Registry(
    "detector", ModelError, ("inspector.prefilter.anomaly_map", "inspector.prefilter.yolo"))
register = DETECTORS.register


def build_detector(cfg) -> Detector:
    return DETECTORS.get(cfg.type)(cfg)
