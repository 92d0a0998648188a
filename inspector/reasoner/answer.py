"""The answer schema the VLM is asked for, and its strict validation.

Grammar-constrained decoding guarantees the *shape* of the JSON, not its values (llama.cpp's
schema-to-grammar honours enums and item counts but not numeric ranges), so every value is checked
here. Rules, per finding:
- `box` must be four numbers in the profile's coordinate space. Coordinates up to 1% outside it are
  clamped to the edge (rounding at the border); anything further out rejects the finding.
- An inverted box (x1 > x2 or y1 > y2) is rejected, not repaired: a model that confuses corners
  cannot be trusted about where. A box under 2 crop pixels wide or high is rejected as degenerate.
- `confidence` must lie in 0..1 and `severity` in the enum; otherwise the finding is rejected.
- A `type` outside the taxonomy becomes "other", the name the model used kept in the reason.
- `defect` with no valid finding, or `ok` with any finding (valid or refused), becomes `uncertain`.
Rejected findings are kept, with why, in the report. An answer that is not JSON or lacks the
required structure raises AnswerError (the reasoner then makes one repair attempt).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

from inspector.errors import InspectorError
from inspector.messages import Box, CropAnswer, Finding, Severity
from inspector.reasoner.profiles import Profile

MAX_FINDINGS = 4
MAX_REASON = 120  # a short reason; with 4 findings the whole answer fits max_tokens=1024
CLAMP_TOLERANCE = 0.01


class AnswerError(InspectorError, ValueError):
    """The model's text is not a usable answer (not JSON, or the wrong structure)."""


def answer_schema(taxonomy: list[str], integer_boxes: bool = True) -> dict:
    return {
        "type": "object",
        "properties": {
            "verdict": {"type": "string", "enum": ["defect", "ok", "uncertain"]},
            "findings": {
                "type": "array",
                "maxItems": MAX_FINDINGS,
                "items": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "enum": [*taxonomy, "other"]},
                        "severity": {"type": "string", "enum": [s.value for s in Severity]},
                        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                        "box": {"type": "array",
                                "items": {"type": "integer" if integer_boxes else "number"},
                                "minItems": 4, "maxItems": 4},
                        "reason": {"type": "string", "maxLength": MAX_REASON},
                    },
                    "required": ["type", "severity", "confidence", "box", "reason"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["verdict", "findings"],
        "additionalProperties": False,
    }


@dataclass(frozen=True)
class ValidatedAnswer:
    answer: CropAnswer
    findings: tuple[Finding, ...]
    rejected: tuple[str, ...]


def parse_json(text: str) -> dict:
    text = text.strip()
    if text.startswith("```"):  # some servers wrap JSON in a markdown fence despite the schema
        text = text.strip("`").removeprefix("json").strip()
    try:
        # strict=False: raw control characters inside a reason string are harmless (the dashboard
        # escapes them) and not worth failing an otherwise usable answer for.
        doc = json.loads(text, strict=False)
    except json.JSONDecodeError as e:
        raise AnswerError(f"not valid JSON: {e.msg} (character {e.pos})") from None
    except ValueError as e:  # e.g. an integer of more digits than Python converts
        raise AnswerError(f"not usable JSON: {str(e).splitlines()[0][:120]}") from None
    except RecursionError:
        raise AnswerError("not usable JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise AnswerError(f"expected a JSON object, got {type(doc).__name__}")
    return doc


def validate(text: str, *, profile: Profile, taxonomy: list[str], crop_w: int, crop_h: int,
             to_frame, crop_index: int, model_id: str, to_mm=None, look: int = 0) -> ValidatedAnswer:
    """Check an answer and map its boxes to frame pixels via `to_frame` (crop box -> frame box)
    and, where `to_mm` is given (a calibrated camera), to millimetres."""
    doc = parse_json(text)
    verdict = doc.get("verdict")
    if verdict not in ("defect", "ok", "uncertain"):
        raise AnswerError(f"'verdict' must be defect, ok or uncertain, got {verdict!r}")
    items = doc.get("findings")
    if not isinstance(items, list):
        raise AnswerError(f"'findings' must be a list, got {type(items).__name__}")
    findings, rejected = [], []
    for n, item in enumerate(items[:MAX_FINDINGS]):
        try:
            f = _finding(item, profile, taxonomy, crop_w, crop_h, to_frame, crop_index, model_id)
            findings.append(replace(f, box_mm=to_mm(f.box) if to_mm else None, look=look))
        except ValueError as e:
            rejected.append(f"finding {n}: {e}")
    if len(items) > MAX_FINDINGS:
        rejected.append(f"{len(items) - MAX_FINDINGS} findings beyond the first {MAX_FINDINGS} ignored")
    answer = CropAnswer(verdict)
    if answer is CropAnswer.defect and not findings:
        answer = CropAnswer.uncertain  # a defect claimed but nowhere valid: a person must look
    elif answer is CropAnswer.ok and (findings or rejected):
        # "ok" while listing findings contradicts itself, even when validation refused them all:
        # such an answer must not pass a part.
        answer = CropAnswer.uncertain
    return ValidatedAnswer(answer, tuple(findings), tuple(rejected))


def _finding(item, profile, taxonomy, crop_w, crop_h, to_frame, crop_index, model_id) -> Finding:
    if not isinstance(item, dict):
        raise ValueError(f"not an object: {item!r:.60}")
    kind = item.get("type")
    reason = item.get("reason")
    reason = reason[:MAX_REASON] if isinstance(reason, str) else ""
    if not isinstance(kind, str) or not kind:
        raise ValueError("missing defect type")
    if kind not in taxonomy and kind != "other":
        reason = f"(model said {kind!r}) {reason}"[:MAX_REASON]
        kind = "other"
    try:
        severity = Severity(item.get("severity"))
    except ValueError:
        raise ValueError(f"severity {item.get('severity')!r} is not minor/major/critical") from None
    conf = item.get("confidence")
    if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not 0 <= conf <= 1:
        raise ValueError(f"confidence {conf!r} is outside 0..1")
    box = _model_box(item.get("box"), profile, crop_w, crop_h)
    px = profile.to_pixels(box, crop_w, crop_h)
    if px[2] - px[0] < 2 or px[3] - px[1] < 2:
        raise ValueError(f"degenerate box {list(item['box'])} (under 2 px in the crop)")
    return Finding(kind, severity, float(conf), to_frame(px), reason, crop_index, model_id)


def _finite(v) -> bool:
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer too large for a float
        return False


def _model_box(raw, profile: Profile, crop_w: int, crop_h: int) -> Box:
    if (not isinstance(raw, list) or len(raw) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw)
            or not all(_finite(v) for v in raw)):
        raise ValueError(f"box must be 4 finite numbers, got {raw!r:.80}")
    mw, mh = profile.model_size(crop_w, crop_h)
    limits = (mw, mh, mw, mh)
    out = []
    for v, lim in zip(raw, limits):
        tol = lim * CLAMP_TOLERANCE
        if v < -tol or v > lim + tol:
            raise ValueError(f"box {raw} lies outside the model's 0..{lim:g} coordinate space")
        out.append(min(max(float(v), 0.0), float(lim)))
    if out[0] > out[2] or out[1] > out[3]:
        raise ValueError(f"inverted box {raw} (x1 > x2 or y1 > y2)")
    return tuple(out)
