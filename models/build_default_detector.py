"""Build models/default-anomaly.onnx and its manifest entry.

First-version pre-filter (issue 2): a classical anomaly map written as an ONNX graph, not a trained
network. At half resolution, lightly smoothed, each colour channel is compared with the part's own
colour distribution over the whole inspected region: how many standard deviations a pixel lies from
the region's mean, maximum over channels. Scratches, cracks, holes, stains and chips are colours the
surface itself does not have; natural dark or bright spots of a busy texture are too, which is why
this version over-flags (measured in the README). The trained detector of issue 4 replaces it
behind the same `anomaly_map` contract.

Run: python models/build_default_detector.py   (needs the `onnx` package: pip install -e '.[build-models]')
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
MODEL = HERE / "default-anomaly.onnx"
MANIFEST = HERE / "manifest.json"

SMOOTH_K = 3  # half-resolution pixels: suppresses sensor noise, keeps 2 px scratches
STD_FLOOR = 0.03  # ~8 grey levels: flat surfaces must not turn sensor noise into anomalies


def _box(nodes, inits, name: str, x: str, k: int, channels: int) -> str:
    """Separable k x k mean filter with reflected borders (same size out)."""
    r = k // 2
    pads = numpy_helper.from_array(np.array([0, 0, r, r, 0, 0, r, r], np.int64), f"{name}_pads")
    wh = numpy_helper.from_array(np.full((channels, 1, 1, k), 1.0 / k, np.float32), f"{name}_wh")
    wv = numpy_helper.from_array(np.full((channels, 1, k, 1), 1.0 / k, np.float32), f"{name}_wv")
    inits += [pads, wh, wv]
    nodes.append(helper.make_node("Pad", [x, pads.name], [f"{name}_p"], mode="reflect"))
    nodes.append(helper.make_node("Conv", [f"{name}_p", wh.name], [f"{name}_h"], group=channels))
    nodes.append(helper.make_node("Conv", [f"{name}_h", wv.name], [name], group=channels))
    return name


def build() -> onnx.ModelProto:
    nodes: list = []
    inits: list = []
    floor = numpy_helper.from_array(np.array(STD_FLOOR**2, np.float32), "var_floor")
    inits.append(floor)
    nodes.append(helper.make_node("AveragePool", ["image"], ["half"], kernel_shape=[2, 2], strides=[2, 2]))
    smooth = _box(nodes, inits, "smooth", "half", SMOOTH_K, 3)
    nodes.append(helper.make_node("ReduceMean", [smooth], ["gmean"], axes=[2, 3], keepdims=1))
    nodes.append(helper.make_node("Sub", [smooth, "gmean"], ["dev"]))
    nodes.append(helper.make_node("Mul", ["dev", "dev"], ["dev2"]))
    nodes.append(helper.make_node("ReduceMean", ["dev2"], ["gvar"], axes=[2, 3], keepdims=1))
    nodes.append(helper.make_node("Max", ["gvar", floor.name], ["var_f"]))
    nodes.append(helper.make_node("Sqrt", ["var_f"], ["std"]))
    nodes.append(helper.make_node("Abs", ["dev"], ["adev"]))
    nodes.append(helper.make_node("Div", ["adev", "std"], ["z"]))
    nodes.append(helper.make_node("ReduceMax", ["z"], ["anomaly_map"], keepdims=1, axes=[1]))
    graph = helper.make_graph(
        nodes, "default-anomaly",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, [1, 1, "h", "w"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="inspector/models/build_default_detector.py")
    model.ir_version = 8
    model.doc_string = __doc__.strip().splitlines()[0]
    onnx.checker.check_model(model)
    return model


def main() -> None:
    model = build()
    data = model.SerializeToString()
    MODEL.write_bytes(data)
    manifest = {
        "models": [{
            "name": "default-anomaly",
            "file": MODEL.name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "kind": "anomaly_map",
            "input": {"name": "image", "layout": "NCHW", "channels": "BGR", "scale": "0..1",
                      "size": "any (even) height x width; the camera ROI is fed at full resolution"},
            "output": {"name": "anomaly_map", "stride": 2,
                       "meaning": "z-score against the region's colour distribution, most deviant channel"},
            "labels": ["anomaly"],
            "default_threshold": 4.0,
            "version": "0.1 (classical, untrained; replaced by the trained detector of issue 4)",
            "recipe": {"statistic": "global mean/std per channel over the inspected region",
                       "std_floor": STD_FLOOR, "smoothing": SMOOTH_K},
        }]
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {MODEL} ({len(data)} bytes) sha256={manifest['models'][0]['sha256']}")


if __name__ == "__main__":
    main()
