"""ERNIE-4.5-VL groundwork (issue 27): our safetensors reader and writer, and the tiny checkpoint the
converter's tests are made from."""

import json
import struct

import numpy as np
import pytest

from inspector.reasoner.ernie_vl import safetensors_io
from inspector.reasoner.ernie_vl.safetensors_io import SafetensorsError
from inspector.reasoner.ernie_vl.tiny import TEXT, make_tiny, weights


def test_bf16_and_f16_are_read_as_the_numbers_they_hold(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, 0.0], np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype(np.uint16)  # exact: these fit in 8 mantissa bits
    f16 = values.astype(np.float16)
    header = {"a": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]},
              "b": {"dtype": "F16", "shape": [4], "data_offsets": [8, 16]}}
    text = json.dumps(header).encode()
    (tmp_path / "m.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + bf16.tobytes() + f16.tobytes())
    got = safetensors_io.load(tmp_path / "m.safetensors")
    assert np.array_equal(got["a"], values.reshape(2, 2)) and got["a"].dtype == np.float32
    assert np.array_equal(got["b"].astype(np.float32), values)


def test_not_a_safetensors_file_is_one_clear_error(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(SafetensorsError, match="not a safetensors file"):
        safetensors_io.load(tmp_path / "x.safetensors")
    (tmp_path / "y.safetensors").write_bytes(struct.pack("<Q", 5) + b"{oops")
    with pytest.raises(SafetensorsError, match="unreadable safetensors header"):
        safetensors_io.load(tmp_path / "y.safetensors")


def test_the_tiny_checkpoint_has_the_real_layout_and_the_same_bytes_for_the_same_seed(tmp_path):
    a = make_tiny(tmp_path / "a", seed=3)
    b = make_tiny(tmp_path / "b", seed=3)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    w = safetensors_io.load(a / "model.safetensors")
    assert {k: v.shape for k, v in w.items()} == {k: v.shape for k, v in weights(3).items()}
    n = TEXT["moe_num_experts"]
    # Sparse layers: both expert sets in one list (text first), routers [hidden, experts], one
    # correction bias per set; the dense first layer has none of it.
    assert w["model.layers.1.mlp.gate.weight"].shape == (TEXT["hidden_size"], n)
    assert w["model.layers.1.mlp.moe_statics.e_score_correction_bias"].shape == (2, n)
    assert f"model.layers.2.mlp.experts.{2 * n - 1}.down_proj.weight" in w
    assert "model.layers.0.mlp.gate_proj.weight" in w and "model.layers.0.mlp.gate.weight" not in w
    cfg = json.loads((a / "config.json").read_text())
    assert cfg["model_type"] == "ernie4_5_vl_moe" and cfg["text_config"]["rope_parameters"]["mrope_section"] == [22, 22, 20]


def test_the_text_model_in_llama_cpp_gives_the_logits_transformers_gives(tmp_path):
    """The converter's reading, transposes and expert stacking, checked end to end: the tiny model's
    text path in llama.cpp's ernie4_5-moe graph against transformers' Ernie4_5_VLMoe logits, computed
    once by models/ernie_vl/make_reference.py (torch is not needed here)."""
    import hashlib
    from pathlib import Path

    from llama_cpp import Llama

    from inspector.reasoner.ernie_vl.convert import text_gguf

    ref = np.load(Path(__file__).parent / "fixtures" / "ernie_vl_tiny_reference.npz")
    ckpt = make_tiny(tmp_path / "ckpt", seed=0)
    sha = hashlib.sha256((ckpt / "model.safetensors").read_bytes()).hexdigest()
    assert sha == str(ref["weights_sha256"]), "this numpy draws other numbers: run models/ernie_vl/make_reference.py"
    llm = Llama(str(text_gguf(ckpt, tmp_path / "text.gguf")), n_ctx=64, logits_all=True, n_threads=2, verbose=False)
    ids = [int(i) for i in ref["ids"]]
    llm.eval(ids)
    ours = np.array(llm.scores[:len(ids)], dtype=np.float32)
    want = ref["logits"]
    # F32 weights, llama.cpp's F16 KV cache: measured 3.7e-4 of the largest logit.
    assert np.abs(ours - want).max() / np.abs(want).max() < 2e-3
    assert (ours.argmax(-1) == want.argmax(-1)).all()


def test_a_checkpoint_of_another_model_is_refused_in_one_line(tmp_path):
    from inspector.reasoner.ernie_vl.convert import ConvertError, text_gguf

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_vl"}))
    with pytest.raises(ConvertError, match="holds a qwen2_vl, not an ERNIE-4.5-VL checkpoint"):
        text_gguf(tmp_path, tmp_path / "x.gguf")
    with pytest.raises(ConvertError, match="no readable config.json"):
        text_gguf(tmp_path / "missing", tmp_path / "x.gguf")
