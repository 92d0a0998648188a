"""`inspector bench store`: how fast verdicts are written, and how fast the dashboard reads a big
database, on real SQLite files.

1. writes: verdict rows per second through the store's writer thread (the path the line uses:
   `Store.submit`, batched transactions), 1 in 5 with a candidate, no pictures; against a bare
   SQLAlchemy Core insert of the same rows in one transaction (the ceiling) in the same run, and
   `Store.save` waiting for each commit (what one transaction per verdict costs). Then verdicts
   with the default pictures under synchronous normal and full (what power-loss safety costs).
2. reads: a database of N inspections (default 1,000,000 over 30 days, bulk-loaded with plain SQL;
   `bench web` reads the same one), then p50/p95
   of the dashboard's queries: the feed's first page, a page filtered by verdict, an older page,
   and the verdict counts.
The issue's bars: >= 5,000 verdicts/s written; feed and stats p95 < 50 ms on 1,000,000.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np


def _verdicts(n: int, img: np.ndarray | None = None):
    from inspector.messages import Candidate, Frame, Verdict, VerdictKind

    img = np.zeros((8, 8, 3), np.uint8) if img is None else img
    kinds = [VerdictKind.passed] * 8 + [VerdictKind.fail, VerdictKind.review]
    cand = (Candidate((1.0, 1.0, 5.0, 5.0), 0.9, "defect", "bench"),)
    return [Verdict(Frame("cam", i, img), kinds[i % 10], "detector_only", "bench", cand if i % 10 >= 8 else (), ())
            for i in range(n)]


def writes(d: Path, n: int) -> tuple[float, float, float]:
    """(through the writer, one save at a time, bare Core insert in one transaction) verdicts/s."""
    from sqlalchemy import insert

    from inspector.config import StoreConfig
    from inspector.store import Store
    from inspector.store.models import Inspection
    from inspector.store.models import Verdict as VerdictRow

    vs = _verdicts(n)
    store = Store(f"sqlite:///{d / 'writes.db'}", d, StoreConfig(save_frames=[], save_crops=[], save_thumbnails=[]))
    try:
        store.save(vs[0], "p", "none")  # the writer thread, the camera and product rows: not timed
        t = time.perf_counter()
        for v in vs:
            store.submit(v, "p", "none")
        if not store.flush(120):
            raise RuntimeError("the writer did not finish")
        ours = n / (time.perf_counter() - t)
        one_by_one = vs[: max(1, n // 10)]
        t = time.perf_counter()
        for v in one_by_one:
            store.save(v, "p", "none")
        single = len(one_by_one) / (time.perf_counter() - t)
        now = datetime_utc()
        t = time.perf_counter()
        with store.engine.begin() as c:
            ids = c.execute(insert(Inspection).returning(Inspection.id, sort_by_parameter_order=True), [
                {"uid": f"bare-{i}", "camera_id": "cam", "product": "p", "seq": v.frame.seq, "source_name": "",
                 "width": 8, "height": 8, "captured_at": now, "reasoner_mode": "none"}
                for i, v in enumerate(vs)]).scalars().all()
            c.execute(insert(VerdictRow), [{"inspection_id": i, "kind": v.kind.value, "why": v.why,
                                            "explanation": v.explanation, "decided_at": now}
                                           for i, v in zip(ids, vs)])
        bare = n / (time.perf_counter() - t)
    finally:
        store.close()
    return ours, single, bare


def datetime_utc():
    return datetime.now(timezone.utc).replace(tzinfo=None)


DEFECTS = ["scratch", "crack", "stain", "hole", "chip"]


def with_pictures(d: Path, n: int) -> dict[str, float]:
    """Verdicts/s through the writer with the default pictures (frame, thumbnail and crop of every
    fail and review: 1 in 5 here, 640x480 frames), synchronous normal against full (every commit,
    picture and folder fsynced: what surviving a power cut costs), in the same run (median of 3 each)."""
    from inspector.config import CropperConfig, StoreConfig
    from inspector.cropper import make_crops
    from inspector.store import Store

    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    vs = _verdicts(n, image)
    crops = [tuple(make_crops(image, list(v.candidates), CropperConfig())) for v in vs]
    rates: dict[str, list[float]] = {"normal": [], "full": []}
    for round_ in range(3):  # alternating, so that both see the same disk weather; medians
        for mode in rates:
            sub = d / f"pictures-{mode}-{round_}"
            store = Store(f"sqlite:///{sub / 'inspector.db'}", sub, StoreConfig(synchronous=mode))
            try:
                store.save(vs[0], "p", "none")
                t = time.perf_counter()
                for v, c in zip(vs, crops):
                    store.submit(v, "p", "none", crops=c)
                if not store.flush(300):
                    raise RuntimeError("the writer did not finish")
                rates[mode].append(n / (time.perf_counter() - t))
            finally:
                store.close()
    return {mode: statistics.median(r) for mode, r in rates.items()}


def big_database(d: Path, n: int, days: float = 30.0) -> datetime:
    """`d/big.db` with n inspections spread over the `days` before now, as a line leaves them: 4
    cameras, 2 products, 1 in 10 fail with a VLM finding and answer, 1 in 10 review, one review by an
    operator in 50 fails. Loaded with plain SQL; the rollups are then built as migration 0006 does.
    Returns now (naive UTC)."""
    import sqlite3

    from inspector.store import Store

    path = d / "big.db"
    Store(f"sqlite:///{path}", d).close()  # the real schema, at head
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")  # loading only
    now = datetime_utc().replace(microsecond=0)
    start = now - timedelta(days=days)
    step_s = days * 86400 / n
    con.executemany("INSERT INTO products (name, description, defect_types, updated_at) VALUES (?, '', ?, ?)",
                    [(p, json.dumps(DEFECTS), str(now)) for p in ("housing", "lid")])
    con.executemany("INSERT INTO cameras (id, product, source, updated_at) VALUES (?, ?, '', ?)",
                    [(f"cam{k}", "housing" if k < 2 else "lid", str(now)) for k in range(4)])
    kinds = ["pass"] * 8 + ["fail", "review"]
    batch = 50_000
    for lo in range(1, n + 1, batch):
        ids = range(lo, min(n, lo + batch - 1) + 1)
        at = {i: str(start + timedelta(seconds=i * step_s)) for i in ids}
        con.executemany(
            "INSERT INTO inspections (id, uid, camera_id, product, seq, source_name, captured_at, width, height, "
            "reasoner_mode) VALUES (?, ?, ?, ?, ?, '', ?, 1280, 1024, 'vlm')",
            ((i, f"bench:{i}", f"cam{i % 4}", "housing" if i % 4 < 2 else "lid", i, at[i]) for i in ids))
        con.executemany(
            "INSERT INTO verdicts (inspection_id, kind, why, explanation, decided_at) VALUES (?, ?, ?, 'bench', ?)",
            ((i, kinds[i % 10], {"pass": "detector_only", "fail": "vlm_agreed", "review": "vlm_uncertain"}
              [kinds[i % 10]], at[i]) for i in ids))
        flagged = [i for i in ids if i % 10 >= 8]
        con.executemany(
            "INSERT INTO candidates (inspection_id, idx, score, label, model_id, x1, y1, x2, y2) "
            "VALUES (?, 0, 0.8, 'anomaly', 'bench', 100, 100, 160, 150)", ((i,) for i in flagged))
        con.executemany(
            "INSERT INTO vlm_answers (inspection_id, crop_index, answer, raw, rejected, error, model_id, latency_ms, "
            "look, thinking, late) VALUES (?, 0, ?, '{}', '[]', '', 'bench-vlm', ?, 0, '', 0)",
            ((i, "defect" if i % 10 == 8 else "uncertain", 800 + (i * 37) % 900) for i in flagged))
        con.executemany(
            "INSERT INTO findings (inspection_id, crop_index, defect_type, severity, confidence, reason, model_id, "
            "look, late, x1, y1, x2, y2) VALUES (?, 0, ?, 'major', 0.9, 'bench', 'bench-vlm', 0, 0, 105, 105, 150, "
            "145)", ((i, DEFECTS[(i // 10) % 5]) for i in ids if i % 10 == 8))
        con.executemany(
            "INSERT INTO reviews (inspection_id, reviewer, reviewed_at, from_verdict, to_verdict, note) "
            "VALUES (?, 'anna', ?, 'fail', ?, '')",
            ((i, at[i], "fail" if i % 100 else "pass") for i in ids if i % 500 == 8))
        con.commit()
    con.execute("ANALYZE")
    con.close()
    from inspector.store.rollup import rebuild_sqlite

    rebuild_sqlite(path)  # the counters the writer would have kept, as migration 0006 makes them
    return now


def p50_p95(ts: list[float]) -> dict:
    ts = sorted(ts)
    return {"p50_ms": round(statistics.median(ts), 2), "p95_ms": round(ts[min(len(ts) - 1, int(0.95 * len(ts)))], 2)}


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
            out[name] = p50_p95(ts)
    finally:
        store.close()
    return out


def main(writes_n: int = 5000, inspections: int = 1_000_000, rounds: int = 40, as_json: bool = False) -> int:
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        ours, single, bare = writes(d, writes_n)
        pics = with_pictures(d, max(50, writes_n // 10))
        t = time.perf_counter()
        big_database(d, inspections)
        load_s = time.perf_counter() - t
        r = reads(d, rounds)
    res = {"bench": "store", "writes": writes_n, "writer_per_s": round(ours), "save_one_by_one_per_s": round(single),
           "bare_insert_per_s": round(bare),
           "ratio": round(ours / bare, 3), "with_pictures": max(50, writes_n // 10),
           "pictures_normal_per_s": round(pics["normal"]), "pictures_full_per_s": round(pics["full"]),
           "full_over_normal": round(pics["full"] / pics["normal"], 3),
           "inspections": inspections, "load_s": round(load_s, 1), "reads": r}
    print(f"store bench: SQLite (WAL, synchronous=NORMAL), {writes_n} verdicts written, "
          f"{inspections:,} inspections for the reads")
    print(f"  the writer (batched transactions)         {ours:9.0f} verdicts/s  (bar >= 5,000)")
    print(f"  bare Core insert, one transaction for all {bare:9.0f} verdicts/s  writer/bare {ours / bare:.3f}")
    print(f"  Store.save, waiting for each commit       {single:9.0f} verdicts/s  (a commit per verdict)")
    print(f"  with pictures (1 in 5 verdicts), {res['with_pictures']} verdicts: synchronous=normal "
          f"{pics['normal']:.0f}/s, full {pics['full']:.0f}/s, full/normal {pics['full'] / pics['normal']:.3f}")
    for name, v in r.items():
        print(f"  {name:28s} p50 {v['p50_ms']:7.2f} ms  p95 {v['p95_ms']:7.2f} ms  (bar p95 < 50)")
    if as_json:
        print(json.dumps(res))
    return 0
