"""The stats' counters: verdicts and defect types per 15-minute bucket, bumped by the writer in
the same transaction as the rows they count (so they never disagree with them), and rebuilt from
the rows by the migration that made them."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

from sqlalchemy import Integer, cast, func, select

from inspector.store import models as m

BUCKET_S = 900


def bucket_of(t: datetime) -> int:
    """The bucket of a naive-UTC (or aware) capture time."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return int(t.timestamp()) // BUCKET_S


def sql_bucket(dialect: str, col):
    """The same bucket computed by the database, for rows not yet rolled up (a window's edges)."""
    if dialect == "postgresql":
        return cast(func.floor(func.extract("epoch", col) / BUCKET_S), Integer)
    return cast(func.strftime("%s", col), Integer) // BUCKET_S


def _upsert(conn, table, rows: list[dict], keys: list[str], counter: str) -> None:
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=keys,
                                      set_={counter: table.c[counter] + stmt.excluded[counter]})
    conn.execute(stmt, rows)


def bump(conn, verdicts: Counter, defects: Counter) -> None:
    """verdicts: (bucket, camera, product, kind, why) -> n; defects: (bucket, camera, product,
    defect type) -> parts."""
    _upsert(conn, m.VerdictRollup.__table__,
            [{"bucket": b, "camera_id": c, "product": p, "kind": k, "why": w, "n": n}
             for (b, c, p, k, w), n in sorted(verdicts.items())],
            ["bucket", "camera_id", "product", "kind", "why"], "n")
    _upsert(conn, m.DefectRollup.__table__,
            [{"bucket": b, "camera_id": c, "product": p, "defect_type": t, "parts": n}
             for (b, c, p, t), n in sorted(defects.items())],
            ["bucket", "camera_id", "product", "defect_type"], "parts")


def bump_review(conn, bucket: int, camera_id: str, product: str, machine: str, before: str | None,
                after: str) -> None:
    """A part's latest review went from `before` (None: it had none) to `after`."""
    rows = Counter({(bucket, camera_id, product, machine, after): 1})
    if before is not None:
        rows[bucket, camera_id, product, machine, before] -= 1
    _upsert(conn, m.ReviewRollup.__table__,
            [{"bucket": b, "camera_id": c, "product": p, "machine": mk, "operator": o, "n": n}
             for (b, c, p, mk, o), n in sorted(rows.items()) if n],
            ["bucket", "camera_id", "product", "machine", "operator"], "n")


def rebuild(conn) -> None:
    """Every counter from the rows (a repair, and the benchmarks' bulk loads)."""
    rebuild_counts(conn)
    rebuild_reviews(conn)


def rebuild_reviews(conn) -> None:
    """The review counter from the rows: each reviewed part once, by its latest review."""
    i, v, r = m.Inspection.__table__.c, m.Verdict.__table__.c, m.Review.__table__.c
    conn.execute(m.ReviewRollup.__table__.delete())
    latest = select(func.max(r.id).label("rid")).group_by(r.inspection_id).subquery()
    b = sql_bucket(conn.dialect.name, i.captured_at).label("bucket")
    conn.execute(m.ReviewRollup.__table__.insert().from_select(
        ["bucket", "camera_id", "product", "machine", "operator", "n"],
        select(b, i.camera_id, i.product, v.kind, r.to_verdict, func.count())
        .select_from(latest.join(m.Review.__table__, r.id == latest.c.rid)
                     .join(m.Inspection.__table__, i.id == r.inspection_id)
                     .join(m.Verdict.__table__, v.inspection_id == i.id))
        .group_by(b, i.camera_id, i.product, v.kind, r.to_verdict)))


def rebuild_counts(conn) -> None:
    """The verdict and defect counters from the rows (the migration that adds them)."""
    d = conn.dialect.name
    conn.execute(m.VerdictRollup.__table__.delete())
    conn.execute(m.DefectRollup.__table__.delete())
    i, v, f = m.Inspection.__table__.c, m.Verdict.__table__.c, m.FindingRow.__table__.c
    b = sql_bucket(d, i.captured_at).label("bucket")
    conn.execute(m.VerdictRollup.__table__.insert().from_select(
        ["bucket", "camera_id", "product", "kind", "why", "n"],
        select(b, i.camera_id, i.product, v.kind, v.why, func.count())
        .select_from(m.Inspection.__table__.join(m.Verdict.__table__, v.inspection_id == i.id))
        .group_by(b, i.camera_id, i.product, v.kind, v.why)))
    per_part = (select(i.id, i.captured_at, i.camera_id, i.product, f.defect_type)
                .select_from(m.Inspection.__table__.join(m.FindingRow.__table__, f.inspection_id == i.id))
                .distinct().subquery())
    b2 = sql_bucket(d, per_part.c.captured_at).label("bucket")
    conn.execute(m.DefectRollup.__table__.insert().from_select(
        ["bucket", "camera_id", "product", "defect_type", "parts"],
        select(b2, per_part.c.camera_id, per_part.c.product, per_part.c.defect_type, func.count())
        .group_by(b2, per_part.c.camera_id, per_part.c.product, per_part.c.defect_type)))


def rebuild_sqlite(path) -> None:
    """rebuild() on a SQLite file filled behind the store's back (the benchmarks' bulk loads)."""
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as c:
            rebuild(c)
    finally:
        engine.dispose()
