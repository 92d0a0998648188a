"""Messages as row values: what the writer inserts in bulk and what late answers append."""

from __future__ import annotations

from datetime import datetime, timezone

from inspector.messages import CropReport, Finding, LineDecision, Look, ZoomRound


def utc_naive(ts: float) -> datetime:
    """Epoch seconds as the naive UTC datetime every DateTime column holds."""
    return datetime.fromtimestamp(ts, timezone.utc).replace(tzinfo=None)


def decision_row(d: LineDecision) -> dict:
    return {"uid": d.uid, "camera_id": d.camera_id, "product": d.product, "seq": d.seq,
            "answer": d.answer.value, "basis": d.basis, "policy": d.policy, "verdict_kind": d.verdict_kind,
            "captured_at": utc_naive(d.captured_wall), "decided_at": utc_naive(d.decided_wall),
            "elapsed_ms": round(d.elapsed_ms, 2), "deadline_ms": d.deadline_ms, "on_time": d.on_time,
            "part_id": d.part_id}


def finding_row(f: Finding, late: bool = False) -> dict:
    return {"crop_index": f.crop_index, "defect_type": f.defect_type, "severity": f.severity.value,
            "confidence": f.confidence, "x1": f.box[0], "y1": f.box[1], "x2": f.box[2], "y2": f.box[3],
            "reason": f.reason, "model_id": f.model_id, "look": f.look,
            "box_mm": [round(v, 3) for v in f.box_mm] if f.box_mm else None, "late": late}


def zoom_row(z: ZoomRound) -> dict:
    return {"asked": [round(v, 3) for v in z.asked],
            "region": [round(v, 1) for v in z.region] if z.region is not None else None,
            "thinking": z.thinking, "error": z.error, "label": z.label}


def answer_rows(r: CropReport, late: bool = False) -> list[dict]:
    """One row per look; a report made without asking (queue full) gets one row of its own."""
    looks = r.looks or [Look(0, (0, 0, 0, 0), r.answer, r.findings, r.rejected, r.raw, "",
                             r.latency_ms, r.error)]
    return [{"crop_index": r.crop_index, "look": lk.index, "answer": lk.answer.value, "raw": lk.raw,
             "thinking": lk.thinking, "rejected": list(lk.rejected), "error": lk.error,
             "model_id": r.model_id, "latency_ms": lk.latency_ms, "late": late,
             "region": [round(v, 1) for v in lk.region] if r.looks else None,
             "zooms": [zoom_row(z) for z in lk.zooms] or None}
            for lk in looks]
