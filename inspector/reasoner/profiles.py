"""Model profiles: what one VLM family needs that the rest of the reasoner must not know.

A profile owns the coordinate convention (model box <-> image pixels), how thinking text is split
from the answer, request fields the family wants, and whether llama.cpp can run it in process.
A new family is one `register_profile(Profile(...))` call (or `profile: generic` plus
`profile_overrides` in the config); nothing else changes.

Coordinate conventions (`coords`):
- `rel1000`: [x1,y1,x2,y2] relative to the image shown, 0..coord_max (1000 for Qwen3-VL, ERNIE).
- `rel1`: the same relative to 0..1 (floats).
- `abs`: pixels of the image exactly as it was sent.
- `abs_resized`: pixels of the image after the model's processor resized it (Qwen2.5-VL: each
  side rounded to a multiple of `patch`, the area kept within min_pixels..max_pixels).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields, replace

from inspector.messages import Box

COORD_CONVENTIONS = ("rel1000", "rel1", "abs", "abs_resized")

# How a family's tool calls travel over an OpenAI-compatible server (model-driven zoom):
# - `ernie`: FastDeploy (--tool-call-parser ernie-45-vl-thinking) sends structured `tool_calls`
#   and takes the zoomed image inside the `role: tool` message, as its docs show.
# - `openai`: structured `tool_calls`; OpenAI's Chat Completions (and vLLM) accept only text in a
#   `tool` message, so the tool message says what was cut and the image follows as a user message.
# - `qwen3-vl`: as `openai`, and when the server runs no tool parser (vLLM without
#   --enable-auto-tool-choice, llama-server without --jinja) the calls arrive as Qwen's
#   `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks in the text and are read there.
#   Qwen's chat template renders a tool response as a user turn, so the image after it is where
#   the model was trained to find it.
TOOL_STYLES = ("ernie", "openai", "qwen3-vl")
_TEXT_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)


@dataclass(frozen=True)
class Profile:
    name: str
    coords: str = "rel1000"
    coord_max: float = 1000.0  # rel1000 only: the top of the relative scale
    patch: int = 28  # abs_resized: sides are multiples of this
    min_pixels: int = 4 * 28 * 28  # abs_resized: the processor's area bounds
    max_pixels: int = 16384 * 28 * 28
    think_open: str = "<think>"
    think_close: str = "</think>"
    in_process_refusal: str = ""  # non-empty: llama.cpp cannot run this family in process, and why
    request_extras: dict = field(default_factory=dict)  # extra fields for OpenAI-compatible requests
    # Model-driven zoom over HTTP: the function the family calls to look closer (its box argument
    # in the profile's coordinates); "" = the family calls no zoom tool (llama.cpp in process asks
    # for a zoom through our grammar instead).
    zoom_tool: str = ""
    zoom_box_arg: str = "bbox_2d"
    tool_style: str = "openai"  # one of TOOL_STYLES: how the calls and the zoomed image travel

    @property
    def image_in_tool_message(self) -> bool:
        return self.tool_style == "ernie"

    def text_tool_calls(self, text: str) -> tuple[list[tuple[str, str]], str]:
        """([(name, arguments JSON)], text without them): tool calls written into the answer text,
        for the styles whose models do that when the server does not parse them."""
        if self.tool_style != "qwen3-vl" or "<tool_call>" not in text:
            return [], text
        calls = []
        for m in _TEXT_CALL.finditer(text):
            try:
                obj = json.loads(m.group(1))
                name, args = obj["name"], obj.get("arguments", {})
            except (ValueError, KeyError, TypeError, RecursionError):
                name, args = "", m.group(1)  # unreadable: answered with an error, like a bad box
            calls.append((str(name), args if isinstance(args, str) else json.dumps(args)))
        return calls, _TEXT_CALL.sub("", text).strip()

    def __post_init__(self):
        if self.coords not in COORD_CONVENTIONS:
            raise ValueError(f"profile {self.name!r}: coords must be one of {COORD_CONVENTIONS}, "
                             f"got {self.coords!r}")
        if self.coord_max <= 0 or self.patch < 1 or not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError(f"profile {self.name!r}: coord_max, patch and pixel bounds must be "
                             f"positive with min_pixels <= max_pixels")
        if not self.think_open or not self.think_close:
            raise ValueError(f"profile {self.name!r}: thinking tags must not be empty")
        if self.tool_style not in TOOL_STYLES:
            raise ValueError(f"profile {self.name!r}: tool_style must be one of {TOOL_STYLES}, "
                             f"got {self.tool_style!r}")

    # --- coordinates -------------------------------------------------------------------------

    @property
    def integer_boxes(self) -> bool:
        return self.coords != "rel1"

    def model_size(self, w: int, h: int) -> tuple[float, float]:
        """Extent of the model's coordinate space for an image of w x h pixels."""
        if self.coords == "rel1000":
            return self.coord_max, self.coord_max
        if self.coords == "rel1":
            return 1.0, 1.0
        if self.coords == "abs":
            return float(w), float(h)
        rh, rw = smart_resize(h, w, self.patch, self.min_pixels, self.max_pixels)
        return float(rw), float(rh)

    def to_pixels(self, box: Box, w: int, h: int) -> Box:
        mw, mh = self.model_size(w, h)
        return (box[0] * w / mw, box[1] * h / mh, box[2] * w / mw, box[3] * h / mh)

    def from_pixels(self, box: Box, w: int, h: int) -> Box:
        mw, mh = self.model_size(w, h)
        return (box[0] * mw / w, box[1] * mh / h, box[2] * mw / w, box[3] * mh / h)

    def format_box(self, box: Box) -> str:
        if self.integer_boxes:
            return "[" + ", ".join(f"{v:.0f}" for v in box) + "]"
        return "[" + ", ".join(f"{v:.3f}" for v in box) + "]"

    def describe_coords(self, w: int, h: int) -> str:
        if self.coords == "rel1000":
            return (f"[x1, y1, x2, y2] as integers from 0 to {self.coord_max:.0f}, relative to the "
                    f"image width and height")
        if self.coords == "rel1":
            return "[x1, y1, x2, y2] as fractions from 0 to 1 of the image width and height"
        mw, mh = self.model_size(w, h)
        return f"[x1, y1, x2, y2] as integer pixels of the image as you see it ({mw:.0f} x {mh:.0f})"

    # --- thinking ------------------------------------------------------------------------------

    def split_thinking(self, text: str) -> tuple[str, str]:
        """(thinking, answer): thinking is kept for audit and never parsed as the answer."""
        o, c = re.escape(self.think_open), re.escape(self.think_close)
        pattern = re.compile(f"{o}(.*?){c}", re.DOTALL)
        thoughts = [m.strip() for m in pattern.findall(text)]
        answer = pattern.sub("", text)
        if self.think_open in answer:  # unterminated block (cut by max_tokens): all of it is thought
            head, _, rest = answer.partition(self.think_open)
            thoughts.append(rest.strip())
            answer = head
        elif self.think_close in answer:
            # Some chat templates put the opening tag in the prompt, so the reply starts mid-thought.
            head, _, answer = answer.rpartition(self.think_close)
            thoughts.insert(0, head.strip())
        return "\n".join(t for t in thoughts if t), answer.strip()


def smart_resize(h: int, w: int, patch: int = 28, min_pixels: int = 4 * 28 * 28,
                 max_pixels: int = 16384 * 28 * 28) -> tuple[int, int]:
    """(height, width) the Qwen2.5-VL processor resizes an image to (its `smart_resize`)."""
    hb = max(patch, round(h / patch) * patch)
    wb = max(patch, round(w / patch) * patch)
    if hb * wb > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        hb = max(patch, math.floor(h / beta / patch) * patch)
        wb = max(patch, math.floor(w / beta / patch) * patch)
    elif hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        hb = math.ceil(h * beta / patch) * patch
        wb = math.ceil(w * beta / patch) * patch
    return hb, wb


PROFILES: dict[str, Profile] = {}


def register_profile(profile: Profile) -> Profile:
    PROFILES[profile.name] = profile
    return profile


register_profile(Profile("generic"))
# Qwen3-VL "thinks with images" through Qwen-Agent's image_zoom_in_tool (bbox_2d in 0-1000).
register_profile(Profile("qwen3-vl", "rel1000", zoom_tool="image_zoom_in_tool", tool_style="qwen3-vl"))
register_profile(Profile("qwen2.5-vl", "abs_resized", max_pixels=1280 * 28 * 28))
# In process it needs this project's llama.cpp patches (patches/llama.cpp, built by bootstrap.sh)
# and GGUFs from `inspector models convert-ernie-vl`; behind FastDeploy or vLLM it needs neither.
register_profile(Profile(
    "ernie-4.5-vl", "rel1000",
    # FastDeploy's switch for the Thinking variant; servers that do not know it ignore it.
    request_extras={"chat_template_kwargs": {"options": {"thinking_mode": "open"}}},
    # "thinking with images": FastDeploy's --tool-call-parser ernie-45-vl-thinking
    zoom_tool="image_zoom_in_tool", tool_style="ernie",
))

OVERRIDABLE = tuple(f.name for f in fields(Profile) if f.name not in ("name", "in_process_refusal"))


def get_profile(name: str, overrides: dict | None = None) -> Profile:
    try:
        base = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown model profile {name!r}; known: {sorted(PROFILES)}") from None
    if not overrides:
        return base
    unknown = set(overrides) - set(OVERRIDABLE)
    if unknown:
        raise ValueError(f"profile_overrides: unknown key(s) {sorted(unknown)}; "
                         f"allowed: {list(OVERRIDABLE)}")
    return replace(base, **overrides)
