"""The reasoner: asks a VLM about each crop and turns its answer into validated findings.

Backends are registered by the `reasoner.type` name in config. Every backend shares `analyze()`:
prompt -> call -> validate -> one repair retry -> (closer looks) -> CropReport, so a backend only
implements `_call`. A circuit breaker in front of `_call` stops hammering a VLM that keeps failing.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from inspector.errors import InspectorError
from inspector.util.registry import Registry
from inspector.config import ProductConfig
from inspector.cropper import crop_around, region_of
from inspector.messages import Candidate, Crop, CropAnswer, CropReport, Finding, Frame, Look, ZoomRound
from inspector.reasoner import prompt
from inspector.reasoner.answer import AnswerError, answer_schema, validate
from inspector.reasoner.breaker import CircuitBreaker
from inspector.reasoner.grammar import answer_gbnf
from inspector.reasoner.profiles import Profile, get_profile

log = logging.getLogger(__name__)

REPAIR_MARK = "----- repair attempt -----"  # separates a look's calls in its raw text
MIN_ZOOM = 1.5  # a closer look must show the frame at least this much sharper than the crop did
# A reply may hold several zoom calls; past this many, each costs an image encode and prompt space
# for nothing the model can use at once (a model stuck repeating itself writes dozens).
ZOOMS_PER_REPLY = 4


class ReasonerUnavailable(InspectorError):
    """The backend could not be asked (not loaded, down, timed out, refused the request)."""


class ReasonerConfigError(InspectorError, ValueError):
    """The reasoner cannot start with this configuration (missing/corrupt model, bad profile)."""


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the server sent it (parsed by whoever answers the call)


@dataclass(frozen=True)
class Reply:
    text: str
    thinking: str = ""  # when the server hands thinking over separately (`reasoning_content`)
    tool_calls: tuple[ToolCall, ...] = ()  # the model asked for a tool (finish_reason tool_calls)
    tokens: int = 0  # tokens generated, as the server counted them (`usage.completion_tokens`; 0: not told)


def completion_tokens(completion: dict) -> int:
    """Tokens generated, from an OpenAI-shaped chat completion's usage (llama-cpp-python's too)."""
    try:
        return max(0, int(completion["usage"]["completion_tokens"]))
    except (KeyError, TypeError, ValueError):
        return 0  # a server that does not count: tokens/s is then unknown, not zero


class Reasoner:
    """Base for VLM backends. Subclasses set model_id/is_test_model and implement _call."""

    model_id: str = ""
    is_test_model: bool = False
    backend: str = ""
    # The model files this process loads, by role (vlm, mmproj), recorded by content in the store;
    # none behind an HTTP server, where the model is known by name only.
    model_files: Mapping[str, Path] = MappingProxyType({})
    supports_tools = False  # the backend can offer the model tools (OpenAI-style tool calls)
    grammar_zoom = False  # the backend constrains answers by our grammar: zoom requests go through it

    def __init__(self, cfg):
        self.cfg = cfg
        try:
            self.profile: Profile = get_profile(cfg.profile, cfg.profile_overrides)
        except ValueError as e:
            raise ReasonerConfigError(f"reasoner.profile: {e}") from None
        self.breaker = CircuitBreaker(cfg.breaker_failures, cfg.breaker_cooldown_s)
        # For /metrics: model calls, how long they took (sum, for a Prometheus summary), failures
        # (down, timeout, HTTP error) and answers validation refused.
        self.calls = 0
        self.call_seconds = 0.0
        self.call_errors = 0
        self.unusable_answers = 0
        self.zoom_rounds = 0  # zoomed regions the model asked for and was shown
        self.zoom_errors = 0  # zoom requests the model made that could not be served (bad region)
        self.zooms_past_deadline = 0  # times the zoom was not offered: no time left before the deadline

    def _call(self, messages: list[dict], schema: dict, gbnf: str) -> Reply:
        """One model call; `schema` and `gbnf` describe the same answer, for the backend to use
        whichever its model server understands."""
        raise NotImplementedError

    # --- one crop ------------------------------------------------------------------------------

    def analyze(self, crop: Crop, product: ProductConfig, frame: Frame | None = None) -> CropReport:
        """Ask about `crop`; with the `frame` it was cut from, look closer at small or unsure
        findings (every look is kept in the report)."""
        started = time.perf_counter()
        first = self._look(crop, product, 0, None, frame)
        looks = [first]
        findings = list(first.findings)
        sl = self.cfg.second_look
        current = list(first.findings)
        for n in range(1, sl.max_looks if frame is not None else 1):
            targets = [f for f in current if self._needs_closer_look(f, crop)][: sl.max_per_look]
            if not targets:
                break
            current = []
            for f in targets:
                cand = Candidate(f.box, f.confidence, f.defect_type, crop.candidate.model_id)
                zoom = crop_around(frame.image, cand, crop.index, padding=sl.padding,
                                   min_side=sl.min_side_px, out_side=max(crop.image.shape[:2]),
                                   upscale=True)
                if zoom.transform.scale < MIN_ZOOM * crop.transform.scale:
                    continue  # the finding fills the crop: a closer look would show nothing new
                look = self._look(zoom, product, n, f, frame)
                looks.append(look)
                if look.answer is CropAnswer.defect:  # confirmed, and located more precisely
                    findings = _swap(findings, f, look.findings)
                    current += look.findings
                elif look.answer is CropAnswer.ok:  # a closer look found nothing there
                    findings = _swap(findings, f, [])
                # uncertain / invalid / unavailable: the first look's finding stands
        answer = first.answer
        closer = looks[1:]
        if findings and any(lk.answer is CropAnswer.defect for lk in closer):
            answer = CropAnswer.defect
        elif closer and not findings and all(lk.answer is CropAnswer.ok for lk in closer):
            answer = CropAnswer.ok
        return CropReport(crop.index, answer, tuple(findings), first.rejected, first.raw,
                          self.model_id, (time.perf_counter() - started) * 1000.0, first.error,
                          tuple(looks))

    def _needs_closer_look(self, f: Finding, crop: Crop) -> bool:
        sl = self.cfg.second_look
        rx1, ry1, rx2, ry2 = region_of(crop)
        area = (f.box[2] - f.box[0]) * (f.box[3] - f.box[1])
        return f.confidence < sl.min_confidence or area < sl.small_box_ratio * (rx2 - rx1) * (ry2 - ry1)

    def _look(self, crop: Crop, product: ProductConfig, index: int, previous: Finding | None,
              frame: Frame | None) -> Look:
        taxonomy = list(product.defects)
        schema = answer_schema(taxonomy, self.profile.integer_boxes)
        wants_zoom = self.cfg.max_zoom_rounds > 0 and frame is not None
        # Model-driven zoom: through our grammar where the backend takes one (llama.cpp in process
        # and its servers, whose tool-call support depends on the chat template: the grammar's
        # {"zoom": box} answer works with any), else through the family's zoom tool.
        grammar_zoom = wants_zoom and self.grammar_zoom
        zoom_on = wants_zoom and not grammar_zoom and bool(self.profile.zoom_tool) and self.supports_tools
        h, w = crop.image.shape[:2]
        msgs = prompt.messages(crop, product, self.profile, schema, mark=self.cfg.mark_candidate,
                               previous=previous, zoom=grammar_zoom)
        gbnf = answer_gbnf(taxonomy, self.profile, w, h)
        gbnf_zoom = answer_gbnf(taxonomy, self.profile, w, h, zoom=True) if grammar_zoom else gbnf
        region = region_of(crop)
        raws: list[str] = []
        thoughts: list[str] = []
        started = time.perf_counter()

        zooms: list[ZoomRound] = []
        tools = [prompt.zoom_tool(self.profile)] if zoom_on else None
        tokens = 0

        def look(answer, findings=(), rejected=(), error=""):
            return Look(index, region, answer, tuple(findings), tuple(rejected),
                        f"\n{REPAIR_MARK}\n".join(raws), "\n".join(t for t in thoughts if t),
                        (time.perf_counter() - started) * 1000.0, error, tuple(zooms), tokens)

        error = ""
        attempt = rounds = 0
        last_call_s = 0.0
        while attempt < 2:  # the answer, then at most one repair (zoom rounds are not attempts)
            if not self.breaker.allow():
                b = self.breaker.snapshot()
                return look(CropAnswer.unavailable, error=(
                    f"VLM unavailable: circuit open after {b['consecutive_failures']} failed calls "
                    f"(last: {b['last_error']}); next try in {self.breaker.retry_in():.0f} s"))
            t0 = time.perf_counter()
            may_zoom = (zoom_on or grammar_zoom) and rounds < self.cfg.max_zoom_rounds and \
                self._time_for_a_zoom(product, frame, last_call_s)
            offer = tools if zoom_on and may_zoom else None
            grammar = gbnf_zoom if grammar_zoom and may_zoom else gbnf
            try:
                # tools only when offered: a backend without tools keeps its three-argument _call
                reply = self._call(msgs, schema, grammar, offer) if offer else self._call(msgs, schema, grammar)
            except ReasonerUnavailable as e:
                self._count(t0, failed=True)
                self.breaker.failure(str(e))
                return look(CropAnswer.unavailable, error=str(e))
            except Exception as e:  # a backend bug must cost one crop a review, not the thread
                self._count(t0, failed=True)
                log.exception("%s backend failed", self.backend)
                self.breaker.failure(f"{type(e).__name__}: {e}")
                return look(CropAnswer.unavailable, error=f"reasoner error: {type(e).__name__}: {e}")
            self._count(t0)
            self.breaker.success()
            last_call_s = time.perf_counter() - t0
            tokens += reply.tokens
            calls, text = list(reply.tool_calls), reply.text
            if zoom_on and not calls:
                found, text = self.profile.text_tool_calls(reply.text)
                calls = [ToolCall(f"call_{len(zooms) + i}", n, a) for i, (n, a) in enumerate(found)]
            thinking, body = self.profile.split_thinking(text)
            said = "\n".join(t for t in (reply.thinking, thinking) if t)
            thoughts.append(said)
            if calls and zoom_on:
                # The model asks to look closer: answer every call (the zoomed region, or why not),
                # then ask again. A call made when no zoom was offered (the rounds are spent, or
                # the deadline is near) is told so and costs an attempt, so a model that keeps
                # calling cannot keep the loop going.
                echo = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                        for c in calls]
                answers = [self._zoom_call(c, crop, frame, zooms, said if i == 0 else "",
                                           _why_not(offer is not None, i))
                           for i, c in enumerate(calls)]
                # Every tool message right after the call, then any images (OpenAI's order).
                msgs = [*msgs, {"role": "assistant", "content": text, "tool_calls": echo},
                        *(m for a in answers for m in a if m["role"] == "tool"),
                        *(m for a in answers for m in a if m["role"] != "tool")]
                if offer is None:
                    attempt += 1
                    error = "the model asked to zoom when no zoom was left"
                else:
                    rounds += 1
                continue
            raws.append(reply.text)
            box = _zoom_request(body) if grammar_zoom else None
            if box is not None and rounds < self.cfg.max_zoom_rounds:
                # the grammar route has no tool role: the zoomed region is the next user turn
                image, told = self._cut_zoom(box, crop, frame, zooms, said)
                msgs = [*msgs, {"role": "assistant", "content": reply.text}, prompt.zoom_turn(image, told)]
                rounds += 1
                continue
            try:
                v = validate(body, profile=self.profile, taxonomy=taxonomy, crop_w=w, crop_h=h,
                             to_frame=crop.transform.to_frame, crop_index=crop.index,
                             model_id=self.model_id, to_mm=frame.to_mm if frame else None,
                             look=index)
            except AnswerError as e:
                self.unusable_answers += 1
                log.info("crop %d look %d: unusable answer (attempt %d): %s",
                         crop.index, index, attempt + 1, e)
                msgs = [*msgs, {"role": "assistant", "content": reply.text},
                        prompt.repair_message(str(e))]
                error = str(e)
                attempt += 1
                continue
            return look(v.answer, v.findings, v.rejected)
        return look(CropAnswer.invalid, error=f"unusable answer after a repair attempt: {error}")

    def _time_for_a_zoom(self, product: ProductConfig, frame: Frame | None, last_call_s: float) -> bool:
        """A zoom costs at least two more calls (the zoomed look and the answer): offered only while
        the part's decision deadline leaves room for them, judged by the last call's duration."""
        if frame is None or product.decision_deadline_ms is None:
            return True
        end = frame.started_mono + (product.decision_deadline_ms - product.decision_guard_ms) / 1000.0
        if time.monotonic() + 2 * last_call_s < end:
            return True
        self.zooms_past_deadline += 1
        return False

    def _zoom_call(self, call: ToolCall, crop: Crop, frame: Frame, zooms: list, thinking: str = "",
                   refuse_why: str | None = None) -> list[dict]:
        """The zoom tool's answer to one call, as the family's tool style carries it."""
        p = self.profile
        try:
            args = json.loads(call.arguments)
        except (ValueError, RecursionError):
            args = None
        args = args if isinstance(args, dict) else {}
        label = str(args.get("label", ""))[:200]
        if call.name != p.zoom_tool:
            refuse_why = f"there is no tool {call.name!r}; use {p.zoom_tool}"
        if refuse_why is not None:
            image, told = self._refuse_zoom(zooms, (), thinking, refuse_why, label)
        else:
            image, told = self._cut_zoom(args.get(p.zoom_box_arg), crop, frame, zooms, thinking, label)
        return prompt.zoom_reply(call.id, image, told, p)

    def _cut_zoom(self, box, crop: Crop, frame: Frame, zooms: list, thinking: str,
                  label: str = "") -> tuple[np.ndarray | None, str]:
        """(the region cut from the full-resolution frame at the crop's pixel budget, what to tell
        the model), or (None, an error text the model can act on). Every request is kept as a
        ZoomRound; the ones that could not be served are counted."""
        h, w = crop.image.shape[:2]
        p = self.profile
        try:
            asked = tuple(float(v) for v in box[:5])
            if len(asked) != 4 or not all(math.isfinite(v) for v in asked):
                raise ValueError
        except (ValueError, TypeError, KeyError, OverflowError):
            return self._refuse_zoom(zooms, (), thinking, f"{p.zoom_box_arg} must be four numbers [x1, y1, x2, y2]",
                                     label)
        mw, mh = p.model_size(w, h)
        if not (0 <= asked[0] < asked[2] <= mw and 0 <= asked[1] < asked[3] <= mh):
            return self._refuse_zoom(zooms, asked, thinking, f"{p.format_box(asked)} is not a region of the image "
                                     f"(x from 0 to {mw:g}, y from 0 to {mh:g}, x1 < x2, y1 < y2)", label)
        frame_box = crop.transform.to_frame(p.to_pixels(asked, w, h))
        sl = self.cfg.second_look
        zoom = crop_around(frame.image, Candidate(frame_box, 1.0, "zoom", crop.candidate.model_id), crop.index,
                           padding=0.0, min_side=sl.min_side_px, out_side=max(h, w), upscale=True)
        zooms.append(ZoomRound(asked, region_of(zoom), thinking, "", label))
        self.zoom_rounds += 1
        return zoom.image, f"the region {p.format_box(asked)}, now {zoom.image.shape[1]}x{zoom.image.shape[0]} pixels"

    def _refuse_zoom(self, zooms: list, asked: tuple, thinking: str, why: str, label: str) -> tuple[None, str]:
        self.zoom_errors += 1
        zooms.append(ZoomRound(asked, None, thinking, why, label))
        return None, f"error: {why}"

    def _count(self, t0: float, failed: bool = False) -> None:
        # Plain += from several worker threads can lose an update now and then; these are
        # monitoring counters, not accounting, so no lock on the hot path.
        self.calls += 1
        self.call_seconds += time.perf_counter() - t0
        self.call_errors += failed

    def probe(self) -> str | None:
        """What stops the backend answering now (None: nothing known), asked at start and by
        `inspector doctor`; a backend that can tell without a model call says so here."""
        return None

    def status(self) -> dict:
        return {"backend": self.backend, "model": self.model_id, "profile": self.profile.name,
                "breaker": self.breaker.snapshot(), "calls": self.calls, "call_seconds": round(self.call_seconds, 4),
                "call_errors": self.call_errors, "unusable_answers": self.unusable_answers,
                "zoom_rounds": self.zoom_rounds, "zoom_errors": self.zoom_errors,
                "zooms_past_deadline": self.zooms_past_deadline}

    def close(self) -> None:
        pass


def _zoom_request(body: str) -> list | None:
    """The box of a grammar-route zoom request ({"zoom": [x1, y1, x2, y2]}), else None."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return obj["zoom"] if isinstance(obj, dict) and set(obj) == {"zoom"} else None


def _why_not(offered: bool, i: int) -> str | None:
    """Why the i-th zoom call of a reply is not served (None: it is)."""
    if not offered:
        return "no zoom is left for this question: answer now with the JSON object"
    return None if i < ZOOMS_PER_REPLY else f"at most {ZOOMS_PER_REPLY} regions at a time"


def _swap(findings: list[Finding], old: Finding, new) -> list[Finding]:
    out = []
    for f in findings:
        out += list(new) if f is old else [f]
    return out


BACKENDS: Registry[Callable] = Registry(
    "reasoner", ReasonerConfigError, ("inspector.reasoner.llama_cpp", "inspector.reasoner.openai"))
register = BACKENDS.register


def build_reasoner(cfg, data_dir) -> Reasoner | None:
    """The configured backend, or None for `type: none` (detector-only verdicts)."""
    backend = BACKENDS.get(cfg.type)(cfg, data_dir)
    if backend is not None and not isinstance(backend, Reasoner):
        raise ReasonerConfigError(f"reasoner type {cfg.type!r} is not a Reasoner "
                                  f"({type(backend).__name__}); subclass inspector.reasoner.Reasoner")
    return backend


@register("none")
def _no_reasoner(cfg, data_dir) -> None:
    return None
