"""ERNIE-4.5-VL checkpoint -> GGUF (issue 27, first step: the text model).

This first step writes the language model for llama.cpp's existing `ernie4_5-moe` architecture with
the text experts only. For text tokens that is the same computation as the VL model (their rope is
the plain one since t = h = w, and they route to the text experts), so it checks the converter's
reading, transposes and expert stacking against transformers before any llama.cpp patch exists.
The VL architecture (vision experts, 3-D rope) and the mmproj follow the plan in
docs/ernie-vl-in-llama-cpp.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from inspector.errors import InspectorError
from inspector.reasoner.ernie_vl import safetensors_io


class ConvertError(InspectorError):
    pass


def read_checkpoint(hf_dir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    hf_dir = Path(hf_dir)
    try:
        cfg = json.loads((hf_dir / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ConvertError(f"{hf_dir}: no readable config.json ({e})") from None
    if cfg.get("model_type") != "ernie4_5_vl_moe" or "text_config" not in cfg:
        raise ConvertError(f"{hf_dir} holds a {cfg.get('model_type') or 'model without model_type'}, not an "
                           "ERNIE-4.5-VL checkpoint (model_type ernie4_5_vl_moe with a text_config)")
    tensors: dict[str, np.ndarray] = {}
    files = sorted(hf_dir.glob("*.safetensors"))
    if not files:
        raise ConvertError(f"{hf_dir}: no .safetensors files")
    for f in files:
        tensors.update(safetensors_io.load(f))
    return cfg, tensors


def text_gguf(hf_dir: Path, out: Path, vocab: list[str] | None = None) -> Path:
    """The language model, text experts only, as an F32 `ernie4_5-moe` GGUF. `vocab`: the token
    strings (the tiny test checkpoint has no tokenizer; a stand-in vocabulary is made then)."""
    import gguf

    cfg, w = read_checkpoint(hf_dir)
    t = cfg["text_config"]
    h, heads, kv = t["hidden_size"], t["num_attention_heads"], t["num_key_value_heads"]
    kinds = t.get("mlp_layer_types") or ["dense"] + ["sparse"] * (t["num_hidden_layers"] - 1)
    lead = kinds.index("sparse") if "sparse" in kinds else len(kinds)
    if any(k != "sparse" for k in kinds[lead:]):
        raise ConvertError(f"mlp_layer_types {kinds}: only leading dense layers then sparse ones are supported")
    n_exp = t["moe_num_experts"]
    i_text = t["moe_intermediate_size"][0] if isinstance(t["moe_intermediate_size"], list) else t["moe_intermediate_size"]
    rope = t.get("rope_parameters") or {}

    g = gguf.GGUFWriter(str(out), "ernie4_5-moe")
    g.add_name("ERNIE-4.5-VL text model (text experts)")
    g.add_context_length(t.get("max_position_embeddings", 131072))
    g.add_embedding_length(h)
    g.add_block_count(len(kinds))
    g.add_feed_forward_length(t["intermediate_size"])
    g.add_head_count(heads)
    g.add_head_count_kv(kv)
    g.add_rope_dimension_count(h // heads)
    g.add_rope_freq_base(float(rope.get("rope_theta", 500000.0)))
    g.add_layer_norm_rms_eps(float(t.get("rms_norm_eps", 1e-5)))
    g.add_expert_count(n_exp)
    g.add_expert_used_count(t["moe_k"])
    g.add_expert_feed_forward_length(i_text)
    g.add_expert_shared_feed_forward_length(i_text * t.get("moe_num_shared_experts", 0))
    g.add_leading_dense_block_count(lead)
    g.add_interleave_moe_layer_step(1)
    g.add_file_type(gguf.LlamaFileType.ALL_F32)
    _vocab(g, vocab, t["vocab_size"])

    def add(name: str, arr: np.ndarray) -> None:
        g.add_tensor(name, np.ascontiguousarray(arr, dtype=np.float32))

    add("token_embd.weight", w["model.embed_tokens.weight"])
    add("output_norm.weight", w["model.norm.weight"])
    if not cfg.get("tie_word_embeddings", t.get("tie_word_embeddings", True)):
        add("output.weight", w["lm_head.weight"])
    for i, kind in enumerate(kinds):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        add(b + "attn_norm.weight", w[p + "input_layernorm.weight"])
        add(b + "ffn_norm.weight", w[p + "post_attention_layernorm.weight"])
        for ours, theirs in (("attn_q", "q_proj"), ("attn_k", "k_proj"), ("attn_v", "v_proj"), ("attn_output", "o_proj")):
            add(f"{b}{ours}.weight", w[f"{p}self_attn.{theirs}.weight"])
        if kind == "dense":
            for ours, theirs in (("ffn_gate", "gate_proj"), ("ffn_up", "up_proj"), ("ffn_down", "down_proj")):
                add(f"{b}{ours}.weight", w[f"{p}mlp.{theirs}.weight"])
            continue
        # On disk the router is [hidden, experts]: ggml wants ne = {hidden, experts}, numpy [experts, hidden].
        add(b + "ffn_gate_inp.weight", w[p + "mlp.gate.weight"].T)
        add(b + "exp_probs_b.bias", w[p + "mlp.moe_statics.e_score_correction_bias"][0])
        for ours, theirs in (("ffn_gate_exps", "gate_proj"), ("ffn_up_exps", "up_proj"), ("ffn_down_exps", "down_proj")):
            add(f"{b}{ours}.weight", np.stack([w[f"{p}mlp.experts.{e}.{theirs}.weight"] for e in range(n_exp)]))
        if t.get("moe_num_shared_experts", 0):
            for ours, theirs in (("ffn_gate_shexp", "gate_proj"), ("ffn_up_shexp", "up_proj"),
                                 ("ffn_down_shexp", "down_proj")):
                add(f"{b}{ours}.weight", w[f"{p}mlp.shared_experts.{theirs}.weight"])
    g.write_header_to_file()
    g.write_kv_data_to_file()
    g.write_tensors_to_file()
    g.close()
    return Path(out)


def _vocab(g, vocab: list[str] | None, n: int) -> None:
    """A SentencePiece-style vocabulary llama.cpp accepts: the given tokens, or specials, the 256
    byte tokens and fillers up to the model's vocabulary size."""
    import gguf

    if vocab is None:
        vocab = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
        vocab += [f"tok{i}" for i in range(n - len(vocab))]
    if len(vocab) != n:
        raise ConvertError(f"vocabulary of {len(vocab)} tokens for a model of {n}")
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + \
        [gguf.TokenType.BYTE if t.startswith("<0x") else gguf.TokenType.NORMAL for t in vocab[3:]]
    g.add_tokenizer_model("llama")
    g.add_token_list(vocab)
    g.add_token_scores([0.0] * n)
    g.add_token_types(types)
    g.add_unk_token_id(0)
    g.add_bos_token_id(1)
    g.add_eos_token_id(2)
