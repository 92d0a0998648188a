"""The reasoner: asks a VLM about each crop and turns its answer into validated findings.

Backends are registered by the `reasoner.type` name in config. Every backend shares `analyze()`:
prompt -> call -> validate -> one repair retry -> CropReport, so a backend only implements `_call`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from inspector.config import ProductConfig
from inspector.messages import Crop, CropAnswer, CropReport
from inspector.reasoner import prompt
from inspector.reasoner.answer import AnswerError, answer_schema, validate
from inspector.reasoner.profiles import Profile

log = logging.getLogger(__name__)


class ReasonerUnavailable(Exception):
    """The backend could not be asked (not loaded, down, timed out)."""


class Reasoner:
    """Base for VLM backends. Subclasses set model_id/profile/is_test_model and implement _call."""

    model_id: str = ""
    profile: Profile
    is_test_model: bool = False

    def _call(self, messages: list[dict], schema: dict) -> str:
        raise NotImplementedError

    def analyze(self, crop: Crop, product: ProductConfig) -> CropReport:
        taxonomy = list(product.defects)
        schema = answer_schema(taxonomy)
        msgs = prompt.messages(crop, product, self.profile, schema)
        h, w = crop.image.shape[:2]
        raws: list[str] = []
        started = time.perf_counter()
        for attempt in range(2):  # the answer, then at most one repair
            try:
                text = self._call(msgs, schema)
            except ReasonerUnavailable as e:
                return self._report(crop, CropAnswer.unavailable, (), (), raws, started, str(e))
            raws.append(text)
            thinking, body = self.profile.split_thinking(text)
            try:
                v = validate(body, profile=self.profile, taxonomy=taxonomy, crop_w=w, crop_h=h,
                             to_frame=crop.transform.to_frame, crop_index=crop.index,
                             model_id=self.model_id)
            except AnswerError as e:
                log.info("crop %d: unusable answer (attempt %d): %s", crop.index, attempt + 1, e)
                msgs = [*msgs, {"role": "assistant", "content": text}, prompt.repair_message(str(e))]
                error = str(e)
                continue
            return self._report(crop, v.answer, v.findings, v.rejected, raws, started)
        return self._report(crop, CropAnswer.invalid, (), (), raws, started, error)

    def _report(self, crop, answer, findings, rejected, raws, started, error=""):
        raw = "\n----- repair attempt -----\n".join(raws)
        return CropReport(crop.index, answer, tuple(findings), tuple(rejected), raw, self.model_id,
                          (time.perf_counter() - started) * 1000.0, error)

    def close(self) -> None:
        pass


BACKENDS: dict[str, Callable] = {}


def register(type_name: str):
    def deco(factory):
        BACKENDS[type_name] = factory
        return factory
    return deco


def build_reasoner(cfg, data_dir) -> Reasoner | None:
    """The configured backend, or None for `type: none` (detector-only verdicts)."""
    if cfg.type == "none":
        return None
    from inspector.reasoner import llama_cpp  # noqa: F401  (registers the built-in backend)

    try:
        factory = BACKENDS[cfg.type]
    except KeyError:
        raise ValueError(f"unknown reasoner type {cfg.type!r}; known: {sorted(BACKENDS)}") from None
    return factory(cfg, data_dir)
