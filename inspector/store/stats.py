"""The numbers a quality engineer asks for, over a time window: defect rate per hour and per shift,
the Pareto of defect types, per camera and product, how often the VLM agreed with the detector and
operators agreed with the machine, throughput and VLM latency. Grouped in the database (the hour
bucket is dialect-specific), so a window of a million rows is not pulled into Python."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inspector.store import models as m

SHIFTS = (("early", 6, 14), ("late", 14, 22), ("night", 22, 6))  # hours [start, end), local = UTC here
LATENCY_SAMPLE = 20000  # newest VLM answers the latency percentiles are taken over


def _hour(engine, col):
    if engine.dialect.name == "postgresql":
        return func.to_char(func.date_trunc("hour", col), "YYYY-MM-DD HH24:00")
    return func.strftime("%Y-%m-%d %H:00", col)


def shift_of(hour: int) -> str:
    for name, start, end in SHIFTS:
        if (start <= hour < end) if start < end else (hour >= start or hour < end):
            return name
    return "?"


def compute(engine, since: datetime, until: datetime, camera: str | None = None,
            product: str | None = None) -> dict:
    where = [m.Inspection.captured_at >= since, m.Inspection.captured_at < until]
    if camera:
        where.append(m.Inspection.camera_id == camera)
    if product:
        where.append(m.Inspection.product == product)
    hour = _hour(engine, m.Inspection.captured_at).label("hour")
    with Session(engine) as s:
        hourly = s.execute(select(hour, m.Verdict.kind, func.count()).join(m.Verdict)
                           .where(*where).group_by(hour, m.Verdict.kind).order_by(hour)).all()
        by_source = s.execute(select(m.Inspection.camera_id, m.Inspection.product, m.Verdict.kind, func.count())
                              .join(m.Verdict).where(*where)
                              .group_by(m.Inspection.camera_id, m.Inspection.product, m.Verdict.kind)).all()
        pareto = s.execute(select(m.FindingRow.defect_type, func.count(func.distinct(m.FindingRow.inspection_id)))
                           .join(m.Inspection, m.Inspection.id == m.FindingRow.inspection_id)
                           .where(*where).group_by(m.FindingRow.defect_type)
                           .order_by(func.count(func.distinct(m.FindingRow.inspection_id)).desc())).all()
        whys = dict(s.execute(select(m.Verdict.why, func.count()).join(m.Inspection)
                              .where(*where).group_by(m.Verdict.why)).all())
        # Operators against the machine: the latest review of each reviewed inspection.
        latest = (select(m.Review.inspection_id, func.max(m.Review.id).label("rid"))
                  .group_by(m.Review.inspection_id).subquery())
        reviewed = s.execute(select(m.Verdict.kind, m.Review.to_verdict, func.count())
                             .join(m.Inspection, m.Inspection.id == m.Verdict.inspection_id)
                             .join(latest, latest.c.inspection_id == m.Inspection.id)
                             .join(m.Review, m.Review.id == latest.c.rid)
                             .where(*where).group_by(m.Verdict.kind, m.Review.to_verdict)).all()
        lat = s.scalars(select(m.VlmAnswer.latency_ms).join(m.Inspection)
                        .where(*where, m.VlmAnswer.late.is_(False), m.VlmAnswer.answer != "unavailable")
                        .order_by(m.VlmAnswer.id.desc()).limit(LATENCY_SAMPLE)).all()

    hours: dict[str, dict] = {}
    for h, kind, n in hourly:
        hours.setdefault(h, {"hour": h, "pass": 0, "fail": 0, "review": 0})[kind] = n
    if until - since <= timedelta(days=14):  # a time-true axis: the empty hours are bars of 0
        t = since.replace(minute=0, second=0, microsecond=0)
        while t < until:
            key = t.strftime("%Y-%m-%d %H:00")
            hours.setdefault(key, {"hour": key, "pass": 0, "fail": 0, "review": 0})
            t += timedelta(hours=1)
    per_hour = [hours[k] for k in sorted(hours)]
    for r in per_hour:
        r["total"] = r["pass"] + r["fail"] + r["review"]
        r["defect_rate"] = round(r["fail"] / r["total"], 4) if r["total"] else 0.0
    shifts: dict[tuple[str, str], dict] = {}
    for r in per_hour:
        if not r["total"]:
            continue
        day, hh = r["hour"][:10], int(r["hour"][11:13])
        name = shift_of(hh)
        if name == "night" and hh < 6:  # the night shift belongs to the day it started
            day = str(np.datetime64(day) - np.timedelta64(1, "D"))
        acc = shifts.setdefault((day, name), {"day": day, "shift": name, "pass": 0, "fail": 0, "review": 0})
        for k in ("pass", "fail", "review"):
            acc[k] += r[k]
    per_shift = list(shifts.values())
    for r in per_shift:
        r["total"] = r["pass"] + r["fail"] + r["review"]
        r["defect_rate"] = round(r["fail"] / r["total"], 4) if r["total"] else 0.0
    sources: dict[tuple[str, str], dict] = {}
    for cam, prod, kind, n in by_source:
        sources.setdefault((cam, prod), {"camera": cam, "product": prod, "pass": 0, "fail": 0, "review": 0})[kind] = n
    per_source = sorted(sources.values(), key=lambda r: (r["camera"], r["product"]))
    for r in per_source:
        r["total"] = r["pass"] + r["fail"] + r["review"]
        r["defect_rate"] = round(r["fail"] / r["total"], 4) if r["total"] else 0.0
    total_defects = sum(n for _, n in pareto)
    cum, pareto_rows = 0, []
    for t, n in pareto:
        cum += n
        pareto_rows.append({"defect_type": t, "parts": n, "cumulative": round(cum / total_defects, 4)})
    agreed, overruled = whys.get("vlm_agreed", 0), whys.get("vlm_overruled", 0)
    n_reviewed = sum(n for _, _, n in reviewed)
    same = sum(n for kind, to, n in reviewed if kind == to)
    total = sum(r["total"] for r in per_hour)
    span_h = max((until - since).total_seconds() / 3600, 1e-9)
    return {
        "since": since.isoformat() + "Z", "until": until.isoformat() + "Z",
        "total": total, "fail": sum(r["fail"] for r in per_hour), "review": sum(r["review"] for r in per_hour),
        "defect_rate": round(sum(r["fail"] for r in per_hour) / total, 4) if total else 0.0,
        "throughput_per_hour": round(total / span_h, 2),
        "per_hour": per_hour, "per_shift": per_shift, "per_camera_product": per_source, "pareto": pareto_rows,
        "vlm_vs_detector": {"agreed": agreed, "overruled": overruled,
                            "agreement": round(agreed / (agreed + overruled), 4) if agreed + overruled else None},
        "operators_vs_machine": {"reviewed": n_reviewed, "kept": same,
                                 "agreement": round(same / n_reviewed, 4) if n_reviewed else None},
        "vlm_latency_ms": {"n": len(lat), "p50": round(float(np.percentile(lat, 50)), 1) if lat else None,
                           "p95": round(float(np.percentile(lat, 95)), 1) if lat else None},
    }
