"""`llama_cpp` backend: a GGUF VLM + mmproj in process through llama-cpp-python.

The model is loaded once; one llama context means calls are single-flight (a lock). The per-call
timeout is an abort callback that llama.cpp checks while it decodes (prompt and every token), so a
stuck or rambling generation stops at the deadline. The image encoder (mtmd) does not check it, so
a call may overrun by one image encoding. (Streaming the answer and checking between chunks would
also work, but costs llama-cpp-python about 1.6 ms per token: `inspector bench reasoner` showed
3.5x the bare call.)
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from pathlib import Path

from inspector.config import LlamaCppReasonerConfig
from inspector.reasoner import Reasoner, ReasonerConfigError, ReasonerUnavailable, Reply, completion_tokens, register
from inspector.reasoner.test_model import TEST_MODEL_ID, ensure_test_model

log = logging.getLogger(__name__)


@register("llama_cpp")
class LlamaCppReasoner(Reasoner):
    backend = "llama_cpp"

    def __init__(self, cfg: LlamaCppReasonerConfig, data_dir: Path):
        super().__init__(cfg)
        if self.profile.in_process_refusal:
            raise ReasonerConfigError(f"reasoner profile {cfg.profile!r}: {self.profile.in_process_refusal}")
        if cfg.test_model:
            files = ensure_test_model(Path(data_dir) / "test-vlm", seed=cfg.seed)
            model, mmproj = files.model, files.mmproj
            self.model_id = TEST_MODEL_ID
            self.is_test_model = True
        else:
            model, mmproj = Path(cfg.model), Path(cfg.mmproj)
            for key, p in (("reasoner.model", model), ("reasoner.mmproj", mmproj)):
                check_gguf(key, p)
            check_build_knows(model)
            self.model_id = model.name
        self.model_files = {"vlm": model, "mmproj": mmproj}  # recorded by content in the store
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import MTMDChatHandler

        verbose = bool(os.environ.get("INSPECTOR_LLAMA_VERBOSE"))
        _quiet_native_logs(verbose)
        try:
            self.llm = Llama(model_path=str(model), n_ctx=cfg.n_ctx, n_threads=cfg.n_threads,
                             n_gpu_layers=cfg.n_gpu_layers, flash_attn=cfg.flash_attn, seed=cfg.seed,
                             verbose=verbose)
        except (ValueError, RuntimeError) as e:
            raise ReasonerConfigError(f"reasoner.model: llama.cpp could not load {model}: {e}") from None
        try:
            # The handler loads the projector lazily on first use; load it now, so a projector
            # that does not fit the text model fails at start-up and not on the first crop.
            handler = MTMDChatHandler(clip_model_path=str(mmproj), verbose=verbose)
            handler._init_mtmd_context(self.llm)
            self.llm.chat_handler = handler
        except (ValueError, RuntimeError) as e:
            self.llm.close()
            raise ReasonerConfigError(
                f"reasoner.mmproj: llama.cpp could not load the projector {mmproj} for {model} "
                f"(is it the mmproj made for this model?): {e}") from None
        self._lock = threading.Lock()
        self._calls = 0
        self._deadline: float | None = None
        self._install_abort_callback()
        self._grammars: dict = {}  # parsed once per taxonomy and coordinate space
        self.grammar_zoom = cfg.constrain == "gbnf"  # a zoom request is one of the grammar's answers

    def _constraint(self, schema: dict, gbnf: str) -> dict:
        if self.cfg.constrain == "json_schema":
            return {"response_format": {"type": "json_object", "schema": schema}}
        from llama_cpp import LlamaGrammar

        grammar = self._grammars.get(gbnf)
        if grammar is None:
            if len(self._grammars) >= 64:  # pixel profiles make one per crop size
                self._grammars.clear()
            grammar = self._grammars[gbnf] = LlamaGrammar.from_string(gbnf, verbose=False)
        return {"grammar": grammar}

    def _call(self, messages: list[dict], schema: dict, gbnf: str, tools: list[dict] | None = None) -> Reply:
        timeout = self.cfg.timeout_s
        with self._lock:
            self._calls += 1
            self._deadline = time.monotonic() + timeout
            try:
                out = self.llm.create_chat_completion(
                    messages=messages, **self._constraint(schema, gbnf),
                    max_tokens=self.cfg.max_tokens, temperature=self.cfg.temperature,
                    seed=self.cfg.seed + self._calls)
            except (ValueError, RuntimeError) as e:  # e.g. prompt exceeds n_ctx, image decode
                timed_out = time.monotonic() > self._deadline
                self._reset_context()  # an aborted decode may leave half a batch in the KV cache
                if timed_out:
                    raise ReasonerUnavailable(f"llama.cpp did not finish within {timeout:g} s "
                                              f"(reasoner.timeout_s)") from None
                raise ReasonerUnavailable(f"llama.cpp call failed: {e}") from None
            finally:
                self._deadline = None
        return Reply(out["choices"][0]["message"]["content"] or "", tokens=completion_tokens(out))

    def _reset_context(self) -> None:
        import llama_cpp

        self.llm.reset()
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.llm.ctx), True)

    def _install_abort_callback(self) -> None:
        import llama_cpp

        def should_abort(_data) -> bool:
            return self._deadline is not None and time.monotonic() > self._deadline

        self._abort_cb = llama_cpp.ggml_abort_callback(should_abort)  # keep it alive for ctypes
        llama_cpp.llama_set_abort_callback(self.llm.ctx, self._abort_cb, None)

    def close(self) -> None:
        with self._lock:
            self.llm.close()


def check_gguf(key: str, path: Path) -> None:
    """Refuse a missing or non-GGUF file with a message naming the key, before llama.cpp sees it."""
    if not path.is_file():
        raise ReasonerConfigError(f"{key}: file {path} does not exist")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise ReasonerConfigError(f"{key}: {path} is not a GGUF file (it starts with {magic!r}, "
                                  f"a GGUF file with b'GGUF')")


def check_build_knows(model: Path) -> None:
    """ERNIE-4.5-VL needs this project's llama.cpp patches; a plain llama-cpp-python would fail with
    "unknown model architecture", which says nothing about the fix."""
    from inspector.reasoner import ernie_vl

    if ernie_vl.gguf_architecture(model) == ernie_vl.ARCH and not ernie_vl.build_has_patches():
        raise ReasonerConfigError(
            f"reasoner.model: {model} is ERNIE-4.5-VL ({ernie_vl.ARCH}), which needs llama-cpp-python built "
            f"with patches/llama.cpp; this one is {ernie_vl.llama_build()}: run ./bootstrap.sh (or "
            "`sh patches/build_llama_cpp_python.sh <venv>`)")


def _quiet_native_logs(verbose: bool) -> None:
    """llama.cpp, clip and mtmd log to stderr from C; route all three through one filter so a
    production log shows only their errors (INSPECTOR_LLAMA_VERBOSE=1 shows everything)."""
    from llama_cpp import _logger, mtmd_cpp

    _logger.set_verbose(verbose)
    mtmd_cpp.mtmd_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
    mtmd_cpp.mtmd_helper_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
