"""Writes verdicts (and the frames of fail/review verdicts) and answers the dashboard's questions."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.orm import Session, selectinload

from inspector.filehash import sha256_of as _sha256
from inspector.messages import CropReport, Finding, Look, Verdict
from inspector.store import schema
from inspector.store.models import CandidateRow, FindingRow, Inspection, ModelVersion, Review, VlmAnswer
from inspector.store.models import Verdict as VerdictRow


VERDICTS = ("pass", "fail", "review")


class StoreError(Exception):
    pass


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc).replace(tzinfo=None)


class Store:
    def __init__(self, url: str, data_dir: Path, *, jpeg_quality: int = 90,
                 save_frames: tuple[str, ...] = ("fail", "review")):
        self.data_dir = Path(data_dir)
        self.jpeg_quality = jpeg_quality
        self.save_frames = set(save_frames)
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        schema.prepare(self.engine, url)  # new: created at head; otherwise exactly head, or a clear refusal
        self._write_lock = threading.Lock()  # SQLite has one writer; serialise ours explicitly

    # --- writing ---------------------------------------------------------------------------

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

    def save(self, verdict: Verdict, product: str, reasoner_mode: str,
             versions: dict[str, int] | None = None) -> int:
        frame = verdict.frame
        rel = None
        if verdict.kind.value in self.save_frames:
            rel = self._save_frame(verdict)
        insp = Inspection(
            camera_id=frame.camera_id, product=product, seq=frame.seq, source_name=frame.source_name,
            captured_at=_utc(frame.captured_wall), width=frame.size[0], height=frame.size[1],
            roi=list(frame.roi) if frame.roi else None, frame_path=rel, reasoner_mode=reasoner_mode,
            detector_version_id=(versions or {}).get("detector"), vlm_version_id=(versions or {}).get("vlm"))
        insp.verdict = VerdictRow(kind=verdict.kind.value, why=verdict.why,
                                  explanation=verdict.explanation, decided_at=_utc(verdict.decided_wall))
        insp.candidates = [CandidateRow(idx=i, x1=c.box[0], y1=c.box[1], x2=c.box[2], y2=c.box[3],
                                        score=c.score, label=c.label, model_id=c.model_id)
                           for i, c in enumerate(verdict.candidates)]
        insp.findings = [_finding_row(f) for f in verdict.findings]
        insp.answers = [a for r in verdict.reports for a in _answer_rows(r)]
        with self._write_lock, Session(self.engine) as s, s.begin():
            s.add(insp)
            s.flush()
            return insp.id

    def add_late_report(self, inspection_id: int, report: CropReport, note: str) -> bool:
        """Attach a VLM answer that arrived after the verdict (from the backlog). The verdict
        itself stands (the part was already handled); its explanation gains `note`."""
        with self._write_lock, Session(self.engine) as s, s.begin():
            insp = s.get(Inspection, inspection_id)
            if insp is None:  # deleted by retention meanwhile
                return False
            insp.answers.extend(_answer_rows(report, late=True))
            insp.findings.extend(_finding_row(f, late=True) for f in report.findings)
            insp.verdict.explanation = f"{insp.verdict.explanation} {note}".strip()
        return True

    def _save_frame(self, verdict: Verdict) -> str | None:
        f = verdict.frame
        day = _utc(f.captured_wall).strftime("%Y-%m-%d")
        stamp = _utc(f.captured_wall).strftime("%H%M%S%f")
        rel = Path("frames") / day / f.camera_id / f"{stamp}_{f.seq:08d}.jpg"
        path = self.data_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, buf = cv2.imencode(".jpg", f.image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise StoreError(f"could not encode frame {f.seq} of camera {f.camera_id} as JPEG")
        tmp = path.with_suffix(".part")
        tmp.write_bytes(buf.tobytes())
        tmp.replace(path)  # never leave a half-written JPEG behind a database row
        return rel.as_posix()

    # --- reading ---------------------------------------------------------------------------

    def feed(self, *, limit: int = 50, after_id: int = 0, before_id: int | None = None,
             kind: str | None = None, camera: str | None = None) -> list[dict]:
        q = (select(Inspection).join(Inspection.verdict)
             .options(selectinload(Inspection.verdict), selectinload(Inspection.findings))
             .order_by(Inspection.id.desc()).limit(limit))
        if after_id:
            q = q.where(Inspection.id > after_id)
        if before_id:
            q = q.where(Inspection.id < before_id)
        if kind:
            q = q.where(VerdictRow.kind == kind)
        if camera:
            q = q.where(Inspection.camera_id == camera)
        with Session(self.engine) as s:
            return [_summary(i) for i in s.scalars(q)]

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
                                 "latency_ms": a.latency_ms, "late": a.late} for a in i.answers]
            d["reviews"] = [_review(r) for r in i.reviews]
            d["models"] = {role: {"name": m.name, "sha256": m.sha256} for role, vid in
                           (("detector", i.detector_version_id), ("vlm", i.vlm_version_id))
                           if vid is not None and (m := s.get(ModelVersion, vid)) is not None}
            d["verdict_in_force"] = _in_force(i)
            return d

    def add_review(self, inspection_id: int, reviewer: str, to_verdict: str, note: str = "") -> dict:
        """Record an operator's decision; it never edits the machine verdict or earlier reviews."""
        if to_verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {to_verdict!r}")
        reviewer = (reviewer or "").strip()
        if not reviewer or len(reviewer) > 64:
            raise ValueError("reviewer must be a name of 1 to 64 characters")
        with self._write_lock, Session(self.engine) as s, s.begin():
            i = s.get(Inspection, inspection_id)
            if i is None or i.verdict is None:
                raise KeyError(f"no inspection {inspection_id}")
            r = Review(inspection_id=inspection_id, reviewer=reviewer, reviewed_at=_utc(time.time()),
                       from_verdict=_in_force(i), to_verdict=to_verdict, note=note or "")
            s.add(r)
            s.flush()
            return _review(r)

    def frame_file(self, inspection_id: int) -> Path | None:
        with Session(self.engine) as s:
            rel = s.scalar(select(Inspection.frame_path).where(Inspection.id == inspection_id))
        if not rel:
            return None
        root = self.data_dir.resolve()
        path = (root / rel).resolve()
        # The path comes from our own rows, but a tampered database must still not reach outside.
        return path if path.is_relative_to(root) and path.is_file() else None

    def counts(self) -> dict[str, int]:
        with Session(self.engine) as s:
            rows = s.execute(select(VerdictRow.kind, func.count()).group_by(VerdictRow.kind)).all()
        out = {"pass": 0, "fail": 0, "review": 0}
        out.update({k: n for k, n in rows})
        out["total"] = sum(out[k] for k in ("pass", "fail", "review"))
        return out

    def close(self) -> None:
        self.engine.dispose()


def _finding_row(f: Finding, late: bool = False) -> FindingRow:
    return FindingRow(crop_index=f.crop_index, defect_type=f.defect_type, severity=f.severity.value,
                      confidence=f.confidence, x1=f.box[0], y1=f.box[1], x2=f.box[2], y2=f.box[3],
                      reason=f.reason, model_id=f.model_id, look=f.look,
                      box_mm=[round(v, 3) for v in f.box_mm] if f.box_mm else None, late=late)


def _answer_rows(r: CropReport, late: bool = False) -> list[VlmAnswer]:
    """One row per look; a report made without asking (queue full) gets one row of its own."""
    looks = r.looks or [Look(0, (0, 0, 0, 0), r.answer, r.findings, r.rejected, r.raw, "",
                             r.latency_ms, r.error)]
    return [VlmAnswer(crop_index=r.crop_index, look=lk.index, answer=lk.answer.value, raw=lk.raw,
                      thinking=lk.thinking, rejected=list(lk.rejected), error=lk.error,
                      model_id=r.model_id, latency_ms=lk.latency_ms, late=late,
                      region=[round(v, 1) for v in lk.region] if r.looks else None)
            for lk in looks]


def _in_force(i: Inspection) -> str:
    """The latest review's verdict, else the machine's."""
    return i.reviews[-1].to_verdict if i.reviews else i.verdict.kind


def _review(r: Review) -> dict:
    return {"id": r.id, "reviewer": r.reviewer, "reviewed_at": r.reviewed_at.isoformat() + "Z",
            "from": r.from_verdict, "to": r.to_verdict, "note": r.note}


def _summary(i: Inspection) -> dict:
    return {
        "id": i.id, "camera_id": i.camera_id, "product": i.product, "seq": i.seq,
        "captured_at": i.captured_at.isoformat() + "Z", "width": i.width, "height": i.height,
        "verdict": i.verdict.kind, "why": i.verdict.why, "explanation": i.verdict.explanation,
        "reasoner_mode": i.reasoner_mode, "has_frame": bool(i.frame_path),
        "defect_types": sorted({f.defect_type for f in i.findings}),
    }


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers (the dashboard) never block the writer
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
