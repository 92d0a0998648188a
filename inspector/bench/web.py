"""`inspector bench web`: the dashboard's server time on a big database.

The database of `bench store` (N inspections, default 1,000,000, over the last 30 days). The app
answers over its ASGI interface in process (no socket), authenticated with an API token; each case is timed by the app's own Server-Timing (the
server time: login check, handler, database, rendering), `rounds` times after a warm-up, and
compared with the bare store query the route wraps, timed the same way in the same run (the
ratio is the cost of the web layer).
The bar: feed and stats p95 < 100 ms server time on 1,000,000 inspections (printed as OVER, and
`over_bar` in the JSON; the exit code is 0 either way).
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from inspector.bench.store import big_database, p50_p95
from inspector.service.heap import freeze_startup_heap, full_pass_ms

BAR_MS = 100.0  # server p95 of a feed or stats request on 1,000,000 inspections


def main(inspections: int = 1_000_000, rounds: int = 30, as_json: bool = False) -> int:
    from fastapi.testclient import TestClient

    from inspector.line.status import LineStatus
    from inspector.store import Store
    from inspector.store import stats as stats_mod
    from inspector.web import create_app
    from inspector.web.accounts import Accounts

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        t = time.perf_counter()
        now = big_database(d, inspections)
        load_s = time.perf_counter() - t
        store = Store(f"sqlite:///{d / 'big.db'}", d)
        status = LineStatus(reasoner_mode="vlm", reasoner_model="bench-vlm", detector_model="bench",
                            store=store.status())
        token = Accounts(store.engine).add_token("bench", "viewer")
        day, month = now - timedelta(hours=24), now - timedelta(days=30)
        cases = [  # (name, url, the bare store call it wraps)
            ("feed page (HTML)", "/", lambda: (store.feed(limit=50), store.counts(), store.catalogue())),
            ("feed API, first page", "/api/verdicts", lambda: store.feed(limit=50)),
            ("feed API, fails of one camera", "/api/verdicts?verdict=fail&camera=cam2",
             lambda: store.feed(limit=50, kind="fail", camera="cam2")),
            ("feed API, an older page (mid-table)", f"/api/verdicts?before_id={inspections // 2}",
             lambda: store.feed(limit=50, before_id=inspections // 2)),
            ("feed API, defect type, one day", f"/api/verdicts?defect_type=crack&since={day.isoformat()}",
             lambda: store.feed(limit=50, defect_type="crack", since=day)),
            ("stats API, last 24 h", "/api/stats", lambda: stats_mod.compute(store.engine, day, now)),
            ("stats page (HTML), last 24 h", "/stats", lambda: stats_mod.compute(store.engine, day, now)),
            ("stats API, one camera, 7 days", f"/api/stats?camera=cam1&since={(now - timedelta(days=7)).isoformat()}",
             lambda: stats_mod.compute(store.engine, now - timedelta(days=7), now, "cam1")),
            ("stats API, 30 days (all rows)", f"/api/stats?since={month.isoformat()}",
             lambda: stats_mod.compute(store.engine, month, now)),
        ]
        rows = []
        with TestClient(create_app(store, lambda: status)) as c:
            c.headers["Authorization"] = f"Bearer {token}"
            c.get("/api/stats")
            gc_before = full_pass_ms()
            freeze_startup_heap()  # as `inspector run` does once it has started
            gc_after = full_pass_ms()
            for name, url, bare in cases:
                r = c.get(url)
                if r.status_code != 200:
                    raise RuntimeError(f"{url}: HTTP {r.status_code} {r.text[:200]}")
                bare()
                server, wall, base = [], [], []
                for _ in range(rounds):
                    t = time.perf_counter()
                    r = c.get(url)
                    wall.append((time.perf_counter() - t) * 1000)
                    server.append(float(r.headers["server-timing"].split("dur=")[1]))
                    t = time.perf_counter()
                    bare()
                    base.append((time.perf_counter() - t) * 1000)
                s, b = p50_p95(server), p50_p95(base)
                rows.append({"case": name, "url": url, "server": s, "client": p50_p95(wall), "bare_store": b,
                             "ratio_p50": round(s["p50_ms"] / max(b["p50_ms"], 1e-6), 2),
                             "over_bar": s["p95_ms"] >= BAR_MS})
        store.close()
    print(f"web bench: SQLite, {inspections:,} inspections over 30 days (loaded in {load_s:.0f} s), "
          f"{rounds} rounds per case, server time from Server-Timing")
    ratio = gc_before / gc_after if gc_after >= 0.1 else None
    print(f"  one full garbage-collector pass: {gc_before:.1f} ms with the start-up heap, {gc_after:.1f} ms once it "
          f"is frozen ({f'{ratio:.0f}x' if ratio else 'over 100x'}; a pass comes every few requests)")
    print(f"  {'case':34s} {'server p50':>10s} {'p95':>8s}   {'bare store p50':>14s} {'p95':>8s}  server/bare")
    for r in rows:
        s, b = r["server"], r["bare_store"]
        flag = "  OVER the 100 ms bar" if r["over_bar"] else ""
        print(f"  {r['case']:34s} {s['p50_ms']:8.1f} ms {s['p95_ms']:6.1f} ms   {b['p50_ms']:12.1f} ms "
              f"{b['p95_ms']:6.1f} ms  {r['ratio_p50']:5.2f}x{flag}")
    if as_json:
        print(json.dumps({"bench": "web", "inspections": inspections, "rounds": rounds, "bar_ms": BAR_MS,
                          "cases": rows,
                          "gc_full_pass_ms": {"startup_heap": round(gc_before, 2), "frozen": round(gc_after, 2)}}))
    # The bar is reported, not enforced by the exit code: a shared machine's speed varies 2-3x
    # between minutes, and a bench that fails on a busy minute says nothing about the code.
    return 0
