"""Model profiles: what one VLM family needs that the rest of the reasoner must not know.

A profile owns the coordinate convention (model box <-> crop pixels), how thinking text is split
from the answer, and whether llama.cpp can run the family in process. A new family is a new entry
in PROFILES; nothing else changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from inspector.messages import Box

THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)


@dataclass(frozen=True)
class Profile:
    name: str
    coords: str  # "rel1000": 0..1000 of the image shown; "abs_resized": pixels after resize to /28
    coord_max: float = 1000.0
    in_process_refusal: str = ""  # non-empty: llama.cpp cannot run this family in process, and why
    patch: int = 28  # abs_resized: sides are rounded to multiples of this

    def model_size(self, w: int, h: int) -> tuple[float, float]:
        """Extent of the model's coordinate space for an image of w x h pixels."""
        if self.coords == "rel1000":
            return self.coord_max, self.coord_max
        # Qwen2.5-VL style: the processor resizes each side to a multiple of `patch`.
        return (max(self.patch, round(w / self.patch) * self.patch),
                max(self.patch, round(h / self.patch) * self.patch))

    def to_pixels(self, box: Box, w: int, h: int) -> Box:
        mw, mh = self.model_size(w, h)
        return (box[0] * w / mw, box[1] * h / mh, box[2] * w / mw, box[3] * h / mh)

    def from_pixels(self, box: Box, w: int, h: int) -> Box:
        mw, mh = self.model_size(w, h)
        return (box[0] * mw / w, box[1] * mh / h, box[2] * mw / w, box[3] * mh / h)

    def describe_coords(self, w: int, h: int) -> str:
        if self.coords == "rel1000":
            return "[x1, y1, x2, y2] as integers from 0 to 1000, relative to the image width and height"
        mw, mh = self.model_size(w, h)
        return f"[x1, y1, x2, y2] as integer pixels of the image as you see it ({mw:.0f} x {mh:.0f})"

    def split_thinking(self, text: str) -> tuple[str, str]:
        """(thinking, answer): thinking is kept for audit and never parsed as the answer."""
        thoughts = "\n".join(m.strip() for m in THINK_RE.findall(text))
        answer = THINK_RE.sub("", text)
        if "<think>" in answer:  # unterminated thinking block (cut by max_tokens)
            head, _, rest = answer.partition("<think>")
            thoughts = (thoughts + "\n" + rest).strip()
            answer = head
        return thoughts, answer.strip()


PROFILES: dict[str, Profile] = {
    "generic": Profile("generic", "rel1000"),
    "qwen3-vl": Profile("qwen3-vl", "rel1000"),
    "qwen2.5-vl": Profile("qwen2.5-vl", "abs_resized"),
    "ernie-4.5-vl": Profile(
        "ernie-4.5-vl", "rel1000",
        in_process_refusal=(
            "llama.cpp's multimodal library (mtmd) has no projector for ERNIE-4.5-VL yet, so it "
            "cannot run in process. Serve it with an OpenAI-compatible server (vLLM or FastDeploy) "
            "and point the reasoner at that server instead."),
    ),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown model profile {name!r}; known: {sorted(PROFILES)}") from None
