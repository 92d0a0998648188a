"""Give the default detector per-product normal statistics: a `features` output and a
`distance_map` output computed from it with a mean and whitening matrix fed at run time.

    .venv/bin/python models/normal_head.py            # rewrites models/default-anomaly.onnx

Why: the trained probability map generalises to surfaces it never saw only so far (a busy surface
such as gravel looks "defect-like" to it in places). What is normal for one product is learnt
cheaply from its good parts: `inspector calibrate thresholds` fits the mean and covariance of each
map cell's feature vector over the golden samples, and the detector then scores every cell by
its Mahalanobis distance from them (as PaDiM does, one Gaussian for the whole surface because a
product's surface texture is stationary, not one per position).

The feature vector (42 per cell, on the same stride-4 grid as the probability map):
- the network's own 32 features (not the "minus the image's mean" copy its head also sees: that
  copy differs from them only by a per-image constant, whose tiny spread over a few golden
  samples would make one odd spot anywhere light up the whole frame);
- 10 hand-made ones that a texture's normal range is easy to state in: opponent colour (lightness
  and two chroma axes) at two scales, local lightness spread at two scales, edge strength and a
  difference of Gaussians. They catch what the network was never taught to see (a colour shift).

The statistics are graph inputs with defaults (fitted here on good parts of the training
surfaces), so the model runs with or without a product's calibration, and the whole distance is
computed inside onnxruntime: the stage's per-pixel work stays out of Python.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STRIDE = 4
FEATURES = "features"
DISTANCE = "distance_map"
GROUPS = "distance_groups"
MEAN, WHITEN, SCALE, OFFSET = "normal_mean", "normal_whiten", "normal_scale", "normal_offset"
HAND = 10
# Input pixels of mirrored surface the detector adds past each ROI edge (manifest input.context_pad),
# cropped off the maps again: without them the network's zero padding makes edge cells unlike the
# surface, and good parts' highest distances were at the ROI's edge.
CONTEXT = 16


def _gauss(sigma: float) -> np.ndarray:
    r = max(1, int(round(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    return np.outer(k, k).astype(np.float32)


def add_head(model, default_mean=None, default_whiten=None, default_scale=None, default_offset=None):
    """Return a copy of `model` (the trained onnx.ModelProto) with the features/distance outputs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    if any(o.name == FEATURES for o in g.output):
        raise ValueError("model already has a normal-statistics head")
    first_conv = next(n for n in g.node if n.op_type == "Conv")
    x01 = first_conv.input[0]  # float NCHW BGR in 0..1, as the network sees it
    concat = next(n for n in g.node if n.op_type == "Concat")
    f_net = concat.input[0]
    nodes, inits = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(op, ins, outs=None, **kw):
        outs = outs or [f"nh/{op}_{len(nodes)}"]
        nodes.append(helper.make_node(op, ins, outs, **kw))
        return outs[0]

    def blur(x, channels, sigma):
        k = _gauss(sigma)
        r = k.shape[0] // 2
        w = const(f"nh/gauss_{sigma}_{channels}_{len(inits)}", np.tile(k, (channels, 1, 1, 1)))
        pads = const(f"nh/pads_{r}_{len(inits)}", np.array([0, 0, r, r, 0, 0, r, r], np.int64))
        p = node("Pad", [x, pads], mode="reflect")
        return node("Conv", [p, w], group=channels)

    # Opponent colour, scaled so a channel's spread on a typical surface is of order 1.
    s = 255.0 / 32.0
    opp_w = np.array([[1 / 3, 1 / 3, 1 / 3],  # lightness (B, G, R in)
                      [0.0, -1.0, 1.0],  # red - green
                      [-1.0, 0.5, 0.5]], np.float32) * s  # yellow - blue
    # Everything per-pixel runs at half resolution: at full resolution these few cheap-looking
    # ops cost 4x the whole network (memory traffic, not arithmetic).
    half = dict(kernel_shape=[2, 2], strides=[2, 2])
    opp = node("Conv", [node("AveragePool", [x01], **half), const("nh/opp_w", opp_w.reshape(3, 3, 1, 1))])
    lum = node("Slice", [opp, const("nh/s0", np.array([0], np.int64)), const("nh/s1", np.array([1], np.int64)),
                         const("nh/ax1", np.array([1], np.int64))])
    pool = dict(kernel_shape=[STRIDE // 2, STRIDE // 2], strides=[STRIDE // 2, STRIDE // 2])
    p_opp = node("AveragePool", [opp], **pool)
    p_l = node("Slice", [p_opp, "nh/s0", "nh/s1", "nh/ax1"])
    p_l2 = node("AveragePool", [node("Mul", [lum, lum])], **pool)
    hand = []
    for sigma in (0.5, 1.5):  # cells: 2 and 6 pixels
        mean3 = blur(p_opp, 3, sigma)
        m_l = node("Slice", [mean3, "nh/s0", "nh/s1", "nh/ax1"])
        var = node("Sub", [blur(p_l2, 1, sigma), node("Mul", [m_l, m_l])])
        hand += [mean3, node("Sqrt", [node("Relu", [var])])]
    sobel = np.array([[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]], np.float32)
    sob_w = const("nh/sobel", np.stack([sobel, sobel.transpose(0, 2, 1)]))  # [2, 1, 3, 3]
    gxy = node("Conv", [lum, sob_w], pads=[1, 1, 1, 1])
    g2 = node("ReduceSum", [node("Mul", [gxy, gxy]), "nh/ax1"], keepdims=1)
    edge = blur(node("AveragePool", [node("Sqrt", [g2])], **pool), 1, 0.5)
    dog = node("Sub", [p_l, blur(p_l, 1, 1.0)])
    feats = node("Concat", [f_net, *hand, node("Mul", [edge, const("nh/q", np.float32(0.25))]), dog],
                 [FEATURES], axis=1)

    n_net = _channels(m, f_net)
    n_feat = n_net + HAND
    groups = np.zeros((2, n_feat, 1, 1), np.float32)  # which features make up each distance
    groups[0, :n_net], groups[1, n_net:] = 1.0, 1.0
    # Statistics of K components (K = 1: one Gaussian; any K at run time). Component k scores a
    # cell |whiten[k] (f - mean[k])|^2 + offset[k] per group; the group's distance is the least.
    mu = np.zeros((1, n_feat), np.float32) if default_mean is None else default_mean.astype(np.float32).reshape(-1, n_feat)
    wt = (np.eye(n_feat, dtype=np.float32)[None] if default_whiten is None
          else default_whiten.astype(np.float32).reshape(-1, n_feat, n_feat))
    sc = np.ones(2, np.float32) if default_scale is None else default_scale.astype(np.float32)
    off = np.zeros((len(mu), 2), np.float32) if default_offset is None else default_offset.astype(np.float32).reshape(-1, 2)
    g.input.extend([helper.make_tensor_value_info(MEAN, TensorProto.FLOAT, ["components", n_feat]),
                    helper.make_tensor_value_info(WHITEN, TensorProto.FLOAT, ["components", n_feat, n_feat]),
                    helper.make_tensor_value_info(SCALE, TensorProto.FLOAT, [2]),
                    helper.make_tensor_value_info(OFFSET, TensorProto.FLOAT, ["components", 2])])
    const(MEAN, mu)  # an initializer named like an input is the input's default
    const(WHITEN, wt)
    const(SCALE, sc)
    const(OFFSET, off)
    # z_k = whiten[k] f - whiten[k] mean[k]: one 1x1 convolution to K*D channels, bias included.
    weight = node("Reshape", [WHITEN, const("nh/shape_w", np.array([-1, n_feat, 1, 1], np.int64))])
    bias = node("Neg", [node("Reshape", [node("MatMul", [WHITEN, node("Unsqueeze", [MEAN, const("nh/ax_last", np.array([-1], np.int64))])]),
                                         const("nh/flat", np.array([-1], np.int64))])])
    z = node("Conv", [feats, weight, bias])
    # [1, K*D, h, w] -> [K, D, h, w]: the components become the batch, summed per group, least kept.
    z2 = node("Reshape", [node("Mul", [z, z]), const("nh/shape_k", np.array([-1, n_feat, 0, 0], np.int64))])
    per_k = node("Add", [node("Conv", [z2, const("nh/groups", groups)]),
                         node("Reshape", [OFFSET, const("nh/shape_o", np.array([0, 0, 1, 1], np.int64))])])
    # Two distances, the network's features and the hand-made ones, each scaled by what it
    # reaches on good parts, then the larger: a colour shift that is far out in 2 of 42
    # dimensions must not drown in the other 40.
    d = node("Sqrt", [node("ReduceMin", [per_k], axes=[0], keepdims=1)], [GROUPS])
    scaled = node("Div", [d, node("Reshape", [SCALE, const("nh/shape_s", np.array([1, 2, 1, 1], np.int64))])])
    worst = node("ReduceMax", [scaled], axes=[1], keepdims=1)
    k = _gauss(1.5)
    r = k.shape[0] // 2
    pads = const("nh/pads_d", np.array([0, 0, r, r, 0, 0, r, r], np.int64))
    node("Conv", [node("Pad", [worst, pads], mode="reflect"), const("nh/gauss_d", k[None, None])], [DISTANCE])

    g.node.extend(nodes)
    g.initializer.extend(inits)
    g.output.extend([helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT, [1, n_feat, "map_height", "map_width"]),
                     helper.make_tensor_value_info(GROUPS, TensorProto.FLOAT, [1, 2, "map_height", "map_width"]),
                     helper.make_tensor_value_info(DISTANCE, TensorProto.FLOAT, [1, 1, "map_height", "map_width"])])
    onnx.checker.check_model(m)
    return m


def _channels(model, tensor: str) -> int:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    for vi in inferred.graph.value_info:
        if vi.name == tensor:
            return vi.type.tensor_type.shape.dim[1].dim_value
    raise ValueError(f"cannot tell the channel count of {tensor}")


def generic_statistics(model_bytes: bytes, groups: list[int], frames: int, seed: int):
    """Mean and whitening of the features over good parts of the training surfaces: the default
    a product without its own calibration gets."""
    import cv2
    import onnxruntime as ort

    from inspector.demo.line import ROI, TRAIN_SURFACES, load_surface, render_part
    from inspector.prefilter.normal import NormalFit

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # the statistics are inputs with defaults on purpose
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    tex = {s: load_surface(s) for s in TRAIN_SURFACES}
    xs = []
    for i in range(frames):
        s = TRAIN_SURFACES[i % len(TRAIN_SURFACES)]
        frame = render_part(rng, {s: tex[s]}, [])[0]
        x = frame[ROI[1]:ROI[3], ROI[0]:ROI[2]]
        x = x[: x.shape[0] // STRIDE * STRIDE, : x.shape[1] // STRIDE * STRIDE]
        xs.append(cv2.copyMakeBorder(x, *[CONTEXT] * 4, cv2.BORDER_REFLECT)[None])
    c = CONTEXT // STRIDE

    def run(output, x, feeds=None):  # as the detector does: mirrored context in, cropped off
        return sess.run([output], {"image": x, **(feeds or {})})[0][..., c:-c, c:-c]

    fit = NormalFit()
    for x in xs:
        fit.add(run(FEATURES, x))
    stats = fit.result(groups)
    names = {"mean": MEAN, "whiten": WHITEN, "scale": SCALE, "offset": OFFSET}
    return stats.scaled(run(GROUPS, x, stats.feeds(names)) for x in xs)


def main() -> int:
    import onnx

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "default-anomaly.onnx")
    ap.add_argument("--manifest", type=Path, default=ROOT / "models" / "manifest.json")
    ap.add_argument("--frames", type=int, default=110, help="good training-surface frames for the defaults")
    ap.add_argument("--seed", type=int, default=20261125)
    a = ap.parse_args()

    base = onnx.load(str(a.model))
    if any(o.name == FEATURES for o in base.graph.output):  # re-run: start from the trained part
        base = strip_head(base)
    probe = add_head(base)
    n_net = _channels(base, next(n for n in base.graph.node if n.op_type == "Concat").input[0])
    groups = [n_net, HAND]
    stats = generic_statistics(probe.SerializeToString(), groups, a.frames, a.seed)
    final = add_head(base, stats.mean, stats.whiten, stats.scale, stats.offset)
    tmp = a.model.with_suffix(".tmp")
    onnx.save(final, str(tmp))
    tmp.replace(a.model)
    digest = hashlib.sha256(a.model.read_bytes()).hexdigest()
    man = json.loads(a.manifest.read_text())
    for e in man["models"]:
        if e["file"] == a.model.name:
            e["sha256"] = digest
            e["input"]["context_pad"] = CONTEXT
            e["normal_statistics"] = {
                "features": FEATURES, "groups_output": GROUPS, "distance": DISTANCE,
                "mean": MEAN, "whiten": WHITEN, "scale": SCALE, "offset": OFFSET, "groups": groups,
                "meaning": "distance_map: the larger of the network-feature and hand-feature "
                           "distances from the product's good parts (the least over K Gaussian "
                           "components of Mahalanobis distance plus the component's offset), each "
                           "divided by what 1 in 1000 good cells reaches: ~1 at the edge of normal",
                "defaults": {"script": "models/normal_head.py", "frames": a.frames, "seed": a.seed,
                             "surfaces": "train_surfaces"}}
    a.manifest.write_text(json.dumps(man, indent=2) + "\n")
    print(f"{a.model}: features {groups}, default scale {stats.scale.round(3).tolist()}, sha256 {digest}")
    return 0


def strip_head(model):
    """The trained network alone (what train_default_detector.py exported)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    keep = [n for n in g.node if not any(o.startswith("nh/") or o in (FEATURES, GROUPS, DISTANCE) for o in n.output)]
    del g.node[:]
    g.node.extend(keep)
    inits = [i for i in g.initializer if not (i.name.startswith("nh/") or i.name in (MEAN, WHITEN, SCALE, OFFSET))]
    del g.initializer[:]
    g.initializer.extend(inits)
    ins = [i for i in g.input if i.name not in (MEAN, WHITEN, SCALE, OFFSET)]
    del g.input[:]
    g.input.extend(ins)
    outs = [o for o in g.output if o.name not in (FEATURES, GROUPS, DISTANCE)]
    del g.output[:]
    g.output.extend(outs)
    return m


if __name__ == "__main__":
    raise SystemExit(main())
