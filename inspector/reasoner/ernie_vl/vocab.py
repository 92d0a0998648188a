"""ERNIE's tokenizer into a GGUF: the SentencePiece model (`tokenizer.model`), the tokens added on top
of it (`added_tokens.json`, `tokenizer_config.json`'s `added_tokens_decoder`), the special ids and
the chat template. llama.cpp runs it as its "llama" (SentencePiece) tokenizer.

The image start and end tokens must be tokens of their own: mtmd writes `<|IMAGE_START|>` and
`<|IMAGE_END|>` as text around every image and the language model sends them to its vision experts,
so a checkpoint whose ids in config.json do not name these strings is refused here, not mistokenized
later."""

from __future__ import annotations

import json
from pathlib import Path

from inspector.reasoner.ernie_vl import ConvertError

IMAGE_START, IMAGE_END = "<|IMAGE_START|>", "<|IMAGE_END|>"


class VocabError(ConvertError):
    pass


def read_vocab(hf_dir: Path, n_vocab: int) -> tuple[list[str], list[float], list[int]]:
    """(tokens, scores, token types) for ids 0..n_vocab-1; ids the tokenizer does not use are
    padding ("[PADn]", unused), as the embedding matrix is usually larger than the vocabulary."""
    import gguf
    from sentencepiece import SentencePieceProcessor

    path = Path(hf_dir) / "tokenizer.model"
    if not path.is_file():
        raise VocabError(f"{hf_dir}: no tokenizer.model (ERNIE's SentencePiece model)")
    sp = SentencePieceProcessor()
    try:
        sp.LoadFromFile(str(path))
    except (OSError, RuntimeError) as e:
        raise VocabError(f"{path}: not a SentencePiece model ({str(e).splitlines()[0]})") from None
    T = gguf.TokenType
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    scores = [-10000.0] * n_vocab
    types = [T.UNUSED] * n_vocab
    if sp.vocab_size() > n_vocab:
        raise VocabError(f"{path}: {sp.vocab_size()} pieces for a model of {n_vocab} token embeddings")
    for i in range(sp.vocab_size()):
        tokens[i], scores[i] = sp.IdToPiece(i), sp.GetScore(i)
        types[i] = (T.UNKNOWN if sp.IsUnknown(i) else T.CONTROL if sp.IsControl(i) else
                    T.UNUSED if sp.IsUnused(i) else T.BYTE if sp.IsByte(i) else T.NORMAL)
    for i, text, special in _added_tokens(Path(hf_dir)):
        if not 0 <= i < n_vocab:
            raise VocabError(f"{hf_dir}: added token {text!r} has id {i}, outside the model's {n_vocab}")
        tokens[i], scores[i] = text, -1000.0
        types[i] = T.CONTROL if special else T.USER_DEFINED
    return tokens, scores, types


def _added_tokens(hf_dir: Path) -> list[tuple[int, str, bool]]:
    out: dict[int, tuple[str, bool]] = {}
    f = hf_dir / "added_tokens.json"
    if f.is_file():
        for text, i in _json(f).items():
            out[int(i)] = (text, _looks_special(text))
    f = hf_dir / "tokenizer_config.json"
    if f.is_file():
        for i, entry in (_json(f).get("added_tokens_decoder") or {}).items():
            text = entry["content"]
            out[int(i)] = (text, bool(entry.get("special")) or _looks_special(text))
    return [(i, text, special) for i, (text, special) in sorted(out.items())]


def _looks_special(text: str) -> bool:
    return text.startswith(("<|", "<s>", "</s>")) or (text.startswith("<") and text.endswith(">") and " " not in text)


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise VocabError(f"{path}: unreadable JSON ({e})") from None


def check_image_tokens(tokens: list[str], cfg: dict) -> list[int]:
    """The ids the language model sends to its vision experts when they come as text (image and
    video start/end, and the placeholders), checked against the strings mtmd writes."""
    for key, want in (("image_start_token_id", IMAGE_START), ("image_end_token_id", IMAGE_END)):
        i = cfg.get(key)
        if not isinstance(i, int) or not 0 <= i < len(tokens) or tokens[i] != want:
            got = tokens[i] if isinstance(i, int) and 0 <= i < len(tokens) else None
            raise VocabError(f"config.json {key} = {i!r} names {got!r} in the tokenizer, not {want!r} "
                             "(llama.cpp's mtmd writes that string around every image)")
    keys = ("image_start_token_id", "image_end_token_id", "image_token_id",
            "video_start_token_id", "video_end_token_id", "video_token_id")
    return [cfg[k] for k in keys if isinstance(cfg.get(k), int) and 0 <= cfg[k] < len(tokens)]


def add_to_gguf(g, hf_dir: Path, tokens: list[str], scores: list[float], types: list[int]) -> None:
    import gguf

    g.add_tokenizer_model("llama")
    g.add_tokenizer_pre("default")
    g.add_token_list(tokens)
    g.add_token_scores(scores)
    g.add_token_types(types)
    # bos/eos/pad ids, add_bos and the chat template, from tokenizer_config.json and friends
    gguf.SpecialVocab(Path(hf_dir), n_vocab=len(tokens)).add_to_gguf(g, quiet=True)
