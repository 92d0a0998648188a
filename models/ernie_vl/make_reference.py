"""Regenerates tests/fixtures/ernie_vl_tiny_reference.npz: what transformers computes for the tiny
ERNIE-4.5-VL checkpoint (inspector.reasoner.ernie_vl.tiny, seed 0):
- `logits`: a text-only prompt (`ids`);
- `mixed_logits`: a text prompt holding image start/end tokens (`mixed_ids`), which go to the
  vision experts;
- `embd_a`, `embd_b`: the image features (vision tower + resampler) of two non-square images
  (`image_a` 56x84, `image_b` 112x168, sizes the processor keeps, so no resize differs);
- `mm_logits`: text, <|IMAGE_START|>, image_a's tokens, <|IMAGE_END|>, text (`mm_pre` + image +
  `mm_post`), every position; `mm_greedy`: 20 tokens greedy decoding continues it with.

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
from PIL import Image
from transformers import Ernie4_5_VLMoeForConditionalGeneration, Ernie4_5_VLMoeImageProcessorPil

ROOT = Path(__file__).resolve().parents[2]
IDS = [5, 17, 300, 42, 7, 99, 250]
START, END, IMG = 500, 501, 502
MIXED_IDS = [5, 17, START, 42, 7, END, 99, 250]
MM_PRE, MM_POST = [5, 17, 300, START], [END, 42, 7, 99]


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
        ckpt = tiny.make_tiny(Path(d), seed=0, tokenizer=False)
        sha = hashlib.sha256((ckpt / "model.safetensors").read_bytes()).hexdigest()
        model = Ernie4_5_VLMoeForConditionalGeneration.from_pretrained(str(ckpt)).eval()
        proc = Ernie4_5_VLMoeImageProcessorPil(size={"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 64})
        rng = np.random.default_rng(1)
        image_a = rng.integers(0, 256, (56, 84, 3), dtype=np.uint8)
        image_b = rng.integers(0, 256, (112, 168, 3), dtype=np.uint8)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([IDS])).logits[0].numpy().astype(np.float32)
            moe = torch.tensor([[int(i in (START, END)) for i in MIXED_IDS]])
            mixed = model(input_ids=torch.tensor([MIXED_IDS]), moe_mm_token_type_ids=moe).logits[0].numpy()
            embd = {}
            for name, img in (("a", image_a), ("b", image_b)):
                px = proc(images=[Image.fromarray(img)], return_tensors="pt")
                feats = model.get_image_features(px["pixel_values"], px["image_grid_thw"]).pooler_output[0]
                embd[name] = (feats.numpy().astype(np.float32), px)
            px = embd["a"][1]
            n_img = embd["a"][0].shape[0]
            ids = MM_PRE + [IMG] * n_img + MM_POST
            mm_types = torch.tensor([[int(i == IMG) for i in ids]])
            moe_types = torch.tensor([[int(i in (IMG, START, END)) for i in ids]])
            inputs = dict(input_ids=torch.tensor([ids]), pixel_values=px["pixel_values"],
                          image_grid_thw=px["image_grid_thw"], mm_token_type_ids=mm_types,
                          moe_mm_token_type_ids=moe_types)
            mm_logits = model(**inputs).logits[0].numpy().astype(np.float32)
            gen = model.generate(**inputs, max_new_tokens=20, do_sample=False)
            greedy = gen[0, len(ids):].numpy()
    out = ROOT / "tests" / "fixtures" / "ernie_vl_tiny_reference.npz"
    np.savez_compressed(out, ids=np.array(IDS), logits=logits, weights_sha256=np.array(sha),
                        mixed_ids=np.array(MIXED_IDS), mixed_logits=mixed.astype(np.float32),
                        image_a=image_a, embd_a=embd["a"][0], image_b=image_b, embd_b=embd["b"][0],
                        mm_pre=np.array(MM_PRE), mm_post=np.array(MM_POST), mm_logits=mm_logits,
                        mm_greedy=greedy, transformers=np.array(__import__("transformers").__version__))
    print(f"wrote {out}: logits {logits.shape}, image tokens {n_img}, greedy {greedy.tolist()}, "
          f"checkpoint sha256 {sha[:16]}")


if __name__ == "__main__":
    main()
