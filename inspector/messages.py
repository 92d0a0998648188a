"""Typed messages passed between pipeline stages.

Stages only exchange these; none reaches into another stage's internals. Boxes are always
(x1, y1, x2, y2) in pixels of the *full frame* unless a field says otherwise.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

import numpy as np

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Frame:
    camera_id: str
    seq: int
    image: np.ndarray  # BGR, uint8, HxWx3
    captured_mono: float = field(default_factory=time.monotonic)
    captured_wall: float = field(default_factory=time.time)
    roi: Box | None = None  # inspection region in frame pixels; None = whole frame
    source_name: str = ""  # file name or URL the frame came from, for the audit trail
    mm_per_px: float | None = None  # the camera's calibration; None = uncalibrated
    part_id: str | None = None  # the part's identity: from the trigger, or a code read in the frame
    product: str = ""  # the camera's recipe when the frame was taken ("" = the configured one)
    triggered_mono: float | None = None  # a software trigger's request time: the part's clock starts there
    device_frame_id: int | None = None  # a machine-vision camera's own frame id (GenICam sources)
    device_timestamp: int | None = None  # and its clock when it exposed the frame, in the camera's ticks

    @property
    def started_mono(self) -> float:
        """Where the part's decision deadline is counted from: the trigger, else the capture."""
        return self.triggered_mono if self.triggered_mono is not None else self.captured_mono

    def to_mm(self, box: Box) -> Box | None:
        """A frame-pixel box in millimetres from the ROI's top-left corner (the part datum)."""
        if not self.mm_per_px:
            return None
        ox, oy = (self.roi[0], self.roi[1]) if self.roi else (0.0, 0.0)
        s = self.mm_per_px
        return ((box[0] - ox) * s, (box[1] - oy) * s, (box[2] - ox) * s, (box[3] - oy) * s)

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.image.shape[:2]
        return w, h


@dataclass(frozen=True)
class Candidate:
    box: Box
    score: float
    label: str
    model_id: str


@dataclass(frozen=True)
class CropTransform:
    """Maps crop pixels back to frame pixels: frame = offset + crop / scale."""

    offset_x: float
    offset_y: float
    scale: float = 1.0  # crop pixels per frame pixel (the crop may be resized for the VLM)

    def to_frame(self, box: Box) -> Box:
        x1, y1, x2, y2 = box
        s = self.scale
        return (self.offset_x + x1 / s, self.offset_y + y1 / s,
                self.offset_x + x2 / s, self.offset_y + y2 / s)

    def to_crop(self, box: Box) -> Box:
        x1, y1, x2, y2 = box
        s = self.scale
        return ((x1 - self.offset_x) * s, (y1 - self.offset_y) * s,
                (x2 - self.offset_x) * s, (y2 - self.offset_y) * s)


@dataclass(frozen=True)
class Crop:
    candidate: Candidate
    index: int  # position among the frame's crops
    image: np.ndarray  # BGR
    transform: CropTransform

    @property
    def candidate_box_in_crop(self) -> Box:
        return self.transform.to_crop(self.candidate.box)


class Severity(str, enum.Enum):
    minor = "minor"
    major = "major"
    critical = "critical"


@dataclass(frozen=True)
class Finding:
    """One defect the VLM located, already validated and mapped to frame pixels."""

    defect_type: str
    severity: Severity
    confidence: float
    box: Box  # frame pixels
    reason: str
    crop_index: int
    model_id: str
    box_mm: Box | None = None  # millimetres from the ROI origin, where the camera is calibrated
    look: int = 0  # which look (0 = the first question about the crop) produced it


class CropAnswer(str, enum.Enum):
    defect = "defect"
    ok = "ok"
    uncertain = "uncertain"
    invalid = "invalid"  # malformed even after the repair retry
    unavailable = "unavailable"  # backend down / errored


@dataclass(frozen=True)
class ZoomRound:
    """One region the model asked to see closer while it answered (model-driven zoom)."""

    asked: tuple[float, ...]  # the region as the model named it, in its coordinates; () if unreadable
    region: Box | None  # frame pixels it was shown; None when the request could not be served
    thinking: str = ""  # the model's thinking that led to the request
    error: str = ""  # why it was not served (told to the model, and counted)
    label: str = ""  # what the model said it was looking for, if it said


@dataclass(frozen=True)
class Look:
    """One question put to the VLM about one region: the crop itself, or a closer look."""

    index: int  # 0 = the crop as cut; 1.. = closer looks at a finding of the previous look
    region: Box  # frame pixels of the image the model was shown
    answer: CropAnswer
    findings: tuple[Finding, ...]
    rejected: tuple[str, ...]  # why individual findings were refused by validation
    raw: str  # the model's raw text, every attempt (answer and repair)
    thinking: str  # thinking text, kept for audit and never parsed as the answer
    latency_ms: float
    error: str = ""
    zooms: tuple[ZoomRound, ...] = ()  # every zoom the model asked for while it answered, in order
    tokens: int = 0  # tokens the model generated for this look (as its server counted them; 0: unknown)

    @property
    def zoomed(self) -> tuple[Box, ...]:
        """The frame regions the model was shown closer."""
        return tuple(z.region for z in self.zooms if z.region is not None)


@dataclass(frozen=True)
class CropReport:
    """Everything the reasoner concluded about one crop, kept whole for the audit trail.

    `answer` and `findings` are the conclusion after every look; `looks` holds each question
    and answer as asked. `raw`, `rejected` and `error` describe the first look."""

    crop_index: int
    answer: CropAnswer
    findings: tuple[Finding, ...]
    rejected: tuple[str, ...]
    raw: str
    model_id: str
    latency_ms: float  # all looks together
    error: str = ""
    looks: tuple[Look, ...] = ()


class VerdictKind(str, enum.Enum):
    passed = "pass"
    fail = "fail"
    review = "review"


@dataclass(frozen=True)
class Verdict:
    frame: Frame
    kind: VerdictKind
    why: str  # short machine-readable basis, e.g. "vlm_agreed", "detector_only"
    explanation: str  # one sentence for the operator
    candidates: tuple[Candidate, ...]
    reports: tuple[CropReport, ...]
    decided_wall: float = field(default_factory=time.time)

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for r in self.reports for f in r.findings)


class LineAnswer(str, enum.Enum):
    ok = "ok"  # the part goes on
    ng = "ng"  # the reject gate takes it


@dataclass(frozen=True)
class LineDecision:
    """What the line was told about one part: exactly one per inspection, by its deadline.

    basis: `verdict` (the judge's verdict was ready in time; review counts as NG, a person looks
    at the part off the line), `deadline` (the VLM had not answered: `policy` decided) or `overrun`
    (the deadline had passed before the part even reached the judge: `policy` decided)."""

    uid: str
    camera_id: str
    seq: int
    product: str
    answer: LineAnswer
    basis: str  # verdict / deadline / overrun
    policy: str | None  # reject / pass / detector, for deadline and overrun
    verdict_kind: str | None  # the verdict that decided, for basis verdict
    captured_wall: float
    decided_wall: float
    elapsed_ms: float  # trigger (else capture) to decision, on the monotonic clock
    deadline_ms: int | None
    part_id: str | None = None  # what the PLC matches the answer to the part by
    defects: tuple[str, ...] = ()  # the findings' defect types, for basis verdict (the PLC's codes)

    @property
    def on_time(self) -> bool:
        return self.deadline_ms is None or self.elapsed_ms <= self.deadline_ms
