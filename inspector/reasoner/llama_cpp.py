"""`llama_cpp` backend: a GGUF VLM + mmproj in process through llama-cpp-python."""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from pathlib import Path

from inspector.config import LlamaCppReasonerConfig
from inspector.reasoner import Reasoner, ReasonerUnavailable, register
from inspector.reasoner.profiles import get_profile
from inspector.reasoner.test_model import TEST_MODEL_ID, ensure_test_model

log = logging.getLogger(__name__)


class ReasonerConfigError(ValueError):
    pass


@register("llama_cpp")
class LlamaCppReasoner(Reasoner):
    def __init__(self, cfg: LlamaCppReasonerConfig, data_dir: Path):
        self.cfg = cfg
        self.profile = get_profile(cfg.profile)
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
                if not p.is_file():
                    raise ReasonerConfigError(f"{key}: file {p} does not exist")
            self.model_id = model.name
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import MTMDChatHandler

        verbose = bool(os.environ.get("INSPECTOR_LLAMA_VERBOSE"))
        _quiet_native_logs(verbose)
        try:
            handler = MTMDChatHandler(clip_model_path=str(mmproj), verbose=verbose)
            self.llm = Llama(model_path=str(model), chat_handler=handler, n_ctx=cfg.n_ctx,
                             n_threads=cfg.n_threads, n_gpu_layers=cfg.n_gpu_layers, seed=cfg.seed,
                             verbose=verbose)
        except (ValueError, RuntimeError) as e:
            raise ReasonerConfigError(f"llama.cpp could not load {model} with {mmproj}: {e}") from None
        self._lock = threading.Lock()  # one llama context: calls are single-flight
        self._calls = 0

    def _call(self, messages: list[dict], schema: dict) -> str:
        with self._lock:
            self._calls += 1
            try:
                out = self.llm.create_chat_completion(
                    messages=messages,
                    response_format={"type": "json_object", "schema": schema},
                    max_tokens=self.cfg.max_tokens, temperature=self.cfg.temperature,
                    seed=self.cfg.seed + self._calls)
            except (ValueError, RuntimeError) as e:  # e.g. prompt exceeds n_ctx, image decode
                raise ReasonerUnavailable(f"llama.cpp call failed: {e}") from None
        return out["choices"][0]["message"]["content"] or ""

    def close(self) -> None:
        with self._lock:
            self.llm.close()


def _quiet_native_logs(verbose: bool) -> None:
    """llama.cpp, clip and mtmd log to stderr from C; route all three through one filter so a
    production log shows only their errors (INSPECTOR_LLAMA_VERBOSE=1 shows everything)."""
    from llama_cpp import _logger, mtmd_cpp

    _logger.set_verbose(verbose)
    mtmd_cpp.mtmd_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
    mtmd_cpp.mtmd_helper_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
