"""The numbers a quality engineer asks for, over a time window: defect rate per hour and per shift,
the Pareto of defect types, per camera and product, how often the VLM agreed with the detector and
operators agreed with the machine, throughput and VLM latency, in the plant's time zone and shifts.
Counts come from the rollups (15-minute counters the writer keeps), so a month of a million
inspections is a few thousand counter rows, not a million rows; reviews and VLM latency are read
from their own tables."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import false, func, select

from inspector.errors import InspectorError
from inspector.store import models as m
from inspector.store.decisions import agreement as line_agreement
from inspector.store.rollup import BUCKET_S, sql_bucket


def _utc(bucket: int) -> datetime:
    return datetime.fromtimestamp(bucket * BUCKET_S, timezone.utc).replace(tzinfo=None)

# The longest window asked for at once: a year, leap day included. Its cost grows with its length
# (a zone probe per day, an hour axis, the rollups' rows), and the dashboard shares the line's
# process: ten thousand years took 11 s of CPU.
MAX_WINDOW = timedelta(days=366)
LATENCY_SAMPLE = 5000  # newest VLM answers the latency percentiles are taken over (p95: 250 above it)
KINDS = ("pass", "fail", "review")
KIND_INDEX = {k: i for i, k in enumerate(KINDS)}


class WindowError(InspectorError, ValueError):
    """A window the stats will not count over; the message says why."""


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

    def offset(self, bucket: int) -> int:
        """The zone's UTC offset at a bucket, in buckets (every zone in use today sits on a quarter
        hour; a historic one that did not is floored to one)."""
        return int(datetime.fromtimestamp(bucket * BUCKET_S, self.tz).utcoffset().total_seconds()) // BUCKET_S

    def runs(self, b_lo: int, b_hi: int) -> list[tuple[int, int, int]]:
        """[start, end, offset) runs of one UTC offset that cover buckets [b_lo, b_hi): the offset
        is probed once a day and a change is bisected to its bucket (zones change at most once a
        day)."""
        out, start, off, p = [], b_lo, self.offset(b_lo), b_lo
        while p < b_hi - 1:
            q = min(p + 96, b_hi - 1)
            if self.offset(q) == off:
                p = q
                continue
            lo, hi = p, q
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if self.offset(mid) == off else (lo, mid)
            out.append((start, hi, off))
            start, off, p = hi, self.offset(hi), hi
        out.append((start, b_hi, off))
        return out

    def grain(self, offsets) -> int:
        """Buckets per slot: the most that keeps every slot inside one local hour and one shift."""
        return math.gcd(4, *(start // 15 for _, start in self.shifts), *offsets)

    def shift_of(self, local: datetime) -> tuple[str, str]:
        """(day the shift began, shift name) of a local time."""
        minute = local.hour * 60 + local.minute
        current = [name for name, start in self.shifts if start <= minute]
        if current:
            return local.date().isoformat(), current[-1]
        return (local.date() - timedelta(days=1)).isoformat(), self.shifts[-1][0]


def _counts_raw(c, dialect: str, lo: datetime, hi: datetime, filters: list):
    """The rollups' rows computed from the inspections themselves, for a window's edges that do not
    fill a whole bucket."""
    b = sql_bucket(dialect, m.Inspection.captured_at).label("bucket")
    where = [m.Inspection.captured_at >= lo, m.Inspection.captured_at < hi, *filters]
    verdicts = c.execute(select(b, m.Inspection.camera_id, m.Inspection.product, m.Verdict.kind, m.Verdict.why,
                                func.count()).join(m.Verdict).where(*where)
                         .group_by(b, m.Inspection.camera_id, m.Inspection.product, m.Verdict.kind,
                                   m.Verdict.why)).all()
    parts = (select(m.Inspection.id, m.FindingRow.defect_type).join(m.FindingRow).where(*where).distinct().subquery())
    defects = c.execute(select(parts.c.defect_type, func.count()).group_by(parts.c.defect_type)).all()
    return verdicts, defects


def _reviews_raw(c, lo: datetime, hi: datetime, filters: list) -> Counter:
    """The review rollup's counts computed from the reviews themselves, for a window's edges: the
    window's reviewed parts (found through the capture-time index: an edge holds a few minutes of
    parts), each by its latest review."""
    machine = dict(c.execute(select(m.Inspection.id, m.Verdict.kind)
                             .join(m.Verdict, m.Verdict.inspection_id == m.Inspection.id)
                             .where(m.Inspection.captured_at >= lo, m.Inspection.captured_at < hi, *filters,
                                    select(m.Review.id).where(m.Review.inspection_id == m.Inspection.id).exists())).all())
    latest = dict(c.execute(select(m.Review.inspection_id, m.Review.to_verdict)
                            .where(m.Review.inspection_id.in_(machine)).order_by(m.Review.id)).all()) if machine else {}
    return Counter((machine[i], to) for i, to in latest.items())


def compute(engine, since: datetime, until: datetime, camera: str | None = None,
            product: str | None = None, plant: PlantTime = PlantTime()) -> dict:
    """since/until naive UTC. Whole 15-minute buckets come from the rollups; the edges of a window
    that does not start or end on a bucket are counted from the rows, so the numbers are exact."""
    if since >= until:
        raise WindowError("since must be before until")
    if until - since > MAX_WINDOW:
        raise WindowError(f"a stats window is at most {MAX_WINDOW.days} days, this one is "
                          f"{(until - since) / timedelta(days=1):.0f}: ask for a shorter one")
    tz = plant.tz
    dialect = engine.dialect.name
    b_lo = -(-int(since.replace(tzinfo=timezone.utc).timestamp()) // BUCKET_S)
    b_hi = int(until.replace(tzinfo=timezone.utc).timestamp()) // BUCKET_S
    edges = [(since, until)] if b_lo >= b_hi else [(since, _utc(b_lo)), (_utc(b_hi), until)]
    runs = plant.runs(b_lo, b_hi) if b_lo < b_hi else []
    grain = plant.grain(off for _, _, off in runs)
    vr, dr, rr = m.VerdictRollup, m.DefectRollup, m.ReviewRollup

    def rollup_where(t) -> list:
        w = [t.bucket >= b_lo, t.bucket < b_hi] if b_lo < b_hi else [false()]
        return w + ([t.camera_id == camera] if camera else []) + ([t.product == product] if product else [])
    roll_where, def_where, rev_where = rollup_where(vr), rollup_where(dr), rollup_where(rr)
    raw_filters = ([m.Inspection.camera_id == camera] if camera else []) + \
        ([m.Inspection.product == product] if product else [])
    where = [m.Inspection.captured_at >= since, m.Inspection.captured_at < until, *raw_filters]
    # Counts per slot: the coarsest run of buckets that the plant's hours and shifts both align to
    # (an hour, unless the zone or a shift sits on a half or quarter hour), keyed by the UTC bucket
    # it starts at, so that the hour a fall-back repeats stays two hours. The database sums the
    # buckets into slots, one query per run of one UTC offset: a month is 720 rows, not 2,880.
    per_slot: dict[int, list[int]] = {}
    by_source: Counter = Counter()
    pareto: Counter = Counter()

    def add(start: int, kind: str, n: int) -> None:
        per_slot.setdefault(start, [0, 0, 0])[KIND_INDEX[kind]] += int(n)

    with engine.connect() as c:
        for r_lo, r_hi, off in runs:
            slot = ((vr.bucket + off) // grain).label("slot")
            for s, kind, n in c.execute(select(slot, vr.kind, func.sum(vr.n)).where(
                    *roll_where, vr.bucket >= r_lo, vr.bucket < r_hi).group_by(slot, vr.kind)):
                add(s * grain - off, kind, n)
        for key in c.execute(select(vr.camera_id, vr.product, vr.kind, vr.why, func.sum(vr.n))
                             .where(*roll_where).group_by(vr.camera_id, vr.product, vr.kind, vr.why)):
            by_source[key[:4]] += key[4]
        for t, n in c.execute(select(dr.defect_type, func.sum(dr.parts)).where(*def_where).group_by(dr.defect_type)):
            pareto[t] += n
        for lo, hi in edges:
            if lo >= hi:
                continue
            verdicts, defects = _counts_raw(c, dialect, lo, hi, raw_filters)
            for b, cam, prod, kind, why, n in verdicts:
                off = plant.offset(b)
                add((b + off) // grain * grain - off, kind, n)
                by_source[cam, prod, kind, why] += n
            for t, n in defects:
                pareto[t] += n
        # Operators against the machine: each reviewed part by its latest review.
        reviewed: Counter = Counter()
        for machine, operator, n in c.execute(select(rr.machine, rr.operator, func.sum(rr.n)).where(*rev_where)
                                              .group_by(rr.machine, rr.operator)):
            reviewed[machine, operator] += n
        for lo, hi in edges:
            if lo < hi:
                reviewed.update(_reviews_raw(c, lo, hi, raw_filters))
        # Newest first by capture time: the database walks the captured_at index backwards and
        # stops at the sample size, instead of joining every answer of a month and sorting.
        lat = c.scalars(select(m.VlmAnswer.latency_ms).select_from(m.Inspection)
                        .join(m.VlmAnswer, m.VlmAnswer.inspection_id == m.Inspection.id)
                        .where(*where, m.VlmAnswer.late.is_(False), m.VlmAnswer.answer != "unavailable")
                        .order_by(m.Inspection.captured_at.desc()).limit(LATENCY_SAMPLE)).all()
    whys: Counter = Counter()
    for (_, _, _, why), n in by_source.items():
        whys[why] += n

    def empty(**k):
        return {**k, "pass": 0, "fail": 0, "review": 0}

    hours: dict[datetime, dict] = {}
    shifts: dict[tuple[str, str], dict] = {}
    for start in sorted(per_slot):
        local = datetime.fromtimestamp(start * BUCKET_S, tz)
        acc = hours.setdefault(local.replace(minute=0).astimezone(timezone.utc), empty())
        day, name = plant.shift_of(local)
        sh = shifts.setdefault((day, name), empty(day=day, shift=name))
        for k, n in zip(KINDS, per_slot[start]):
            acc[k] += n
            sh[k] += n
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
    for (cam, prod, kind, _), n in by_source.items():
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
    n_reviewed = sum(reviewed.values())
    same = sum(n for (machine, operator), n in reviewed.items() if machine == operator)
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
        # The line's OK/NG against the final verdicts: what the deadline, threshold and late
        # policy are tuned by (escapes: passed but defective; false rejects: rejected but good).
        "line_decisions": line_agreement(engine, since, until, camera, product),
        "vlm_latency_ms": {"n": len(lat), "p50": round(float(np.percentile(lat, 50)), 1) if lat else None,
                           "p95": round(float(np.percentile(lat, 95)), 1) if lat else None},
    }
