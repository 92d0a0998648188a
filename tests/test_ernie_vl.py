"""ERNIE-4.5-VL in llama.cpp (issue 27): the tiny random-weight checkpoint, converted by our converter,
run by the llama.cpp our patches make (text model and mtmd projector), against what transformers
5.23.0 computes for the same weights (tests/fixtures/ernie_vl_tiny_reference.npz, made by
models/ernie_vl/make_reference.py; torch is not needed here)."""

import ctypes
import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from inspector.reasoner.ernie_vl import safetensors_io
from inspector.reasoner.ernie_vl.safetensors_io import SafetensorsError
from inspector.reasoner.ernie_vl.convert import ConvertError, convert
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


REF = np.load(Path(__file__).parent / "fixtures" / "ernie_vl_tiny_reference.npz")
N_EMBD = TEXT["hidden_size"]
# F32 weights; llama.cpp keeps the KV cache in F16 and sums in another order: measured 2.4e-4 to
# 3.7e-4 of the largest logit (or feature) on this model
TOL = 2e-3


def rel(ours, want):
    return float(np.abs(ours - want).max() / np.abs(want).max())


def test_the_reference_is_for_these_weights(tmp_path):
    ckpt = make_tiny(tmp_path, seed=0, tokenizer=False)
    sha = hashlib.sha256((ckpt / "model.safetensors").read_bytes()).hexdigest()
    assert sha == str(REF["weights_sha256"]), "this numpy draws other numbers: run models/ernie_vl/make_reference.py"


@pytest.fixture(scope="module")
def llm(tiny_ernie):
    from llama_cpp import Llama

    return Llama(str(tiny_ernie.model), n_ctx=256, logits_all=True, n_threads=2, verbose=False)


@pytest.fixture(scope="module")
def mtmd(llm, tiny_ernie):
    from llama_cpp import mtmd_cpp

    p = mtmd_cpp.mtmd_context_params_default()
    p.use_gpu, p.n_threads, p.print_timings = False, 2, False
    ctx = mtmd_cpp.mtmd_init_from_file(str(tiny_ernie.mmproj).encode(), llm.model, p)
    assert ctx, "mtmd could not load the converted projector"
    yield ctx
    mtmd_cpp.mtmd_free(ctx)


def fresh(llm):
    import llama_cpp

    llm.reset()
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)


def logits_of(llm, ids):
    fresh(llm)
    llm.eval(ids)
    return np.array(llm.scores[:len(ids)], dtype=np.float32)


def image_chunk(ctx, img: np.ndarray):
    """mtmd's chunks for one image alone: text <|IMAGE_START|>, the image, text <|IMAGE_END|>."""
    from llama_cpp import mtmd_cpp

    h, w, _ = img.shape
    data = (ctypes.c_uint8 * img.size).from_buffer(bytearray(img.tobytes()))
    bmp = mtmd_cpp.mtmd_bitmap_init(w, h, data)
    chunks = mtmd_cpp.mtmd_input_chunks_init()
    marker = mtmd_cpp.mtmd_default_marker()
    text = mtmd_cpp.mtmd_input_text()
    text.text, text.text_len, text.add_special, text.parse_special = marker, len(marker), False, True
    assert mtmd_cpp.mtmd_tokenize(ctx, chunks, ctypes.byref(text), (mtmd_cpp.mtmd_bitmap_p_ctypes * 1)(bmp), 1) == 0
    kinds = [mtmd_cpp.mtmd_input_chunk_get_type(mtmd_cpp.mtmd_input_chunks_get(chunks, i))
             for i in range(mtmd_cpp.mtmd_input_chunks_size(chunks))]
    assert kinds == [mtmd_cpp.MTMD_INPUT_CHUNK_TYPE_TEXT, mtmd_cpp.MTMD_INPUT_CHUNK_TYPE_IMAGE,
                     mtmd_cpp.MTMD_INPUT_CHUNK_TYPE_TEXT]
    return chunks, mtmd_cpp.mtmd_input_chunks_get(chunks, 1)


def test_text_logits_match_transformers(llm):
    ours, want = logits_of(llm, [int(i) for i in REF["ids"]]), REF["logits"]
    assert rel(ours, want) < TOL and (ours.argmax(-1) == want.argmax(-1)).all()


def test_image_start_and_end_tokens_take_the_vision_experts(llm, tiny_ernie, tmp_path):
    """transformers routes <|IMAGE_START|> and <|IMAGE_END|> to the vision experts even as text; the
    patched graph computes both expert sets for such a batch and picks per token."""
    ids = [int(i) for i in REF["mixed_ids"]]
    ours, want = logits_of(llm, ids), REF["mixed_logits"]
    assert rel(ours, want) < TOL and (ours.argmax(-1) == want.argmax(-1)).all()
    # The same file told no token goes to the vision experts: the logits leave the reference by far
    # more than the tolerance, so the check above can tell.
    from llama_cpp import Llama

    text_only = _with_kv(tiny_ernie.model, tmp_path / "no-vis-tokens.gguf", "ernie4_5_vl_moe.vision_token_ids", 999)
    other = Llama(str(text_only), n_ctx=64, logits_all=True, n_threads=2, verbose=False)
    try:
        assert rel(logits_of(other, ids), want) > 10 * TOL
    finally:
        other.close()


def _with_kv(src: Path, dst: Path, key: str, value: int) -> Path:
    """A copy of a GGUF with every element of one int array field set to `value` (in place)."""
    import shutil

    import gguf

    shutil.copy(src, dst)
    r = gguf.GGUFReader(str(dst), "r+")
    f = r.get_field(key)
    for i in f.data:
        f.parts[i][0] = value
    r.data.flush()
    del r
    return dst


@pytest.mark.parametrize("name", ["a", "b"])
def test_image_features_match_transformers(mtmd, name):
    """Vision tower + resampler on two non-square images (4x6 and 8x12 merged tokens): a row/column
    swap, a wrong merge order or a missing norm shows here."""
    from llama_cpp import mtmd_cpp

    chunks, chunk = image_chunk(mtmd, REF[f"image_{name}"])
    try:
        assert mtmd_cpp.mtmd_encode_chunk(mtmd, chunk) == 0
        n = mtmd_cpp.mtmd_input_chunk_get_n_tokens(chunk)
        ours = np.ctypeslib.as_array(mtmd_cpp.mtmd_get_output_embd(mtmd), shape=(n * N_EMBD,)).reshape(n, N_EMBD)
        want = REF[f"embd_{name}"]
        assert ours.shape == want.shape and rel(ours, want) < TOL
    finally:
        mtmd_cpp.mtmd_input_chunks_free(chunks)


def test_image_and_text_logits_and_greedy_decoding_match_transformers(llm, mtmd):
    """Text, the image through mtmd (3-D positions, vision experts), text again: the logits after the
    image, and 20 tokens of greedy decoding."""
    import llama_cpp
    from llama_cpp import mtmd_cpp

    fresh(llm)
    pre, post = [int(i) for i in REF["mm_pre"]], [int(i) for i in REF["mm_post"]]
    llm.eval(pre)
    chunks, chunk = image_chunk(mtmd, REF["image_a"])
    try:
        n_past = llama_cpp.llama_pos(0)
        assert mtmd_cpp.mtmd_helper_eval_chunk_single(mtmd, llm._ctx.ctx, chunk, llm.n_tokens, 0, 256, False,
                                                       ctypes.byref(n_past)) == 0
    finally:
        mtmd_cpp.mtmd_input_chunks_free(chunks)
    grid = REF["image_a"].shape[0] // 28, REF["image_a"].shape[1] // 28
    assert n_past.value == len(pre) + max(grid)  # the image advances positions by its longer side
    llm.n_tokens = n_past.value
    start = llm.n_tokens
    llm.eval(post)
    ours = np.array(llm.scores[start:start + len(post)], dtype=np.float32)
    want = REF["mm_logits"][len(pre) + grid[0] * grid[1]:]
    assert rel(ours, want) < TOL and (ours.argmax(-1) == want.argmax(-1)).all()
    tokens = []
    for _ in range(20):
        tokens.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval(tokens[-1:])
    assert tokens == REF["mm_greedy"].tolist()


def test_the_converted_files_carry_what_llama_cpp_needs(tiny_ernie):
    import gguf

    m = gguf.GGUFReader(str(tiny_ernie.model))
    assert m.get_field("general.architecture").contents() == "ernie4_5_vl_moe"
    assert m.get_field("ernie4_5_vl_moe.rope.dimension_sections").contents() == [22, 22, 20, 0]
    assert m.get_field("ernie4_5_vl_moe.vision_token_ids").contents() == list(range(500, 506))
    tokens = m.get_field("tokenizer.ggml.tokens").contents()
    assert tokens[500:502] == ["<|IMAGE_START|>", "<|IMAGE_END|>"] and len(tokens) == TEXT["vocab_size"]
    assert "Assistant: " in m.get_field("tokenizer.chat_template").contents()
    types = {t.name: t.tensor_type.name for t in m.tensors}
    # routers stay F32 (llama.cpp never quantizes them); both expert sets on every sparse layer
    assert types["blk.1.ffn_gate_inp.weight"] == types["blk.1.vis_ffn_gate_inp.weight"] == "F32"
    assert {"blk.2.vis_ffn_up_exps.weight", "blk.2.exp_probs_b_vl.bias", "blk.0.ffn_up.weight"} <= set(types)
    assert "blk.0.vis_ffn_up_exps.weight" not in types  # the dense first layer
    p = gguf.GGUFReader(str(tiny_ernie.mmproj))
    assert p.get_field("clip.projector_type").contents() == "ernie4_5_vl"
    assert p.get_field("clip.vision.projection_dim").contents() == TEXT["hidden_size"]


def test_a_checkpoint_of_another_model_is_refused_in_one_line(tmp_path):
    from inspector.cli import main

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_vl"}))
    with pytest.raises(ConvertError, match="holds a qwen2_vl, not an ERNIE-4.5-VL checkpoint"):
        convert(tmp_path, tmp_path / "out")
    with pytest.raises(ConvertError, match="no readable config.json"):
        convert(tmp_path / "missing", tmp_path / "out")
    assert main(["models", "convert-ernie-vl", str(tmp_path), str(tmp_path / "out")]) == 2


def test_image_token_ids_that_do_not_name_the_image_tokens_are_refused(tmp_path):
    ckpt = make_tiny(tmp_path / "ckpt")
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["image_start_token_id"] = 7
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConvertError, match="image_start_token_id = 7 names .* not '<\\|IMAGE_START\\|>'"):
        convert(ckpt, tmp_path / "out")


def test_an_unknown_quantization_is_refused_before_converting(tmp_path, capsys):
    from inspector.cli import main

    assert main(["models", "convert-ernie-vl", str(tmp_path), str(tmp_path / "out"), "--quant", "Q4_K_M,Q3"]) == 2
    assert "--quant Q3: not one of" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


QUANTS = ("Q8_0", "Q4_K_M", "Q2_K")


@pytest.fixture(scope="module")
def quantized(tiny_ernie, tmp_path_factory):
    """llama.cpp's own quantizer on the converted F32 model (the CLI's --quant does the same)."""
    from inspector.reasoner.ernie_vl.convert import quantize

    d = tmp_path_factory.mktemp("quant")
    return {q: quantize(tiny_ernie.model, d / f"tiny-{q}.gguf", q) for q in QUANTS}


@pytest.mark.parametrize("q", QUANTS)
def test_quantized_models_load_and_generate_about_the_same(quantized, tiny_ernie, q):
    import gguf
    from llama_cpp import Llama, mtmd_cpp

    path = quantized[q]
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(path)).tensors}
    main_type = {"Q8_0": "Q8_0", "Q4_K_M": "Q4_K", "Q2_K": "Q2_K"}[q]
    assert types["blk.1.vis_ffn_up_exps.weight"] == types["blk.1.ffn_up_exps.weight"] == main_type
    assert types["blk.1.vis_ffn_gate_inp.weight"] == "F32"  # routers are never quantized
    assert path.stat().st_size < tiny_ernie.model.stat().st_size / 3
    llm = Llama(str(path), n_ctx=256, logits_all=True, n_threads=2, verbose=False)
    p = mtmd_cpp.mtmd_context_params_default()
    p.use_gpu, p.n_threads, p.print_timings = False, 2, False
    ctx = mtmd_cpp.mtmd_init_from_file(str(tiny_ernie.mmproj).encode(), llm.model, p)
    try:
        ours, want = logits_of(llm, [int(i) for i in REF["ids"]]), REF["logits"]
        cos = (ours * want).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(want, axis=-1)
        # cosine to transformers' logits at the worst position, measured on this model: Q8_0 0.99985,
        # Q4_K_M 0.9968, Q2_K 0.978; the bounds leave room for another CPU's kernels, not for a broken model
        assert cos.min() > {"Q8_0": 0.999, "Q4_K_M": 0.98, "Q2_K": 0.9}[q], cos
        import llama_cpp

        fresh(llm)
        llm.eval([int(i) for i in REF["mm_pre"]])
        chunks, chunk = image_chunk(ctx, REF["image_a"])
        n_past = llama_cpp.llama_pos(0)
        assert mtmd_cpp.mtmd_helper_eval_chunk_single(ctx, llm._ctx.ctx, chunk, llm.n_tokens, 0, 256, False,
                                                       ctypes.byref(n_past)) == 0
        mtmd_cpp.mtmd_input_chunks_free(chunks)
        llm.n_tokens = n_past.value
        tokens = [int(i) for i in REF["mm_post"]]
        llm.eval(tokens)
        for _ in range(20):
            row = np.array(llm.scores[llm.n_tokens - 1])
            assert np.isfinite(row).all()
            tokens.append(int(row.argmax()))
            llm.eval(tokens[-1:])
        assert len(tokens) == len(REF["mm_post"]) + 20 and all(0 <= t < TEXT["vocab_size"] for t in tokens)
    finally:
        mtmd_cpp.mtmd_free(ctx)
        llm.close()


def test_the_command_converts_and_quantizes(tmp_path, capsys, tiny_ernie):
    """`inspector models convert-ernie-vl` end to end: the files it names exist and are what llama.cpp
    and mtmd load (tiny_ernie only asks for the patched build; the checkpoint is made here)."""
    import gguf

    from inspector.cli import main

    ckpt = make_tiny(tmp_path / "ERNIE-tiny", seed=0)
    assert main(["models", "convert-ernie-vl", str(ckpt), str(tmp_path / "out"), "--quant", "q8_0"]) == 0
    out = capsys.readouterr()
    lines = {k: v.strip() for k, v in (line.split(":", 1) for line in out.out.strip().splitlines())}
    assert set(lines) == {"model", "mmproj", "Q8_0"}
    assert Path(lines["model"]).name == "ERNIE-tiny-F16.gguf" and Path(lines["Q8_0"]).name == "ERNIE-tiny-Q8_0.gguf"
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(lines["model"]).tensors}
    assert types["blk.1.ffn_up_exps.weight"] == "F16" and types["blk.1.ffn_norm.weight"] == "F32"
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(lines["Q8_0"]).tensors}
    assert types["blk.1.vis_ffn_down_exps.weight"] == "Q8_0"
    assert "MiB" in out.err  # what it wrote, as it goes
