"""Regenerates tests/fixtures/ernie_vl_tiny_reference.npz: the logits transformers computes for the
tiny ERNIE-4.5-VL checkpoint (inspector.reasoner.ernie_vl.tiny, seed 0) on a text-only prompt.

Needs torch and transformers, which the inspector does not: run it in a venv of its own,
    python -m venv /tmp/ref && /tmp/ref/bin/pip install torch==2.13.0 transformers==5.23.0 numpy
    PYTHONPATH=. /tmp/ref/bin/python models/ernie_vl/make_reference.py
(the tiny checkpoint itself is made with numpy, here by loading tiny.py as a plain file, so that
this venv needs none of the inspector's dependencies). The tests check the checkpoint's sha256
first: a numpy that draws other numbers says so instead of failing on the logits.
"""

import hashlib
import importlib.util
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
from transformers import Ernie4_5_VLMoeForConditionalGeneration

ROOT = Path(__file__).resolve().parents[2]
IDS = [5, 17, 300, 42, 7, 99, 250]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    # tiny.py and safetensors_io.py need only numpy and the package's error base class.
    errors = types.ModuleType("inspector.errors")
    errors.InspectorError = type("InspectorError", (Exception,), {})
    for name in ("inspector", "inspector.reasoner", "inspector.reasoner.ernie_vl"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["inspector.errors"] = errors
    pkg = ROOT / "inspector" / "reasoner" / "ernie_vl"
    sys.modules["inspector.reasoner.ernie_vl"].safetensors_io = _load(
        "inspector.reasoner.ernie_vl.safetensors_io", pkg / "safetensors_io.py")
    tiny = _load("inspector.reasoner.ernie_vl.tiny", pkg / "tiny.py")
    with tempfile.TemporaryDirectory() as d:
        ckpt = tiny.make_tiny(Path(d), seed=0)
        sha = hashlib.sha256((ckpt / "model.safetensors").read_bytes()).hexdigest()
        model = Ernie4_5_VLMoeForConditionalGeneration.from_pretrained(str(ckpt)).eval()
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([IDS])).logits[0].numpy().astype(np.float32)
    out = ROOT / "tests" / "fixtures" / "ernie_vl_tiny_reference.npz"
    np.savez_compressed(out, ids=np.array(IDS), logits=logits, weights_sha256=np.array(sha),
                        transformers=np.array(__import__("transformers").__version__))
    print(f"wrote {out}: logits {logits.shape}, checkpoint sha256 {sha[:16]}")


if __name__ == "__main__":
    main()
