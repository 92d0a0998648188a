"""Per-product calibration of the pre-filter, fitted on golden (good) samples.

`inspector calibrate thresholds` measures the detector's image score on good parts and picks the
lowest threshold at which at most `target` of them would be sent on (false rejects at the
pre-filter). The result is `calibration/<product>.yaml`; the pipeline uses it for that product's
cameras unless `detector.threshold` is set explicitly.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class CalibrationError(Exception):
    pass


class Measured(BaseModel):
    model_config = ConfigDict(extra="forbid")
    good_images: int
    false_reject_rate: float  # good images with at least one candidate at the threshold
    bad_images: int = 0
    bad_recall: float | None = None  # bad images with at least one candidate
    image_auroc: float | None = None


class ProductCalibration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product: str
    detector_model: str  # the model id it was fitted for; another model needs a new fit
    threshold: float = Field(gt=0)
    target_false_reject: float = Field(ge=0, le=1)
    roi: tuple[int, int, int, int] | None = None
    measured: Measured
    created: str = ""


def path_for(directory: Path, product: str) -> Path:
    return Path(directory) / f"{product}.yaml"


def load(directory: Path, product: str) -> ProductCalibration | None:
    p = path_for(directory, product)
    if not p.exists():
        return None
    try:
        return ProductCalibration.model_validate(yaml.safe_load(p.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as e:
        raise CalibrationError(f"calibration file {p} is not usable ({e}); fix it, or run "
                               f"`inspector calibrate thresholds --product {product}` again") from None


def save(directory: Path, cal: ProductCalibration) -> Path:
    p = path_for(directory, cal.product)
    p.parent.mkdir(parents=True, exist_ok=True)
    cal.created = cal.created or datetime.now(timezone.utc).isoformat(timespec="seconds")
    tmp = p.with_suffix(".tmp")
    tmp.write_text("# written by `inspector calibrate thresholds`; fit on golden samples\n"
                   + yaml.safe_dump(cal.model_dump(mode="json"), sort_keys=False))
    tmp.replace(p)
    return p


def fit_threshold(good_scores, target: float) -> float:
    """The lowest threshold with at most floor(target x n) good scores at or above it."""
    s = np.sort(np.asarray(good_scores, float))[::-1]
    if len(s) == 0:
        raise CalibrationError("no good images to calibrate on")
    k = int(math.floor(target * len(s) + 1e-9))  # good images allowed through
    if k >= len(s):
        return float(s[-1])
    return float(np.nextafter(s[k], np.inf))  # just above the (k+1)-th highest good score
