"""Dashboard and API against the real app and a real SQLite file filled by a real pipeline run."""

import re

import pytest
from fastapi.testclient import TestClient

from inspector.config import parse_config
from inspector.line.pipeline import Pipeline
from inspector.line.status import LineStatus
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
        assert val("inspector_candidates_total") == st.candidates > 0
        assert val("inspector_vlm_calls_total") == st.reasoner.calls >= st.vlm_crops > 0
        assert val("inspector_vlm_call_seconds_count") == st.reasoner.calls
        assert val("inspector_vlm_call_errors_total") == 0
        assert val("inspector_vlm_zoom_rounds_total") == st.reasoner.zoom_rounds == 0  # zoom is off by default
        assert val("inspector_vlm_zoom_errors_total") == 0
        # Not a speed bar: a call past reasoner.timeout_s is aborted and counted as an error, and
        # there are none, so each call took less than the timeout however busy the machine is.
        assert 0 < val("inspector_vlm_call_seconds_sum") < pipe.cfg.reasoner.timeout_s * st.reasoner.calls
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
    status = LineStatus(detector_model="t", store=store.status())
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


def _berlin_app(tmp_path):
    from inspector.config import StoreConfig
    from inspector.store import Store
    from inspector.store.stats import PlantTime

    store = Store(f"sqlite:///{tmp_path / 'line.db'}", tmp_path / "data", StoreConfig())
    status = LineStatus(detector_model="t", store=store.status())
    return store, create_app(store, lambda: status, plant=PlantTime("Europe/Berlin"))


def test_a_stats_window_is_at_most_a_year(tmp_path):
    """Ten thousand years took 11 s of the line's CPU (21 s in Berlin): a window is at most 366
    days, and one that long is answered."""
    store, app = _berlin_app(tmp_path)
    try:
        with TestClient(app) as c:
            authorize(c, store, "viewer")
            r = c.get("/api/stats", params={"since": "2025-01-01T00:00:00", "until": "2026-01-03T00:00:00"})
            assert r.status_code == 422 and r.json()["detail"] == ("a stats window is at most 366 days, this one "
                                                                   "is 367: ask for a shorter one")
            assert c.get("/stats", params={"since": "2025-01-01T00:00", "until": "2026-01-03T00:00"}).status_code == 422
            r = c.get("/api/stats", params={"since": "2024-01-01T00:00:00", "until": "2025-01-01T00:00:00"})
            assert r.status_code == 200 and r.json()["total"] == 0  # 2024 had 366 days
            r = c.get("/api/stats", params={"since": "0001-01-02T00:00:00", "until": "9999-12-30T00:00:00"})
            assert r.status_code == 422 and "out of range" in r.text
    finally:
        store.close()


@pytest.mark.parametrize("url", [
    "/api/verdicts?since=0001-01-01T00:00:00%2B05:00", "/api/verdicts?until=9999-12-31T23:59:59-05:00",
    "/api/stats?until=0001-01-01T00:00:00", "/api/stats?since=9999-12-31T23:00:00",
    "/?since=0001-01-01T00:00", "/?until=9999-12-31T23:59", "/stats?since=0001-01-01T00:00",
    "/api/events?since=0001-01-01T00:00:00%2B05:00",
])
def test_times_at_the_edges_of_the_calendar_are_422_with_the_range(tmp_path, url):
    """A time whose UTC (or plant) equivalent falls outside what a datetime holds was a 500; the
    Berlin dashboard's zone-less form times too."""
    store, app = _berlin_app(tmp_path)
    try:
        with TestClient(app) as c:
            authorize(c, store, "viewer")
            r = c.get(url)
            assert r.status_code == 422, r.text
            assert "out of range: times lie between 1970-01-01 and 9998-12-31" in r.text
    finally:
        store.close()


@pytest.mark.parametrize("value", ["abc", "9" * 40, "-1", "1e3"])
def test_a_bad_last_event_id_is_422(client, value):
    # As a stream: a header that got through would start an endless one (-1 did).
    with client.stream("GET", "/api/events", headers={"Last-Event-ID": value}) as r:
        assert r.status_code == 422 and "Last-Event-ID" in r.read().decode()


def test_a_reconnecting_stream_resumes_after_its_last_event_id(client):
    ids = [r["id"] for r in client.get("/api/verdicts").json()]
    got = []
    with client.stream("GET", "/api/events", headers={"Last-Event-ID": str(ids[3])}) as r:
        for line in r.iter_lines():
            if line.startswith("id: "):
                got.append(int(line[4:]))
                if len(got) == 3:
                    break
    assert got == sorted(ids[:3])  # the three newer than the one it saw, oldest first


def test_security_headers_on_pages_api_and_streams(client):
    """CSP, no framing, no sniffing; nothing signed-in is kept by a cache (pictures only in the
    browser's own)."""
    fail = client.get("/api/verdicts", params={"verdict": "fail"}).json()[0]["id"]
    for url in ("/", "/api/verdicts", f"/inspections/{fail}", "/stats", "/api/stats", "/metrics",
                "/api/inspections/999999", "/openapi.json"):
        h = client.get(url).headers
        assert "frame-ancestors 'none'" in h["content-security-policy"] and "script-src" not in h[
            "content-security-policy"] and "default-src 'self'" in h["content-security-policy"], url
        assert (h["x-frame-options"], h["x-content-type-options"], h["cache-control"]) == ("DENY", "nosniff", "no-store"), url
    assert client.get(f"/inspections/{fail}/frame.jpg").headers["cache-control"] == "private, max-age=86400"
    with client.stream("GET", "/api/events") as r:
        assert r.headers["cache-control"] == "no-store" and r.headers["x-frame-options"] == "DENY"
    static = client.get("/static/style.css").headers
    assert "no-store" not in static.get("cache-control", "") and static["x-content-type-options"] == "nosniff"


def test_no_page_uses_inline_script_or_style(client):
    """The CSP allows neither, so the pages must not need them."""
    fail = client.get("/api/verdicts", params={"verdict": "fail"}).json()[0]["id"]
    for url in ("/", f"/inspections/{fail}", "/stats", "/review", "/health", "/live", "/docs"):
        page = client.get(url).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), url
        assert not re.search(r"\sstyle=|<style|\son[a-z]+=", page), url


def test_the_docs_are_served_from_this_box(client):
    """/docs is Swagger UI from files this box serves (a plant network is offline; a CDN script
    is outside the CSP), started by a script file; /redoc would need a CDN, so there is none."""
    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    for a in assets:
        r = client.get(a)
        assert r.status_code == 200 and len(r.content) > 100, a
    assert "SwaggerUIBundle" in client.get("/static/docs/swagger-ui-bundle.js").text
    assert client.get("/redoc").status_code == 404


def test_heavy_requests_wait_their_turn_and_workers_are_bounded(tmp_path, monkeypatch):
    """The dashboard shares the line's process: three stats requests at once run one after the
    other (past HEAVY_WAITING waiting, a 503), and twenty feed requests at once use at most
    WEB_THREADS threads - all are answered.
    The queries are made slow (a big database) by a wrapper that counts how many run at once."""
    import asyncio
    import threading
    import time

    import httpx
    import uvicorn

    from inspector.reasoner.local_server import free_port
    from inspector.store import stats as stats_mod
    from inspector.util.threaded_server import start_in_thread
    from inspector.web.accounts import Accounts
    from inspector.web import load as web_load
    from inspector.web.load import WEB_THREADS

    def counting(fn, seconds):
        state = {"now": 0, "most": 0}
        lock = threading.Lock()

        def run(*a, **kw):
            with lock:
                state["now"] += 1
                state["most"] = max(state["most"], state["now"])
            try:
                time.sleep(seconds)
                return fn(*a, **kw)
            finally:
                with lock:
                    state["now"] -= 1
        return run, state

    store, app = _berlin_app(tmp_path)
    stats_compute, stats_seen = counting(stats_mod.compute, 1.0)
    monkeypatch.setattr(stats_mod, "compute", stats_compute)
    feed, feed_seen = counting(store.feed, 0.3)
    monkeypatch.setattr(store, "feed", feed)
    port = free_port()
    server = start_in_thread(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"), "web-test")
    assert server is not None
    token = f"Bearer {Accounts(store.engine).add_token('grafana', 'viewer')}"

    async def many(path: str, n: int) -> list[int]:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                     headers={"Authorization": token}) as c:
            return [r.status_code for r in await asyncio.gather(*(c.get(path) for _ in range(n)))]
    try:
        assert asyncio.run(many("/api/stats", 3)) == [200] * 3
        assert stats_seen["most"] == 1
        monkeypatch.setattr(web_load, "HEAVY_WAITING", 2)  # one runs, two wait, the rest are told to come back
        assert sorted(asyncio.run(many("/api/stats", 5))) == [200, 200, 200, 503, 503]
        assert asyncio.run(many("/api/verdicts", 20)) == [200] * 20
        assert 1 < feed_seen["most"] <= WEB_THREADS
    finally:
        server.should_exit = True
        store.close()


def test_a_nul_in_a_text_filter_is_a_422_on_every_database(db_url, tmp_path):
    """PostgreSQL refuses NUL in a query's text (a 500 there); SQLite would take it. Either way
    the filter is refused by name."""
    from inspector.config import StoreConfig
    from inspector.store import Store

    store = Store(db_url, tmp_path / "data", StoreConfig())
    status = LineStatus(detector_model="t", store=store.status())
    try:
        with TestClient(create_app(store, lambda: status)) as c:
            authorize(c, store, "viewer")
            for url, name in [("/api/verdicts?camera=a%00b", "camera"), ("/api/verdicts?product=%00", "product"),
                              ("/api/verdicts?defect_type=x%00", "defect_type"), ("/?camera=%00", "camera"),
                              ("/api/stats?product=%00", "product"), ("/api/events?camera=%00", "camera")]:
                r = c.get(url)
                assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", name], (url, r.text)
                assert "must not contain NUL characters" in r.text
            assert c.get("/api/verdicts?camera=cam%C3%A9").json() == []  # other text is fine
    finally:
        store.close()


def test_a_locked_database_holds_up_the_request_that_needs_it_not_the_server(tmp_path):
    """The login gate reads the session or token (and notes a token's use) in the database: while
    another process holds the write lock, that request waits - in a worker thread, so /healthz
    (the watchdog's probe) and every other request still get answers."""
    import sqlite3
    import threading

    import httpx
    import uvicorn

    from inspector.config import StoreConfig
    from inspector.reasoner.local_server import free_port
    from inspector.store import Store
    from inspector.util.threaded_server import start_in_thread
    from inspector.web.accounts import Accounts

    db = tmp_path / "line.db"
    store = Store(f"sqlite:///{db}", tmp_path / "data", StoreConfig(busy_timeout_s=20))
    status = LineStatus(detector_model="t", store=store.status())
    token = Accounts(store.engine).add_token("plc", "viewer")  # never used: its first use is a write
    port = free_port()
    server = start_in_thread(uvicorn.Config(create_app(store, lambda: status), host="127.0.0.1", port=port,
                                            log_level="warning"), "web-test")
    base = f"http://127.0.0.1:{port}"
    other = sqlite3.connect(db, isolation_level=None)
    answered = {}
    try:
        other.execute("BEGIN EXCLUSIVE")  # another process writing

        def ask():
            answered["me"] = httpx.get(base + "/api/me", headers={"Authorization": f"Bearer {token}"},
                                       timeout=60).status_code
        t = threading.Thread(target=ask, daemon=True)
        t.start()
        t.join(1.0)
        assert t.is_alive()  # it waits for the lock
        assert httpx.get(base + "/healthz", timeout=10).status_code == 200
        assert t.is_alive() and "me" not in answered  # answered while that request still waited
        other.execute("ROLLBACK")
        t.join(30)
        assert answered["me"] == 200
    finally:
        other.close()
        server.should_exit = True
        store.close()
