"""Opening an ONNX model for a detector plugin: file checks, sha256 pin, onnxruntime session."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from inspector.prefilter import ModelError
from inspector.prefilter.manifest import sha256_of


def open_session(path: Path, sha256: str | None = None) -> ort.InferenceSession:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"detector.model: file {path} does not exist")
    if sha256:
        actual = sha256_of(path)
        if actual != sha256:
            raise ModelError(f"detector.model: {path} has sha256 {actual}, but detector.sha256 "
                             f"pins {sha256}")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own untyped errors for corrupt files
        raise ModelError(f"onnxruntime cannot load {path}: {e}") from None


def describe(nodes) -> str:
    return ", ".join(f"{n.name} {n.type.removeprefix('tensor(').rstrip(')')}{list(n.shape)}" for n in nodes)
