"""Tiny random-weight GGUF text model + vision projector (mmproj) for tests and `--test-vlm`.

The pair loads in llama.cpp through the same `Llama` + `MTMDChatHandler` code path a real VLM uses,
so the whole reasoner (image encoding, schema-constrained decoding, validation, coordinate mapping)
runs for real. Its weights are random: what it says means nothing, which is exactly what validation
must survive. Nothing is downloaded; both files are written with the `gguf` package in well under a
second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

TEST_MODEL_ID = "inspector-test-vlm (random weights - its words mean nothing)"

# A llama-style chat template: the mtmd handler requires one in the text model's metadata.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True)
class TestModelFiles:
    model: Path
    mmproj: Path


def _rand(rng: np.random.Generator, *shape: int, scale: float = 0.05) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def write_text_model(path: Path, *, n_embd: int = 64, n_layer: int = 2, n_head: int = 4,
                     n_ff: int = 128, n_ctx: int = 4096, seed: int = 0) -> Path:
    import gguf

    rng = np.random.default_rng(seed)
    # Byte-fallback vocab: 3 specials + all 256 bytes, so any text (and any JSON) is expressible.
    tokens = [b"<unk>", b"<s>", b"</s>"] + [f"<0x{b:02X}>".encode() for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256
    n_vocab = len(tokens)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("inspector-test-vlm")
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * n_vocab)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)

    w.add_tensor("token_embd.weight", _rand(rng, n_vocab, n_embd, scale=1.0))
    w.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    w.add_tensor("output.weight", _rand(rng, n_vocab, n_embd, scale=0.5))
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(n_embd, np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(p + name + ".weight", _rand(rng, n_embd, n_embd))
        w.add_tensor(p + "ffn_norm.weight", np.ones(n_embd, np.float32))
        w.add_tensor(p + "ffn_gate.weight", _rand(rng, n_ff, n_embd))
        w.add_tensor(p + "ffn_up.weight", _rand(rng, n_ff, n_embd))
        w.add_tensor(p + "ffn_down.weight", _rand(rng, n_embd, n_ff))
    _finish(w)
    return path


def write_mmproj(path: Path, *, text_embd: int = 64, image_size: int = 32, patch_size: int = 8,
                 n_embd: int = 32, n_ff: int = 64, n_layer: int = 1, n_head: int = 4,
                 seed: int = 1) -> Path:
    """LLaVA-1.5 style MLP projector; mm.2's output width must equal the text model's n_embd."""
    import gguf

    rng = np.random.default_rng(seed)
    n_pos = (image_size // patch_size) ** 2
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_name("inspector-test-mmproj")
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_string("clip.projector_type", "mlp")
    w.add_bool("clip.use_gelu", True)
    v = "clip.vision."
    w.add_uint32(v + "image_size", image_size)
    w.add_uint32(v + "patch_size", patch_size)
    w.add_uint32(v + "embedding_length", n_embd)
    w.add_uint32(v + "feed_forward_length", n_ff)
    w.add_uint32(v + "block_count", n_layer)
    w.add_uint32(v + "projection_dim", text_embd)
    w.add_uint32(v + "attention.head_count", n_head)
    w.add_float32(v + "attention.layer_norm_epsilon", 1e-6)
    w.add_array(v + "image_mean", [0.5, 0.5, 0.5])
    w.add_array(v + "image_std", [0.5, 0.5, 0.5])

    w.add_tensor("v.patch_embd.weight", _rand(rng, n_embd, 3, patch_size, patch_size))
    w.add_tensor("v.patch_embd.bias", _rand(rng, n_embd))
    w.add_tensor("v.position_embd.weight", _rand(rng, n_pos, n_embd))
    for i in range(n_layer):
        p = f"v.blk.{i}."
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            w.add_tensor(p + name + ".weight", _rand(rng, n_embd, n_embd))
            w.add_tensor(p + name + ".bias", _rand(rng, n_embd))
        for name in ("ln1", "ln2"):
            w.add_tensor(p + name + ".weight", np.ones(n_embd, np.float32))
            w.add_tensor(p + name + ".bias", np.zeros(n_embd, np.float32))
        w.add_tensor(p + "ffn_up.weight", _rand(rng, n_ff, n_embd))
        w.add_tensor(p + "ffn_up.bias", _rand(rng, n_ff))
        w.add_tensor(p + "ffn_down.weight", _rand(rng, n_embd, n_ff))
        w.add_tensor(p + "ffn_down.bias", _rand(rng, n_embd))
    w.add_tensor("mm.0.weight", _rand(rng, text_embd, n_embd))
    w.add_tensor("mm.0.bias", _rand(rng, text_embd))
    w.add_tensor("mm.2.weight", _rand(rng, text_embd, text_embd))
    w.add_tensor("mm.2.bias", _rand(rng, text_embd))
    _finish(w)
    return path


def _finish(w) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def ensure_test_model(directory: Path, seed: int = 0) -> TestModelFiles:
    """Write the pair into `directory` unless it is already there (written atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = TestModelFiles(directory / "test-vlm.gguf", directory / "test-vlm-mmproj.gguf")
    for target, writer in ((files.model, write_text_model), (files.mmproj, write_mmproj)):
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            writer(tmp, seed=seed if writer is write_text_model else seed + 1)
            tmp.replace(target)
    return files
