"""Anomaly-map detectors: an ONNX model turns the ROI into a map; map -> threshold -> blobs -> boxes.

Two plugins share this code:
- `default`: the bundled model; how to feed it is written in models/manifest.json.
- `anomaly_map`: a model as anomalib exports it (a map, and perhaps a score), fed as the config says
  (layout, dtype, channels, mean/std, fixed or dynamic size).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from inspector.config import AnomalyMapDetectorConfig, DetectorConfig
from inspector.messages import Box, Candidate
from inspector.prefilter import Inspection, ModelError, register
from inspector.prefilter.manifest import load_entry
from inspector.prefilter.normal import NormalStatistics
from inspector.prefilter.roi import clip_roi
from inspector.prefilter.session import describe, open_session

HYSTERESIS = 0.6
# A distance from normal rises less steeply out of the good surface than a probability does:
# growing blobs down to 0.6 x threshold there would swallow ordinary texture around a defect.
HYSTERESIS_DISTANCE = 0.85


@dataclass(frozen=True)
class NormalSpec:
    """A model's per-product normal statistics: its output and input names and feature groups
    (models/manifest.json `normal_statistics`)."""

    features: str
    groups_output: str
    distance: str
    inputs: dict  # {"mean": name, "whiten": name, "scale": name, "offset": name}
    groups: tuple[int, ...]

    @property
    def size(self) -> int:
        return sum(self.groups)


@dataclass(frozen=True)
class Feed:
    """How an image becomes the model's input tensor."""

    layout: str  # NCHW / NHWC
    dtype: str  # float32 / uint8 (uint8: the model scales itself)
    channels: str  # RGB / BGR
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    size: tuple[int, int] | None = None  # fixed (w, h), or None for any size
    max_side: int | None = None  # dynamic size: downscale the ROI so its longer side fits
    multiple: int = 1  # dynamic size: pad each side to a multiple of this
    # Dynamic size: input pixels of mirrored surface added past each edge of the ROI, and the
    # map cropped back. A network's zero padding makes cells at the ROI's edge look unlike the
    # same surface inside it; those edge cells were what set good parts' highest scores, so the
    # threshold, before any defect counted.
    context: int = 0


class AnomalyMapDetector:
    def __init__(self, session, feed: Feed, *, model_id: str, label: str, threshold: float,
                 min_area_px: int, max_candidates: int, map_output: str | None, source: str,
                 normal: NormalSpec | None = None, secondary: float = 1.0):
        self.session = session
        self.secondary = secondary
        self.normal_spec = normal
        self.feed = feed
        self.model_id = model_id
        self.label = label
        self.threshold = threshold
        self.min_area = min_area_px
        self.max_candidates = max_candidates
        self._check_io(map_output, source)

    # --- loading -------------------------------------------------------------------------------

    def _check_io(self, map_output: str | None, source: str) -> None:
        ins, outs = self.session.get_inputs(), self.session.get_outputs()
        f = self.feed
        ns = self.normal_spec
        all_ins, all_outs = ins, outs
        if ns is not None:
            ins = [i for i in ins if i.name not in ns.inputs.values()]
            outs = [o for o in outs if o.name not in (ns.features, ns.groups_output, ns.distance)]
        want_dtype = "tensor(uint8)" if f.dtype == "uint8" else "tensor(float)"
        c_axis = 1 if f.layout == "NCHW" else 3
        shape_ok = len(ins) == 1 and len(ins[0].shape) == 4 and ins[0].shape[c_axis] == 3
        if not shape_ok or ins[0].type != want_dtype:
            exp = "[1, 3, H, W]" if f.layout == "NCHW" else "[1, H, W, 3]"
            raise ModelError(f"{source}: expected one {f.dtype} input {exp}, got {describe(ins)}")
        maps = [o for o in outs if len(o.shape) in (3, 4) and (o.name == map_output or map_output is None)]
        if map_output and not maps:
            raise ModelError(f"{source}: no output named {map_output!r}; outputs: {describe(outs)}")
        if not maps or (len(maps[0].shape) == 4 and maps[0].shape[1] not in (1, "1")):
            raise ModelError(f"{source}: expected an anomaly map output [1, 1, h, w] or [1, h, w], "
                             f"got {describe(outs)}")
        self.input_name, self.map_name = ins[0].name, maps[0].name
        if ns is not None:
            # Inputs with defaults are listed apart by onnxruntime.
            have_in = {i.name for i in [*all_ins, *self.session.get_overridable_initializers()]}
            missing = (set(ns.inputs.values()) - have_in) | (
                {ns.features, ns.groups_output, ns.distance} - {o.name for o in all_outs})
            if missing:
                raise ModelError(f"{source}: the manifest's normal_statistics name {sorted(missing)}, "
                                 f"which the model lacks; inputs: {describe(all_ins)}; outputs: "
                                 f"{describe(all_outs)}")
        h, w = ins[0].shape[2:4] if f.layout == "NCHW" else ins[0].shape[1:3]
        if isinstance(h, int) and isinstance(w, int) and f.size != (w, h):
            # A model of fixed size (as anomalib exports them) is fed at that size, whatever the
            # config said, or it would fail on the first frame.
            self.feed = Feed(f.layout, f.dtype, f.channels, f.mean, f.std, (w, h))

    # --- inference -----------------------------------------------------------------------------

    def fitted(self, roi_img: np.ndarray, border: int = cv2.BORDER_REFLECT) -> tuple[np.ndarray, float, float]:
        """(the ROI scaled and padded to the model's input geometry, sx, sy): input pixels per ROI
        pixel along x and y. tensor() feeds it; cell_cover() maps a mask through the same."""
        f = self.feed
        h, w = roi_img.shape[:2]
        if f.size is not None:
            img = cv2.resize(roi_img, f.size, interpolation=cv2.INTER_AREA if f.size[0] < w else cv2.INTER_LINEAR)
            return img, f.size[0] / w, f.size[1] / h
        s = min(1.0, f.max_side / max(h, w)) if f.max_side else 1.0
        img = roi_img
        if s < 1.0:
            img = cv2.resize(roi_img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        sx, sy = img.shape[1] / w, img.shape[0] / h
        ph, pw = (-img.shape[0]) % f.multiple, (-img.shape[1]) % f.multiple  # so cells line up with pixels
        c = f.context
        if c or ph or pw:
            img = cv2.copyMakeBorder(img, c, c + ph, c, c + pw, border, value=0)
        return img, sx, sy

    def _crop(self, out: np.ndarray, in_hw: tuple[int, int]) -> np.ndarray:
        """A model output [..., h, w] without the cells that lie in the context around the ROI."""
        c = self.feed.context
        if not c:
            return out
        ky, kx = round(c * out.shape[-2] / in_hw[0]), round(c * out.shape[-1] / in_hw[1])
        return out[..., ky:out.shape[-2] - ky, kx:out.shape[-1] - kx]

    def _in_hw(self, x: np.ndarray) -> tuple[int, int]:
        return (x.shape[1], x.shape[2]) if self.feed.layout == "NHWC" else x.shape[2:]

    def tensor(self, roi_img: np.ndarray) -> tuple[np.ndarray, float, float]:
        """(input tensor, sx, sy): input pixels per ROI pixel along x and y."""
        f = self.feed
        img, sx, sy = self.fitted(roi_img)
        if f.channels == "RGB":
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if f.dtype == "uint8":
            x = np.ascontiguousarray(img)[None]
            return (x if f.layout == "NHWC" else x.transpose(0, 3, 1, 2)), sx, sy
        x = (img.astype(np.float32) * (1 / 255.0) - np.float32(f.mean)) / np.float32(f.std)
        x = x[None] if f.layout == "NHWC" else x.transpose(2, 0, 1)[None]
        return np.ascontiguousarray(x, np.float32), sx, sy

    def cell_cover(self, mask: np.ndarray, map_hw: tuple[int, int]) -> np.ndarray:
        """The share of each map cell that `mask` (float 0..1, the ROI's size) covers, with the
        ROI scaled and padded as tensor() does it (padding covers nothing)."""
        m = self.fitted(mask, cv2.BORDER_CONSTANT)[0]
        m = self._crop(m, m.shape)  # the mask is in input pixels: one pixel per "cell"
        return cv2.resize(m, (int(map_hw[1]), int(map_hw[0])), interpolation=cv2.INTER_AREA)

    def anomaly_map(self, roi_img: np.ndarray, normal: NormalStatistics | None = None):
        """(map, cell width, cell height) with cells measured in ROI pixels. With a product's
        normal statistics the map is the distance from normal, else the model's own map."""
        x, sx, sy = self.tensor(roi_img)
        amap = self._run(self.map_name if normal is None else self._need_normal().distance, x, normal)
        in_h, in_w = self._in_hw(x)
        cell_w, cell_h = in_w / amap.shape[-1], in_h / amap.shape[-2]  # input pixels per map cell
        amap = self._crop(amap.reshape(amap.shape[-2:]), (in_h, in_w))
        return amap, cell_w / sx, cell_h / sy

    def _run(self, output: str, x: np.ndarray, normal: NormalStatistics | None = None) -> np.ndarray:
        feeds = {self.input_name: x}
        if normal is not None:
            feeds.update(normal.feeds(self._need_normal().inputs))
        return self.session.run([output], feeds)[0]

    def _need_normal(self) -> NormalSpec:
        if self.normal_spec is None:
            raise ValueError(f"detector {self.model_id} has no normal statistics (its manifest entry "
                             f"names none)")
        return self.normal_spec

    def features(self, image: np.ndarray, roi: Box | None = None) -> np.ndarray:
        """The feature map [1, D, h, w] that normal statistics are fitted on."""
        x0, y0, x1, y1 = clip_roi(image, roi)
        x = self.tensor(np.ascontiguousarray(image[y0:y1, x0:x1]))[0]
        return self._crop(self._run(self._need_normal().features, x), self._in_hw(x))

    def group_distances(self, image: np.ndarray, roi: Box | None, normal: NormalStatistics) -> np.ndarray:
        """Each feature group's unscaled distance from `normal`, [1, G, h, w]."""
        x0, y0, x1, y1 = clip_roi(image, roi)
        x = self.tensor(np.ascontiguousarray(image[y0:y1, x0:x1]))[0]
        return self._crop(self._run(self._need_normal().groups_output, x, normal), self._in_hw(x))

    def inspect(self, image: np.ndarray, roi: Box | None = None, threshold: float | None = None,
                normal: NormalStatistics | None = None) -> Inspection:
        thr = threshold or self.threshold
        x0, y0, x1, y1 = clip_roi(image, roi)
        amap, cw, ch = self.anomaly_map(np.ascontiguousarray(image[y0:y1, x0:x1]), normal)
        grow = HYSTERESIS if normal is None else HYSTERESIS_DISTANCE
        cands = self._blobs(amap, thr, thr * grow, (x0, y0, x1, y1), cw, ch)
        if cands and self.secondary < 1.0:
            # The part goes to the VLM anyway: weaker regions on it are boxed too (seeded at
            # secondary x threshold), so a second, fainter defect is pointed at rather than
            # shipped unseen. Blobs that reach the threshold are the ones boxed above.
            low = thr * self.secondary
            cands += [c for c in self._blobs(amap, low, low * grow, (x0, y0, x1, y1), cw, ch, thr)
                      if c.score < 0.5]
        cands.sort(key=lambda c: c.score, reverse=True)
        return Inspection(float(amap.max()), cands[: self.max_candidates])

    def _blobs(self, amap: np.ndarray, seed: float, grow: float, roi: tuple[int, int, int, int],
               cw: float, ch: float, thr: float | None = None) -> list[Candidate]:
        """Boxes (in frame pixels) of the regions above `grow` whose peak reaches `seed`, scored
        against `thr` (default: `seed`). Hysteresis: a blob is seeded where the map reaches
        `seed` and grown over the surrounding region above `grow`, so a thin crack is boxed whole."""
        thr = seed if thr is None else thr
        x0, y0, x1, y1 = roi
        mask = (amap >= grow).astype(np.uint8)
        # Close small gaps so one crack or scratch becomes one candidate, not a string of beads.
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        cands = []
        if n > 1:
            # Each blob's peak, over its pixels only (np.maximum.at over the whole map is ~1 ms).
            lab = labels.ravel()
            fg = np.flatnonzero(lab)
            order = np.argsort(lab[fg], kind="stable")
            lab_sorted, val_sorted = lab[fg][order], amap.ravel()[fg][order]
            starts = np.flatnonzero(np.r_[True, np.diff(lab_sorted) != 0])
            peaks = np.zeros(n, np.float32)
            peaks[lab_sorted[starts]] = np.maximum.reduceat(val_sorted, starts)
            min_cells = self.min_area / (cw * ch)
            for i in range(1, n):
                bx, by, bw, bh, area = stats[i]
                peak = float(peaks[i])
                if area < min_cells or peak < seed:
                    continue
                box = (x0 + bx * cw, y0 + by * ch, min(x1, x0 + (bx + bw) * cw), min(y1, y0 + (by + bh) * ch))
                # 0.5 at the threshold, rising towards 1: comparable across models and thresholds.
                cands.append(Candidate(tuple(float(v) for v in box), peak / (peak + thr), self.label,
                                       self.model_id))
        return cands

    def detect(self, image: np.ndarray, roi: Box | None = None, threshold: float | None = None,
               normal: NormalStatistics | None = None) -> list[Candidate]:
        return self.inspect(image, roi, threshold, normal).candidates


@register("default")
def default_detector(cfg: DetectorConfig) -> AnomalyMapDetector:
    entry = load_entry(cfg.manifest, cfg.model)
    if entry.kind != "anomaly_map":
        raise ModelError(f"{cfg.model}: manifest kind is {entry.kind!r}, the default detector "
                         f"needs 'anomaly_map'")
    if cfg.sha256 and cfg.sha256 != entry.sha256:
        raise ModelError(f"detector.model: {cfg.model} has sha256 {entry.sha256}, but "
                         f"detector.sha256 pins {cfg.sha256}")
    spec = entry.input
    ns = entry.normal_statistics
    try:
        normal = None if not ns else NormalSpec(
            ns["features"], ns["groups_output"], ns["distance"],
            {k: ns[k] for k in ("mean", "whiten", "scale", "offset")}, tuple(int(g) for g in ns["groups"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"manifest {cfg.manifest}: normal_statistics of {cfg.model.name} lacks {e}") from None
    context = spec.get("context_pad", 0)
    if not isinstance(context, int) or context < 0 or context % entry.output_stride:
        raise ModelError(f"manifest {cfg.manifest}: input.context_pad of {cfg.model.name} is {context!r}; "
                         f"expected a whole multiple of the output stride {entry.output_stride} (or 0)")
    feed = Feed(layout=spec.get("layout", "NCHW"), dtype=spec.get("dtype", "float32"),
                channels=spec.get("channels", "BGR"), max_side=spec.get("max_side"),
                multiple=entry.output_stride, context=context)
    return AnomalyMapDetector(
        open_session(cfg.model), feed, model_id=f"{entry.name}@{entry.sha256[:12]}",
        label=entry.labels[0], threshold=cfg.threshold or entry.default_threshold,
        min_area_px=cfg.min_area_px, max_candidates=cfg.max_candidates, map_output=entry.output_name,
        source=str(cfg.model), normal=normal, secondary=cfg.secondary)


@register("anomaly_map")
def anomalib_detector(cfg: AnomalyMapDetectorConfig) -> AnomalyMapDetector:
    session = open_session(cfg.model, cfg.sha256)
    feed = Feed(cfg.layout, cfg.dtype, cfg.channels, cfg.mean, cfg.std, cfg.input_size,
                cfg.max_side, 32)
    from inspector.prefilter.manifest import sha256_of

    return AnomalyMapDetector(
        session, feed, model_id=f"{cfg.model.stem}@{sha256_of(cfg.model)[:12]}", label=cfg.label,
        threshold=cfg.threshold or 0.5, min_area_px=cfg.min_area_px,
        max_candidates=cfg.max_candidates, map_output=cfg.map_output, source=str(cfg.model),
        secondary=cfg.secondary)
