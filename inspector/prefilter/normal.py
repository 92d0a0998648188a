"""Per-product normal statistics: what a good part's surface looks like to the detector.

A model that has them (the bundled default: manifest `normal_statistics`) outputs a feature
vector per map cell; the statistics are the mean and a whitening matrix of those vectors over a
product's good parts, fitted by `inspector calibrate thresholds` and fed back to the model, which
then scores each cell by its distance from normal. They live next to the product's calibration
YAML as `<product>.normal.npz` (a few tens of KiB of numbers do not belong in YAML).
"""

from __future__ import annotations

import hashlib
import io
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspector.prefilter.roi import clip_roi
from inspector.util.atomic_write import write_atomic

# Shrinks the covariance towards its mean variance: a feature that never varies on the golden
# samples (the chroma of a grey part) must not turn camera noise into an infinite distance.
SHRINK = 1e-3
# A feature group's distance is divided by what this share of good cells stays under.
SCALE_QUANTILE = 0.999
# Every whitened direction keeps at least this weight after weigh_by_anomalies: a real defect
# that shows only where the synthetic anomalies never went must still count.
WEIGHT_FLOOR = 0.2
# A map cell counts as anomalous when the painted mask covers this share of it.
ANOMALY_CELL_COVER = 0.05


@dataclass(frozen=True)
class NormalStatistics:
    """K components (K = 1: one Gaussian). A cell's distance in feature group g is
    sqrt(min_k |whiten[k] @ (f - mean[k])|^2 over g's rows + offset[k, g])."""

    mean: np.ndarray  # [K, D] float32
    whiten: np.ndarray  # [K, D, D] float32, block diagonal by feature group
    scale: np.ndarray  # [G] float32: each feature group's distance that good parts reach (1 in 1000 cells)
    cells: int = 0  # feature vectors they were fitted on
    anomaly_cells: int = 0  # cells of synthetic anomalies that weighted the directions (0: none)
    offset: np.ndarray | None = None  # [K, G] float32 >= 0: each component's -2 log(weight) + log det; None: 0

    def __post_init__(self) -> None:
        mean, whiten = np.asarray(self.mean, np.float32), np.asarray(self.whiten, np.float32)
        if mean.ndim == 1:  # one Gaussian, as older fits store it
            mean, whiten = mean[None], whiten[None]
        offset = (np.zeros((len(mean), len(self.scale)), np.float32) if self.offset is None
                  else np.asarray(self.offset, np.float32))
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "whiten", whiten)
        object.__setattr__(self, "offset", offset)

    @property
    def components(self) -> int:
        return len(self.mean)

    def feeds(self, names: dict[str, str]) -> dict[str, np.ndarray]:
        return {names["mean"]: self.mean, names["whiten"]: self.whiten, names["scale"]: self.scale,
                names["offset"]: self.offset}

    def replace(self, **kw) -> "NormalStatistics":
        return dataclasses.replace(self, **kw)

    def scaled(self, group_maps) -> "NormalStatistics":
        """The same statistics with `scale` measured on distance maps [1, G, h, w] of good parts."""
        vals = np.concatenate([np.asarray(m, np.float32).reshape(m.shape[1], -1) for m in group_maps], axis=1)
        return self.replace(scale=np.quantile(vals, SCALE_QUANTILE, axis=1).astype(np.float32).clip(min=1e-6))

    def group_distances(self, features: np.ndarray, groups: list[int]) -> np.ndarray:
        """What the model's graph computes, in numpy: [n, D] features -> [n, G] distances."""
        f = np.asarray(features, np.float64)
        out = np.full((len(f), len(groups)), np.inf)
        for m, w, off in zip(self.mean, self.whiten, self.offset):
            z2 = ((f - m) @ w.T.astype(np.float64)) ** 2
            at = 0
            for g, size in enumerate(groups):
                out[:, g] = np.minimum(out[:, g], z2[:, at:at + size].sum(1) + off[g])
                at += size
        return np.sqrt(out)


class NormalFit:
    """Running mean and covariance of feature maps [1, D, h, w], in float64."""

    def __init__(self) -> None:
        self.n = 0
        self.s1: np.ndarray | None = None
        self.s2: np.ndarray | None = None

    def add(self, features: np.ndarray) -> None:
        f = np.asarray(features, np.float64).reshape(features.shape[1], -1)
        if self.s1 is None:
            self.s1, self.s2 = np.zeros(f.shape[0]), np.zeros((f.shape[0], f.shape[0]))
        if f.shape[0] != self.s1.shape[0]:
            raise ValueError(f"feature size changed from {self.s1.shape[0]} to {f.shape[0]}")
        self.n += f.shape[1]
        self.s1 += f.sum(axis=1)
        self.s2 += f @ f.T

    def result(self, groups: list[int]) -> NormalStatistics:
        """Whitening per feature group (block diagonal): each group's distance is its own."""
        if self.n < 2 or self.s1 is None:
            raise ValueError("no feature vectors to fit normal statistics on")
        if sum(groups) != len(self.s1):
            raise ValueError(f"feature groups {groups} do not add up to {len(self.s1)} features")
        mean = self.s1 / self.n
        cov = (self.s2 - self.n * np.outer(mean, mean)) / (self.n - 1)
        whiten = np.zeros_like(cov)
        at = 0
        for size in groups:
            c = cov[at:at + size, at:at + size]
            c = c + (SHRINK * float(np.mean(np.diag(c))) + 1e-9) * np.eye(size)
            vals, vecs = np.linalg.eigh(c)
            whiten[at:at + size, at:at + size] = (vecs * vals.clip(min=1e-12) ** -0.5) @ vecs.T  # c^-1/2
            at += size
        return NormalStatistics(mean.astype(np.float32), whiten.astype(np.float32),
                                np.ones(len(groups), np.float32), self.n)


def weigh_by_anomalies(stats: NormalStatistics, moment: np.ndarray, cells: int, groups: list[int],
                       floor: float = WEIGHT_FLOOR) -> NormalStatistics:
    """Re-weigh each group's whitened directions by how far anomalies spread along them.

    `moment` is E[z z^T] over anomalous cells, z = stats.whiten @ (f - mean): on good cells it is
    the identity. In its eigenbasis, with r_i the anomalies' second moment along direction i, the
    likelihood ratio of "anomaly" (zero mean, covariance diag(r)) against "good" (identity) is
    sum (1 - 1/r_i) z_i^2 + const: directions where anomalies look like good cells (r_i ~ 1) are
    noise that only raises good parts' maxima, and fall to the floor. The result is again
    `W (f - mean)`, summed in squares per group, so the model's graph computes it unchanged."""
    if cells < 1:
        return stats
    if stats.components != 1:
        raise ValueError("anomalies weigh the directions of one Gaussian, before any mixture is fitted")
    whiten = np.zeros_like(stats.whiten[0], dtype=np.float64)
    at = 0
    for size in groups:
        r, vecs = np.linalg.eigh(moment[at:at + size, at:at + size])
        weight = np.clip(1.0 - 1.0 / np.clip(r, 1e-6, None), floor, 1.0)
        whiten[at:at + size] = (np.sqrt(weight)[:, None] * vecs.T) @ stats.whiten[0, at:at + size].astype(np.float64)
        at += size
    return stats.replace(whiten=whiten[None].astype(np.float32), anomaly_cells=cells)


def mix(stats: NormalStatistics, features: np.ndarray, groups: list[int], components: int,
        seed: int = 0) -> NormalStatistics:
    """Fit `components` Gaussians per feature group to good cells' features [n, D] in the
    (weighed) whitened space of `stats`, and express them as K means, whitenings and offsets on
    the raw features, which the model's graph takes as they are.

    In group g's rows, with z = W (f - mu) and component k = (m_k, P_k): P_k^T (z - m_k) =
    (P_k^T W) (f - mu_k) where W mu_k = W mu + m_k (W's blocks are invertible: every weight is
    at least the floor)."""
    if stats.components != 1:
        raise ValueError("a mixture is fitted on one Gaussian's whitened space")
    if components <= 1:
        return stats
    from inspector.prefilter import mixture

    mu, w = stats.mean[0].astype(np.float64), stats.whiten[0].astype(np.float64)
    z = (np.asarray(features, np.float64) - mu) @ w.T
    fits, at = [], 0
    for size in groups:
        fits.append(mixture.fit(z[:, at:at + size], components, seed))
        at += size
    k = max(len(f.weights) for f in fits)
    d = len(mu)
    means = np.tile(mu, (k, 1))
    whiten = np.zeros((k, d, d))
    offset = np.zeros((k, len(groups)))
    at = 0
    for g, (size, f) in enumerate(zip(groups, fits)):
        sl = slice(at, at + size)
        block = w[sl, sl]
        pen = f.penalty()
        for j in range(k):
            j_src = j if j < len(f.weights) else 0  # this group has fewer components: repeat its first
            extra = float(pen[j_src])
            means[j, sl] = mu[sl] + np.linalg.solve(block, f.means[j_src])
            whiten[j, sl, sl] = f.whiten[j_src].T @ block
            offset[j, g] = extra
        at += size
    return stats.replace(mean=means.astype(np.float32), whiten=whiten.astype(np.float32),
                         offset=offset.astype(np.float32))


def save(path: Path, stats: NormalStatistics) -> str:
    """Write atomically; returns the file's sha256 (the YAML records it)."""
    buf = io.BytesIO()
    np.savez(buf, mean=stats.mean, whiten=stats.whiten, scale=stats.scale, cells=np.int64(stats.cells),
             anomaly_cells=np.int64(stats.anomaly_cells), offset=stats.offset)
    data = buf.getvalue()
    write_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def load(path: Path, sha256: str | None = None, size: int | None = None,
         groups: int | None = None) -> NormalStatistics:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"normal statistics {path}: {e.strerror or e}") from None
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"normal statistics {path} do not match the sha256 in the calibration file "
                         f"(changed or copied from another product)")
    try:
        with np.load(io.BytesIO(data)) as z:
            mean, whiten = z["mean"].astype(np.float32), z["whiten"].astype(np.float32)
            scale, cells = z["scale"].astype(np.float32), int(z["cells"])
            anomaly_cells = int(z["anomaly_cells"]) if "anomaly_cells" in z.files else 0  # older fits: none
            offset = z["offset"].astype(np.float32) if "offset" in z.files else None  # older fits: one Gaussian
    except (ValueError, KeyError, OSError) as e:
        raise ValueError(f"normal statistics {path} are not readable ({e})") from None
    misfit = (f"normal statistics {path}: mean {{}} / whiten {{}} / offset {{}} / scale {scale.shape} do not "
              f"fit a model with {size} features in {groups} groups")
    if scale.ndim != 1 or mean.ndim not in (1, 2):
        raise ValueError(misfit.format(mean.shape, whiten.shape, None if offset is None else offset.shape))
    st = NormalStatistics(mean, whiten, scale, cells, anomaly_cells, offset)  # older fits: one Gaussian
    k, d = st.mean.shape if st.mean.ndim == 2 else (0, -1)
    if (k < 1 or d < 1 or st.whiten.shape != (k, d, d) or (size is not None and d != size)
            or (groups is not None and scale.shape[0] != groups) or st.offset.shape != (k, scale.shape[0])):
        raise ValueError(misfit.format(st.mean.shape, st.whiten.shape, st.offset.shape))
    if (not all(np.isfinite(a).all() for a in (st.mean, st.whiten, scale, st.offset)) or (scale <= 0).any()
            or (st.offset < 0).any()):
        raise ValueError(f"normal statistics {path} contain NaN, infinity, a scale <= 0 or an offset < 0")
    return st


ANOMALY_SEED = 20261124  # the same good parts always get the same synthetic anomalies
# Gaussians per feature group by default. One misses what lies between a surface's kinds; 4 found
# 0.966 instead of 0.939 of the held-out gravel's defects (models/README.md). Each costs a 1x1
# convolution over the feature map per frame.
COMPONENTS = 4
MIXTURE_CELLS = 50_000  # good cells (sampled evenly over the good parts) the mixture is fitted on


def fit_on(detector, images, roi, progress=None, weighted: bool = True,
           components: int = COMPONENTS, max_pixels: int | None = None) -> NormalStatistics:
    """Fit `detector`'s normal statistics on good images (paths or BGR arrays): mean and
    whitening, then (`weighted`) the directions re-weighed by generic synthetic anomalies painted
    on the same parts, then (`components` > 1) a mixture in that space, then each group's scale.
    Unreadable images and ones the ROI does not fit are skipped here: scoring the same images
    reports them."""
    from inspector import MAX_IMAGE_PIXELS
    from inspector.util.image_file import ImageError, read_image
    from inspector.prefilter.synthetic import paint_anomaly

    def frames(what: str):
        for i, im in enumerate(images, 1):
            try:
                img = im if isinstance(im, np.ndarray) else read_image(im, max_pixels or MAX_IMAGE_PIXELS)
            except ImageError:
                img = None
            if img is not None:
                yield img
            if progress:
                progress(i, len(images), what)

    groups = list(detector.normal_spec.groups)
    fit = NormalFit()
    sample_rng = np.random.default_rng(ANOMALY_SEED)
    per_image = -(-MIXTURE_CELLS // max(1, len(images)))
    sample = []
    for img in frames("fitting normal statistics"):
        try:
            f = detector.features(img, roi)
        except ValueError:
            continue
        fit.add(f)
        if components > 1:
            cells = f.reshape(f.shape[1], -1)
            pick = sample_rng.choice(cells.shape[1], min(per_image, cells.shape[1]), replace=False)
            sample.append(cells[:, pick].T.astype(np.float32))
    first = fit.result(groups)
    if weighted:
        rng = np.random.default_rng(ANOMALY_SEED)
        mean, whiten = first.mean[0].astype(np.float64), first.whiten[0].astype(np.float64)
        moment, cells = np.zeros_like(whiten), 0
        for img in frames("weighing by synthetic anomalies"):
            try:
                x0, y0, x1, y1 = clip_roi(img, roi)
                painted = img.copy()
                mask = paint_anomaly(painted, rng, (x0, y0, x1, y1))
                f = detector.features(painted, roi)[0]
            except ValueError:
                continue
            cover = detector.cell_cover(mask[y0:y1, x0:x1].astype(np.float32) / 255.0, f.shape[1:])
            sel = cover.ravel() >= ANOMALY_CELL_COVER
            z = whiten @ (f.reshape(len(f), -1)[:, sel].astype(np.float64) - mean[:, None])
            moment += z @ z.T
            cells += int(sel.sum())
        first = weigh_by_anomalies(first, moment / max(cells, 1), cells, groups)
    if components > 1:
        if progress:
            progress(0, 1, f"fitting {components} Gaussians per feature group")
        first = mix(first, np.concatenate(sample), groups, components)
        if progress:
            progress(1, 1, f"fitting {components} Gaussians per feature group")
    maps = []
    for img in frames("scaling normal statistics"):
        try:
            maps.append(detector.group_distances(img, roi, first))
        except ValueError:
            continue
    return first.scaled(maps)
