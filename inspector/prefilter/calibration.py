"""Per-product calibration of the pre-filter, fitted on golden (good) samples.

`inspector calibrate thresholds` measures the detector's image score on good parts and picks the
lowest threshold at which at most `target` of them would be sent on (false rejects at the
pre-filter). For a model with normal statistics (the bundled default) it first fits those on the
same good parts (see normal.py), and the threshold is then on the distance from normal. The result
is `calibration/<product>.yaml` (+ `<product>.normal.npz`); the pipeline uses it for that
product's cameras (the threshold unless `detector.threshold` is set explicitly).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inspector.errors import InspectorError
from inspector import MAX_IMAGE_PIXELS
from inspector.util.atomic_write import write_yaml_model
from inspector.config import Config
from inspector.prefilter import ModelError, normal
from inspector.prefilter.normal import NormalStatistics

log = logging.getLogger(__name__)


class CalibrationError(InspectorError):
    pass


class Measured(BaseModel):
    model_config = ConfigDict(extra="forbid")
    good_images: int
    false_reject_rate: float  # good images with at least one candidate at the threshold
    # Wilson 95%: where the rate of new good parts can be, measured on this many (None: older files)
    false_reject_ci95: tuple[float, float] | None = None
    # Cross-validated: each third of the good parts scored against a threshold fitted on the other
    # two thirds. How far a threshold fitted on this few parts carries to new ones (None: older files).
    false_reject_cv: tuple[int, int] | None = None  # (sent on, of)
    fold_thresholds: list[float] | None = None
    unstable: bool = False  # the cross-validated rate is well over the target: see `cv_unstable`
    bad_images: int = 0
    bad_recall: float | None = None  # bad images with at least one candidate
    image_auroc: float | None = None


class NormalRef(BaseModel):
    """Where a product's normal statistics are (next to the YAML) and what they were fit on."""

    model_config = ConfigDict(extra="forbid")
    file: str  # relative to the calibration directory
    sha256: str
    cells: int  # feature vectors (map cells) of good parts
    anomaly_cells: int = 0  # cells of synthetic anomalies that weighed the directions (0: unweighted)
    components: int = 1  # Gaussians per feature group
    scale: list[float]  # per feature group, also inside the file; here for a reader's eye


class ProductCalibration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product: str
    detector_model: str  # the model id it was fitted for; another model needs a new fit
    threshold: float = Field(gt=0)
    target_false_reject: float = Field(ge=0, le=1)
    roi: tuple[int, int, int, int] | None = None
    normal_statistics: NormalRef | None = None
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


@dataclass(frozen=True)
class Tuning:
    """What the pipeline applies for one product: its threshold, and its normal statistics when
    the detector has them."""

    threshold: float
    normal: NormalStatistics | None = None
    source: str = ""
    detector: object | None = None  # the product's own model (`inspector train`); None: the shared one


def load_for(directory: Path, product: str, detector) -> Tuning | None:
    """The product's calibration, checked against this detector; None when there is none."""
    c = load(directory, product)
    if c is None:
        return None
    where = path_for(directory, product)
    if c.detector_model != detector.model_id:
        raise CalibrationError(
            f"calibration {where} was fitted for detector {c.detector_model}, but the detector is "
            f"{detector.model_id}: run `inspector calibrate thresholds --product {product}` again, "
            f"delete the file, or set calibration_dir to another folder")
    stats = None
    if c.normal_statistics is not None:
        spec = detector.normal_spec
        if spec is None:  # cannot happen with a matching model id, unless the manifest changed
            raise CalibrationError(f"calibration {where} has normal statistics, but detector "
                                   f"{detector.model_id} takes none")
        try:
            stats = normal.load(Path(directory) / c.normal_statistics.file, c.normal_statistics.sha256,
                                spec.size, len(spec.groups))
        except ValueError as e:
            raise CalibrationError(f"calibration {where}: {e}; run `inspector calibrate thresholds "
                                   f"--product {product}` again") from None
    return Tuning(c.threshold, stats, str(where))


def product_tuning(cfg: Config, detector) -> dict[str, Tuning]:
    """Each product's pre-filter Tuning: its own model when `inspector train` made one, and an
    explicit detector.threshold (on the model's own map, for every product), else the product's
    calibration (threshold and normal statistics), else nothing (the model's default threshold)."""
    from inspector.prefilter.product_model import detector_for

    out = {}
    # Every product, not only those the cameras start with: any may be changed over to at run time.
    for product in sorted({p.name for p in cfg.products}):
        det = detector_for(cfg, product, detector)
        own = det if det is not detector else None
        if cfg.detector.threshold is not None:
            out[product] = Tuning(cfg.detector.threshold, None, "detector.threshold", own)
            continue
        try:
            t = load_for(cfg.calibration_dir, product, det)
        except CalibrationError as e:
            raise ModelError(str(e)) from None
        if t is None:
            if own is not None:
                raise ModelError(f"product {product} has its own model ({own.model_id}) but no calibration for "
                                 f"it: run `inspector calibrate thresholds --product {product}`")
            continue
        out[product] = Tuning(t.threshold, t.normal, t.source, own)
        log.info("product %s: pre-filter threshold %.4g%s%s from %s", product, t.threshold,
                 " with normal statistics" if t.normal is not None else "",
                 f" on its own model {own.model_id}" if own is not None else "", t.source)
    return out


def save(directory: Path, cal: ProductCalibration, stats: NormalStatistics | None = None) -> Path:
    """Write the YAML (and the statistics beside it) atomically, the YAML last."""
    p = path_for(directory, cal.product)
    if stats is not None:
        npz = p.with_name(f"{cal.product}.normal.npz")
        digest = normal.save(npz, stats)
        cal.normal_statistics = NormalRef(file=npz.name, sha256=digest, cells=stats.cells,
                                          anomaly_cells=stats.anomaly_cells, components=stats.components,
                                          scale=[round(float(v), 6) for v in stats.scale])
    elif cal.normal_statistics is None:
        p.with_name(f"{cal.product}.normal.npz").unlink(missing_ok=True)  # a stale one from an older fit
    cal.created = cal.created or datetime.now(timezone.utc).isoformat(timespec="seconds")
    return write_yaml_model(p, cal, "written by `inspector calibrate thresholds`; fit on golden samples")


def fit_threshold(good_scores, target: float) -> float:
    """The lowest threshold with at most floor(target x n) good scores at or above it."""
    s = np.sort(np.asarray(good_scores, float))[::-1]
    if len(s) == 0:
        raise CalibrationError("no good images to calibrate on")
    k = int(math.floor(target * len(s) + 1e-9))  # good images allowed through
    if k >= len(s):
        return float(s[-1])
    return float(np.nextafter(s[k], np.inf))  # just above the (k+1)-th highest good score


# Fewer good parts than this can neither say what normal is nor measure a false-reject rate (none
# of 11 sent on still leaves up to 26% possible), with or without normal statistics.
MIN_GOOD_PARTS = 12
FOLDS = 3


def cv_unstable(sent: int, n: int, target: float) -> bool:
    """A fit is unstable when thresholds fitted on two thirds of the good parts send clearly more
    of the other third on than the target allows: more than twice the parts it allows, and at
    least two more (one part over is what a target of a few parts in 40 means anyway)."""
    if not n:
        return False
    allowed = math.floor(target * n + 1e-9)
    return sent > allowed + max(1, allowed)


def parts_to_show(target: float, z: float = 1.96) -> int | None:
    """Good parts, none sent on, whose Wilson interval's upper end reaches down to `target`:
    n >= z^2 (1 - target) / target. None for a target of 0, which no number of parts shows."""
    return math.ceil(z * z * (1 - target) / target - 1e-9) if target > 0 else None


def readable(paths: list[Path], max_pixels: int, progress=None) -> tuple[list[Path], list[str]]:
    """The images that decode, and for each other one a line naming it and why."""
    from inspector.util.image_file import ImageError, read_image

    ok, unreadable = [], []
    for i, p in enumerate(paths, 1):
        try:
            read_image(p, max_pixels)
        except ImageError as e:
            unreadable.append(str(e))
        else:
            ok.append(p)
        if progress:
            progress(i, len(paths), "reading good parts")
    return ok, unreadable


def _too_few(n: int, unreadable: list[str], given: int) -> CalibrationError:
    if not n and unreadable:
        return CalibrationError(f"none of the {given} good images can be read: {'; '.join(unreadable[:5])}"
                                + (f"; and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""))
    why = f" ({len(unreadable)} more unreadable: {'; '.join(unreadable[:3])})" if unreadable else ""
    return CalibrationError(f"{n} good parts are too few to calibrate on: at least {MIN_GOOD_PARTS} are "
                            f"needed, with or without --no-statistics (fewer can neither say what normal "
                            f"is nor measure a false-reject rate){why}")


@dataclass
class Fitted:
    """One way of calibrating a product, measured: `stats` None means the model's own map."""

    stats: NormalStatistics | None
    threshold: float
    good: list  # evaluate.ImageResult at the threshold; out-of-fold with statistics
    bad: list
    unreadable: list[str]
    target: float = 0.0
    fold_scores: list = dataclasses.field(default_factory=list)  # FOLDS lists of good parts' scores

    def cross_validated(self) -> tuple[int, int, list[float]]:
        """(sent on, of, thresholds): each fold's good parts against the threshold fitted on the others."""
        sent, n, thresholds = 0, 0, []
        for k, scores in enumerate(self.fold_scores):
            others = [s for j, f in enumerate(self.fold_scores) if j != k for s in f]
            if not scores or not others:
                continue
            t = fit_threshold(others, self.target)
            thresholds.append(t)
            sent += sum(s >= t for s in scores)
            n += len(scores)
        return sent, n, thresholds

    def measured(self) -> Measured:
        from inspector.prefilter.metrics import roc_auc

        from inspector.prefilter.metrics import wilson

        rejects = sum(bool(r.candidates) for r in self.good)
        frr = rejects / len(self.good)
        ci = wilson(rejects, len(self.good))
        cv_sent, cv_n, thresholds = self.cross_validated()
        stability = dict(false_reject_cv=(cv_sent, cv_n) if cv_n else None,
                         fold_thresholds=[round(t, 6) for t in thresholds] or None,
                         unstable=cv_unstable(cv_sent, cv_n, self.target))
        if not self.bad:
            return Measured(good_images=len(self.good), false_reject_rate=frr, false_reject_ci95=ci, **stability)
        scores = [r.score for r in self.good + self.bad]
        return Measured(good_images=len(self.good), false_reject_rate=frr, false_reject_ci95=ci, **stability,
                        bad_images=len(self.bad),
                        bad_recall=float(np.mean([bool(r.candidates) for r in self.bad])),
                        image_auroc=roc_auc(scores, [False] * len(self.good) + [True] * len(self.bad)))


def fit(detector, good: list[Path], bad: list[Path], roi, target: float, statistics: bool,
        progress=None, weighted: bool = True, components: int | None = None,
        max_pixels: int = MAX_IMAGE_PIXELS) -> Fitted:
    """Fit the threshold (after the normal statistics, when asked and the model has them).

    With statistics, each good part is scored by statistics fitted on the *other* good parts
    (FOLDS-fold): scored by statistics that saw it, a good part looks more normal than a new one
    will, and the threshold would send more new good parts on than the target allows. The
    statistics kept are then fitted on all good parts."""
    from inspector.prefilter.evaluate import Labelled, run
    from inspector.prefilter.normal import COMPONENTS, fit_on

    comps = COMPONENTS if components is None else components
    if comps < 1:
        raise CalibrationError(f"--components must be at least 1, got {comps}")
    given = len(good)
    good, unreadable = readable(good, max_pixels, progress)
    if len(good) < MIN_GOOD_PARTS:
        raise _too_few(len(good), unreadable, given)
    goods = [Labelled(p, []) for p in good]
    stats = None
    if statistics and detector.normal_spec is not None:
        try:
            stats = fit_on(detector, good, roi, progress, weighted, comps, max_pixels)
        except ValueError as e:
            raise CalibrationError(f"normal statistics: {e}") from None
    if stats is None:
        scored, unscored = run(detector, goods, roi, detector.threshold, "scoring good parts",
                               max_pixels=max_pixels)
        folds = [(None, scored)]
    else:
        folds, unscored = [], []
        for k in range(FOLDS):
            others = [p for i, p in enumerate(good) if i % FOLDS != k]
            try:
                st = fit_on(detector, others, roi, weighted=weighted, components=comps, max_pixels=max_pixels)
            except ValueError as e:
                raise CalibrationError(f"normal statistics: {e}") from None
            res, unr = run(detector, goods[k::FOLDS], roi, detector.threshold, f"scoring good parts ({k + 1}/{FOLDS})",
                           st, max_pixels)
            folds.append((st, res))
            unscored += unr
    unreadable += unscored  # e.g. an ROI that does not fit an image
    scores = [r.score for _, res in folds for r in res]
    if len(scores) < MIN_GOOD_PARTS:
        raise _too_few(len(scores), unreadable, given)
    thr = fit_threshold(scores, target)
    if stats is None:  # scores do not depend on a fit: thirds by position, as with statistics
        fold_scores = [scores[k::FOLDS] for k in range(FOLDS)]
    else:
        fold_scores = [[r.score for r in res] for _, res in folds]
    good_res = []
    for st, res in folds:
        good_res += run(detector, [Labelled(r.path, []) for r in res], roi, thr, "checking the threshold",
                        st if stats is not None else None, max_pixels)[0]
    bad_res, bad_unreadable = (run(detector, [Labelled(p, []) for p in bad], roi, thr, "checking bad parts", stats,
                                   max_pixels)
                               if bad else ([], []))
    return Fitted(stats, thr, good_res, bad_res, unreadable + bad_unreadable, target, fold_scores)


def fit_best(detector, good, bad, roi, target, statistics: bool, progress=None,
             weighted: bool = True, components: int | None = None,
             max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[Fitted, list[Fitted]]:
    """With bad parts and a model that has statistics, both ways are fitted and the one that
    flags more bad parts at the target is kept (then the higher AUROC): a product that is really
    several surfaces may be described badly by one set of statistics."""
    fits = [fit(detector, good, bad, roi, target, statistics, progress, weighted, components, max_pixels)]
    if fits[0].stats is not None and bad:
        fits.append(fit(detector, good, bad, roi, target, False, progress, max_pixels=max_pixels))
    best = max(fits, key=lambda f: (f.measured().bad_recall or 0, f.measured().image_auroc or 0))
    return best, fits
