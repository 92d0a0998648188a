"""Messages as row values: what the writer inserts in bulk and what late answers append."""

from __future__ import annotations

from inspector.messages import CropReport, Finding, Look


def finding_row(f: Finding, late: bool = False) -> dict:
    return {"crop_index": f.crop_index, "defect_type": f.defect_type, "severity": f.severity.value,
            "confidence": f.confidence, "x1": f.box[0], "y1": f.box[1], "x2": f.box[2], "y2": f.box[3],
            "reason": f.reason, "model_id": f.model_id, "look": f.look,
            "box_mm": [round(v, 3) for v in f.box_mm] if f.box_mm else None, "late": late}


def answer_rows(r: CropReport, late: bool = False) -> list[dict]:
    """One row per look; a report made without asking (queue full) gets one row of its own."""
    looks = r.looks or [Look(0, (0, 0, 0, 0), r.answer, r.findings, r.rejected, r.raw, "",
                             r.latency_ms, r.error)]
    return [{"crop_index": r.crop_index, "look": lk.index, "answer": lk.answer.value, "raw": lk.raw,
             "thinking": lk.thinking, "rejected": list(lk.rejected), "error": lk.error,
             "model_id": r.model_id, "latency_ms": lk.latency_ms, "late": late,
             "region": [round(v, 1) for v in lk.region] if r.looks else None}
            for lk in looks]
