"""One YAML file, validated by pydantic. Every setting has a default that runs the bundled demo line.

Unknown keys are refused (a typo must not silently fall back to a default), and every error names
the file and the dotted key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError,
                      field_validator, model_validator)

from inspector.errors import InspectorError
from inspector import MAX_IMAGE_PIXELS

from inspector.util.bundled import bundled

MODELS_DIR = bundled("models")


class ConfigError(InspectorError):
    """A config file that cannot be used; the message names the file and the key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- frame sources ---------------------------------------------------------------------------

class FolderSourceConfig(_Model):
    type: Literal["folder"]
    path: Path
    fps: float | None = Field(None, gt=0, description="replay rate; None = as fast as processed")
    loop: bool = Field(False, description="start over after the last file (with after: remember or "
                                          "move: keep watching the folder for new files)")
    after: Literal["keep", "remember", "move"] | None = Field(
        None, description="a file whose verdict is stored: keep (inspected again at the next start), "
                          "remember (left in place; <data_dir>/inspected/<camera>.jsonl skips it from "
                          "then on), move (to move_to); None = remember, or keep when loop is true")
    move_to: Path | None = Field(None, description="after: move: the folder inspected files go to")

    @model_validator(mode="after")
    def _after(self):
        if self.after is None:
            self.after = "keep" if self.loop else "remember"
        if (self.after == "move") != (self.move_to is not None):
            raise ValueError("after: move needs move_to (a folder), and move_to is only for after: move")
        return self


class VideoSourceConfig(_Model):
    type: Literal["video"]
    path: Path
    fps: float | None = Field(None, gt=0, description="replay rate; None = as fast as processed")
    loop: bool = False


class DemoSourceConfig(_Model):
    """The bundled demo line: generated into the data directory on first use, then replayed."""

    type: Literal["demo"] = "demo"
    parts: int = Field(24, ge=1, le=500)
    seed: int = 7
    fps: float | None = Field(2.0, gt=0)
    loop: bool = True


class ReconnectConfig(_Model):
    initial_s: float = Field(0.5, gt=0, description="first wait after a camera fails; doubles each time")
    max_s: float = Field(30.0, gt=0, description="longest wait between reconnect attempts")


class _LiveSource(_Model):
    width: int | None = Field(None, gt=0, description="resolution to ask the camera for")
    height: int | None = Field(None, gt=0)
    fps: float | None = Field(None, gt=0, description="frame rate to ask the camera for")
    exposure: float | None = Field(None, description="manual exposure, in the backend's units")
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)


class UsbSourceConfig(_LiveSource):
    type: Literal["usb"]
    device: int | str = Field(0, description="V4L2 index (0) or path (/dev/video0, /dev/v4l/by-id/...)")


class RtspSourceConfig(_LiveSource):
    type: Literal["rtsp"]
    url: str = Field(pattern=r"^rtsps?://", description="rtsp://user:password@host:554/stream")
    timeout_s: float = Field(5.0, gt=0, description="open and read timeout")


class MjpegSourceConfig(_LiveSource):
    type: Literal["mjpeg"]
    url: str = Field(pattern=r"^https?://", description="an HTTP multipart MJPEG stream")
    timeout_s: float = Field(5.0, gt=0, description="open and read timeout")


class GStreamerSourceConfig(_LiveSource):
    type: Literal["gstreamer"]
    pipeline: str = Field(description="a GStreamer pipeline ending in appsink (GigE/industrial cameras)")


SourceConfig = Annotated[
    Union[FolderSourceConfig, VideoSourceConfig, DemoSourceConfig, UsbSourceConfig, RtspSourceConfig,
          MjpegSourceConfig, GStreamerSourceConfig], Field(discriminator="type")
]


class BufferConfig(_Model):
    policy: Literal["auto", "latest", "drop_oldest", "block"] = Field(
        "auto", description="when processing falls behind: latest (keep the newest frame), "
                            "drop_oldest, or block (offline replay only); auto = block for files "
                            "and folders, latest for live cameras")
    size: int | None = Field(None, ge=1, description="frames held (drop_oldest, block); default frame_queue")


class TriggerConfig(_Model):
    mode: Literal["continuous", "every_n", "part_presence", "software"] = Field(
        "continuous", description="which frames are inspected (POST /api/cameras/{id}/trigger "
                                  "also fires under every mode)")
    n: int = Field(5, ge=1, description="every_n: inspect one frame in n")
    enter_fraction: float = Field(0.05, gt=0, le=1, description="part_presence: share of the ROI "
                                  "that must differ from the empty belt for a part to be there")
    leave_fraction: float = Field(0.02, gt=0, le=1, description="part_presence: below this the belt is empty again")
    pixel_threshold: float = Field(25, gt=0, description="part_presence: grey-level difference that counts")
    settle_frames: int = Field(2, ge=1, description="part_presence: frames a change must last")
    background_rate: float = Field(0.02, gt=0, le=1, description="part_presence: how fast the empty "
                                   "belt's picture follows slow light changes")
    analysis_width: int = Field(160, ge=16, description="part_presence: ROI width analysed, px")

    @model_validator(mode="after")
    def _hysteresis(self):
        if self.leave_fraction > self.enter_fraction:
            raise ValueError("leave_fraction must not exceed enter_fraction")
        return self


class CameraConfig(_Model):
    id: str = Field("demo-cam", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    product: str = "demo-tile"
    source: SourceConfig = Field(default_factory=DemoSourceConfig)
    roi: tuple[int, int, int, int] | None = Field(
        None, description="inspection rectangle x1,y1,x2,y2 in frame pixels; None = whole frame")
    mm_per_px: float | None = Field(
        None, gt=0, description="millimetres per pixel on the part plane; findings get mm boxes "
                                "(default: from calibration/<id>.yaml when it was measured)")
    buffer: BufferConfig = Field(default_factory=BufferConfig)
    trigger: TriggerConfig = Field(default_factory=TriggerConfig)
    undistort: bool = Field(
        True, description="remove lens distortion when calibration/<id>.yaml exists "
                          "(`inspector calibrate camera`)")

    roi_polygon: list[tuple[float, float]] | None = Field(
        None, description="inspection area as [[x, y], ...] in frame pixels (after rotation); "
                          "candidates outside it are dropped; roi defaults to its bounding box")
    rotate: Literal[0, 90, 180, 270] = Field(0, description="degrees clockwise, applied after undistortion")
    flip: Literal["none", "horizontal", "vertical", "both"] = "none"

    @field_validator("roi")
    @classmethod
    def _roi_ordered(cls, v):
        if v is not None and (v[0] >= v[2] or v[1] >= v[3] or min(v) < 0):
            raise ValueError("roi must be x1,y1,x2,y2 with x1 < x2, y1 < y2, all >= 0")
        return v

    @field_validator("roi_polygon")
    @classmethod
    def _polygon(cls, v):
        if v is not None:
            if len(v) < 3:
                raise ValueError("roi_polygon needs at least 3 points")
            if min(min(p) for p in v) < 0:
                raise ValueError("roi_polygon points must be >= 0")
            xs, ys = [p[0] for p in v], [p[1] for p in v]
            if max(xs) - min(xs) < 8 or max(ys) - min(ys) < 8:
                raise ValueError("roi_polygon encloses less than 8x8 pixels")
        return v

    def inspection_roi(self):
        """The rectangle the pre-filter looks at: roi, else the polygon's bounding box."""
        if self.roi is not None or self.roi_polygon is None:
            return self.roi
        xs, ys = [p[0] for p in self.roi_polygon], [p[1] for p in self.roi_polygon]
        return (int(min(xs)), int(min(ys)), int(max(xs)) + 1, int(max(ys)) + 1)


# --- product recipe ----------------------------------------------------------------------------

DEFAULT_TAXONOMY = {
    "scratch": "a thin straight or curved line cut into the surface",
    "crack": "a jagged dark fracture line that may branch",
    "stain": "a discoloured patch: oil, rust or a tint that does not belong to the surface",
    "hole": "a round pit or hole through or into the surface",
    "chip": "material missing at an edge or corner",
}


class ProductConfig(_Model):
    name: str = "demo-tile"
    good_part: str = (
        "a flat tile with an even natural surface texture (stone, brick or gravel) and intact edges")
    defects: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_TAXONOMY))

    @field_validator("defects")
    @classmethod
    def _taxonomy(cls, v):
        if not v:
            raise ValueError("the defect taxonomy needs at least one defect type")
        if "other" in v:
            raise ValueError("'other' is reserved for findings outside the taxonomy")
        return v


# --- pre-filter ----------------------------------------------------------------------------

class _DetectorCommon(_Model):
    threshold: float | None = Field(
        None, gt=0, description="decision threshold; None = the product's calibration, else the "
                                "model's default")
    min_area_px: int = Field(40, ge=1, description="smaller blobs/boxes are ignored")
    max_candidates: int = Field(8, ge=1)
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$",
                               description="pin the model file: refused at start if it differs")


class _MapDetectorCommon(_DetectorCommon):
    secondary: float = Field(
        0.9, gt=0, le=1, description="on a part that has a region above the threshold, also box "
                                     "weaker regions above this share of it (1 = only the threshold)")


class DetectorConfig(_MapDetectorCommon):
    """The bundled default detector (an anomaly-map model described by models/manifest.json)."""

    type: Literal["default"] = "default"
    model: Path = MODELS_DIR / "default-anomaly.onnx"
    manifest: Path = MODELS_DIR / "manifest.json"


class AnomalyMapDetectorConfig(_MapDetectorCommon):
    """An anomaly-map ONNX model as anomalib exports it: input image -> anomaly map (and score)."""

    type: Literal["anomaly_map"]
    model: Path
    input_size: tuple[int, int] | None = Field(
        None, description="[width, height] the model takes; None = read from the model, or any "
                          "size when its input is dynamic")
    max_side: int = Field(640, ge=32, description="dynamic-size models: the ROI is downscaled to this")
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    dtype: Literal["float32", "uint8"] = "float32"
    channels: Literal["RGB", "BGR"] = "RGB"
    mean: tuple[float, float, float] = Field((0.485, 0.456, 0.406), description="after scaling to 0..1")
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    map_output: str | None = Field(None, description="output name of the map; None = the first 4-D one")
    label: str = "anomaly"


class YoloDetectorConfig(_DetectorCommon):
    """An Ultralytics YOLOv8/YOLO11 detection model exported to ONNX (output [1, 4+nc, N])."""

    type: Literal["yolo"]
    model: Path
    labels: Path | None = Field(None, description="class names, one per line; None = the names "
                                                  "Ultralytics stores in the ONNX metadata")
    threshold: float | None = Field(None, gt=0, le=1, description="default confidence threshold")
    class_thresholds: dict[str, float] = Field(
        default_factory=dict, description="per-class confidence thresholds, by label")
    iou_threshold: float = Field(0.45, gt=0, le=1, description="NMS overlap (per class)")
    min_area_px: int = Field(1, ge=1)


def _detector_tag(v):
    if isinstance(v, dict):
        return v.get("type", "default")  # `detector:` without a type is the bundled one
    return getattr(v, "type", "default")


AnyDetectorConfig = Annotated[
    Union[Annotated[DetectorConfig, Tag("default")],
          Annotated[AnomalyMapDetectorConfig, Tag("anomaly_map")],
          Annotated[YoloDetectorConfig, Tag("yolo")]],
    Discriminator(_detector_tag),
]


class CropperConfig(_Model):
    padding: float = Field(0.5, ge=0, le=4, description="context added around a box, x its size")
    min_side_px: int = Field(96, ge=8)
    max_side_px: int = Field(448, ge=32, description="crops are downscaled to this for the VLM")
    max_crops: int = Field(4, ge=1, description="per frame; the highest-scoring candidates win")


# --- reasoner ------------------------------------------------------------------------------

class NoReasonerConfig(_Model):
    type: Literal["none"] = "none"


class SecondLookConfig(_Model):
    """A closer look, as a person would: crop the original frame tighter around a finding and
    ask again at higher resolution when the first answer is small or unsure."""

    max_looks: int = Field(2, ge=1, le=4, description="questions per crop in all; 1 = no second look")
    small_box_ratio: float = Field(
        0.02, ge=0, le=1, description="a finding covering less than this share of the crop is looked at again")
    min_confidence: float = Field(
        0.5, ge=0, le=1, description="a finding less confident than this is looked at again")
    max_per_look: int = Field(2, ge=1, description="findings re-examined per look")
    padding: float = Field(1.0, ge=0, le=4, description="context around the finding, x its size")
    min_side_px: int = Field(48, ge=8, description="smallest region of the frame to show")


class _ReasonerCommon(_Model):
    profile: str = "generic"
    profile_overrides: dict = Field(
        default_factory=dict,
        description="change any profile field (coords, coord_max, patch, min_pixels, max_pixels, "
                    "think_open, think_close, request_extras): `generic` plus this covers a new VLM")
    seed: int = 0
    temperature: float = Field(0.2, ge=0)
    max_tokens: int = Field(1024, ge=16)
    timeout_s: float = Field(60.0, gt=0, description="per call; a slower answer counts as a failure")
    queue_size: int = Field(64, ge=1, description="frames waiting for the VLM before overflow")
    workers: int = Field(1, ge=1, le=64, description="reasoner threads = requests in flight")
    mark_candidate: bool = Field(
        True, description="draw the detector's box on the crop as well as stating it in the prompt")
    second_look: SecondLookConfig = Field(default_factory=SecondLookConfig)
    breaker_failures: int = Field(
        3, ge=1, description="consecutive failed calls that open the circuit (stop calling)")
    breaker_cooldown_s: float = Field(30.0, gt=0, description="wait before trying a broken VLM again")
    backlog_max: int = Field(
        5000, ge=0, description="crops kept on disk to reason later when the VLM was down (0 = none)")

    @model_validator(mode="after")
    def _known_profile(self):
        from inspector.reasoner.profiles import get_profile

        get_profile(self.profile, self.profile_overrides)  # unknown names and bad fields fail here
        return self


class LlamaCppReasonerConfig(_ReasonerCommon):
    type: Literal["llama_cpp"]
    model: Path | None = Field(None, description="text GGUF; required unless test_model")
    mmproj: Path | None = Field(None, description="vision projector GGUF; required unless test_model")
    test_model: bool = Field(
        False, description="generate and use a tiny random-weight model (its words mean nothing)")
    n_ctx: int = Field(4096, ge=512)
    n_threads: int | None = Field(None, ge=1)
    n_gpu_layers: int = Field(0, ge=-1, description="-1 = all layers on the GPU")
    flash_attn: bool = False
    constrain: Literal["gbnf", "json_schema"] = Field(
        "gbnf", description="gbnf also bounds numbers; json_schema is llama.cpp's schema grammar")

    @model_validator(mode="after")
    def _files(self):
        if not self.test_model and (self.model is None or self.mmproj is None):
            raise ValueError("llama_cpp needs 'model' and 'mmproj' paths (or test_model: true)")
        return self


# How each server is told the answer's shape. llama.cpp's servers take a GBNF `grammar`, which
# also bounds the numbers (see reasoner/grammar.py); llama-cpp-python's server otherwise takes only
# json_object+schema; vLLM, FastDeploy and OpenAI take json_schema.
SERVER_DIALECTS = {
    "llama_cpp_python": "gbnf",
    "llama_server": "gbnf",
    "vllm": "json_schema",
    "fastdeploy": "json_schema",
    "openai": "json_schema",
    "other": "none",
}


class OpenAIReasonerConfig(_ReasonerCommon):
    """Any OpenAI-compatible /v1/chat/completions server that takes images."""

    type: Literal["openai"]
    base_url: str = Field(..., pattern=r"^https?://", description="e.g. http://gpu-box:8000/v1")
    model: str = Field("", description="model name sent in requests ('' = the server's default)")
    api_key: str | None = Field(None, description="sent as a Bearer token; prefer api_key_env")
    api_key_env: str | None = Field(None, description="name of an environment variable (or systemd credential) holding the key")
    server: Literal[tuple(SERVER_DIALECTS)] = "llama_server"
    response_format: Literal["auto", "gbnf", "json_object_schema", "json_schema", "none"] = Field(
        "auto", description="how the answer's shape is enforced; auto = what `server` understands")
    workers: int = Field(2, ge=1, le=64, description="requests in flight")
    connect_timeout_s: float = Field(5.0, gt=0)
    verify_tls: bool = True
    extra_body: dict = Field(default_factory=dict, description="merged into every request body")

    @property
    def dialect(self) -> str:
        return SERVER_DIALECTS[self.server] if self.response_format == "auto" else self.response_format

    def key(self) -> str | None:
        from inspector.util.secrets_source import secret

        return secret(self.api_key_env, "reasoner.api_key_env") if self.api_key_env else self.api_key


ReasonerConfig = Annotated[
    Union[NoReasonerConfig, LlamaCppReasonerConfig, OpenAIReasonerConfig], Field(discriminator="type")
]


# --- verdicts, storage, web ----------------------------------------------------------------------

class JudgeConfig(_Model):
    fail_score: float = Field(
        0.0, ge=0, description="detector-only mode: candidates scoring at least this fail the part, "
                               "weaker ones send it to review (0 = every candidate fails)")
    min_confidence: float = Field(0.5, ge=0, le=1,
                                  description="VLM findings below this confidence give review")


VerdictKindName = Literal["pass", "fail", "review"]


class RetentionConfig(_Model):
    """Which pictures go when. Verdict rows are never deleted by retention; pictures are."""

    max_age_days: float | None = Field(30, gt=0, description="pictures older than this are deleted "
                                                             "(None = kept until the budget needs room)")
    keep_unreviewed_fail_days: float = Field(
        14, ge=0, description="pictures of fail verdicts nobody has reviewed are kept at least this "
                              "long, by age and by budget alike (when only they are left, the store "
                              "stops writing new pictures instead)")
    budget_gb: float | None = Field(None, gt=0, description="most disk the pictures may take; None = "
                                                            "no budget (min_free_mb still holds)")
    min_free_mb: float = Field(500, ge=0, description="free space kept on the data directory's disk "
                                                      "(the database and the spool need room too)")
    interval_s: float = Field(60, gt=0, description="how often retention runs")


class StoreConfig(_Model):
    url: str | None = Field(None, description="SQLAlchemy URL: sqlite:///path or "
                                              "postgresql+psycopg://user@host/db; None = "
                                              "<data_dir>/inspector.db")
    jpeg_quality: int = Field(90, ge=10, le=100)
    save_frames: list[VerdictKindName] = Field(["fail", "review"], description="full frames kept for")
    save_crops: list[VerdictKindName] = Field(["fail", "review"], description="crops the VLM saw, kept for")
    save_thumbnails: list[VerdictKindName] = Field(["fail", "review"], description="feed thumbnails kept for")
    thumbnail_px: int = Field(320, ge=32, le=2048, description="longest side of a thumbnail")
    synchronous: Literal["normal", "full"] = Field(
        "normal", description="SQLite: normal (WAL) survives a crash of the process or kill -9 but "
                              "may lose the last transactions on power loss; full fsyncs every "
                              "commit and survives power loss too, at a lower write rate")
    batch_max: int = Field(500, ge=1, description="verdicts per transaction at most")
    batch_wait_ms: float = Field(0, ge=0, description="how long the writer waits to fill a batch (0: "
                                                       "it takes what is waiting; batches grow under load)")
    queue_size: int = Field(20000, ge=1, description="verdicts waiting for the writer at most "
                                                     "(when full, the stages that made them wait)")
    busy_timeout_s: float = Field(30.0, gt=0, le=600, description="SQLite: how long a write waits for "
                                                                  "another process's lock before the "
                                                                  "writer reports it and retries")
    retention: RetentionConfig = Field(default_factory=RetentionConfig)

    @field_validator("url")
    @classmethod
    def _known_database(cls, url: str | None) -> str | None:
        # Checked here so that a typo is named with its key at load, not met as a traceback from
        # SQLAlchemy when the store opens (the message never repeats the URL: it may hold a password).
        if url is None:
            return url
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            u = make_url(url)
        except ArgumentError:
            raise ValueError("not a database URL; expected sqlite:///path/to/inspector.db or "
                             "postgresql+psycopg://user@host/db") from None
        if u.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(f"database {u.get_backend_name()!r} is not supported; use sqlite:///path "
                             f"or postgresql+psycopg://user@host/db")
        if u.get_backend_name() == "postgresql" and u.get_driver_name() != "psycopg":
            raise ValueError(f"driver {u.get_driver_name()!r} is not supported for PostgreSQL; use "
                             f"postgresql+psycopg://")
        if u.get_backend_name() == "sqlite" and not u.database:
            raise ValueError("an SQLite URL needs a file: sqlite:///path/to/inspector.db")
        return url


class ShiftConfig(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9 _.-]{1,32}$")
    start: str = Field(pattern=r"^([01]\d|2[0-3]):(00|15|30|45)$", description="local HH:MM, on a quarter hour")

    @property
    def start_minutes(self) -> int:
        return int(self.start[:2]) * 60 + int(self.start[3:])


class WebConfig(_Model):
    enabled: bool = True
    host: str = Field("127.0.0.1", description="127.0.0.1 = this box only; 0.0.0.0 to serve the plant "
                                                "network (put TLS in front and set secure_cookies)")
    secure_cookies: bool = Field(False, description="send the session cookie over HTTPS only (set it "
                                                    "when a TLS proxy is in front)")
    port: int = Field(8080, ge=1, le=65535)
    trusted_proxies: list[str] = Field(default_factory=list, description=(
        "addresses (10.0.0.5) or networks (10.0.0.0/24) of the reverse proxies in front: only requests "
        "from these may name the client in X-Forwarded-For / X-Forwarded-Proto; none by default, so "
        "a client cannot pose as another (the login limit counts per client address)"))
    line_socket: Path | None = Field(None, description="the running line's Unix socket, through which a "
                                                       "separate dashboard (`inspector web`) shows its "
                                                       "status and live pictures; None = "
                                                       "<data_dir>/line.sock")
    plant_wide: bool = Field(False, description="`inspector web` only: a plant-wide dashboard over a "
                                                "shared database (store.url) with no line on this box: "
                                                "every box's verdicts, no live pictures or triggers")
    timezone: str = Field("UTC", description="the plant's IANA time zone (Europe/Berlin, Asia/Kolkata): "
                                             "stats hours and shifts are counted in it")
    shifts: list[ShiftConfig] = Field(
        default_factory=lambda: [ShiftConfig(name="early", start="06:00"), ShiftConfig(name="late", start="14:00"),
                                 ShiftConfig(name="night", start="22:00")],
        min_length=1, description="each runs until the next starts; the last one crosses midnight")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as Europe/Berlin)") from None
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        import ipaddress

        for a in v:
            try:
                ipaddress.ip_network(a) if "/" in a else ipaddress.ip_address(a)
            except ValueError:
                raise ValueError(f"{a!r} is not an IP address or network (10.0.0.5, 10.0.0.0/24, "
                                 f"::1; a network's host bits must be 0)") from None
        return v

    @field_validator("shifts")
    @classmethod
    def _ordered(cls, v: list[ShiftConfig]) -> list[ShiftConfig]:
        starts = [s.start_minutes for s in v]
        if starts != sorted(set(starts)) or len({s.name for s in v}) != len(v):
            raise ValueError("shifts must have distinct names and start times, listed in the order of the day")
        return v


# --- outbound events ------------------------------------------------------------------------------

class _EventSinkCommon(_Model):
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                             description="names the sink in logs, metrics and its cursor file; default: type")
    on: list[VerdictKindName] = Field(["fail"], min_length=1, description="verdict kinds sent")
    backlog_max: int = Field(10000, ge=1, description="events waiting while the receiver is down, at "
                                                      "most; older ones are skipped (counted, logged)")
    retry_initial_s: float = Field(1.0, gt=0, description="first wait after a failed send; doubles")
    retry_max_s: float = Field(60.0, gt=0, description="longest wait between attempts")
    timeout_s: float = Field(5.0, gt=0, description="per attempt")


class WebhookSinkConfig(_EventSinkCommon):
    """POST one JSON event per verdict (an MES, a ticketing system, a chat bot)."""

    type: Literal["webhook"]
    url: str = Field(..., pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict, description="sent with every request")
    secret_env: str | None = Field(None, description="environment variable holding a shared secret; "
                                                     "the body's HMAC-SHA256 goes in X-Inspector-Signature")
    verify_tls: bool = True


class MqttSinkConfig(_EventSinkCommon):
    """Publish one JSON event per verdict to an MQTT broker (PLCs, SCADA, Node-RED)."""

    type: Literal["mqtt"]
    host: str
    port: int = Field(1883, ge=1, le=65535)
    topic: str = Field("inspector/{camera}/{verdict}", description="{camera} {product} {verdict} are filled in")
    qos: Literal[0, 1, 2] = Field(1, description="1 or 2: an event counts as sent once the broker has it")
    retain: bool = False
    client_id: str | None = Field(None, description="default: inspector-<sink name>-<host name>")
    username: str | None = None
    password_env: str | None = Field(None, description="environment variable holding the password")
    tls: bool = False
    ca_file: Path | None = Field(None, description="CA bundle for tls (default: the system's)")
    keepalive_s: int = Field(30, ge=5)


EventSinkConfig = Annotated[Union[WebhookSinkConfig, MqttSinkConfig], Field(discriminator="type")]


class EventsConfig(_Model):
    sinks: list[EventSinkConfig] = Field(default_factory=list, description="none by default")
    dashboard_url: str | None = Field(None, pattern=r"^https?://",
                                      description="where operators reach the dashboard; events link to "
                                                  "the inspection there")

    @model_validator(mode="after")
    def _unique_names(self):
        names = [s.name or s.type for s in self.sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"events.sinks: names must be unique (two of a type need a name), got {names}")
        return self


def _hostname() -> str:
    import re
    import socket

    return re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:64] or "box"


class LimitsConfig(_Model):
    max_image_pixels: int = Field(
        MAX_IMAGE_PIXELS, ge=1, description="an image file whose header claims more pixels is refused "
                                       "before decoding (a decompression bomb); counted as unreadable")

    @field_validator("max_image_pixels")
    @classmethod
    def _within_opencv(cls, v: int) -> int:
        from inspector import opencv_limit

        if v > opencv_limit():
            raise ValueError(f"{v} is above OpenCV's own limit in this process ({opencv_limit()}); set "
                             f"the environment variable OPENCV_IO_MAX_IMAGE_PIXELS={v} as well")
        return v


class Config(_Model):
    box: str = Field(default_factory=_hostname, pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                     description="this box's name where several share one database (default: the "
                                 "host name); a camera id belongs to one box")
    data_dir: Path = Path("inspector-data")
    cameras: list[CameraConfig] = Field(default_factory=lambda: [CameraConfig()], min_length=1)
    products: list[ProductConfig] = Field(default_factory=lambda: [ProductConfig()])
    detector: AnyDetectorConfig = Field(default_factory=DetectorConfig)
    calibration_dir: Path = Field(
        bundled("calibration"),
        description="per-product calibration files <product>.yaml (`inspector calibrate thresholds`)")
    cropper: CropperConfig = Field(default_factory=CropperConfig)
    reasoner: ReasonerConfig = Field(default_factory=NoReasonerConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    frame_queue: int = Field(8, ge=1, description="frames buffered per camera between capture and "
                                                  "pre-filter (cameras[].buffer.size overrides)")
    limits: LimitsConfig = Field(default_factory=LimitsConfig)

    @model_validator(mode="after")
    def _cross_refs(self):
        ids = [c.id for c in self.cameras]
        if len(set(ids)) != len(ids):
            raise ValueError(f"camera ids must be unique, got {ids}")
        names = {p.name for p in self.products}
        for cam in self.cameras:
            if cam.product not in names:
                raise ValueError(f"camera {cam.id!r} uses product {cam.product!r}, "
                                 f"which is not among products {sorted(names)}")
        return self

    def product(self, name: str) -> ProductConfig:
        return next(p for p in self.products if p.name == name)

    @property
    def database_url(self) -> str:
        return self.store.url or f"sqlite:///{(self.data_dir / 'inspector.db').resolve()}"

    @property
    def line_socket(self) -> Path:
        return self.web.line_socket or self.data_dir / "line.sock"


_UNIONS = {"detector": {"default", "anomaly_map", "yolo"}, "reasoner": {"none", "llama_cpp", "openai"},
           "source": {"folder", "video", "demo", "usb", "rtsp", "mjpeg", "gstreamer"},
           "sinks": {"webhook", "mqtt"}}


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        parts = [str(p) for p in e["loc"]]
        # pydantic puts the union member's tag in the path (detector.yolo.model); the user wrote
        # detector.model, so that is the key to name.
        def union_tag(i: int) -> bool:
            owner = parts[i - 2] if i >= 2 and parts[i - 1].isdigit() else parts[i - 1] if i else ""
            return owner in _UNIONS and parts[i] in _UNIONS[owner]  # sinks.0.webhook: after the index
        parts = [p for i, p in enumerate(parts) if not union_tag(i)]
        loc = ".".join(parts) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see `inspector config` for all keys)"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def parse_config(data: dict | None, source: str = "<defaults>", base_dir: Path | None = None) -> Config:
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {source}: the top level must be a mapping of keys")
    try:
        cfg = Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None
    if base_dir is not None:
        _resolve_paths(cfg, base_dir)
    return cfg


def load_config(path: Path | None) -> Config:
    """Load and validate a YAML config; relative paths in it are relative to the file."""
    if path is None:
        return parse_config({})
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config {path} is not UTF-8 text (byte {e.start} is {e.object[e.start]:#04x}): "
                          f"save it as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        raise ConfigError(f"config {path} is not valid YAML{at}: {getattr(e, 'problem', e)}") from None
    return parse_config(data, str(path), base_dir=path.resolve().parent)


def _resolve_paths(cfg: Config, base: Path) -> None:
    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else (base / p)

    cfg.data_dir = fix(cfg.data_dir)
    cfg.web.line_socket = fix(cfg.web.line_socket)
    for cam in cfg.cameras:
        if hasattr(cam.source, "path"):
            cam.source.path = fix(cam.source.path)
        if getattr(cam.source, "move_to", None) is not None:
            cam.source.move_to = fix(cam.source.move_to)
    cfg.calibration_dir = fix(cfg.calibration_dir)
    cfg.detector.model = fix(cfg.detector.model)
    if isinstance(cfg.detector, DetectorConfig):
        cfg.detector.manifest = fix(cfg.detector.manifest)
    if isinstance(cfg.detector, YoloDetectorConfig):
        cfg.detector.labels = fix(cfg.detector.labels)
    if isinstance(cfg.reasoner, LlamaCppReasonerConfig):
        cfg.reasoner.model = fix(cfg.reasoner.model)
        cfg.reasoner.mmproj = fix(cfg.reasoner.mmproj)


def defaults_yaml() -> str:
    """The full default config as YAML: the configuration reference a user can start from."""
    data = Config().model_dump(mode="json")
    data["detector"]["model"] = "models/default-anomaly.onnx"  # not this machine's absolute path
    data["detector"]["manifest"] = "models/manifest.json"
    data["calibration_dir"] = "calibration"
    return yaml.safe_dump(data, sort_keys=False)
