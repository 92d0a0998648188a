"""Dashboard and API against the real app and a real SQLite file filled by a real pipeline run."""

import re

import pytest
from fastapi.testclient import TestClient

from inspector.config import parse_config
from inspector.pipeline import Pipeline
from inspector.web import create_app
from tests.conftest import authorize, judged_demo_line


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    pipe = judged_demo_line(tmp_path_factory.mktemp("web"), 8)
    with TestClient(create_app(pipe.store, pipe.status)) as c:
        authorize(c, pipe.store)
        yield c
    pipe.stop()


def test_feed_page_lists_verdicts_and_says_no_vlm(client):
    r = client.get("/")
    assert r.status_code == 200
    assert "No VLM configured" in r.text
    ids = re.findall(r'data-id="(\d+)"', r.text)
    assert len(ids) == 8 and ids == sorted(ids, key=int, reverse=True)
    assert 'src="/static/feed.js"' in r.text and "http" not in re.sub(r"http://127|https?://www.w3.org", "", r.text)


def test_api_feed_filters_and_pages(client):
    rows = client.get("/api/verdicts").json()
    assert len(rows) == 8
    fails = client.get("/api/verdicts", params={"verdict": "fail"}).json()
    assert fails and all(r["verdict"] == "fail" for r in fails)
    newest = rows[0]["id"]
    assert client.get("/api/verdicts", params={"after_id": newest}).json() == []
    page = client.get("/api/verdicts", params={"limit": 3, "before_id": rows[2]["id"]}).json()
    assert [r["id"] for r in page] == [r["id"] for r in rows[3:6]]


def test_detail_page_draws_the_boxes_on_the_frame(client):
    fail = client.get("/api/verdicts", params={"verdict": "fail"}).json()[0]
    d = client.get(f"/api/inspections/{fail['id']}").json()
    assert d["candidates"]
    page = client.get(f"/inspections/{fail['id']}").text
    rects = re.findall(r'<rect class="box-det( weak)?" x="([\d.]+)" y="([\d.]+)"', page)
    assert len(rects) == len(d["candidates"])
    assert float(rects[0][1]) == pytest.approx(d["candidates"][0]["box"][0])
    # Regions under the threshold (boxed because the part was flagged elsewhere) look weaker.
    assert [bool(weak) for weak, _, _ in rects] == [c["score"] < 0.5 for c in d["candidates"]]
    assert f'viewBox="0 0 {d["width"]} {d["height"]}"' in page
    img = client.get(f"/inspections/{fail['id']}/frame.jpg")
    assert img.status_code == 200 and img.content[:3] == b"\xff\xd8\xff"
    thumb = client.get(f"/inspections/{fail['id']}/frame.jpg", params={"w": 160})
    assert thumb.status_code == 200 and len(thumb.content) < len(img.content)


def test_pass_frames_are_not_kept(client):
    passed = client.get("/api/verdicts", params={"verdict": "pass"}).json()
    assert passed
    assert client.get(f"/inspections/{passed[0]['id']}/frame.jpg").status_code == 404
    assert "not kept" in client.get(f"/inspections/{passed[0]['id']}").text


def test_status_reports_mode_and_counts(client):
    s = client.get("/api/status").json()
    assert s["reasoner_mode"] == "none" and s["counts"]["total"] == 8
    assert s["cameras"][0]["frames_in"] == 8


@pytest.mark.parametrize("url, code", [
    ("/api/verdicts?limit=0", 422), ("/api/verdicts?limit=abc", 422),
    ("/api/verdicts?verdict=maybe", 422), ("/api/inspections/999999", 404),
    ("/api/inspections/abc", 422), ("/inspections/999999", 404),
    ("/inspections/1/frame.jpg?w=99999", 422), ("/static/../../config.py", 404),
    ("/inspections/..%2F..%2Fetc%2Fpasswd/frame.jpg", 404),
])
def test_malformed_requests_are_4xx_not_500(client, url, code):
    assert client.get(url).status_code == code


def test_the_picture_alert_shows_on_the_dashboard_and_in_metrics(tmp_path):
    """The disk guard trips (more free space asked for than the disk has): the banner is on the
    page, /api/status carries it for feed.js, /metrics has the gauge; verdicts keep coming."""
    pipe = judged_demo_line(tmp_path, 6, store={"retention": {"min_free_mb": 1e12}})
    try:
        with TestClient(create_app(pipe.store, pipe.status)) as c:
            authorize(c, pipe.store)
            page = c.get("/").text
            banner = re.search(r'<div class="banner banner-warn" id="disk-banner" role="alert"( hidden)?>([^<]*)<',
                               page)
            assert banner and banner.group(1) is None
            assert "Pictures are not being saved: disk nearly full" in banner.group(2)
            st = c.get("/api/status").json()
            assert st["store"]["images_paused"] is True and st["counts"]["total"] == 6
            assert re.search(r"^inspector_store_images_paused 1\.0$", c.get("/metrics").text, re.M)
            assert not list(tmp_path.rglob("*.jpg"))
    finally:
        pipe.stop()


def test_no_picture_alert_when_there_is_room(client):
    page = client.get("/").text
    assert re.search(r'id="disk-banner" role="alert" hidden>', page)
    assert re.search(r"^inspector_store_images_paused 0\.0$", client.get("/metrics").text, re.M)


def test_feed_filters_and_pages_on_the_page_and_the_api(client):
    fails = client.get("/api/verdicts", params={"verdict": "fail"}).json()
    page = client.get("/", params={"verdict": "fail"}).text
    assert re.findall(r'data-id="(\d+)"', page) == [str(r["id"]) for r in fails]
    assert '<option value="fail" selected>' in page and 'data-filter="verdict=fail"' in page
    assert client.get("/api/verdicts", params={"camera": "nope"}).json() == []
    assert "Nothing matches these filters" in client.get("/", params={"camera": "nope"}).text
    assert client.get("/api/verdicts", params={"since": "2999-01-01T00:00"}).json() == []
    assert len(client.get("/api/verdicts", params={"until": "2999-01-01T00:00:00Z"}).json()) == 8
    older = client.get("/", params={"before_id": 4}).text
    assert re.findall(r'data-id="(\d+)"', older) == ["3", "2", "1"] and 'data-live="no"' in older
    assert client.get("/api/verdicts", params={"since": "yesterday"}).status_code == 422
    assert client.get("/api/catalogue").json()["cameras"] == ["cam1"]


def test_the_event_stream_sends_new_verdicts_and_status(tmp_path):
    """A line running behind the app: the stream delivers each new verdict once, in order, and the
    status with the counts, as server-sent events."""
    import json
    import threading

    cfg = parse_config({"data_dir": str(tmp_path),
                        "cameras": [{"id": "cam1", "source": {"type": "demo", "parts": 6, "seed": 5,
                                                              "fps": 4.0, "loop": False}}]})
    pipe = Pipeline(cfg)
    try:
        with TestClient(create_app(pipe.store, pipe.status)) as c:
            authorize(c, pipe.store)
            got, statuses = [], []
            done = threading.Event()

            def read():
                with c.stream("GET", "/api/events", params={"after_id": 0}) as r:
                    assert r.headers["content-type"].startswith("text/event-stream")
                    event = None
                    for line in r.iter_lines():
                        if line.startswith("event: "):
                            event = line[7:]
                        elif line.startswith("data: "):
                            (got if event == "verdict" else statuses).append(json.loads(line[6:]))
                            if len(got) >= 6:
                                done.set()
                                return
            t = threading.Thread(target=read, daemon=True)
            t.start()
            pipe.start()
            assert done.wait(60), f"only {len(got)} verdicts came"
            assert [r["seq"] for r in got] == [1, 2, 3, 4, 5, 6]  # each once, oldest first
            assert statuses and "counts" in statuses[-1] and statuses[-1]["cameras"][0]["id"] == "cam1"
    finally:
        pipe.stop()


def test_health_says_what_is_wrong(client, tmp_path):
    h = client.get("/api/health").json()
    assert h["ok"] is True and h["problems"] == []
    assert h["database"]["reachable"] and h["database"]["schema_ok"] and h["database"]["size_bytes"] > 0
    assert h["database"]["disk"]["free_bytes"] > 0 and h["cameras"][0]["id"] == "cam1"
    assert set(h["queues"]) == {"frames", "vlm_queue", "vlm_spool", "vlm_backlog", "writer_queue"}
    page = client.get("/health").text
    assert 'id="overall" class="ok">All systems working' in page


def test_health_names_a_paused_disk(tmp_path):
    pipe = judged_demo_line(tmp_path, 2, store={"retention": {"min_free_mb": 1e12}})
    try:
        with TestClient(create_app(pipe.store, pipe.status)) as c:
            authorize(c, pipe.store, "viewer")
            h = c.get("/api/health").json()
            assert h["ok"] is False and len(h["problems"]) == 1
            assert h["problems"][0].startswith("pictures paused: disk nearly full")
            page = c.get("/health").text
            assert 'class="bad">1 problem(s)' in page and "pictures paused: disk nearly full" in page
    finally:
        pipe.stop()


def test_metrics_count_candidates_vlm_calls_and_disk(tmp_path):
    pipe = judged_demo_line(tmp_path, 8, reasoner={"type": "llama_cpp", "test_model": True})
    try:
        with TestClient(create_app(pipe.store, pipe.status)) as c:
            authorize(c, pipe.store, "viewer")
            text = c.get("/metrics").text
        val = lambda name: float(re.search(rf"^{name} ([0-9.e+]+)$", text, re.M).group(1))  # noqa: E731
        st = pipe.status()
        assert val("inspector_candidates_total") == st["candidates"] > 0
        assert val("inspector_vlm_calls_total") == st["reasoner"]["calls"] >= st["vlm_crops"] > 0
        assert val("inspector_vlm_call_seconds_count") == st["reasoner"]["calls"]
        assert 0 < val("inspector_vlm_call_seconds_sum") < 60 * st["reasoner"]["calls"]
        assert val("inspector_vlm_call_errors_total") == 0
        assert val("inspector_disk_free_bytes") > 0 and val("inspector_store_verdicts_committed_total") == 8
    finally:
        pipe.stop()


def test_stats_page_and_api(client):
    s = client.get("/api/stats").json()
    assert s["total"] == 8 and s["fail"] == len(client.get("/api/verdicts", params={"verdict": "fail"}).json())
    assert sum(h["total"] for h in s["per_hour"]) == 8 and s["per_camera_product"][0]["camera"] == "cam1"
    page = client.get("/stats").text
    assert page.count("<rect") >= sum(1 for h in s["per_hour"] if h["total"]) > 0 and 'aria-label="verdicts per hour"' in page
    assert '<span id="s-total">8</span>' in page
    assert client.get("/api/stats", params={"since": "2030-01-01T00:00", "until": "2029-01-01T00:00"}).status_code == 422
    assert client.get("/api/stats", params={"since": "2999-01-01T00:00", "until": "2999-01-02T00:00"}).json()["total"] == 0


def test_pages_show_times_on_the_plant_clock_and_read_the_forms_in_it(tmp_path):
    """Operators read the plant's clock: the feed, review queue and detail show capture and review
    times in the configured zone, and the feed's From/To fields are read in it (the JSON API keeps
    UTC)."""
    from datetime import datetime, timedelta

    from inspector.config import StoreConfig
    from inspector.messages import VerdictKind
    from inspector.store import Store
    from inspector.store.stats import PlantTime
    from tests.test_store import NO_PICTURES, _stats_rows

    store = Store(f"sqlite:///{tmp_path / 'line.db'}", tmp_path / "data", StoreConfig(**NO_PICTURES))
    F, P, R = VerdictKind.fail, VerdictKind.passed, VerdictKind.review
    ids = _stats_rows(store, [("2026-11-20T07:10:05", P, "detector_only", ()),  # 12:40:05 in Kolkata
                              ("2026-11-20T07:50:30", F, "detector_only", ()),  # 13:20:30
                              ("2026-11-20T08:00:10", R, "detector_only", ())])  # 13:30:10
    store.add_review(ids[1], "anna", "pass")
    status = {"reasoner_mode": "none", "reasoner_model": None, "detector_model": "t", "cameras": [],
              "verdicts": {}, "store": store.status()}
    with TestClient(create_app(store, lambda: status, plant=PlantTime("Asia/Kolkata"))) as c:
        authorize(c, store)
        feed = c.get("/").text
        assert "Time (Asia/Kolkata)" in feed and 'data-tz="Asia/Kolkata"' in feed
        assert ">13:20:30</td>" in feed and ">12:40:05</td>" in feed and "07:50:30" not in feed
        # 13:00 on the plant's clock is 07:30 UTC: only the later part.
        later = c.get("/", params={"since": "2026-11-20T13:00"}).text
        assert re.findall(r'data-id="(\d+)"', later) == [str(ids[2]), str(ids[1])]
        assert 'name="since" value="2026-11-20T13:00"' in later
        # The same naive time on the JSON API is UTC: both parts lie after 07:00 UTC.
        assert len(c.get("/api/verdicts", params={"since": "2026-11-20T07:00"}).json()) == 3
        assert len(c.get("/api/verdicts", params={"since": "2026-11-20T13:00"}).json()) == 0
        detail = c.get(f"/inspections/{ids[1]}").text
        assert "Captured (Asia/Kolkata)" in detail and "2026-11-20 13:20:30.000" in detail
        reviewed = datetime.fromisoformat(store.inspection(ids[1])["reviews"][0]["reviewed_at"])
        assert (reviewed + timedelta(hours=5, minutes=30)).strftime("%Y-%m-%d %H:%M:%S") in detail  # +05:30
        queue = c.get("/review").text
        assert "Time (Asia/Kolkata)" in queue and ">13:30:10</td>" in queue
    store.close()
