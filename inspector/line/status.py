"""The line's status, typed: one definition for what the running line reports (pipeline), what a
separate dashboard hears over the line's socket or shows while the line is down (line_link), what
a plant-wide dashboard shows, and what health, metrics, STATUS= and `/api/status` read.

Strict (`extra="forbid"`): a stage that starts reporting a new number must name it here, or the
status call fails in the tests, rather than the number silently vanishing from `/api/status`.
Frozen: a dashboard hands one status to every page that asks within the same half second.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

ReasonerMode = Literal["none", "test_model", "vlm", "plant"]


class _Status(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BreakerStatus(_Status):
    state: Literal["closed", "open", "half_open"] = "closed"
    consecutive_failures: int = 0
    last_error: str | None = None
    trips: int = 0


class ReasonerStatus(_Status):
    backend: str
    model: str | None = None
    profile: str | None = None
    breaker: BreakerStatus = BreakerStatus()
    calls: int = 0
    call_seconds: float = 0.0
    call_errors: int = 0
    unusable_answers: int = 0
    zoom_rounds: int = 0  # zooms the model asked for and was shown (model-driven zoom)
    zoom_errors: int = 0  # zoom requests answered with an error (bad region, none left)
    zooms_past_deadline: int = 0  # calls made without the zoom offered: the deadline left no room


class StoreStatus(_Status):
    """The store's writer, pictures and retention (store/writer.py, images.py, retention.py)."""

    writer_queue: int = 0
    writer_committed: int = 0
    writer_batches: int = 0
    writer_duplicates: int = 0
    writer_failed: int = 0
    writer_last_error: str | None = None
    writer_last_refused: str | None = None
    writer_parked: int = 0
    writer_unparked: int = 0
    decisions_unwritten: int = 0  # line decisions told to the line, not yet in the database
    decisions_failed: int = 0  # line decisions given up on at stop (the database was away)
    images_paused: bool = False
    images_paused_reason: str | None = None
    images_paused_since: float | None = None
    images_skipped: int = 0
    images_written: int = 0
    images_bytes: int = 0
    disk_free_bytes: int | None = None
    images_budget_bytes: int | None = None
    retention_deleted_files: int = 0
    retention_freed_bytes: int = 0
    retention_last_run: float | None = None


class SinkStatus(_Status):
    """One event sink's sender (events/sender.py)."""

    name: str
    type: str
    on: list[str]
    sent: int = 0
    failures: int = 0
    dropped: int = 0
    pending: int = 0
    cursor: int = 0
    last_error: str | None = None
    failing_for_s: float | None = None


class CameraStatus(_Status):
    id: str
    source: str
    # starting / running / exhausted / failed in a line; stopped while it is down; remote on a
    # plant-wide dashboard
    state: str = "stopped"
    frames_in: int = 0
    frames_inspected: int = 0
    read_errors: int = 0
    last_frame_wall: float | None = None
    error: str | None = None  # why it failed (or why the line is down)
    untriggered: int = 0  # frames captured but not inspected (the trigger did not fire)
    connection: str | None = None  # live sources: connecting / connected / reconnecting
    reconnects: int = 0
    last_error: str | None = None
    lost: int = 0  # frames a machine-vision camera sent that never arrived (gaps in its frame ids)
    trigger: str | None = None
    parts_seen: int | None = None  # part_presence triggers only
    fps: float | None = None
    dropped: int = 0
    buffered: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    box: str | None = None  # plant-wide dashboards: the box the camera belongs to
    product: str | None = None  # the recipe it inspects now (changeover: POST .../recipe)

    @property
    def shown_state(self) -> str:
        """What the dashboard and metrics call the camera now: a running live camera's connection
        (connected / reconnecting), else its state."""
        return self.connection if self.connection and self.state == "running" else self.state


class LineUp(_Status):
    """Whether the line answers: always up in its own process; a separate dashboard says why not."""

    up: bool = True
    error: str | None = None


class DecisionStatus(_Status):
    """Line decisions (OK/NG) since the start: by answer, by basis, and how many came late."""

    ok: int = 0
    ng: int = 0
    verdict: int = 0  # the verdict was ready in time
    deadline: int = 0  # the late policy decided: the VLM was not back by the deadline
    overrun: int = 0  # the deadline had passed before the part reached the judge
    error: int = 0  # NG without an inspection: the pre-filter failed on the part's frame
    late: int = 0  # published after the deadline (overruns, and a box too busy to keep time)
    pending: int = 0  # with the VLM, deadline still ahead


class PlcLinkStatus(_Status):
    """One PLC interface (plc/): where it listens, who is connected, what the PLC asked."""

    kind: str  # modbus / opcua / reject (the reject gate's coil, a Modbus client)
    listen: str  # where it listens (the remote I/O module, for reject)
    camera: str
    ready: bool = False
    clients: int = 0  # connected PLCs (reject: 1 while connected to the I/O module)
    triggers: int = 0  # (reject: NG parts pulsed)
    overruns: int = 0  # triggers refused while busy (reject: pulses too late for the gate, not fired)
    errors: int = 0  # error codes set (overruns, unknown recipes, result queue overflow, refused triggers)
    error_code: int = 0  # the last one
    queued_results: int = 0
    state: str | None = None  # OPC 40100-1's: Ready, SingleExecution, Error, ...
    message: str = ""  # the diagnostic message (what is wrong)
    last_trigger_wall: float | None = None
    no_image: int = 0  # triggers whose image never came (answered NG)


class LineStatus(_Status):
    reasoner_mode: ReasonerMode = "none"
    reasoner_model: str | None = None
    detector_model: str | None = None
    detector_thresholds: dict[str, float] = {}
    cameras: list[CameraStatus] = []
    verdicts: dict[str, int] = {}
    candidates: int = 0
    vlm_crops: int = 0
    vlm_queue: int = 0
    vlm_overflow: int = 0
    vlm_backlog: int = 0
    vlm_late: int = 0
    reasoner: ReasonerStatus | None = None
    frame_queue: int = 0
    processing_errors: int = 0
    store_errors: int = 0
    vlm_spool: int = 0
    vlm_resumed: int = 0
    store: StoreStatus | None = None
    events: list[SinkStatus] = []
    done: bool = False
    line: LineUp = LineUp()
    decisions: DecisionStatus = DecisionStatus()
    plc: list[PlcLinkStatus] = []

    def verdict_count(self, kind: str) -> int:
        return self.verdicts.get(kind, 0)

    @property
    def breaker(self) -> BreakerStatus:
        return self.reasoner.breaker if self.reasoner is not None else BreakerStatus()


class ApiStatus(LineStatus):
    """`/api/status`: the line's status with the verdicts of all time from the database."""

    counts: dict[str, int]
