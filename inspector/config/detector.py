"""The pre-filter's detector: the bundled model, an anomalib anomaly map, or a YOLO model."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from inspector.config.base import MODELS_DIR, _Model
from inspector.config.plugins import PluginConfigs

# `detector:` without a type is the bundled one
DETECTOR_CONFIGS = PluginConfigs("detector", default="default")


class _DetectorCommon(_Model):
    threshold: float | None = Field(
        None, gt=0, description="decision threshold; None = the product's calibration, else the "
                                "model's default")
    min_area_px: int = Field(40, ge=1, description="smaller blobs/boxes are ignored")
    max_candidates: int = Field(8, ge=1)
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$",
                               description="pin the model file: refused at start if it differs")


class _MapDetectorCommon(_DetectorCommon):
    secondary: float = Field(
        0.9, gt=0, le=1, description="on a part that has a region above the threshold, also box "
                                     "weaker regions above this share of it (1 = only the threshold)")


@DETECTOR_CONFIGS.add("default")
class DetectorConfig(_MapDetectorCommon):
    """The bundled default detector (an anomaly-map model described by models/manifest.json)."""

    type: Literal["default"] = "default"
    model: Path = MODELS_DIR / "default-anomaly.onnx"
    manifest: Path = MODELS_DIR / "manifest.json"


@DETECTOR_CONFIGS.add("anomaly_map")
class AnomalyMapDetectorConfig(_MapDetectorCommon):
    """An anomaly-map ONNX model as anomalib exports it: input image -> anomaly map (and score)."""

    type: Literal["anomaly_map"]
    model: Path
    input_size: tuple[int, int] | None = Field(
        None, description="[width, height] the model takes; None = read from the model, or any "
                          "size when its input is dynamic")
    max_side: int = Field(640, ge=32, description="dynamic-size models: the ROI is downscaled to this")
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    dtype: Literal["float32", "uint8"] = "float32"
    channels: Literal["RGB", "BGR"] = "RGB"
    mean: tuple[float, float, float] = Field((0.485, 0.456, 0.406), description="after scaling to 0..1")
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    map_output: str | None = Field(None, description="output name of the map; None = the first 4-D one")
    label: str = "anomaly"


@DETECTOR_CONFIGS.add("yolo")
class YoloDetectorConfig(_DetectorCommon):
    """An Ultralytics YOLOv8/YOLO11 detection model exported to ONNX (output [1, 4+nc, N])."""

    type: Literal["yolo"]
    model: Path
    labels: Path | None = Field(None, description="class names, one per line; None = the names "
                                                  "Ultralytics stores in the ONNX metadata")
    threshold: float | None = Field(None, gt=0, le=1, description="default confidence threshold")
    class_thresholds: dict[str, float] = Field(
        default_factory=dict, description="per-class confidence thresholds, by label")
    iou_threshold: float = Field(0.45, gt=0, le=1, description="NMS overlap (per class)")
    min_area_px: int = Field(1, ge=1)


AnyDetectorConfig = DETECTOR_CONFIGS.union()
