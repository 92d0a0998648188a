"""Detector metrics used by `inspector eval`, calibration and training: plain numpy, no sklearn."""

from __future__ import annotations

import numpy as np

from inspector.messages import Box


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve: the chance a random defective image outscores a random good one
    (ties count half). NaN when either class is missing."""
    s = np.asarray(scores, float)
    y = np.asarray(labels, bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order), float)
    allv = np.concatenate([pos, neg])[order]
    # average ranks over ties
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% confidence interval of a rate k/n (Wilson score): how far a measured recall of a few
    hundred defects can be from the true one. (nan, nan) when n is 0."""
    if n <= 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def found(defect: Box, candidates: list[Box], min_iou: float = 0.1) -> bool:
    """A defect counts as found when a candidate overlaps it with IoU >= min_iou or contains its
    centre (a long thin scratch inside a larger candidate box has a small IoU but is found)."""
    cx, cy = (defect[0] + defect[2]) / 2, (defect[1] + defect[3]) / 2
    return any(iou(defect, c) >= min_iou or (c[0] <= cx <= c[2] and c[1] <= cy <= c[3])
               for c in candidates)


def pr_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds) over every distinct score, highest threshold first."""
    s = np.asarray(scores, float)
    y = np.asarray(labels, bool)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # the end of each run of equal scores
    precision = tp[last] / (tp[last] + fp[last])
    recall = tp[last] / max(1, y.sum())
    return precision, recall, s[last]
