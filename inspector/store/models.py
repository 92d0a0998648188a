"""SQLAlchemy 2.0 models: one inspection per frame, its verdict, candidates, findings, VLM answers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint, false)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class BoxColumns:
    """A box in frame pixels, as four columns (queryable, unlike a JSON list)."""

    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)

    @property
    def box(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]


class Camera(Base):
    """A camera as configured when it last ran (kept when it leaves the config: old rows name it)."""

    __tablename__ = "cameras"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    product: Mapped[str] = mapped_column(String(128), default="")
    source: Mapped[str] = mapped_column(String(512), default="")
    # The box that runs it (config `box`): two boxes sharing a database must not both write as
    # one camera, or their parts would mix.
    box: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Product(Base):
    """A product (recipe): what the line makes and which defects it can have."""

    __tablename__ = "products"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    defect_types: Mapped[list] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Inspection(Base):
    __tablename__ = "inspections"
    id: Mapped[int] = mapped_column(primary_key=True)
    # Made by the line before the row exists: a verdict re-sent after a crash (the spool) is
    # recognised by it and not recorded twice.
    uid: Mapped[str] = mapped_column(String(64))
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id", name="fk_inspections_camera"), index=True)
    product: Mapped[str] = mapped_column(ForeignKey("products.name", name="fk_inspections_product"))
    seq: Mapped[int] = mapped_column(Integer)
    # The part's identity (trigger or a code read in the frame); the same part inspected again
    # is a re-inspection.
    part_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    source_name: Mapped[str] = mapped_column(String(512), default="")
    captured_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    roi: Mapped[list | None] = mapped_column(JSON, nullable=True)
    reasoner_mode: Mapped[str] = mapped_column(String(32))  # none / test_model / vlm
    detector_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", name="fk_inspections_detector_version"), nullable=True)
    vlm_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", name="fk_inspections_vlm_version"), nullable=True)
    verdict: Mapped[Verdict] = relationship(back_populates="inspection", uselist=False,
                                            cascade="all, delete-orphan")
    candidates: Mapped[list[CandidateRow]] = relationship(cascade="all, delete-orphan",
                                                          order_by="CandidateRow.idx")
    findings: Mapped[list[FindingRow]] = relationship(cascade="all, delete-orphan")
    answers: Mapped[list[VlmAnswer]] = relationship(cascade="all, delete-orphan",
                                                    order_by=lambda: [VlmAnswer.crop_index, VlmAnswer.id])
    reviews: Mapped[list[Review]] = relationship(order_by=lambda: Review.id)
    images: Mapped[list[Image]] = relationship(order_by=lambda: Image.id)
    # What the line was told about this part; by uid, as it may be written before this row.
    line_decision: Mapped[LineDecisionRow | None] = relationship(
        primaryjoin="Inspection.uid == foreign(LineDecisionRow.uid)", viewonly=True, uselist=False)
    # One camera's parts in time order: the stats' VLM latency sample for one camera walks it
    # newest first instead of every camera's rows of the window.
    __table_args__ = (UniqueConstraint("uid", name="uq_inspections_uid"),
                      Index("ix_inspections_camera_captured", "camera_id", "captured_at"))


class Image(Base):
    """A picture of an inspection on disk: the full frame, a crop the VLM saw, or a thumbnail.
    Retention deletes the file and this row; the verdict stays."""

    __tablename__ = "images"
    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # frame / crop / thumb
    crop_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    path: Mapped[str] = mapped_column(String(512))  # relative to the data directory
    bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # None: not yet measured
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class ModelVersion(Base):
    """A model the line used, by content: which file made a verdict, months later."""

    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # detector / vlm / mmproj
    name: Mapped[str] = mapped_column(String(256))  # the model id the line reports
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)  # None: behind an HTTP server
    path: Mapped[str] = mapped_column(String(1024), default="")
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # with path+size: no re-hash
    first_seen_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (Index("ix_model_versions_role_sha", "role", "sha256", "name"),)


class Review(Base):
    """An operator's decision on an inspection. Append-only (the database refuses UPDATE and
    DELETE on this table): a correction is a new review, so the history is never rewritten."""

    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(64))
    reviewed_at: Mapped[datetime] = mapped_column(DateTime)
    from_verdict: Mapped[str] = mapped_column(String(8))  # the verdict in force before this review
    to_verdict: Mapped[str] = mapped_column(String(8))
    note: Mapped[str] = mapped_column(Text, default="")
    defect_type: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the operator's naming


class VerdictRollup(Base):
    """Verdicts counted per 15 minutes of capture time (UTC), camera, product, kind and basis. The
    stats read these instead of every row of a month; the writer keeps them in the verdicts' own
    transaction. 15 minutes, so a plant zone with a :30 or :45 offset still gets true local hours."""

    __tablename__ = "verdict_rollup"
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)  # epoch seconds // 900
    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    product: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    why: Mapped[str] = mapped_column(String(32), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class DefectRollup(Base):
    """Parts with a finding of each defect type, per 15 minutes, camera and product (a part counts
    once per type however many findings of it the VLM made)."""

    __tablename__ = "defect_rollup"
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    product: Mapped[str] = mapped_column(String(128), primary_key=True)
    defect_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    parts: Mapped[int] = mapped_column(Integer)


class ReviewRollup(Base):
    """Reviewed parts per 15 minutes of capture time, camera and product, by the machine's verdict
    and the latest review's: the stats' operators-against-the-machine figure without joining every
    review of a month to its inspection. A later review of the same part moves its count from the
    earlier decision to the new one (reviews are append-only, so the move is exact)."""

    __tablename__ = "review_rollup"
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    product: Mapped[str] = mapped_column(String(128), primary_key=True)
    machine: Mapped[str] = mapped_column(String(8), primary_key=True)
    operator: Mapped[str] = mapped_column(String(8), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class Verdict(Base):
    __tablename__ = "verdicts"
    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(8))  # pass / fail / review
    why: Mapped[str] = mapped_column(String(32))
    explanation: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(DateTime)
    inspection: Mapped[Inspection] = relationship(back_populates="verdict")
    __table_args__ = (Index("ix_verdicts_kind_id", "kind", "id"),)


class CandidateRow(BoxColumns, Base):
    __tablename__ = "candidates"
    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id"), index=True)
    idx: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    label: Mapped[str] = mapped_column(String(64))
    model_id: Mapped[str] = mapped_column(String(128))


class FindingRow(BoxColumns, Base):
    __tablename__ = "findings"
    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id"), index=True)
    crop_index: Mapped[int] = mapped_column(Integer)
    defect_type: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    model_id: Mapped[str] = mapped_column(String(128))
    look: Mapped[int] = mapped_column(Integer, default=0)  # which look located it
    box_mm: Mapped[list | None] = mapped_column(JSON, nullable=True)  # calibrated cameras only
    late: Mapped[bool] = mapped_column(Boolean, default=False)  # from the backlog, after the verdict


class VlmAnswer(Base):
    """The VLM's raw answer per crop and look, kept whole for audit, with what validation refused."""

    __tablename__ = "vlm_answers"
    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id"), index=True)
    crop_index: Mapped[int] = mapped_column(Integer)
    answer: Mapped[str] = mapped_column(String(16))
    raw: Mapped[str] = mapped_column(Text)
    rejected: Mapped[list] = mapped_column(JSON)
    error: Mapped[str] = mapped_column(Text, default="")
    model_id: Mapped[str] = mapped_column(String(128))
    latency_ms: Mapped[float] = mapped_column(Float)
    look: Mapped[int] = mapped_column(Integer, default=0)  # 0 = the crop; 1.. = closer looks
    region: Mapped[list | None] = mapped_column(JSON, nullable=True)  # frame pixels shown
    thinking: Mapped[str] = mapped_column(Text, default="")
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    zooms: Mapped[list | None] = mapped_column(JSON, nullable=True)  # frame regions the model zoomed into


class User(Base):
    """A person who uses the dashboard. Roles: viewer (looks), operator (+ reviews, triggers),
    admin (+ everything)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))  # scrypt, see inspector/web/passwords.py
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # Set for a password someone else chose and saw (the first admin's, printed at first start):
    # the dashboard lets its session do nothing but choose a new one.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ApiToken(Base):
    """A machine's credential (a PLC bridge, a scraper, a script): sent as `Authorization: Bearer`.
    Only its sha256 is stored; the token itself is shown once, when made."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class WebSession(Base):
    """A logged-in browser. The cookie carries a random id; only its sha256 is stored, so a copy of
    the database does not log anyone in."""

    __tablename__ = "web_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class LineDecisionRow(Base):
    """What the line was told about a part (OK/NG), written when it was told: before the
    inspection's row when the VLM answered after the deadline. Joined to the inspection by uid."""

    __tablename__ = "line_decisions"
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(64), unique=True)
    camera_id: Mapped[str] = mapped_column(String(64))
    product: Mapped[str] = mapped_column(String(128))
    seq: Mapped[int] = mapped_column(Integer)
    answer: Mapped[str] = mapped_column(String(2))  # ok / ng
    basis: Mapped[str] = mapped_column(String(16))  # verdict / deadline / overrun
    policy: Mapped[str | None] = mapped_column(String(16), nullable=True)
    verdict_kind: Mapped[str | None] = mapped_column(String(8), nullable=True)
    captured_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    decided_at: Mapped[datetime] = mapped_column(DateTime)
    elapsed_ms: Mapped[float] = mapped_column(Float)
    deadline_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    on_time: Mapped[bool] = mapped_column(Boolean)
    part_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RecipeChange(Base):
    """A camera's product changed at run time (changeover): who or what asked, when, from, to."""

    __tablename__ = "recipe_changes"
    id: Mapped[int] = mapped_column(primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(64), index=True)
    from_product: Mapped[str] = mapped_column(String(128))
    to_product: Mapped[str] = mapped_column(String(128))
    by: Mapped[str] = mapped_column(String(128))  # a user, a token, "plc:opcua", ...
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
