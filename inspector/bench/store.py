"""`inspector bench store`: how fast verdicts are written, and how fast the dashboard reads a big
database, on real SQLite files.

1. writes: verdict rows per second through `Store.save` (the path the line uses), with one
   candidate each, no frames; against a bare SQLAlchemy insert of the same rows in one
   transaction (the ceiling) in the same run.
2. reads: a database of N inspections (default 1,000,000, bulk-loaded with plain SQL), then p50/p95
   of the dashboard's queries: the feed's first page, a page filtered by verdict, an older page,
   and the verdict counts.
The issue's bars: >= 5,000 verdicts/s written; feed and stats p95 < 50 ms on 1,000,000.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _verdicts(n: int):
    from inspector.messages import Candidate, Frame, Verdict, VerdictKind

    img = np.zeros((8, 8, 3), np.uint8)
    kinds = [VerdictKind.passed] * 8 + [VerdictKind.fail, VerdictKind.review]
    cand = (Candidate((1.0, 1.0, 5.0, 5.0), 0.9, "defect", "bench"),)
    return [Verdict(Frame("cam", i, img), kinds[i % 10], "detector_only", "bench", cand if i % 10 >= 8 else (), ())
            for i in range(n)]


def writes(d: Path, n: int) -> tuple[float, float]:
    from sqlalchemy.orm import Session

    from inspector.store import Store
    from inspector.store.models import Inspection
    from inspector.store.models import Verdict as VerdictRow

    vs = _verdicts(n)
    store = Store(f"sqlite:///{d / 'writes.db'}", d, save_frames=())
    try:
        t = time.perf_counter()
        for v in vs:
            store.save(v, "p", "none")
        ours = n / (time.perf_counter() - t)
        t = time.perf_counter()
        with Session(store.engine) as s, s.begin():
            for v in vs:
                i = Inspection(camera_id="cam", product="p", seq=v.frame.seq, source_name="", width=8, height=8,
                               captured_at=datetime_utc(), reasoner_mode="none")
                i.verdict = VerdictRow(kind=v.kind.value, why=v.why, explanation=v.explanation,
                                       decided_at=datetime_utc())
                s.add(i)
        bare = n / (time.perf_counter() - t)
    finally:
        store.close()
    return ours, bare


def datetime_utc():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).replace(tzinfo=None)


def big_database(d: Path, n: int):
    """N inspections with verdicts (1 in 10 fail, 1 in 10 review), loaded with plain SQL."""
    import sqlite3

    from inspector.store import Store

    Store(f"sqlite:///{d / 'big.db'}", d).close()  # the real schema, at head
    con = sqlite3.connect(d / "big.db")
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")  # loading only
    kinds = ["pass"] * 8 + ["fail", "review"]
    step = 50_000
    for start in range(0, n, step):
        ids = range(start + 1, min(n, start + step) + 1)
        con.executemany("INSERT INTO inspections (id, camera_id, product, seq, source_name, captured_at, width, "
                        "height, reasoner_mode) VALUES (?, ?, 'p', ?, '', '2026-11-24 00:00:00', 640, 480, 'none')",
                        ((i, f"cam{i % 4}", i) for i in ids))
        con.executemany("INSERT INTO verdicts (inspection_id, kind, why, explanation, decided_at) "
                        "VALUES (?, ?, 'detector_only', 'bench', '2026-11-24 00:00:00')",
                        ((i, kinds[i % 10]) for i in ids))
        con.commit()
    con.execute("ANALYZE")
    con.close()


def reads(d: Path, rounds: int) -> dict:
    from inspector.store import Store

    store = Store(f"sqlite:///{d / 'big.db'}", d)
    cases = {
        "feed first page": lambda: store.feed(limit=50),
        "feed, fails only": lambda: store.feed(limit=50, kind="fail"),
        "feed, one camera": lambda: store.feed(limit=50, camera="cam2"),
        "feed, an older page": lambda: store.feed(limit=50, before_id=500_000),
        "verdict counts (stats)": lambda: store.counts(),
    }
    out = {}
    try:
        for name, q in cases.items():
            q()  # warm the page cache
            ts = []
            for _ in range(rounds):
                t = time.perf_counter()
                q()
                ts.append((time.perf_counter() - t) * 1000)
            ts.sort()
            out[name] = {"p50_ms": round(statistics.median(ts), 2),
                         "p95_ms": round(ts[min(len(ts) - 1, int(0.95 * len(ts)))], 2)}
    finally:
        store.close()
    return out


def main(writes_n: int = 5000, inspections: int = 1_000_000, rounds: int = 40, as_json: bool = False) -> int:
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        ours, bare = writes(d, writes_n)
        t = time.perf_counter()
        big_database(d, inspections)
        load_s = time.perf_counter() - t
        r = reads(d, rounds)
    res = {"bench": "store", "writes": writes_n, "store_save_per_s": round(ours), "bare_insert_per_s": round(bare),
           "ratio": round(ours / bare, 3), "inspections": inspections, "load_s": round(load_s, 1), "reads": r}
    print(f"store bench: SQLite (WAL, synchronous=NORMAL), {writes_n} verdicts written, "
          f"{inspections:,} inspections for the reads")
    print(f"  Store.save, one transaction per verdict   {ours:9.0f} verdicts/s  (bar >= 5,000)")
    print(f"  bare ORM insert, one transaction for all  {bare:9.0f} verdicts/s  ratio {ours / bare:.3f}")
    for name, v in r.items():
        print(f"  {name:28s} p50 {v['p50_ms']:7.2f} ms  p95 {v['p95_ms']:7.2f} ms  (bar p95 < 50)")
    if as_json:
        print(json.dumps(res))
    return 0
