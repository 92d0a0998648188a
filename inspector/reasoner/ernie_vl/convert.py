"""ERNIE-4.5-VL checkpoint (transformers' Ernie4_5_VLMoeForConditionalGeneration, as on the hub) ->
two GGUF files for the patched llama.cpp (patches/llama.cpp):

- the language model, architecture `ernie4_5_vl_moe`: both expert sets (vision experts as `vis_*`),
  the 3-axis rope sections, and which token ids go to the vision experts when they come as text;
- the vision tower and resampler, an mmproj of projector type `ernie4_5_vl`.

Then, optionally, quantized copies of the language model made by llama.cpp's own quantizer (the
mmproj stays F16: mtmd does not quantize projectors and the vision tower is small).

Tensors are read from the safetensors files one at a time (memory-mapped) and written as they are
read, so the 28B-A3B model converts in the memory one expert stack needs. The tensor names and
layouts are the ones the patches load; docs/ernie-vl-in-llama-cpp.md explains each choice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from inspector.reasoner.ernie_vl import ConvertError, safetensors_io, vocab

log = logging.getLogger(__name__)

ARCH = "ernie4_5_vl_moe"
PROJECTOR = "ernie4_5_vl"
# llama.cpp's file types (llama_ftype) the converter offers; Q8_0 and the K-quants need tensor rows
# of a multiple of 32 and 256 values, which every ERNIE-4.5-VL matrix has.
QUANTS = {"Q8_0": 7, "Q6_K": 18, "Q5_K_M": 17, "Q4_K_M": 15, "Q4_K_S": 14, "Q3_K_M": 12, "Q2_K": 10}
OUTTYPES = ("f16", "f32", "bf16")
# the after-norm RMS epsilon mtmd applies (tools/mtmd/models/ernie4_5_vl.cpp)
PROJECTOR_RMS_EPS = 1e-5


@dataclass
class Converted:
    model: Path
    mmproj: Path
    quantized: dict[str, Path] = field(default_factory=dict)


class Checkpoint:
    """config.json and the tensors of every *.safetensors file in a folder, read lazily."""

    def __init__(self, hf_dir: Path):
        self.dir = Path(hf_dir)
        try:
            self.cfg = json.loads((self.dir / "config.json").read_text())
        except (OSError, ValueError) as e:
            raise ConvertError(f"{self.dir}: no readable config.json ({e})") from None
        kind = self.cfg.get("model_type") if isinstance(self.cfg, dict) else None
        if kind != "ernie4_5_vl_moe" or "text_config" not in self.cfg or "vision_config" not in self.cfg:
            hint = (" (the remote-code config of the first release: convert the transformers-format "
                    "checkpoint instead)" if kind == "ernie4_5_moe_vl" else "")
            raise ConvertError(f"{self.dir} holds a {kind or 'model without model_type'}, not an "
                               f"ERNIE-4.5-VL checkpoint (model_type ernie4_5_vl_moe with text_config "
                               f"and vision_config){hint}")
        self.text, self.vision = self.cfg["text_config"], self.cfg["vision_config"]
        files = sorted(self.dir.glob("*.safetensors"))
        if not files:
            raise ConvertError(f"{self.dir}: no .safetensors files")
        self.tensors: dict[str, safetensors_io.LazyTensor] = {}
        for f in files:
            self.tensors.update(safetensors_io.open_lazy(f))
        if any(k.startswith("model.language_model.") for k in self.tensors):
            raise ConvertError(f"{self.dir}: weights saved in transformers' own layout "
                               "(model.language_model.*); save with save_original_format=True, the hub's layout")

    def __call__(self, name: str) -> np.ndarray:
        try:
            return np.asarray(self.tensors[name].load(), dtype=np.float32)
        except KeyError:
            raise ConvertError(f"{self.dir}: tensor {name} is missing (an incomplete or other checkpoint)") from None

    def shape(self, name: str) -> tuple[int, ...]:
        if name not in self.tensors:
            raise ConvertError(f"{self.dir}: tensor {name} is missing (an incomplete or other checkpoint)")
        return self.tensors[name].shape


class _Plan:
    """Tensors announced first (name, numpy shape, GGUF type) and produced one by one on writing."""

    def __init__(self, outtype: str):
        self.outtype = outtype
        self.items: list[tuple[str, tuple[int, ...], str, Callable[[], np.ndarray]]] = []

    def add(self, name: str, shape: tuple[int, ...], make: Callable[[], np.ndarray], keep_f32: bool = False) -> None:
        # vectors, norms and routers stay F32 as llama.cpp's own converter keeps them
        kind = "f32" if keep_f32 or len(shape) < 2 else self.outtype
        self.items.append((name, tuple(shape), kind, make))

    def write(self, g) -> None:
        import gguf

        def encode(kind: str, arr: np.ndarray) -> np.ndarray:
            arr = np.ascontiguousarray(arr, dtype=np.float32)
            if kind == "f16":
                return arr.astype(np.float16)
            if kind == "bf16":  # round to nearest even, as torch does
                u = arr.view(np.uint32)
                return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
            return arr

        raw = {"f32": (np.float32, None), "f16": (np.float16, None), "bf16": (np.uint16, gguf.GGMLQuantizationType.BF16)}
        for name, shape, kind, _ in self.items:
            dtype, raw_dtype = raw[kind]
            nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
            if raw_dtype is None:
                g.add_tensor_info(name, shape, np.dtype(dtype), nbytes)
            else:  # uint16 storage: the shape is taken as bytes unless given in elements
                g.add_tensor_info(name, shape, np.dtype(np.float32), nbytes, raw_dtype=raw_dtype)
        g.write_header_to_file()
        g.write_kv_data_to_file()
        g.write_ti_data_to_file()
        for name, shape, kind, make in self.items:
            arr = make()
            if tuple(arr.shape) != shape:
                raise ConvertError(f"tensor {name}: shape {arr.shape}, expected {shape}")
            g.write_tensor_data(encode(kind, arr))
        g.close()


def _file_type(outtype: str) -> int:
    import gguf

    return {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
            "bf16": gguf.LlamaFileType.MOSTLY_BF16}[outtype]


def _layer_kinds(t: dict) -> tuple[list[str], int]:
    kinds = t.get("mlp_layer_types") or ["dense"] + ["sparse"] * (t["num_hidden_layers"] - 1)
    lead = kinds.index("sparse") if "sparse" in kinds else len(kinds)
    if any(k != "sparse" for k in kinds[lead:]) or len(kinds) != t["num_hidden_layers"]:
        raise ConvertError(f"mlp_layer_types {kinds}: only leading dense layers then sparse ones are supported")
    return kinds, lead


def _pair(v, what: str) -> tuple[int, int]:
    """moe_* fields hold one value for both expert sets or [text, vision]."""
    if isinstance(v, int):
        return v, v
    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) for x in v):
        return v[0], v[1]
    raise ConvertError(f"text_config.{what} = {v!r}: expected an integer or [text, vision]")


def write_language_model(ck: Checkpoint, out: Path, outtype: str = "f16") -> Path:
    import gguf

    t, cfg = ck.text, ck.cfg
    h, heads, kv = t["hidden_size"], t["num_attention_heads"], t["num_key_value_heads"]
    head_dim = t.get("head_dim") or h // heads
    kinds, lead = _layer_kinds(t)
    n_exp, n_exp_vis = _pair(t["moe_num_experts"], "moe_num_experts")
    if n_exp != n_exp_vis:
        raise ConvertError(f"text_config.moe_num_experts {t['moe_num_experts']}: llama.cpp's graph needs as "
                           "many vision experts as text experts")
    i_text, i_vis = _pair(t["moe_intermediate_size"], "moe_intermediate_size")
    n_shared = t.get("moe_num_shared_experts", 0)
    rope = t.get("rope_parameters") or {}
    sections = list(rope.get("mrope_section") or [])
    if len(sections) != 3 or sections[0] != sections[1] or sum(sections) != head_dim // 2:
        raise ConvertError(f"rope mrope_section {sections}: expected [h, w, t] with h == w and h + w + t = "
                           f"{head_dim // 2} (half the head size)")
    if rope.get("rope_type", "default") != "default":
        raise ConvertError(f"rope_type {rope.get('rope_type')!r}: only the default rope is supported")

    tokens, scores, types = vocab.read_vocab(ck.dir, t["vocab_size"])
    vis_ids = vocab.check_image_tokens(tokens, cfg)

    g = gguf.GGUFWriter(str(out), ARCH)
    g.add_name(cfg.get("_name_or_path") or ck.dir.name)
    g.add_file_type(_file_type(outtype))
    g.add_context_length(t.get("max_position_embeddings", 131072))
    g.add_embedding_length(h)
    g.add_block_count(len(kinds))
    g.add_feed_forward_length(t["intermediate_size"])
    g.add_head_count(heads)
    g.add_head_count_kv(kv)
    if head_dim != h // heads:
        g.add_key_length(head_dim)
        g.add_value_length(head_dim)
    g.add_rope_dimension_count(head_dim)
    g.add_rope_freq_base(float(rope.get("rope_theta", 500000.0)))
    g.add_rope_dimension_sections(sections + [0])
    g.add_layer_norm_rms_eps(float(t.get("rms_norm_eps", 1e-5)))
    g.add_expert_count(n_exp)
    g.add_expert_used_count(_pair(t["moe_k"], "moe_k")[0])
    g.add_expert_feed_forward_length(i_text)
    g.add_expert_shared_feed_forward_length(i_text * n_shared)
    g.add_leading_dense_block_count(lead)
    g.add_uint32(f"{ARCH}.vision_expert_feed_forward_length", i_vis)
    g.add_array(f"{ARCH}.vision_token_ids", vis_ids)
    vocab.add_to_gguf(g, ck.dir, tokens, scores, types)

    plan = _Plan(outtype)
    plan_tensor = _planner(ck, plan)
    plan_tensor("token_embd.weight", "model.embed_tokens.weight")
    plan_tensor("output_norm.weight", "model.norm.weight")
    if not cfg.get("tie_word_embeddings", t.get("tie_word_embeddings", True)):
        plan_tensor("output.weight", "lm_head.weight")
    for i, kind in enumerate(kinds):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        plan_tensor(b + "attn_norm.weight", p + "input_layernorm.weight")
        plan_tensor(b + "ffn_norm.weight", p + "post_attention_layernorm.weight")
        for ours, theirs in (("attn_q", "q_proj"), ("attn_k", "k_proj"), ("attn_v", "v_proj"), ("attn_output", "o_proj")):
            plan_tensor(f"{b}{ours}.weight", f"{p}self_attn.{theirs}.weight")
            if f"{p}self_attn.{theirs}.bias" in ck.tensors:
                plan_tensor(f"{b}{ours}.bias", f"{p}self_attn.{theirs}.bias")
        if kind == "dense":
            for ours, theirs in (("ffn_gate", "gate_proj"), ("ffn_up", "up_proj"), ("ffn_down", "down_proj")):
                plan_tensor(f"{b}{ours}.weight", f"{p}mlp.{theirs}.weight")
            continue
        # On disk each router is [hidden, experts] (ggml wants ne {hidden, experts}: numpy [experts, hidden]);
        # the correction biases of both sets share one [2, experts] tensor, text first.
        plan_tensor(b + "ffn_gate_inp.weight", p + "mlp.gate.weight", _transpose, keep_f32=True)
        plan_tensor(b + "vis_ffn_gate_inp.weight", p + "mlp.gate.weight_1", _transpose, keep_f32=True)
        bias = p + "mlp.moe_statics.e_score_correction_bias"
        if bias in ck.tensors:
            plan_tensor(b + "exp_probs_b.bias", bias, lambda a: a.reshape(2, -1)[0])
            plan_tensor(b + "exp_probs_b_vl.bias", bias, lambda a: a.reshape(2, -1)[1])
        # experts 0..E-1 are the text set, E..2E-1 the vision set, each [inter, hidden] / [hidden, inter]
        for prefix, first, inter in (("", 0, i_text), ("vis_", n_exp, i_vis)):
            for ours, theirs, shape in (("ffn_gate_exps", "gate_proj", (n_exp, inter, h)),
                                        ("ffn_up_exps", "up_proj", (n_exp, inter, h)),
                                        ("ffn_down_exps", "down_proj", (n_exp, h, inter))):
                names = [f"{p}mlp.experts.{e}.{theirs}.weight" for e in range(first, first + n_exp)]
                for name in names:
                    if ck.shape(name) != shape[1:]:
                        raise ConvertError(f"{name}: shape {ck.shape(name)}, expected {shape[1:]}")
                plan.add(f"{b}{prefix}{ours}.weight", shape, lambda names=names: np.stack([ck(n) for n in names]))
        if n_shared:
            for ours, theirs in (("ffn_gate_shexp", "gate_proj"), ("ffn_up_shexp", "up_proj"),
                                 ("ffn_down_shexp", "down_proj")):
                plan_tensor(f"{b}{ours}.weight", f"{p}mlp.shared_experts.{theirs}.weight")
    plan.write(g)
    return Path(out)


def write_mmproj(ck: Checkpoint, out: Path, outtype: str = "f16") -> Path:
    import gguf

    v, t = ck.vision, ck.text
    d, patch = v["hidden_size"], v["patch_size"]
    merge = v.get("spatial_merge_size", 2)
    if merge != 2:
        raise ConvertError(f"vision spatial_merge_size {merge}: llama.cpp's merge is 2x2")
    if v.get("hidden_act", "quick_gelu") != "quick_gelu":
        raise ConvertError(f"vision hidden_act {v.get('hidden_act')!r}: the ViT is built with QuickGELU")
    if abs(float(t.get("rms_norm_eps", 1e-5)) - PROJECTOR_RMS_EPS) > 1e-12:
        raise ConvertError(f"text rms_norm_eps {t.get('rms_norm_eps')}: the projector's after-norm is built "
                           f"with {PROJECTOR_RMS_EPS}")
    pre = _preprocessor(ck.dir)
    g = gguf.GGUFWriter(str(out), "clip")
    g.add_name(f"{ck.cfg.get('_name_or_path') or ck.dir.name} vision")
    g.add_file_type(_file_type(outtype))
    g.add_bool("clip.has_vision_encoder", True)
    g.add_string("clip.projector_type", PROJECTOR)
    g.add_uint32("clip.vision.embedding_length", d)
    g.add_uint32("clip.vision.feed_forward_length", v["intermediate_size"])
    g.add_uint32("clip.vision.block_count", v["depth"])
    g.add_uint32("clip.vision.attention.head_count", v["num_heads"])
    g.add_float32("clip.vision.attention.layer_norm_epsilon", float(v.get("rms_norm_eps", 1e-6)))
    g.add_uint32("clip.vision.projection_dim", t["hidden_size"])
    g.add_uint32("clip.vision.patch_size", patch)
    g.add_uint32("clip.vision.spatial_merge_size", merge)
    # the side of the square image mtmd warms up with and reports; images keep their own size
    g.add_uint32("clip.vision.image_size", patch * merge * 16)
    g.add_uint32("clip.vision.image_min_pixels", pre["min_pixels"])
    g.add_uint32("clip.vision.image_max_pixels", pre["max_pixels"])
    g.add_array("clip.vision.image_mean", pre["image_mean"])
    g.add_array("clip.vision.image_std", pre["image_std"])
    g.add_float32("clip.vision.rope_theta", float((v.get("rope_parameters") or {}).get("rope_theta", 10000.0)))

    plan = _Plan(outtype)
    tensor = _planner(ck, plan)
    vm, r = "model.vision_model.", "model.resampler_model."

    # a Linear over (channel, row, column) patches is a stride-14 convolution with that kernel
    tensor("v.patch_embd.weight", vm + "patch_embed.proj.weight", lambda a: a.reshape(d, 3, patch, patch))
    for i in range(v["depth"]):
        p, b = f"{vm}blocks.{i}.", f"v.blk.{i}."
        for ours, theirs in (("ln1", "norm1"), ("ln2", "norm2"), ("attn_qkv", "attn.qkv"),
                             ("attn_out", "attn.proj"), ("ffn_up", "mlp.fc1"), ("ffn_down", "mlp.fc2")):
            tensor(f"{b}{ours}.weight", f"{p}{theirs}.weight")
            tensor(f"{b}{ours}.bias", f"{p}{theirs}.bias")
    tensor("v.post_ln.weight", vm + "ln.weight")
    tensor("v.post_ln.bias", vm + "ln.bias")
    for ours, theirs in (("spatial", "spatial_linear"), ("temporal", "temporal_linear")):
        for part, idx in (("fc1", 0), ("fc2", 2), ("norm", 3)):
            fold = _fold_frames if (ours, part) == ("temporal", "fc1") else None
            tensor(f"mm.{ours}.{part}.weight", f"{r}{theirs}.{idx}.weight", fold)
            tensor(f"mm.{ours}.{part}.bias", f"{r}{theirs}.{idx}.bias")
    tensor("mm.mlp.weight", r + "mlp.weight")
    tensor("mm.mlp.bias", r + "mlp.bias")
    tensor("mm.after_norm.weight", r + "after_norm.weight")
    plan.write(g)
    return Path(out)


def _planner(ck: Checkpoint, plan: _Plan):
    """plan(name, source tensor, transform): the transform must not need the values to give the shape."""
    def add(name: str, src: str, transform: Callable[[np.ndarray], np.ndarray] | None = None, keep_f32=False):
        shape = ck.shape(src)
        if transform is not None:
            shape = transform(np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape, [0] * len(shape))).shape
        plan.add(name, tuple(shape), lambda: (transform or (lambda a: a))(ck(src)), keep_f32)
    return add


def _fold_frames(a: np.ndarray) -> np.ndarray:
    """A still image is both frames of the temporal pair: W [x | x] = (W_left + W_right) x."""
    half = a.shape[1] // 2
    return a[:, :half] + a[:, half:]


def _transpose(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.T)


def _preprocessor(hf_dir: Path) -> dict:
    """The image processor's bounds and normalisation (preprocessor_config.json, else transformers'
    defaults for Ernie4_5_VLMoe)."""
    out = {"min_pixels": 56 * 56, "max_pixels": 28 * 28 * 6177,
           "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}
    f = Path(hf_dir) / "preprocessor_config.json"
    if f.is_file():
        try:
            pre = json.loads(f.read_text())
        except (OSError, ValueError) as e:
            raise ConvertError(f"{f}: unreadable JSON ({e})") from None
        size = pre.get("size") or {}
        out["min_pixels"] = int(pre.get("min_pixels") or size.get("shortest_edge") or out["min_pixels"])
        out["max_pixels"] = int(pre.get("max_pixels") or size.get("longest_edge") or out["max_pixels"])
        for k in ("image_mean", "image_std"):
            if pre.get(k):
                out[k] = [float(x) for x in pre[k]]
    return out


def quantize(src: Path, dst: Path, quant: str, threads: int = 0) -> Path:
    """llama.cpp's quantizer (the patched library: it must know the architecture)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANTS[quant]
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if rc != 0 or not Path(dst).is_file():
        raise ConvertError(f"llama.cpp could not quantize {src} to {quant} (is llama-cpp-python the build "
                           "with patches/llama.cpp? `inspector doctor` says)")
    return Path(dst)


def parse_quants(text: str | None) -> list[str]:
    quants = [q.strip().upper() for q in (text or "").split(",") if q.strip()]
    unknown = [q for q in quants if q not in QUANTS]
    if unknown:
        raise ConvertError(f"--quant {','.join(unknown)}: not one of {', '.join(QUANTS)}")
    return quants


def convert(hf_dir: Path, out_dir: Path, quants: list[str] = (), outtype: str = "f16",
            say: Callable[[str], None] = lambda s: None) -> Converted:
    if outtype not in OUTTYPES:
        raise ConvertError(f"outtype {outtype!r}: one of {', '.join(OUTTYPES)}")
    ck = Checkpoint(hf_dir)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConvertError(f"{out_dir}: cannot create the output folder ({e.strerror})") from None
    stem = Path(hf_dir).resolve().name
    tag = outtype.upper()
    try:
        model = write_language_model(ck, out_dir / f"{stem}-{tag}.gguf", outtype)
        say(f"wrote {model} ({model.stat().st_size / 2**20:.1f} MiB)")
        mmproj = write_mmproj(ck, out_dir / f"mmproj-{stem}-{tag}.gguf", "f32" if outtype == "f32" else "f16")
        say(f"wrote {mmproj} ({mmproj.stat().st_size / 2**20:.1f} MiB)")
        done = Converted(model, mmproj)
        for q in quants:
            done.quantized[q] = quantize(model, out_dir / f"{stem}-{q}.gguf", q)
            say(f"wrote {done.quantized[q]} ({done.quantized[q].stat().st_size / 2**20:.1f} MiB)")
    except OSError as e:
        raise ConvertError(f"writing into {out_dir} failed: {e.strerror or e}") from None
    return done
