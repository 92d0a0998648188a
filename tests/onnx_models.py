"""Small ONNX models built at test time with onnx.helper, in the formats the plugins accept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(graph, path: Path, metadata: dict | None = None) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


def yolo_head(path: Path, preds: np.ndarray, size: int = 64, names: list[str] | None = None) -> Path:
    """An Ultralytics-format detector whose output [1, 4+nc, N] is `preds` (cx, cy, w, h in input
    pixels, then class scores), whatever the image: the plugin's decoding, thresholds, NMS and
    letterbox mapping are what is tested. `names` go into the metadata as Ultralytics writes them."""
    preds = preds.astype(np.float32)[None]
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(preds.shape))
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["preds", "z"], ["output0"]),
    ]
    inits = [numpy_helper.from_array(preds, "preds"), numpy_helper.from_array(np.float32(0), "zero")]
    meta = {"names": str(dict(enumerate(names)))} if names else None
    return _save(helper.make_graph(nodes, "yolo", [x], [y], inits), path, meta)


def anomalib_map(path: Path, size: int = 64) -> Path:
    """An anomalib-format model: normalised float RGB [1, 3, S, S] in; `anomaly_map` [1, 1, S, S]
    (the brightest channel, de-normalised back to 0..1) and `pred_score` [1] out."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])
    amap = helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, [1, 1, size, size])
    score = helper.make_tensor_value_info("pred_score", TensorProto.FLOAT, [1])
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
    nodes = [
        helper.make_node("Mul", ["input", "std"], ["a"]),
        helper.make_node("Add", ["a", "mean"], ["raw"]),  # back to 0..1
        helper.make_node("ReduceMax", ["raw"], ["anomaly_map"], axes=[1], keepdims=1),
        helper.make_node("ReduceMax", ["anomaly_map"], ["pred_score"], axes=[1, 2, 3], keepdims=0),
    ]
    inits = [numpy_helper.from_array(mean, "mean"), numpy_helper.from_array(std, "std")]
    return _save(helper.make_graph(nodes, "anomalib", [x], [amap, score], inits), path)


def identity(path: Path, in_shape: list, out_shape: list | None = None) -> Path:
    """A model of the wrong shape for every plugin: one float input passed through."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape or in_shape)
    return _save(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id", [x], [y]), path)
