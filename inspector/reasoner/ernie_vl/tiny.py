"""A tiny random-weight ERNIE-4.5-VL checkpoint, made with numpy alone, in the layout the real
checkpoints have on disk (transformers' "original format": experts one by one, text experts then
vision experts in one list, routers stored [hidden, experts], both routers' correction biases in
one [2, experts] tensor, the vision tower as `vision_model`, the resampler's layers numbered).

Every structural feature of the 28B-A3B model is kept, scaled down: a dense first layer and sparse
layers with both expert sets and a shared expert, 3-D rope sections, a two-block ViT with the
spatial and temporal resampler. Sizes are multiples of 256 where llama.cpp's K-quants need them.
The same seed always gives the same bytes, so the tests can make it where they run and compare
against logits computed once with transformers (models/ernie_vl/make_reference.py).

The tokenizer is a small SentencePiece model trained here on a few sentences (byte fallback, so any
text encodes) with ERNIE's special tokens added at the ids config.json names, and ERNIE's chat
layout ("User: ...\nAssistant: ") as its template.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from inspector.reasoner.ernie_vl import safetensors_io

TEXT = {"vocab_size": 512, "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 3,
        "num_attention_heads": 2, "num_key_value_heads": 1, "moe_intermediate_size": [256, 256],
        "moe_k": 2, "moe_num_experts": 8, "moe_num_shared_experts": 1, "max_position_embeddings": 4096,
        "mlp_layer_types": ["dense", "sparse", "sparse"], "rms_norm_eps": 1e-05, "hidden_act": "silu",
        "use_bias": False, "tie_word_embeddings": True, "model_type": "ernie4_5_vl_moe_text",
        "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0, "mrope_section": [22, 22, 20]}}
VISION = {"depth": 2, "hidden_size": 64, "num_heads": 2, "intermediate_size": 128, "patch_size": 14,
          "spatial_merge_size": 2, "temporal_merge_size": 2, "in_channels": 3, "hidden_act": "quick_gelu",
          "rms_norm_eps": 1e-06, "model_type": "ernie4_5_vl_moe_vision",
          "rope_parameters": {"rope_type": "axial", "rope_theta": 10000.0}}
# ERNIE's added tokens: the sentence markers, then the image/video ones at the ids below
ADDED = {496: "<|begin_of_sentence|>", 497: "<|end_of_sentence|>", 498: "<think>", 499: "</think>",
         500: "<|IMAGE_START|>", 501: "<|IMAGE_END|>", 502: "<|IMAGE_PLACEHOLDER|>",
         503: "<|VIDEO_START|>", 504: "<|VIDEO_END|>", 505: "<|VIDEO_PLACEHOLDER|>"}
# ERNIE-4.5's conversation layout; images come as mtmd's media marker, which mtmd wraps in
# <|IMAGE_START|> ... <|IMAGE_END|> itself
CHAT_TEMPLATE = (
    "{{- '<|begin_of_sentence|>' -}}"
    "{%- for m in messages -%}"
    "{%- if m['content'] is string -%}{%- set text = m['content'] -%}"
    "{%- else -%}{%- set text = namespace(v='') -%}"
    "{%- for part in m['content'] -%}{%- if part['type'] == 'text' -%}{%- set text.v = text.v + part['text'] -%}"
    "{%- endif -%}{%- endfor -%}{%- set text = text.v -%}{%- endif -%}"
    "{%- if m['role'] == 'system' -%}{{- text + '\n' -}}"
    "{%- elif m['role'] == 'user' -%}{{- 'User: ' + text + '\n' -}}"
    "{%- else -%}{{- 'Assistant: ' + text + '<|end_of_sentence|>' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'Assistant: ' -}}{%- endif -%}")
CORPUS = ("the part is good", "a scratch on the surface", "a dent near the edge", "no defect found",
          "verdict defect box label reason confidence", "crack chip stain burr missing", "0 1 2 3 4 5 6 7 8 9",
          "look at the image and answer in json", "User: Assistant: Picture")
TOKENS = {"image_start_token_id": 500, "image_end_token_id": 501, "image_token_id": 502,
          "video_start_token_id": 503, "video_end_token_id": 504, "video_token_id": 505}


def config() -> dict:
    return {"architectures": ["Ernie4_5_VLMoeForConditionalGeneration"], "model_type": "ernie4_5_vl_moe",
            "dtype": "float32", "tie_word_embeddings": True, "text_config": TEXT, "vision_config": VISION,
            **TOKENS}


def weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t, v = TEXT, VISION
    h, heads, kv = t["hidden_size"], t["num_attention_heads"], t["num_key_value_heads"]
    hd = h // heads
    n_exp, (i_text, i_vis) = t["moe_num_experts"], t["moe_intermediate_size"]
    i_shared = i_text * t["moe_num_shared_experts"]

    def lin(out_f, in_f):
        return rng.normal(0.0, 0.02, (out_f, in_f)).astype(np.float32)

    def norm(n):  # not all ones: a norm the converter drops or misplaces must show in the logits
        return (1.0 + rng.normal(0.0, 0.1, n)).astype(np.float32)

    def bias(n):
        return rng.normal(0.0, 0.02, n).astype(np.float32)

    w = {"model.embed_tokens.weight": lin(t["vocab_size"], h), "model.norm.weight": norm(h)}
    for i, kind in enumerate(t["mlp_layer_types"]):
        p = f"model.layers.{i}."
        w |= {p + "input_layernorm.weight": norm(h), p + "post_attention_layernorm.weight": norm(h),
              p + "self_attn.q_proj.weight": lin(heads * hd, h), p + "self_attn.k_proj.weight": lin(kv * hd, h),
              p + "self_attn.v_proj.weight": lin(kv * hd, h), p + "self_attn.o_proj.weight": lin(h, heads * hd)}
        if kind == "dense":
            i_d = t["intermediate_size"]
            w |= {p + "mlp.gate_proj.weight": lin(i_d, h), p + "mlp.up_proj.weight": lin(i_d, h),
                  p + "mlp.down_proj.weight": lin(h, i_d)}
            continue
        # Routers [hidden, experts]; the correction bias large enough to change which experts win.
        w |= {p + "mlp.gate.weight": lin(h, n_exp) * 10, p + "mlp.gate.weight_1": lin(h, n_exp) * 10,
              p + "mlp.moe_statics.e_score_correction_bias": rng.normal(0.0, 0.05, (2, n_exp)).astype(np.float32)}
        for e in range(2 * n_exp):  # text experts first, then the vision experts
            inter = i_text if e < n_exp else i_vis
            q = f"{p}mlp.experts.{e}."
            w |= {q + "gate_proj.weight": lin(inter, h), q + "up_proj.weight": lin(inter, h),
                  q + "down_proj.weight": lin(h, inter)}
        w |= {p + "mlp.shared_experts.gate_proj.weight": lin(i_shared, h),
              p + "mlp.shared_experts.up_proj.weight": lin(i_shared, h),
              p + "mlp.shared_experts.down_proj.weight": lin(h, i_shared)}
    d, patch = v["hidden_size"], v["patch_size"]
    w["model.vision_model.patch_embed.proj.weight"] = lin(d, v["in_channels"] * patch * patch)
    for b in range(v["depth"]):
        p = f"model.vision_model.blocks.{b}."
        w |= {p + "norm1.weight": norm(d), p + "norm1.bias": bias(d), p + "norm2.weight": norm(d),
              p + "norm2.bias": bias(d), p + "attn.qkv.weight": lin(3 * d, d), p + "attn.qkv.bias": bias(3 * d),
              p + "attn.proj.weight": lin(d, d), p + "attn.proj.bias": bias(d),
              p + "mlp.fc1.weight": lin(v["intermediate_size"], d), p + "mlp.fc1.bias": bias(v["intermediate_size"]),
              p + "mlp.fc2.weight": lin(d, v["intermediate_size"]), p + "mlp.fc2.bias": bias(d)}
    w |= {"model.vision_model.ln.weight": norm(d), "model.vision_model.ln.bias": bias(d)}
    m = d * v["spatial_merge_size"] ** 2  # the 2x2 merge's width
    r = "model.resampler_model."
    for name, fan_in in (("spatial_linear", m), ("temporal_linear", m * v["temporal_merge_size"])):
        w |= {f"{r}{name}.0.weight": lin(m, fan_in), f"{r}{name}.0.bias": bias(m),
              f"{r}{name}.2.weight": lin(m, m), f"{r}{name}.2.bias": bias(m),
              f"{r}{name}.3.weight": norm(m), f"{r}{name}.3.bias": bias(m)}
    w |= {r + "mlp.weight": lin(h, m), r + "mlp.bias": bias(h), r + "after_norm.weight": norm(h)}
    return w


def tokenizer_files(out: Path) -> None:
    """tokenizer.model, tokenizer_config.json and preprocessor_config.json, as a checkpoint has them."""
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 20), model_writer=model, vocab_size=300, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, hard_vocab_limit=False, unk_id=0, bos_id=1, eos_id=2,
        pad_id=-1, num_threads=1, minloglevel=2)
    (out / "tokenizer.model").write_bytes(model.getvalue())
    decoder = {str(i): {"content": text, "special": True} for i, text in ADDED.items()}
    (out / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": False,
        "added_tokens_decoder": decoder, "chat_template": CHAT_TEMPLATE}, indent=2))
    (out / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "Ernie4_5_VLMoeImageProcessor", "min_pixels": 56 * 56, "max_pixels": 28 * 28 * 64,
        "patch_size": 14, "merge_size": 2, "temporal_patch_size": 1,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}))


def make_tiny(out: Path, seed: int = 0, tokenizer: bool = True) -> Path:
    """Writes config.json and model.safetensors (and the tokenizer's files) into `out`; returns `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config(), indent=2))
    safetensors_io.save(out / "model.safetensors", weights(seed))
    if tokenizer:
        tokenizer_files(out)
    return out
