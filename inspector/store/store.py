"""The verdict store: one front for the writer, the pictures, retention and the dashboard's reads.

SQLite settings (see `_sqlite_pragmas`): WAL, so the dashboard's reads never block the writer and
the writer never blocks them; busy_timeout from store.busy_timeout_s (30 s); synchronous NORMAL by
default (a commit survives a crash or kill -9 of the process; power loss may lose the last
commits) or FULL (store.synchronous, survives power loss, fewer commits per second).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, event, exists, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, selectinload

from inspector.errors import InspectorError
from inspector.util import durable
from inspector.config import StoreConfig
from inspector.util.filehash import sha256_of as _sha256
from inspector.messages import Crop, CropReport, Verdict
from inspector.util.redact import redact_text, redact_url
from inspector.store import rollup, schema
from inspector.store.rollup import bucket_of
from inspector.store.decisions import DecisionLog
from inspector.store.images import ImageStore
from inspector.store.models import (Camera, FindingRow, Image, Inspection, ModelVersion, Product, RecipeChange,
                                    Review, VerdictRollup, VlmAnswer)
from inspector.store.models import Verdict as VerdictRow
from inspector.store.retention import Retention, used_bytes
from inspector.store.rows import answer_rows, finding_row
from inspector.store.writer import PARKED_DIR, Pending, Writer, utc as _utc


VERDICTS = ("pass", "fail", "review")


class StoreError(InspectorError):
    pass


def new_uid() -> str:
    return uuid.uuid4().hex


class Store:
    def __init__(self, url: str, data_dir: Path, cfg: StoreConfig | None = None):
        cfg = cfg or StoreConfig()
        self.cfg = cfg
        self.data_dir = Path(data_dir)
        durable.makedirs(self.data_dir, sync=cfg.synchronous == "full")
        _private(self.data_dir, 0o700)
        self.url = url
        shown = redact_url(url)
        if url.startswith("sqlite:///"):
            db = Path(url.removeprefix("sqlite:///"))
            durable.makedirs(db.parent, sync=cfg.synchronous == "full")
            _private_db(db)
        busy = cfg.busy_timeout_s
        self.engine = create_engine(url, connect_args={"timeout": busy} if url.startswith("sqlite") else {},
                                    pool_pre_ping=not url.startswith("sqlite"))
        if url.startswith("sqlite"):
            sync = cfg.synchronous.upper()
            event.listen(self.engine, "connect", lambda c, r: _sqlite_pragmas(c, r, sync, busy))
        try:
            schema.prepare(self.engine, shown)  # new: created at head; otherwise exactly head, or a clear refusal
        except DBAPIError as e:
            self.engine.dispose()
            raise StoreError(f"cannot use database {shown}: {_db_problem(e)}") from None
        self._write_lock = threading.Lock()  # SQLite has one writer; serialise ours explicitly
        r = cfg.retention
        self.images = ImageStore(self.data_dir, jpeg_quality=cfg.jpeg_quality,
                                 budget_bytes=int(r.budget_gb * 1e9) if r.budget_gb else None,
                                 min_free_bytes=int(r.min_free_mb * 1e6), used_bytes=used_bytes(self.engine),
                                 synchronous_full=cfg.synchronous == "full")
        self.writer = Writer(self.engine, self.images, save_frames=cfg.save_frames, save_crops=cfg.save_crops,
                             save_thumbnails=cfg.save_thumbnails, thumbnail_px=cfg.thumbnail_px,
                             batch_max=cfg.batch_max, batch_wait_s=cfg.batch_wait_ms / 1000,
                             queue_size=cfg.queue_size, lock=self._write_lock,
                             park_dir=self.data_dir / PARKED_DIR, fsync=cfg.synchronous == "full")
        self.retention = Retention(self.engine, self.images, r, self._write_lock)
        self.decisions = DecisionLog(self.engine, self._write_lock)
        self.images.on_pressure = self.retention.wake

    # --- writing ---------------------------------------------------------------------------

    def sync_config(self, cfg) -> None:
        """Cameras and products as the config has them now (rows are kept when they leave it:
        older inspections still name them)."""
        now = _utc(time.time())
        with self._write_lock, Session(self.engine) as s, s.begin():
            for p in cfg.products:
                row = s.get(Product, p.name) or Product(name=p.name)
                row.description, row.defect_types, row.updated_at = p.good_part, sorted(p.defects), now
                s.add(row)
            s.flush()
            box = getattr(cfg, "box", None)
            for cam in cfg.cameras:
                row = s.get(Camera, cam.id, with_for_update=True) or Camera(id=cam.id)
                if row.box and box and row.box != box:
                    raise StoreError(
                        f"camera {cam.id!r} in this database belongs to box {row.box!r}, and this box is "
                        f"{box!r}: camera ids name cameras across every box that shares the database. "
                        f"Rename this camera, or, if this box took over from {row.box!r}, set `box: "
                        f"{row.box}` in its config")
                row.product, row.source, row.box, row.updated_at = cam.product, describe_source(cam.source), box, now
                s.add(row)
        self.writer.forget_parents()

    def start_retention(self) -> None:
        self.retention.start()

    def register_model(self, role: str, name: str, path: Path | None = None) -> int:
        """The model_versions row of this model, made on first sight. A file is identified by its
        sha256, hashed once: an unchanged file (same path, size, mtime) is not read again."""
        st = Path(path).stat() if path is not None else None
        with self._write_lock, Session(self.engine) as s, s.begin():
            if st is not None:
                row = s.scalar(select(ModelVersion).where(
                    ModelVersion.role == role, ModelVersion.name == name, ModelVersion.path == str(path),
                    ModelVersion.size_bytes == st.st_size, ModelVersion.mtime_ns == st.st_mtime_ns))
                if row is not None:
                    return row.id
            digest = _sha256(Path(path)) if st is not None else None
            row = s.scalar(select(ModelVersion).where(ModelVersion.role == role, ModelVersion.name == name,
                                                      ModelVersion.sha256.is_(digest) if digest is None
                                                      else ModelVersion.sha256 == digest))
            if row is None:
                row = ModelVersion(role=role, name=name, sha256=digest, first_seen_at=_utc(time.time()))
                s.add(row)
            row.path = str(path) if path is not None else ""
            row.size_bytes, row.mtime_ns = (st.st_size, st.st_mtime_ns) if st is not None else (None, None)
            s.flush()
            return row.id

    def submit(self, verdict: Verdict, product: str, reasoner_mode: str, *, uid: str | None = None,
               versions: dict[str, int] | None = None, crops: tuple[Crop, ...] = (),
               on_commit=None, decision=None) -> str:
        """Queue a verdict for the writer; `on_commit(inspection_id)` runs once it is in the
        database. Returns its uid. Waits only while the writer's queue is full."""
        uid = uid or new_uid()
        self.writer.submit(Pending(uid, verdict, product, reasoner_mode, dict(versions or {}), tuple(crops),
                                   on_commit, decision=decision))
        return uid

    def save(self, verdict: Verdict, product: str, reasoner_mode: str,
             versions: dict[str, int] | None = None, *, uid: str | None = None,
             crops: tuple[Crop, ...] = (), timeout: float = 60.0) -> int:
        """Write one verdict and wait for it: the inspection's id."""
        p = Pending(uid or new_uid(), verdict, product, reasoner_mode, dict(versions or {}), tuple(crops),
                    done=threading.Event())
        self.writer.submit(p)
        if not p.done.wait(timeout):
            raise StoreError(f"verdict {p.uid} not written within {timeout:.0f} s "
                             f"({self.writer.last_error or 'the writer is behind'})")
        if p.error is not None:
            raise StoreError(f"verdict {p.uid} refused by the database: {p.error}")
        return p.inspection_id

    def flush(self, timeout: float = 30.0) -> bool:
        end = time.monotonic() + timeout
        written = self.writer.flush(timeout)
        return self.decisions.flush(max(0.0, end - time.monotonic())) and written

    def has_uid(self, uid: str) -> bool:
        """Stored, or parked by an earlier stop and on its way in (the park file outlives a crash)."""
        if uid in self.writer.parked_uids:
            return True
        with Session(self.engine) as s:
            return s.scalar(select(Inspection.id).where(Inspection.uid == uid)) is not None

    def add_late_report(self, inspection_id: int, report: CropReport, note: str) -> bool:
        """Attach a VLM answer that arrived after the verdict (from the backlog). The verdict
        itself stands (the part was already handled); its explanation gains `note`."""
        with self._write_lock, Session(self.engine) as s, s.begin():
            insp = s.get(Inspection, inspection_id)
            if insp is None:
                return False
            insp.answers.extend(VlmAnswer(**a) for a in answer_rows(report, late=True))
            known = {f.defect_type for f in insp.findings}
            insp.findings.extend(FindingRow(**finding_row(f, late=True)) for f in report.findings)
            key = (bucket_of(insp.captured_at), insp.camera_id, insp.product)
            rollup.bump(s.connection(), Counter(), Counter(
                (*key, t) for t in {f.defect_type for f in report.findings} - known))
            insp.verdict.explanation = f"{insp.verdict.explanation} {note}".strip()
        return True

    def status(self) -> dict:
        return {**self.writer.status(), **self.images.status(), **self.retention.status(),
                "decisions_unwritten": self.decisions.unwritten, "decisions_failed": self.decisions.failed}

    def health(self) -> dict:
        """The database and the data disk, for the health page: reachable, schema, size, space."""
        import shutil

        out = {"url": redact_url(self.url), "reachable": True, "error": None}
        try:
            out["schema"] = schema.current(self.engine)
            out["schema_ok"] = out["schema"] == schema.head()
        except Exception as e:  # the page must render even when the database does not answer
            out.update(reachable=False, error=redact_text(f"{type(e).__name__}: {e}"), schema=None, schema_ok=False)
        if self.url.startswith("sqlite:///"):
            db = Path(self.url.removeprefix("sqlite:///"))
            out["size_bytes"] = sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())
        du = shutil.disk_usage(self.data_dir)
        out["disk"] = {"path": str(self.data_dir), "free_bytes": du.free, "total_bytes": du.total,
                       "pictures_bytes": self.images.used_bytes, "budget_bytes": self.images.budget_bytes,
                       "min_free_bytes": self.images.min_free_bytes}
        return out

    # --- reading ---------------------------------------------------------------------------

    def feed(self, *, limit: int = 50, after_id: int = 0, before_id: int | None = None,
             kind: str | None = None, camera: str | None = None, product: str | None = None,
             defect_type: str | None = None, since: datetime | None = None,
             until: datetime | None = None, part_id: str | None = None) -> list[dict]:
        """The newest inspections first, filtered; `after_id` (live updates) and `before_id`
        (older pages) page by id, which the primary key answers without an offset scan."""
        q = (select(Inspection).join(Inspection.verdict)
             .options(selectinload(Inspection.verdict), selectinload(Inspection.findings),
                      selectinload(Inspection.images))
             .order_by(Inspection.id.desc()).limit(limit))
        if after_id:
            q = q.where(Inspection.id > after_id)
        if before_id:
            q = q.where(Inspection.id < before_id)
        if kind:
            q = q.where(VerdictRow.kind == kind)
        if camera:
            q = q.where(Inspection.camera_id == camera)
        if product:
            q = q.where(Inspection.product == product)
        if defect_type:
            q = q.where(exists().where(FindingRow.inspection_id == Inspection.id,
                                       FindingRow.defect_type == defect_type))
        if since is not None:
            q = q.where(Inspection.captured_at >= since)
        if until is not None:
            q = q.where(Inspection.captured_at < until)
        if part_id:
            q = q.where(Inspection.part_id == part_id)
        with Session(self.engine) as s:
            rows = [_summary(i) for i in s.scalars(q)]
            # A part the same camera saw before is a re-inspection (another station looking at
            # it, a top and a bottom camera, is not).
            ids = {r["part_id"] for r in rows if r["part_id"]}
            first = {(c, p): i for c, p, i in s.execute(
                select(Inspection.camera_id, Inspection.part_id, func.min(Inspection.id))
                .where(Inspection.part_id.in_(ids)).group_by(Inspection.camera_id, Inspection.part_id))} \
                if ids else {}
        for r in rows:
            r["reinspection"] = bool(r["part_id"]) and first.get((r["camera_id"], r["part_id"]), r["id"]) < r["id"]
        told = self.decisions.answers([r["uid"] for r in rows])
        for r in rows:  # what the line was told, beside the verdict (they differ after a deadline)
            r["line"], r["line_basis"] = told.get(r["uid"], (None, None))
        return rows

    def verdict_ids(self, *, after_id: int, kinds: list[str], cameras: list[str] | None = None,
                    limit: int = 100, newest_first: bool = False) -> list[int]:
        """Inspection ids after `after_id` whose machine verdict is one of `kinds` (the outbound
        events' cursor walks these), oldest first unless `newest_first`."""
        q = (select(Inspection.id).join(Inspection.verdict)
             .where(Inspection.id > after_id, VerdictRow.kind.in_(kinds))
             .order_by(Inspection.id.desc() if newest_first else Inspection.id).limit(limit))
        if cameras is not None:
            q = q.where(Inspection.camera_id.in_(cameras))
        with Session(self.engine) as s:
            return list(s.scalars(q))

    def count_verdicts(self, *, after_id: int, kinds: list[str], cameras: list[str] | None = None,
                       up_to_id: int | None = None) -> int:
        q = (select(func.count()).select_from(Inspection).join(Inspection.verdict)
             .where(Inspection.id > after_id, VerdictRow.kind.in_(kinds)))
        if up_to_id is not None:
            q = q.where(Inspection.id <= up_to_id)
        if cameras is not None:
            q = q.where(Inspection.camera_id.in_(cameras))
        with Session(self.engine) as s:
            return s.scalar(q) or 0

    def last_inspection_id(self) -> int:
        with Session(self.engine) as s:
            return s.scalar(select(func.max(Inspection.id))) or 0

    def review_queue(self, *, limit: int = 50, recent_fail_hours: float = 24.0) -> list[dict]:
        """What an operator should look at: every `review` verdict and the recent fails, that
        nobody has reviewed yet; newest first."""
        from datetime import timedelta

        recent = _utc(time.time()) - timedelta(hours=recent_fail_hours)
        reviewed = exists().where(Review.inspection_id == Inspection.id)
        q = (select(Inspection).join(Inspection.verdict)
             .where(~reviewed, (VerdictRow.kind == "review") |
                    ((VerdictRow.kind == "fail") & (Inspection.captured_at >= recent)))
             .options(selectinload(Inspection.verdict), selectinload(Inspection.findings),
                      selectinload(Inspection.images))
             .order_by(Inspection.id.desc()).limit(limit))
        with Session(self.engine) as s:
            return [_summary(i) for i in s.scalars(q)]

    def catalogue(self) -> dict:
        """What the feed's filters offer: cameras, products and the defect types they name."""
        with Session(self.engine) as s:
            cams = sorted(s.scalars(select(Camera.id)))
            prods = s.execute(select(Product.name, Product.defect_types).order_by(Product.name)).all()
        return {"cameras": cams, "products": [p for p, _ in prods],
                "defect_types": sorted({t for _, types in prods for t in (types or [])} | {"other"})}

    def cameras(self) -> list[dict]:
        """Every camera the database knows, with the box that runs it (a plant-wide dashboard)."""
        with Session(self.engine) as s:
            return [{"id": c.id, "product": c.product, "source": c.source, "box": c.box}
                    for c in s.scalars(select(Camera).order_by(Camera.box, Camera.id))]

    def inspection(self, inspection_id: int) -> dict | None:
        with Session(self.engine) as s:
            i = s.get(Inspection, inspection_id)
            if i is None:
                return None
            d = _summary(i)
            d["roi"] = i.roi
            d["source_name"] = i.source_name
            d["candidates"] = [{"box": c.box, "score": c.score, "label": c.label,
                                "model_id": c.model_id} for c in i.candidates]
            d["findings"] = [{"type": f.defect_type, "severity": f.severity, "confidence": f.confidence,
                              "box": f.box, "box_mm": f.box_mm, "reason": f.reason, "look": f.look,
                              "late": f.late, "crop_index": f.crop_index, "model_id": f.model_id}
                             for f in i.findings]
            d["vlm_answers"] = [{"crop_index": a.crop_index, "look": a.look, "region": a.region,
                                 "answer": a.answer, "raw": a.raw, "thinking": a.thinking,
                                 "rejected": a.rejected, "error": a.error, "model_id": a.model_id,
                                 "latency_ms": a.latency_ms, "late": a.late, "zooms": _zooms(a.zooms)}
                                for a in i.answers]
            d["reviews"] = [_review(r) for r in i.reviews]
            d["models"] = {role: {"name": m.name, "sha256": m.sha256} for role, vid in
                           (("detector", i.detector_version_id), ("vlm", i.vlm_version_id))
                           if vid is not None and (m := s.get(ModelVersion, vid)) is not None}
            d["verdict_in_force"] = _in_force(i)
        # What the line was told (OK/NG, on what basis), beside the final verdict above.
        d["line_decision"] = self.decisions.for_uid(i.uid)
        d["same_part"] = self.same_part(i.part_id, i.id) if i.part_id else []
        return d

    def add_recipe_change(self, camera_id: str, from_product: str, to_product: str, by: str) -> None:
        """A changeover, and the camera's row made to name its product now."""
        now = _utc(time.time())
        with self._write_lock, Session(self.engine) as s, s.begin():
            s.add(RecipeChange(camera_id=camera_id, from_product=from_product, to_product=to_product,
                               by=by[:128], at=now))
            cam = s.get(Camera, camera_id)
            if cam is not None:
                cam.product, cam.updated_at = to_product, now

    def recipe_changes(self, limit: int = 20, camera: str | None = None) -> list[dict]:
        with Session(self.engine) as s:
            q = select(RecipeChange).order_by(RecipeChange.id.desc()).limit(limit)
            if camera:
                q = q.where(RecipeChange.camera_id == camera)
            return [{"camera_id": r.camera_id, "from": r.from_product, "to": r.to_product, "by": r.by,
                     "at": r.at.isoformat() + "Z"} for r in s.scalars(q)]

    def same_part(self, part_id: str, but: int | None = None, limit: int = 50) -> list[dict]:
        """The other inspections of one part, oldest first: id, time, verdict."""
        with Session(self.engine) as s:
            q = (select(Inspection.id, Inspection.captured_at, Inspection.camera_id, VerdictRow.kind)
                 .join(VerdictRow, VerdictRow.inspection_id == Inspection.id)
                 .where(Inspection.part_id == part_id).order_by(Inspection.id).limit(limit))
            return [{"id": i, "captured_at": t.isoformat() + "Z", "camera_id": c, "verdict": k}
                    for i, t, c, k in s.execute(q) if i != but]

    def add_review(self, inspection_id: int, reviewer: str, to_verdict: str, note: str = "",
                   defect_type: str | None = None) -> dict:
        """Record an operator's decision; it never edits the machine verdict or earlier reviews."""
        if to_verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {to_verdict!r}")
        reviewer = (reviewer or "").strip()
        if not reviewer or len(reviewer) > 64:
            raise ValueError("reviewer must be a name of 1 to 64 characters")
        if defect_type is not None and not (0 < len(defect_type) <= 64):
            raise ValueError("defect_type must be 1 to 64 characters")
        if len(note or "") > 2000:
            raise ValueError("a note is at most 2000 characters")
        for name, text in (("note", note or ""), ("defect_type", defect_type or "")):
            # JSON can carry both: SQLite cannot encode a lone surrogate, PostgreSQL refuses NUL (a 500)
            if "\x00" in text or any("\ud800" <= ch <= "\udfff" for ch in text):
                raise ValueError(f"{name} must be text without NUL characters or lone surrogates")
        with self._write_lock, Session(self.engine) as s, s.begin():
            i = s.get(Inspection, inspection_id)
            if i is None or i.verdict is None:
                raise KeyError(f"no inspection {inspection_id}")
            r = Review(inspection_id=inspection_id, reviewer=reviewer, reviewed_at=_utc(time.time()),
                       from_verdict=_in_force(i), to_verdict=to_verdict, note=note or "",
                       defect_type=defect_type or None)
            rollup.bump_review(s.connection(), bucket_of(i.captured_at), i.camera_id, i.product, i.verdict.kind,
                               i.reviews[-1].to_verdict if i.reviews else None, to_verdict)
            s.add(r)
            s.flush()
            return _review(r)

    def frame_file(self, inspection_id: int) -> Path | None:
        return self.image_file(inspection_id, "frame")

    def image_file(self, inspection_id: int, kind: str, crop_index: int | None = None) -> Path | None:
        """The file of one of an inspection's pictures, if it is still on disk."""
        q = select(Image.path).where(Image.inspection_id == inspection_id, Image.kind == kind)
        if crop_index is not None:
            q = q.where(Image.crop_index == crop_index)
        with Session(self.engine) as s:
            rel = s.scalar(q.order_by(Image.id).limit(1))
        path = self.images.resolve(rel, kind) if rel else None
        return path if path is not None and path.is_file() else None

    def counts(self) -> dict[str, int]:
        """Verdicts of all time by kind, from the rollups (a sum over counters, not a count of rows)."""
        with Session(self.engine) as s:
            rows = s.execute(select(VerdictRollup.kind, func.sum(VerdictRollup.n)).group_by(VerdictRollup.kind)).all()
        out = {"pass": 0, "fail": 0, "review": 0}
        out.update({k: int(n) for k, n in rows})
        out["total"] = sum(out[k] for k in ("pass", "fail", "review"))
        return out

    def unpark(self) -> int:
        """The line's start: write the verdicts an earlier stop could not (see Writer.close)."""
        return self.writer.unpark()

    def close(self, timeout: float = 30.0) -> None:
        """Within `timeout` seconds (plus the time to park what the database did not take)."""
        deadline = time.monotonic() + timeout
        self.retention.stop(min(2.0, timeout / 4))
        self.decisions.close(min(2.0, timeout / 4))
        self.writer.close(max(0.0, deadline - time.monotonic()))
        self.engine.dispose()


def _in_force(i: Inspection) -> str:
    """The latest review's verdict, else the machine's."""
    return i.reviews[-1].to_verdict if i.reviews else i.verdict.kind


def _zooms(stored: list | None) -> list[dict]:
    """Zoom rounds as dicts; rows written before rounds were kept whole hold bare frame regions."""
    return [z if isinstance(z, dict) else {"asked": [], "region": z, "thinking": "", "error": "", "label": ""}
            for z in stored or []]


def _review(r: Review) -> dict:
    return {"id": r.id, "reviewer": r.reviewer, "reviewed_at": r.reviewed_at.isoformat() + "Z",
            "from": r.from_verdict, "to": r.to_verdict, "note": r.note, "defect_type": r.defect_type}


def _summary(i: Inspection) -> dict:
    return {
        "id": i.id, "camera_id": i.camera_id, "product": i.product, "seq": i.seq,
        "captured_at": i.captured_at.isoformat() + "Z", "width": i.width, "height": i.height,
        "verdict": i.verdict.kind, "why": i.verdict.why, "explanation": i.verdict.explanation,
        "reasoner_mode": i.reasoner_mode, "uid": i.uid, "part_id": i.part_id,
        "has_frame": any(im.kind == "frame" for im in i.images),
        "has_thumb": any(im.kind == "thumb" for im in i.images),
        "defect_types": sorted({f.defect_type for f in i.findings}),
    }


def describe_source(source) -> str:
    """A camera source in one line, without credentials (an RTSP URL may carry a password)."""
    text = next((str(v) for k in ("url", "path", "device", "pipeline")
                 if (v := getattr(source, k, None)) is not None), "")
    return f"{source.type}: " + redact_text(text)[:480]


def _db_problem(e: DBAPIError) -> str:
    why = str(getattr(e, "orig", e)).strip().splitlines()[0] if str(getattr(e, "orig", e)).strip() else type(e).__name__
    if "not a database" in why or "malformed" in why:
        return (f"{why} (the file is damaged or is not an inspector database: restore it from a backup, "
                f"or move it aside to start a new one)")
    return redact_text(why)


def _private(path: Path, mode: int) -> None:
    """Nobody but the service's user reads the verdicts, pictures and password hashes: a path
    that is wider than `mode` is narrowed (the unit's UMask covers new files under systemd; this
    covers a box started by hand and a data directory made by an older version)."""
    try:
        if path.stat().st_mode & 0o777 & ~mode:
            path.chmod(mode)
    except OSError:
        pass  # not ours to change (a shared mount): the service still runs


def _private_db(db: Path) -> None:
    # Created 0600 before SQLite opens it: its -wal and -shm files take the database's mode.
    if not db.exists():
        try:
            os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
    for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if p.exists():
            _private(p, 0o600)


def _sqlite_pragmas(dbapi_conn, _record, synchronous: str = "NORMAL", busy_timeout_s: float = 30.0) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers (the dashboard) never block the writer
    cur.execute(f"PRAGMA synchronous={synchronous}")  # NORMAL / FULL: see the module's docstring
    cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    cur.execute("PRAGMA cache_size=-16384")  # 16 MiB per connection (default 2): the dashboard's reads of a big file
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
