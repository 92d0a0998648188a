"""A product's own detector model (`inspector train`), found next to its calibration.

`calibration/<product>.model.onnx` with its one-entry manifest `<product>.model.json`: the bundled
network fine-tuned on that product's good parts. When they are there, that product's cameras, its
threshold calibration and `inspector eval --product` use it instead of the shared model; the
calibration YAML names the model id (name@sha256) it was fitted for, so a swapped or retrained
file is refused at start until the product is calibrated again.
"""

from __future__ import annotations

from pathlib import Path

from inspector.prefilter import ModelError, build_detector


def paths(directory: Path, product: str) -> tuple[Path, Path]:
    d = Path(directory)
    return d / f"{product}.model.onnx", d / f"{product}.model.json"


def has_own_model(directory: Path, product: str) -> bool:
    return paths(directory, product)[1].exists()


def detector_for(cfg, product: str | None, shared=None):
    """The detector `product` runs: its own model when it has one, else `shared` (built from
    cfg.detector when not given)."""
    if product and has_own_model(cfg.calibration_dir, product):
        model, manifest = paths(cfg.calibration_dir, product)
        if cfg.detector.type != "default":
            raise ModelError(f"product {product} has its own model ({manifest.name}, from `inspector train` on "
                             f"the bundled detector), but detector.type is {cfg.detector.type!r}: set "
                             f"detector.type to default, or delete {manifest} and {model.name}")
        return build_detector(cfg.detector.model_copy(update={"model": model, "manifest": manifest,
                                                               "sha256": None}))
    return shared if shared is not None else build_detector(cfg.detector)
