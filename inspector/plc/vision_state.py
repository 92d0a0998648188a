"""The vision system's state as OPC 40100-1 names it, read off the line, for every PLC link.

VisionStateMachine: Preoperational (starting), Halted (not used: the inspector never halts on
its own), Error (the camera cannot take triggers, or the inspector is stopping), Operational.
Within Operational, the automatic mode: Ready (takes a trigger), SingleExecution (a triggered
image is being acquired), ContinuousExecution (every frame is inspected until Stop). Initialized
is passed through at start and not held: a recipe is always prepared.
"""

from __future__ import annotations

from dataclasses import dataclass

PREOPERATIONAL, HALTED, ERROR, OPERATIONAL = "Preoperational", "Halted", "Error", "Operational"
INITIALIZED, READY, SINGLE, CONTINUOUS = "Initialized", "Ready", "SingleExecution", "ContinuousExecution"
# The numbers the Modbus State register shows (and the order a PLC program can compare with).
NUMBERS = {PREOPERATIONAL: 0, HALTED: 1, ERROR: 2, READY: 3, SINGLE: 4, CONTINUOUS: 5}
# SEMI E10 states for SystemState: productive, standby, unscheduled down time.
E10 = {PREOPERATIONAL: "SBY", HALTED: "SBY", ERROR: "UDT", READY: "SBY", SINGLE: "PRD", CONTINUOUS: "PRD"}


@dataclass(frozen=True)
class VisionState:
    main: str  # Preoperational / Halted / Error / Operational
    automatic: str | None  # within Operational: Ready / SingleExecution / ContinuousExecution
    message: str  # the diagnostic message: what is wrong, or "" when nothing is

    @property
    def name(self) -> str:
        """The innermost state: Ready, SingleExecution, ... or Error."""
        return self.automatic if self.main == OPERATIONAL else self.main

    @property
    def number(self) -> int:
        return NUMBERS[self.name]


def line_state(pipe, camera: str, *, acquiring: bool, continuous: bool, stopping: bool = False) -> VisionState:
    if stopping or pipe.stop_event.is_set():
        return VisionState(ERROR, None, "the inspector is stopping")
    cam = pipe.cameras[camera]
    if cam.state == "starting":
        return VisionState(PREOPERATIONAL, None, "the camera is starting")
    if cam.state == "failed":
        return VisionState(ERROR, None, f"camera {camera} failed: {cam.error or 'no frames'}")
    if cam.state == "exhausted":
        return VisionState(ERROR, None, f"camera {camera} has no more frames")
    conn = getattr(pipe.sources[camera], "state", None)
    if conn is not None and conn != "connected" and cam.state == "running":
        src = pipe.sources[camera]
        why = getattr(src, "last_error", None) or conn
        return VisionState(ERROR, None, f"camera {camera} is {conn}: {why}")
    return VisionState(OPERATIONAL, CONTINUOUS if continuous else SINGLE if acquiring else READY, "")
