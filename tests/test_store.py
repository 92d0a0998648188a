"""The verdict store on SQLite and on a real PostgreSQL server: the batched writer (idempotent by
uid), cameras and products, pictures, the disk guard and retention."""

from __future__ import annotations

import errno
import sqlite3
import time

import numpy as np
import pytest
from sqlalchemy import func, select, text

from inspector.config import CameraConfig, Config, ProductConfig, RetentionConfig, StoreConfig
from inspector.messages import Candidate, Frame, Verdict, VerdictKind
from inspector.store import Store
from inspector.store import images as images_mod
from inspector.store import models as m
from inspector.store.store import StoreError

DAY = 86400.0
NO_PICTURES = dict(save_frames=[], save_thumbnails=[], save_crops=[])


def _verdict(seq: int, kind=VerdictKind.passed, camera="cam", age_days: float = 0.0, size=(64, 48)) -> Verdict:
    rng = np.random.default_rng(seq)
    img = rng.integers(0, 255, (size[1], size[0], 3), np.uint8)  # noise: JPEGs of a known, non-trivial size
    frame = Frame(camera, seq, img, captured_wall=time.time() - age_days * DAY)
    cands = (Candidate((1.0, 2.0, 30.0, 20.0), 0.8, "defect", "test"),) if kind is not VerdictKind.passed else ()
    return Verdict(frame, kind, "detector_only", "test", cands, ())


def _count(store, model) -> int:
    with store.engine.connect() as c:
        return c.scalar(select(func.count()).select_from(model))


@pytest.fixture
def make_store(db_url, tmp_path):
    made = []

    def make(**kw) -> Store:
        retention = kw.pop("retention", {})
        s = Store(db_url, tmp_path / "data", StoreConfig(**{**kw, "retention": RetentionConfig(**retention)}))
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


# --- the writer -----------------------------------------------------------------------------------

def test_the_writer_batches_and_records_each_uid_once(make_store):
    store = make_store(batch_wait_ms=30, **NO_PICTURES)
    got: dict[str, list[int]] = {}
    uids = [f"run1:cam:{i}" for i in range(300)]
    for i, uid in enumerate(uids):
        store.submit(_verdict(i), "p", "none", uid=uid, on_commit=lambda iid, u=uid: got.setdefault(u, []).append(iid))
        if i in (10, 200):  # the same verdict re-sent, within a batch and after it
            store.submit(_verdict(i), "p", "none", uid=uid, on_commit=lambda iid, u=uid: got.setdefault(u, []).append(iid))
    assert store.flush(60)
    store.submit(_verdict(5), "p", "none", uid=uids[5], on_commit=lambda iid: got[uids[5]].append(iid))
    assert store.flush(60)
    assert _count(store, m.Inspection) == 300 == _count(store, m.Verdict)
    assert all(len(set(ids)) == 1 for ids in got.values())  # a re-send is told the first one's id
    assert [len(got[uids[i]]) for i in (5, 10, 200, 7)] == [2, 2, 2, 1]
    st = store.status()
    assert st["writer_committed"] == 300 and st["writer_duplicates"] == 3
    assert st["writer_batches"] < 100  # many verdicts per transaction
    with store.engine.connect() as c:
        assert c.scalar(select(func.count()).select_from(m.CandidateRow)) == 0
        assert set(c.scalars(select(m.Inspection.uid))) == set(uids)


def test_cameras_and_products_come_from_the_config(make_store):
    store = make_store(**NO_PICTURES)
    cfg = Config(cameras=[CameraConfig(id="left", product="bracket",
                                       source={"type": "rtsp", "url": "rtsp://op:secret@10.0.0.5/s"})],
                 products=[ProductConfig(name="bracket", defects={"scratch": "a line", "dent": "a dent"})])
    store.sync_config(cfg)
    store.save(_verdict(1, camera="left"), "bracket", "none")
    store.save(_verdict(2, camera="stray"), "other", "none")  # never configured: gets a bare row
    with store.engine.connect() as c:
        cams = {r.id: r for r in c.execute(select(m.Camera))}
        prods = {r.name: r for r in c.execute(select(m.Product))}
    assert cams["left"].product == "bracket" and cams["left"].source == "rtsp: rtsp://op:***@10.0.0.5/s"
    assert prods["bracket"].defect_types == ["dent", "scratch"]
    assert set(cams) == {"left", "stray"} and set(prods) == {"bracket", "other"}


def test_a_verdict_the_database_refuses_does_not_hold_back_the_others(make_store):
    store = make_store(batch_wait_ms=50, **NO_PICTURES)
    committed = []
    store.submit(_verdict(1), "p", "none", uid="a", on_commit=committed.append)
    # a model version that does not exist: the foreign key refuses the row
    store.submit(_verdict(2), "p", "none", uid="bad", versions={"detector": 99999}, on_commit=committed.append)
    store.submit(_verdict(3), "p", "none", uid="c", on_commit=committed.append)
    assert store.flush(60)
    assert len(committed) == 2 and _count(store, m.Inspection) == 2
    st = store.status()
    assert st["writer_failed"] == 1 and st["writer_last_refused"].startswith("bad: IntegrityError")
    with pytest.raises(StoreError, match="refused by the database"):
        store.save(_verdict(4), "p", "none", versions={"vlm": 99999})


def test_reads_never_block_the_writer(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'line.db'}", tmp_path, StoreConfig(**NO_PICTURES))
    try:
        store.save(_verdict(0), "p", "none")
        reader = sqlite3.connect(tmp_path / "line.db")
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM inspections").fetchone()[0] == 1  # a snapshot is held
        t = time.monotonic()
        for i in range(1, 51):
            store.save(_verdict(i), "p", "none", timeout=10)
        assert time.monotonic() - t < 10  # the writer did not wait for the reader (busy_timeout is 30 s)
        assert reader.execute("SELECT count(*) FROM inspections").fetchone()[0] == 1  # still its snapshot
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM inspections").fetchone()[0] == 51
        reader.close()
        with store.engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert c.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL, as documented
            assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        store.close()
    full = Store(f"sqlite:///{tmp_path / 'line.db'}", tmp_path, StoreConfig(synchronous="full"))
    with full.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    full.close()


def test_the_writer_waits_out_a_lost_database_connection(postgres_server, tmp_path):
    store = Store(postgres_server.new_database(), tmp_path, StoreConfig(**NO_PICTURES))
    store.save(_verdict(0), "p", "none")
    with store.engine.connect() as c:  # the DBA (or a failover) cuts every other session
        c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        c.commit()
    try:
        ids = [store.save(_verdict(i), "p", "none", timeout=30) for i in range(1, 20)]
        assert len(set(ids)) == 19 and _count(store, m.Inspection) == 20
    finally:
        store.close()


# --- pictures, the disk guard, retention ------------------------------------------------------------

def test_pictures_are_kept_per_verdict_kind(make_store, tmp_path):
    store = make_store(save_frames=["fail"], save_thumbnails=["pass", "fail"], save_crops=[], thumbnail_px=32)
    p = store.save(_verdict(1, VerdictKind.passed), "p", "none")
    f = store.save(_verdict(2, VerdictKind.fail), "p", "none")
    r = store.save(_verdict(3, VerdictKind.review), "p", "none")
    with store.engine.connect() as c:
        kinds = {(i, k) for i, k in c.execute(select(m.Image.inspection_id, m.Image.kind))}
    assert kinds == {(p, "thumb"), (f, "thumb"), (f, "frame")}
    assert store.frame_file(f).is_file() and store.frame_file(p) is None and store.frame_file(r) is None
    thumb = store.image_file(p, "thumb")
    assert thumb.relative_to(tmp_path / "data").parts[0] == "thumbs"
    import cv2
    assert max(cv2.imread(str(thumb)).shape[:2]) == 32
    assert store.status()["images_bytes"] == sum(x.stat().st_size for x in (tmp_path / "data").rglob("*.jpg"))


def test_the_disk_guard_stops_pictures_keeps_verdicts_and_resumes(make_store, tmp_path):
    store = make_store(retention={"min_free_mb": 1e12})  # more free space than any disk has
    ids = [store.save(_verdict(i, VerdictKind.fail), "p", "none") for i in range(3)]
    st = store.status()
    assert len(set(ids)) == 3 and _count(store, m.Image) == 0  # verdicts yes, pictures no
    assert st["images_paused"] and "disk nearly full" in st["images_paused_reason"]
    assert st["images_skipped"] == 3 * 2  # the frame and the thumbnail of each
    assert not list((tmp_path / "data").rglob("*.jpg"))
    store.images.min_free_bytes = 0  # space came back
    store.images.recheck()
    store.save(_verdict(9, VerdictKind.fail), "p", "none")
    assert not store.status()["images_paused"] and _count(store, m.Image) == 2


def test_a_disk_full_error_pauses_pictures_instead_of_losing_the_verdict(make_store, monkeypatch):
    store = make_store()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(images_mod, "open", full, raising=False)  # the one fault a test cannot make for real
    iid = store.save(_verdict(1, VerdictKind.fail), "p", "none")
    st = store.status()
    assert iid and st["images_paused"] and "disk full writing frames/" in st["images_paused_reason"]
    assert _count(store, m.Image) == 0 and store.inspection(iid)["verdict"] == "fail"
    monkeypatch.undo()
    store.images.recheck()  # the guard looks again (at most once a second on its own)
    store.save(_verdict(2, VerdictKind.fail), "p", "none")
    assert not store.status()["images_paused"] and _count(store, m.Image) == 2


def _picture_ids(store) -> dict[int, int]:
    with store.engine.connect() as c:
        return dict(c.execute(select(m.Image.inspection_id, func.count()).group_by(m.Image.inspection_id)).all())


def test_retention_by_age_keeps_unreviewed_fails_for_their_minimum(make_store, tmp_path):
    store = make_store(save_frames=["pass", "fail", "review"], save_thumbnails=[], save_crops=[],
                       retention={"max_age_days": 30, "keep_unreviewed_fail_days": 60})
    old_pass = store.save(_verdict(1, VerdictKind.passed, age_days=40), "p", "none")
    old_review = store.save(_verdict(2, VerdictKind.review, age_days=40), "p", "none")
    old_fail_reviewed = store.save(_verdict(3, VerdictKind.fail, age_days=40), "p", "none")
    store.add_review(old_fail_reviewed, "anna", "fail", "confirmed")
    old_fail = store.save(_verdict(4, VerdictKind.fail, age_days=40), "p", "none")
    ancient_fail = store.save(_verdict(5, VerdictKind.fail, age_days=70), "p", "none")
    young_pass = store.save(_verdict(6, VerdictKind.passed, age_days=1), "p", "none")
    files_before = {i: store.frame_file(i) for i in _picture_ids(store)}
    out = store.retention.run_once()
    assert out["by_age"] == 4 and out["by_budget"] == 0
    assert set(_picture_ids(store)) == {old_fail, young_pass}
    for i in (old_pass, old_review, old_fail_reviewed, ancient_fail):
        assert not files_before[i].exists()
    assert _count(store, m.Inspection) == 6 == _count(store, m.Verdict)  # verdicts are never deleted
    assert store.inspection(old_pass)["has_frame"] is False


def test_the_budget_takes_passes_first_and_never_young_unreviewed_fails(make_store):
    store = make_store(save_frames=["pass", "fail", "review"], save_thumbnails=[], save_crops=[],
                       retention={"max_age_days": None, "keep_unreviewed_fail_days": 7, "min_free_mb": 0})
    size = (160, 120)
    passes = [store.save(_verdict(i, VerdictKind.passed, age_days=5 - i * 0.1, size=size), "p", "none")
              for i in range(6)]
    reviews = [store.save(_verdict(10 + i, VerdictKind.review, age_days=6, size=size), "p", "none")
               for i in range(3)]
    fails = [store.save(_verdict(20 + i, VerdictKind.fail, age_days=2, size=size), "p", "none") for i in range(3)]
    per = store.status()["images_bytes"] / 12
    store.images.budget_bytes = int(per * 9.5)  # room for 9: three pictures must go, all of them passes
    store.retention.run_once()
    left = set(_picture_ids(store))
    assert set(reviews) | set(fails) <= left and len(set(passes) - left) >= 3
    assert set(passes) - left <= set(passes[:5])  # the oldest passes went
    store.images.budget_bytes = int(per * 2)  # only room for 2: all but the young unreviewed fails go
    store.retention.run_once()
    assert set(_picture_ids(store)) == set(fails)
    store.images.recheck()
    assert not store.images.writable()  # still over: new pictures wait, the fails are kept
    store.save(_verdict(99, VerdictKind.fail), "p", "none")
    assert store.status()["images_paused"] and set(_picture_ids(store)) == set(fails)


def test_the_feed_filters_by_camera_product_verdict_defect_and_time(make_store):
    from datetime import datetime, timedelta, timezone

    from inspector.messages import CropAnswer, CropReport, Finding, Severity

    store = make_store(**NO_PICTURES)

    def with_finding(seq, camera, defect, age_days):
        v = _verdict(seq, VerdictKind.fail, camera=camera, age_days=age_days)
        f = Finding(defect, Severity("major"), 0.9, (1, 2, 3, 4), "r", 0, "vlm@1")
        return Verdict(v.frame, v.kind, "vlm_agreed", "x", v.candidates,
                       (CropReport(0, CropAnswer.defect, (f,), (), "{}", "vlm@1", 10.0),))
    a = store.save(with_finding(1, "left", "scratch", 3), "bracket", "vlm")
    b = store.save(with_finding(2, "right", "dent", 1), "bracket", "vlm")
    c = store.save(_verdict(3, VerdictKind.passed, camera="left"), "tile", "vlm")
    ids = lambda **kw: [r["id"] for r in store.feed(**kw)]  # noqa: E731
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    assert ids() == [c, b, a]
    assert ids(camera="left") == [c, a] and ids(product="bracket") == [b, a] and ids(kind="pass") == [c]
    assert ids(defect_type="dent") == [b] and ids(defect_type="chip") == []
    assert ids(since=now - timedelta(days=2)) == [c, b] and ids(until=now - timedelta(days=2)) == [a]
    assert ids(limit=1, before_id=c) == [b] and ids(after_id=a) == [c, b]
    cat = store.catalogue()
    assert cat["cameras"] == ["left", "right"] and cat["products"] == ["bracket", "tile"]


def test_stats_by_hour_shift_pareto_agreement_and_latency(make_store):
    from datetime import datetime, timezone

    from inspector.messages import CropAnswer, CropReport, Finding, Severity
    from inspector.store import stats

    store = make_store(**NO_PICTURES)

    def at(text):
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()

    def verdict(seq, when, kind, why="detector_only", defects=(), latency=100.0, camera="cam"):
        v = _verdict(seq, kind, camera=camera)
        frame = Frame(camera, seq, v.frame.image, captured_wall=at(when))
        reps = ()
        if defects or why.startswith("vlm"):
            fs = tuple(Finding(d, Severity("major"), 0.9, (1, 2, 3, 4), "r", 0, "vlm@1") for d in defects)
            answer = CropAnswer.unavailable if why == "vlm_unavailable" else CropAnswer.defect if fs else CropAnswer.ok
            reps = (CropReport(0, answer, fs, (), "{}", "vlm@1", latency),)
        return Verdict(frame, kind, why, "x", v.candidates, reps)

    F, P, R = VerdictKind.fail, VerdictKind.passed, VerdictKind.review
    rows = [  # (when UTC, kind, why, defect types, VLM latency)
        ("2026-11-20T07:10", P, "detector_only", (), 0), ("2026-11-20T07:20", P, "vlm_overruled", (), 300.0),
        ("2026-11-20T07:50", F, "vlm_agreed", ("scratch", "dent"), 100.0),
        ("2026-11-20T23:30", F, "vlm_agreed", ("scratch",), 200.0),
        ("2026-11-21T03:10", R, "vlm_unavailable", (), 0),
    ]
    ids = [store.save(verdict(i, w, k, why, d, lat), "tile", "vlm") for i, (w, k, why, d, lat) in enumerate(rows)]
    store.add_review(ids[2], "anna", "pass")  # an operator overrules one fail ...
    store.add_review(ids[2], "anna", "fail")  # ... then changes her mind: the latest counts (kept)
    store.add_review(ids[3], "ben", "pass")  # and overrules another
    s = stats.compute(store.engine, datetime(2026, 11, 20), datetime(2026, 11, 21, 12))
    assert s["total"] == 5 and s["fail"] == 2 and s["review"] == 1 and s["defect_rate"] == 0.4
    assert len(s["per_hour"]) == 36 and sum(h["total"] for h in s["per_hour"]) == 5  # every hour, empty ones too
    assert [(h["hour"], h["pass"], h["fail"], h["review"]) for h in s["per_hour"] if h["total"]] == [
        ("2026-11-20 07:00", 2, 1, 0), ("2026-11-20 23:00", 0, 1, 0), ("2026-11-21 03:00", 0, 0, 1)]
    assert [(r["day"], r["shift"], r["total"], r["fail"]) for r in s["per_shift"]] == [
        ("2026-11-20", "early", 3, 1), ("2026-11-20", "night", 2, 1)]  # 03:10 belongs to the night of the 20th
    assert s["pareto"] == [{"defect_type": "scratch", "parts": 2, "cumulative": 0.6667},
                           {"defect_type": "dent", "parts": 1, "cumulative": 1.0}]
    assert s["vlm_vs_detector"] == {"agreed": 2, "overruled": 1, "agreement": 0.6667}
    assert s["operators_vs_machine"] == {"reviewed": 2, "kept": 1, "agreement": 0.5}
    assert s["vlm_latency_ms"]["n"] == 3 and s["vlm_latency_ms"]["p50"] == 200.0
    assert s["throughput_per_hour"] == round(5 / 36, 2)
    assert stats.compute(store.engine, datetime(2026, 11, 20, 8), datetime(2026, 11, 21))["total"] == 1
    assert stats.compute(store.engine, datetime(2026, 11, 20), datetime(2026, 11, 22), camera="nope")["total"] == 0


def _stats_rows(store, rows):
    """Save (when UTC, kind, why, defect types) verdicts of camera 'cam', product 'tile'."""
    from datetime import datetime, timezone

    from inspector.messages import CropAnswer, CropReport, Finding, Severity

    ids = []
    for i, (when, kind, why, defects) in enumerate(rows):
        v = _verdict(i, kind)
        t = datetime.fromisoformat(when).replace(tzinfo=timezone.utc).timestamp()
        fs = tuple(Finding(d, Severity("major"), 0.9, (1, 2, 3, 4), "r", 0, "vlm@1") for d in defects)
        reps = (CropReport(0, CropAnswer.defect, fs, (), "{}", "vlm@1", 50.0),) if fs else ()
        ids.append(store.save(Verdict(Frame("cam", i, v.frame.image, captured_wall=t), kind, why, "x",
                                      v.candidates, reps), "tile", "vlm"))
    return ids


def test_stats_windows_off_the_quarter_hour_are_exact_and_rollups_match_the_rows(make_store):
    from datetime import datetime

    from sqlalchemy import select

    from inspector.messages import CropAnswer, CropReport, Finding, Severity
    from inspector.store import models as m
    from inspector.store import rollup, stats

    store = make_store(**NO_PICTURES)
    F, P = VerdictKind.fail, VerdictKind.passed
    ids = _stats_rows(store, [("2026-11-20T07:10", P, "detector_only", ()),
                              ("2026-11-20T07:20", P, "vlm_overruled", ()),
                              ("2026-11-20T07:50", F, "vlm_agreed", ("scratch", "dent", "scratch")),
                              ("2026-11-20T08:05", F, "vlm_agreed", ("scratch",))])
    store.add_review(ids[1], "anna", "fail")  # overruled
    store.add_review(ids[2], "anna", "pass")  # overruled, then ...
    store.add_review(ids[2], "ben", "fail")  # ... kept after all: the latest review counts, once
    # 07:16-07:55 cuts the 07:15 and 07:45 buckets: the rows in them decide, not the buckets.
    s = stats.compute(store.engine, datetime(2026, 11, 20, 7, 16), datetime(2026, 11, 20, 7, 55))
    assert (s["total"], s["fail"]) == (2, 1)
    assert [(p["defect_type"], p["parts"]) for p in s["pareto"]] == [("dent", 1), ("scratch", 1)]
    assert s["vlm_vs_detector"]["overruled"] == 1
    assert s["operators_vs_machine"] == {"reviewed": 2, "kept": 1, "agreement": 0.5}
    s = stats.compute(store.engine, datetime(2026, 11, 20, 7, 0), datetime(2026, 11, 20, 8, 30))
    assert (s["total"], s["fail"]) == (4, 2) and s["pareto"][0] == {"defect_type": "scratch", "parts": 2,
                                                                     "cumulative": 0.6667}
    assert s["operators_vs_machine"] == {"reviewed": 2, "kept": 1, "agreement": 0.5}  # from the counters
    s = stats.compute(store.engine, datetime(2026, 11, 20, 7, 30), datetime(2026, 11, 20, 8, 30))
    assert s["operators_vs_machine"]["reviewed"] == 1  # the 07:20 part lies outside
    # A late VLM answer (from the backlog) with a new defect type counts once in the Pareto.
    late = Finding("crack", Severity("minor"), 0.8, (1, 2, 3, 4), "r", 0, "vlm@1")
    store.add_late_report(ids[3], CropReport(0, CropAnswer.defect, (late, late), (), "{}", "vlm@1", 9.0), "late")
    store.add_late_report(ids[3], CropReport(0, CropAnswer.defect, (late,), (), "{}", "vlm@1", 9.0), "late")
    s = stats.compute(store.engine, datetime(2026, 11, 20, 7, 0), datetime(2026, 11, 20, 8, 30))
    assert ("crack", 1) in [(p["defect_type"], p["parts"]) for p in s["pareto"]]

    def counters():
        with store.engine.connect() as c:
            return (sorted(c.execute(select(m.VerdictRollup.__table__)).all()),
                    sorted(c.execute(select(m.DefectRollup.__table__)).all()),
                    sorted(r for r in c.execute(select(m.ReviewRollup.__table__)) if r.n))
    kept = counters()
    with store.engine.begin() as c:
        rollup.rebuild(c)
    assert counters() == kept and len(kept[0]) == 4  # what the writer kept is what the rows say
    assert [(r.machine, r.operator, r.n) for r in kept[2]] == [("pass", "fail", 1), ("fail", "fail", 1)]


def test_stats_in_the_plant_time_zone_with_its_shifts(make_store):
    from datetime import datetime

    from inspector.store import stats

    store = make_store(**NO_PICTURES)
    F, P = VerdictKind.fail, VerdictKind.passed
    _stats_rows(store, [("2026-11-20T07:10", P, "detector_only", ()),  # 12:40 in Kolkata (+05:30)
                        ("2026-11-20T07:20", P, "detector_only", ()),  # 12:50
                        ("2026-11-20T07:50", F, "detector_only", ()),  # 13:20
                        ("2026-11-20T23:30", F, "detector_only", ()),  # 05:00 on the 21st: the night of the 20th
                        ("2026-11-21T03:10", P, "detector_only", ())])  # 08:40 on the 21st
    plant = stats.PlantTime("Asia/Kolkata", (("A", 6 * 60 + 30), ("B", 14 * 60 + 30), ("C", 22 * 60 + 30)))
    s = stats.compute(store.engine, datetime(2026, 11, 20, 0, 30), datetime(2026, 11, 21, 6, 30), plant=plant)
    assert [(h["hour"], h["utc"], h["total"]) for h in s["per_hour"] if h["total"]] == [
        ("2026-11-20 12:00", "2026-11-20T06:30:00Z", 2), ("2026-11-20 13:00", "2026-11-20T07:30:00Z", 1),
        ("2026-11-21 05:00", "2026-11-20T23:30:00Z", 1), ("2026-11-21 08:00", "2026-11-21T02:30:00Z", 1)]
    assert len(s["per_hour"]) == 30 and s["timezone"] == "Asia/Kolkata"
    assert [(r["day"], r["shift"], r["total"], r["fail"]) for r in s["per_shift"]] == [
        ("2026-11-20", "A", 3, 1), ("2026-11-20", "C", 1, 1), ("2026-11-21", "A", 1, 0)]
    assert s["shifts"] == [{"name": "A", "start": "06:30"}, {"name": "B", "start": "14:30"},
                           {"name": "C", "start": "22:30"}]


def test_stats_hours_stay_true_across_a_daylight_saving_change(make_store):
    from datetime import datetime

    from inspector.store import stats

    store = make_store(**NO_PICTURES)
    P = VerdictKind.passed
    # Berlin falls back at 01:00 UTC on 2026-10-25: 02:30 happens twice, once in CEST, once in CET.
    _stats_rows(store, [("2026-10-25T00:30", P, "detector_only", ()), ("2026-10-25T01:30", P, "detector_only", ())])
    plant = stats.PlantTime("Europe/Berlin")
    s = stats.compute(store.engine, datetime(2026, 10, 24, 22), datetime(2026, 10, 25, 23), plant=plant)
    assert len(s["per_hour"]) == 25  # the local day had 25 hours
    busy = [(h["hour"], h["utc"]) for h in s["per_hour"] if h["total"]]
    assert busy == [("2026-10-25 02:00", "2026-10-25T00:00:00Z"), ("2026-10-25 02:00", "2026-10-25T01:00:00Z")]
    assert [(r["day"], r["shift"], r["total"]) for r in s["per_shift"]] == [("2026-10-24", "night", 2)]
