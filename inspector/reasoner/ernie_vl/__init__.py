"""ERNIE-4.5-VL in llama.cpp (issue 27): the converter to GGUF (`convert`, `vocab`, our safetensors
reader), the tiny random-weight checkpoint the tests are made from (`tiny`), and what the reasoner
asks before it loads one: whether this llama-cpp-python is the build with patches/llama.cpp.
The design is docs/ernie-vl-in-llama-cpp.md."""

from __future__ import annotations

from pathlib import Path

from inspector.errors import InspectorError

ARCH = "ernie4_5_vl_moe"  # the language model's GGUF architecture; its mmproj's projector is ernie4_5_vl


class ConvertError(InspectorError):
    """A checkpoint, tokenizer or output the converter cannot use; the message says which and why."""


def llama_build() -> str:
    """llama-cpp-python's version: `0.3.36+inspector.<hash of the patches>` for our build."""
    import llama_cpp

    return str(getattr(llama_cpp, "__version__", "unknown"))


def build_has_patches() -> bool:
    return "+inspector." in llama_build()


def gguf_architecture(path: Path) -> str | None:
    """general.architecture of a GGUF file, read from its header only."""
    import gguf

    try:
        field = gguf.GGUFReader(str(path)).get_field("general.architecture")
    except (OSError, ValueError, KeyError, IndexError):
        return None
    return field.contents() if field is not None else None
