"""The reasoner: asks a VLM about each crop and turns its answer into validated findings.

Backends are registered by the `reasoner.type` name in config. Every backend shares `analyze()`:
prompt -> call -> validate -> one repair retry -> (closer looks) -> CropReport, so a backend only
implements `_call`. A circuit breaker in front of `_call` stops hammering a VLM that keeps failing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from inspector.errors import InspectorError
from inspector.util.registry import Registry
from inspector.config import ProductConfig
from inspector.cropper import crop_around, region_of
from inspector.messages import Candidate, Crop, CropAnswer, CropReport, Finding, Frame, Look
from inspector.reasoner import prompt
from inspector.reasoner.answer import AnswerError, answer_schema, validate
from inspector.reasoner.breaker import CircuitBreaker
from inspector.reasoner.grammar import answer_gbnf
from inspector.reasoner.profiles import Profile, get_profile

log = logging.getLogger(__name__)

REPAIR_MARK = "----- repair attempt -----"  # separates a look's calls in its raw text
MIN_ZOOM = 1.5  # a closer look must show the frame at least this much sharper than the crop did


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
        # Model-driven zoom: through the family's zoom tool where the backend offers tools, else
        # through our grammar where the backend takes one (the answer may be {"zoom": box} instead).
        zoom_on = wants_zoom and bool(self.profile.zoom_tool) and self.supports_tools
        grammar_zoom = wants_zoom and not zoom_on and self.grammar_zoom
        h, w = crop.image.shape[:2]
        msgs = prompt.messages(crop, product, self.profile, schema, mark=self.cfg.mark_candidate,
                               previous=previous, zoom=grammar_zoom)
        gbnf = answer_gbnf(taxonomy, self.profile, w, h)
        gbnf_zoom = answer_gbnf(taxonomy, self.profile, w, h, zoom=True) if grammar_zoom else gbnf
        region = region_of(crop)
        raws: list[str] = []
        thoughts: list[str] = []
        started = time.perf_counter()

        zooms: list = []
        tools = [prompt.zoom_tool(self.profile)] if zoom_on else None

        def look(answer, findings=(), rejected=(), error=""):
            return Look(index, region, answer, tuple(findings), tuple(rejected),
                        f"\n{REPAIR_MARK}\n".join(raws), "\n".join(t for t in thoughts if t),
                        (time.perf_counter() - started) * 1000.0, error, tuple(zooms))

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
            if reply.tool_calls and zoom_on and rounds <= self.cfg.max_zoom_rounds:
                # The model asks to look closer: answer each call (the zoomed region, or why not),
                # then ask again; past the last round the tool is no longer offered.
                thoughts.append(reply.thinking)
                calls = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                         for c in reply.tool_calls]
                msgs = [*msgs, {"role": "assistant", "content": reply.text or "", "tool_calls": calls},
                        *(self._zoom(c, crop, frame, zooms) for c in reply.tool_calls)]
                rounds += 1
                continue
            raws.append(reply.text)
            thinking, body = self.profile.split_thinking(reply.text)
            thoughts += [reply.thinking, thinking]
            box = _zoom_request(body) if grammar_zoom else None
            if box is not None and rounds < self.cfg.max_zoom_rounds:
                call = ToolCall(f"zoom_{rounds}", self.profile.zoom_tool, json.dumps({self.profile.zoom_box_arg: box}))
                served = self._zoom(call, crop, frame, zooms)
                msgs = [*msgs, {"role": "assistant", "content": reply.text},
                        {"role": "user", "content": served["content"] if isinstance(served["content"], list) else
                         [{"type": "text", "text": served["content"]}]}]
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

    def _zoom(self, call, crop: Crop, frame: Frame, zooms: list) -> dict:
        """The zoom tool's answer to one call: the region cut from the full-resolution frame at the
        crop's pixel budget, or an error text the model can act on (counted)."""
        h, w = crop.image.shape[:2]
        p = self.profile
        if call.name != p.zoom_tool and not call.id.startswith("zoom_"):
            self.zoom_errors += 1
            return prompt.zoom_reply(call.id, None, f"error: there is no tool {call.name!r}; use {p.zoom_tool}")
        try:
            box = tuple(float(v) for v in json.loads(call.arguments)[p.zoom_box_arg])
            if len(box) != 4:
                raise ValueError
        except (ValueError, TypeError, KeyError):
            self.zoom_errors += 1
            return prompt.zoom_reply(call.id, None, f"error: {p.zoom_box_arg} must be four numbers [x1, y1, x2, y2]")
        mw, mh = p.model_size(w, h)
        if not (0 <= box[0] < box[2] <= mw and 0 <= box[1] < box[3] <= mh):
            self.zoom_errors += 1
            return prompt.zoom_reply(call.id, None, f"error: {p.format_box(box)} is not a region of the image "
                                                    f"(x from 0 to {mw:g}, y from 0 to {mh:g}, x1 < x2, y1 < y2)")
        frame_box = crop.transform.to_frame(p.to_pixels(box, w, h))
        sl = self.cfg.second_look
        zoom = crop_around(frame.image, Candidate(frame_box, 1.0, "zoom", crop.candidate.model_id), crop.index,
                           padding=0.0, min_side=sl.min_side_px, out_side=max(h, w), upscale=True)
        zooms.append(region_of(zoom))
        return prompt.zoom_reply(call.id, zoom.image, f"the region {p.format_box(box)}, now "
                                                      f"{zoom.image.shape[1]}x{zoom.image.shape[0]} pixels")

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
                "call_errors": self.call_errors, "unusable_answers": self.unusable_answers}

    def close(self) -> None:
        pass


def _zoom_request(body: str) -> list | None:
    """The box of a grammar-route zoom request ({"zoom": [x1, y1, x2, y2]}), else None."""
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    return obj["zoom"] if isinstance(obj, dict) and set(obj) == {"zoom"} else None


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
