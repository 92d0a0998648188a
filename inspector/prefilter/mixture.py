"""A Gaussian mixture fitted by EM, in numpy: what several kinds of normal surface look like.

One Gaussian describes a product whose surface is one texture. Many are several at once (gland
and stroma in tissue, stone faces and the shadows between them in gravel): one Gaussian then has to
cover the space between the kinds too, and a defect that falls there looks normal. A few
components, each with its own mean and covariance, describe each kind apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Added to each component's covariance (in whitened units, where a good cell's spread is ~1): a
# component fitted on a tight cluster must not turn camera noise into a huge distance.
REGULARISE = 1e-3


@dataclass(frozen=True)
class Mixture:
    weights: np.ndarray  # [K]
    means: np.ndarray  # [K, d]
    whiten: np.ndarray  # [K, d, d]: (x - means[k]) @ whiten[k] has unit covariance in component k
    log_det: np.ndarray  # [K]: log det of each component's covariance

    def penalty(self) -> np.ndarray:
        """-2 log(weight) + log det per component, less the smallest: what a cell at a
        component's centre already scores in -2 log likelihood, so a rare or wide component is
        not the cheap explanation for everything."""
        p = -2.0 * np.log(self.weights) + self.log_det
        return p - p.min()

    def distance2(self, x: np.ndarray) -> np.ndarray:
        """min over components of squared Mahalanobis distance + penalty, per row of x [n, d]."""
        pen = self.penalty()
        return np.min([(((x - m) @ w) ** 2).sum(1) + p for m, w, p in zip(self.means, self.whiten, pen)], axis=0)


def fit(x: np.ndarray, k: int, seed: int = 0, iterations: int = 100, tol: float = 1e-5,
        starts: int = 4) -> Mixture:
    """EM from the best of `starts` k-means runs. x [n, d]; k is lowered to what n can carry.

    EM from one k-means++ start often stalls with a component spread over two kinds of surface
    (two kinds 2 sigma apart among unit noise in the other directions: 1 start in 4 did); k-means
    from several starts, best kept, splits them first."""
    x = np.asarray(x, np.float64)
    n, d = x.shape
    k = max(1, min(k, n // (4 * (d + 1))))  # each component needs a few times d cells
    rng = np.random.default_rng(seed)
    centres = min((_kmeans(x, _kmeanspp(x, k, rng)) for _ in range(starts)), key=lambda r: r[1])[0]
    resp = np.zeros((n, k))
    resp[np.arange(n), _sq_dist(x, centres).argmin(1)] = 1.0
    prev = -np.inf
    for _ in range(iterations):
        nk = resp.sum(0) + 1e-12
        weights = nk / n
        means = resp.T @ x / nk[:, None]
        whiten, log_det = np.empty((k, d, d)), np.empty(k)
        for j in range(k):
            xc = x - means[j]
            cov = (resp[:, j, None] * xc).T @ xc / nk[j] + REGULARISE * np.eye(d)
            chol = np.linalg.cholesky(cov)
            whiten[j] = np.linalg.inv(chol).T
            log_det[j] = 2.0 * np.log(np.diag(chol)).sum()
        ll = np.stack([-0.5 * ((((x - means[j]) @ whiten[j]) ** 2).sum(1) + log_det[j]) + np.log(weights[j])
                       for j in range(k)], axis=1)
        top = ll.max(1, keepdims=True)
        total = top[:, 0] + np.log(np.exp(ll - top).sum(1))
        resp = np.exp(ll - total[:, None])
        mean_ll = float(total.mean())
        if mean_ll - prev < tol:
            break
        prev = mean_ll
    return Mixture(weights, means, whiten, log_det)


def _kmeans(x: np.ndarray, centres: np.ndarray, iterations: int = 25) -> tuple[np.ndarray, float]:
    """Lloyd's iterations: (centres, sum of squared distances)."""
    for _ in range(iterations):
        label = _sq_dist(x, centres).argmin(1)
        new = np.array([x[label == j].mean(0) if (label == j).any() else centres[j] for j in range(len(centres))])
        if np.allclose(new, centres):
            break
        centres = new
    return centres, float(_sq_dist(x, centres).min(1).clip(min=0).sum())


def _sq_dist(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    return (x * x).sum(1)[:, None] - 2.0 * x @ c.T + (c * c).sum(1)[None]


def _kmeanspp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [x[rng.integers(len(x))]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        i = rng.choice(len(x), p=d2 / total) if total > 0 else rng.integers(len(x))
        centres.append(x[i])
        d2 = np.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    return np.array(centres)
