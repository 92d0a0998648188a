"""The numbers a quality engineer asks for, over a time window: defect rate per hour and per shift,
the Pareto of defect types, per camera and product, how often the VLM agreed with the detector and
operators agreed with the machine, throughput and VLM latency, in the plant's time zone and shifts.
Counts come from the rollups (15-minute counters the writer keeps), so a month of a million
inspections is a few thousand counter rows, not a million rows; reviews and VLM latency are read
from their own tables."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import false, func, select
from sqlalchemy.orm import Session

from inspector.store import models as m
from inspector.store.rollup import BUCKET_S, sql_bucket


def _utc(bucket: int) -> datetime:
    return datetime.fromtimestamp(bucket * BUCKET_S, timezone.utc).replace(tzinfo=None)

LATENCY_SAMPLE = 5000  # newest VLM answers the latency percentiles are taken over (p95: 250 above it)
KINDS = ("pass", "fail", "review")


@dataclass(frozen=True)
class PlantTime:
    """The plant's clock: hours and shifts are counted in its time zone (daylight saving
    included), shifts by their start times; a shift runs until the next one starts, and one that
    crosses midnight belongs to the day it began."""

    zone: str = "UTC"
    shifts: tuple[tuple[str, int], ...] = (("early", 6 * 60), ("late", 14 * 60), ("night", 22 * 60))

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @classmethod
    def from_config(cls, web) -> PlantTime:
        return cls(web.timezone, tuple((s.name, s.start_minutes) for s in web.shifts))

    def shift_of(self, local: datetime) -> tuple[str, str]:
        """(day the shift began, shift name) of a local time."""
        minute = local.hour * 60 + local.minute
        current = [name for name, start in self.shifts if start <= minute]
        if current:
            return local.date().isoformat(), current[-1]
        return (local.date() - timedelta(days=1)).isoformat(), self.shifts[-1][0]


def _counts_raw(s, dialect: str, lo: datetime, hi: datetime, filters: list):
    """The rollups' rows computed from the inspections themselves, for a window's edges that do not
    fill a whole bucket."""
    b = sql_bucket(dialect, m.Inspection.captured_at).label("bucket")
    where = [m.Inspection.captured_at >= lo, m.Inspection.captured_at < hi, *filters]
    verdicts = s.execute(select(b, m.Inspection.camera_id, m.Inspection.product, m.Verdict.kind, m.Verdict.why,
                                func.count()).join(m.Verdict).where(*where)
                         .group_by(b, m.Inspection.camera_id, m.Inspection.product, m.Verdict.kind,
                                   m.Verdict.why)).all()
    parts = (select(m.Inspection.id, m.FindingRow.defect_type).join(m.FindingRow).where(*where).distinct().subquery())
    defects = s.execute(select(parts.c.defect_type, func.count()).group_by(parts.c.defect_type)).all()
    return verdicts, defects


def compute(engine, since: datetime, until: datetime, camera: str | None = None,
            product: str | None = None, plant: PlantTime = PlantTime()) -> dict:
    """since/until naive UTC. Whole 15-minute buckets come from the rollups; the edges of a window
    that does not start or end on a bucket are counted from the rows, so the numbers are exact."""
    tz = plant.tz
    dialect = engine.dialect.name
    b_lo = -(-int(since.replace(tzinfo=timezone.utc).timestamp()) // BUCKET_S)
    b_hi = int(until.replace(tzinfo=timezone.utc).timestamp()) // BUCKET_S
    edges = [(since, until)] if b_lo >= b_hi else [(since, _utc(b_lo)), (_utc(b_hi), until)]
    vr, dr = m.VerdictRollup, m.DefectRollup
    roll_where = [vr.bucket >= b_lo, vr.bucket < b_hi] if b_lo < b_hi else [false()]
    def_where = [dr.bucket >= b_lo, dr.bucket < b_hi] if b_lo < b_hi else [false()]
    raw_filters = []
    if camera:
        roll_where.append(vr.camera_id == camera)
        def_where.append(dr.camera_id == camera)
        raw_filters.append(m.Inspection.camera_id == camera)
    if product:
        roll_where.append(vr.product == product)
        def_where.append(dr.product == product)
        raw_filters.append(m.Inspection.product == product)
    where = [m.Inspection.captured_at >= since, m.Inspection.captured_at < until, *raw_filters]
    per_bucket: dict[int, Counter] = {}
    by_source: Counter = Counter()
    whys: Counter = Counter()
    pareto: Counter = Counter()
    with Session(engine) as s:
        for b, kind, n in s.execute(select(vr.bucket, vr.kind, func.sum(vr.n)).where(*roll_where)
                                    .group_by(vr.bucket, vr.kind)):
            per_bucket.setdefault(int(b), Counter())[kind] += int(n)
        for cam, prod, kind, n in s.execute(select(vr.camera_id, vr.product, vr.kind, func.sum(vr.n))
                                            .where(*roll_where).group_by(vr.camera_id, vr.product, vr.kind)):
            by_source[cam, prod, kind] += n
        for why, n in s.execute(select(vr.why, func.sum(vr.n)).where(*roll_where).group_by(vr.why)):
            whys[why] += n
        for t, n in s.execute(select(dr.defect_type, func.sum(dr.parts)).where(*def_where).group_by(dr.defect_type)):
            pareto[t] += n
        for lo, hi in edges:
            if lo >= hi:
                continue
            verdicts, defects = _counts_raw(s, dialect, lo, hi, raw_filters)
            for b, cam, prod, kind, why, n in verdicts:
                per_bucket.setdefault(int(b), Counter())[kind] += int(n)
                by_source[cam, prod, kind] += n
                whys[why] += n
            for t, n in defects:
                pareto[t] += n
        # Operators against the machine: the latest review of each reviewed inspection.
        latest = (select(m.Review.inspection_id, func.max(m.Review.id).label("rid"))
                  .group_by(m.Review.inspection_id).subquery())
        reviewed = s.execute(select(m.Verdict.kind, m.Review.to_verdict, func.count())
                             .join(m.Inspection, m.Inspection.id == m.Verdict.inspection_id)
                             .join(latest, latest.c.inspection_id == m.Inspection.id)
                             .join(m.Review, m.Review.id == latest.c.rid)
                             .where(*where).group_by(m.Verdict.kind, m.Review.to_verdict)).all()
        # Newest first by capture time: the database walks the captured_at index backwards and
        # stops at the sample size, instead of joining every answer of a month and sorting.
        lat = s.scalars(select(m.VlmAnswer.latency_ms).select_from(m.Inspection)
                        .join(m.VlmAnswer, m.VlmAnswer.inspection_id == m.Inspection.id)
                        .where(*where, m.VlmAnswer.late.is_(False), m.VlmAnswer.answer != "unavailable")
                        .order_by(m.Inspection.captured_at.desc()).limit(LATENCY_SAMPLE)).all()

    def empty(**k):
        return {**k, "pass": 0, "fail": 0, "review": 0}

    hours: dict[datetime, dict] = {}
    shifts: dict[tuple[str, str], dict] = {}
    for b in sorted(per_bucket):
        local = datetime.fromtimestamp(b * BUCKET_S, tz)
        start = local.replace(minute=0)
        acc = hours.setdefault(start.astimezone(timezone.utc), empty())
        day, name = plant.shift_of(local)
        sh = shifts.setdefault((day, name), empty(day=day, shift=name))
        for k in KINDS:
            acc[k] += per_bucket[b][k]
            sh[k] += per_bucket[b][k]
    if until - since <= timedelta(days=14):  # a time-true axis: the empty hours are bars of 0
        u = since.replace(tzinfo=timezone.utc).astimezone(tz).replace(minute=0, second=0, microsecond=0)
        u = u.astimezone(timezone.utc)
        while u < until.replace(tzinfo=timezone.utc):
            hours.setdefault(u, empty())
            u += timedelta(hours=1)
    per_hour = []
    for u in sorted(hours):
        local = u.astimezone(tz)
        per_hour.append({"hour": local.strftime("%Y-%m-%d %H:00"), "utc": u.strftime("%Y-%m-%dT%H:%M:%SZ"),
                         **hours[u]})
    for r in per_hour:
        r["total"] = r["pass"] + r["fail"] + r["review"]
        r["defect_rate"] = round(r["fail"] / r["total"], 4) if r["total"] else 0.0
    per_shift = [shifts[k] for k in sorted(shifts)]
    for r in per_shift:
        r["total"] = r["pass"] + r["fail"] + r["review"]
        r["defect_rate"] = round(r["fail"] / r["total"], 4) if r["total"] else 0.0
    sources: dict[tuple[str, str], dict] = {}
    for (cam, prod, kind), n in by_source.items():
        sources.setdefault((cam, prod), empty(camera=cam, product=prod))[kind] += n
    pareto = sorted(((t, n) for t, n in pareto.items() if n), key=lambda x: (-x[1], x[0]))
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
        "since": since.isoformat() + "Z", "until": until.isoformat() + "Z", "timezone": plant.zone,
        "shifts": [{"name": n, "start": f"{st // 60:02d}:{st % 60:02d}"} for n, st in plant.shifts],
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
