"""The operator dashboard and its JSON API (FastAPI + Jinja2, no external assets)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlencode

import anyio
import cv2
from anyio.lowlevel import RunVar
from fastapi import Depends, FastAPI, Form, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from pydantic import AfterValidator, BaseModel, Field

from inspector import __version__
from inspector.capture.live_view import LiveView
from inspector.store import Store
from inspector.store.stats import PlantTime
from inspector.line.line_link import LineUnavailable, RemoteLive
from inspector.web.accounts import AccountError, Accounts, Principal, RateLimited
from inspector.web.security import COOKIE, LoginGate, SecurityHeaders, need, safe_next

HERE = Path(__file__).resolve().parent
MODE_BANNERS = {
    "none": ("info", "No VLM configured: verdicts come from the ONNX detector alone. "
                     "Every flagged part fails; nothing has been double-checked by a VLM."),
    "test_model": ("warn", "TEST MODEL: the VLM is a tiny random-weight model generated for testing. "
                           "Its words mean nothing; its verdicts are noise."),
    "vlm": ("", ""),
    "plant": ("info", "Plant-wide dashboard: the verdicts of every box from the shared database. Live "
                      "pictures, triggers and each line's health are on each box's own dashboard."),
}


def vlm_down_text(st: dict) -> str:
    """The operator's one-line warning while the VLM circuit is open ('' when it is fine).
    feed.js builds the same line from /api/status to keep it live."""
    r = st.get("reasoner") or {}
    b = r.get("breaker") or {}
    if b.get("state", "closed") == "closed":
        return ""
    return (f"VLM unavailable: parts that need it go to review. Last error: {b.get('last_error', '')}. "
            f"{st.get('vlm_backlog', 0)} crop(s) kept to ask again when it is back.")


def line_down_text(st: dict) -> str:
    """The alert while the line behind a separate dashboard is not running ('' while it runs).
    status.js mirrors it."""
    line = st.get("line") or {}
    if line.get("up", True):
        return ""
    return (f"The line is not running ({line.get('error')}). Nothing is being inspected; "
            f"the verdicts shown are history.")


def disk_text(st: dict) -> str:
    """The alert while pictures are not being saved ('' when they are). feed.js mirrors it."""
    s = st.get("store") or {}
    if not s.get("images_paused"):
        return ""
    return (f"Pictures are not being saved: {s.get('images_paused_reason')}. Verdicts are still recorded; "
            f"{s.get('images_skipped', 0)} picture(s) skipped so far. Free disk space or raise the budget.")


# The times a query may name: none before the Unix epoch (no camera captured then) and none in
# the calendar's last year, so that a zone's offset, the stats' default day before `until` and
# their hour axis never step outside what a datetime can hold (a 500 otherwise).
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(9999, 1, 1, tzinfo=timezone.utc)


def _in_calendar(t: datetime) -> datetime:
    try:
        utc = t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ValueError(f"{t.isoformat()} is out of range: times lie between 1970-01-01 and 9998-12-31")
    return t


When = Annotated[datetime | None, AfterValidator(lambda t: t if t is None else _in_calendar(t))]


def _no_nul(v: str | None) -> str | None:
    if v is not None and "\x00" in v:  # PostgreSQL refuses it in a query (a 500)
        raise ValueError("must not contain NUL characters")
    return v


Camera = Annotated[str | None, Query(max_length=64), AfterValidator(_no_nul)]
Product = Annotated[str | None, Query(max_length=128), AfterValidator(_no_nul)]
DefectType = Annotated[str | None, Query(max_length=64), AfterValidator(_no_nul)]


@dataclass
class FeedFilter:
    """The feed's filters, the same for the page, the JSON API and the live event stream."""

    verdict: Literal["pass", "fail", "review"] | None = None
    camera: str | None = None
    product: str | None = None
    defect_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def store_args(self) -> dict:
        return {"kind": self.verdict, "camera": self.camera, "product": self.product,
                "defect_type": self.defect_type, "since": _naive_utc(self.since), "until": _naive_utc(self.until)}

    def query(self, **extra) -> str:
        d = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in {**asdict(self), **extra}.items()}
        return urlencode({k: v for k, v in d.items() if v not in (None, "")})


def feed_filter(verdict: Literal["pass", "fail", "review", ""] | None = None, camera: Camera = None,
                product: Product = None, defect_type: DefectType = None, since: When = None,
                until: When = None) -> FeedFilter:
    return FeedFilter(verdict or None, camera or None, product or None, defect_type or None, since, until)


def _naive_utc(t: datetime | None) -> datetime | None:
    return t.astimezone(timezone.utc).replace(tzinfo=None) if t is not None and t.tzinfo else t


class ReviewIn(BaseModel):
    verdict: Literal["pass", "fail", "review"]
    note: str = Field("", max_length=2000)
    defect_type: str | None = Field(None, min_length=1, max_length=64)


MJPEG_BOUNDARY = "frame"
# Ids are 32-bit in PostgreSQL's integer and 64-bit in SQLite; a bigger number in a URL is a 422
# here, not an overflow error in the database driver.
MAX_ID = 2**31 - 1
InspectionId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="an inspection's id")]


def shared_for(seconds: float, fn: Callable[[], dict]) -> Callable[[], dict]:
    """fn's answer, computed at most once per `seconds` however many callers ask."""
    lock, cache = threading.Lock(), {"at": -1e9, "value": None}

    def get() -> dict:
        with lock:
            if time.monotonic() - cache["at"] >= seconds:
                cache["value"], cache["at"] = fn(), time.monotonic()
            return cache["value"]
    return get


# The dashboard shares the line's process (and its GIL): however many requests come, at most
# WEB_THREADS of them run Python at once, and of those at most HEAVY_AT_ONCE are the heavy ones
# (stats over a long window); HEAVY_WAITING more wait their turn, beyond that they get a 503.
WEB_THREADS, HEAVY_AT_ONCE, HEAVY_WAITING = 8, 1, 16
class _Heavy:
    """One per event loop: the limiter, and the requests let in (running or waiting) - counted
    here, on the loop, because the limiter's own count lags the requests that are on their way."""

    def __init__(self):
        self.limiter, self.admitted = anyio.CapacityLimiter(HEAVY_AT_ONCE), 0


_HEAVY: RunVar[_Heavy] = RunVar("inspector_heavy")


async def heavy(fn: Callable, *args):
    """fn(*args) in a worker thread, with at most HEAVY_AT_ONCE such calls at a time."""
    try:
        h = _HEAVY.get()
    except LookupError:
        h = _Heavy()
        _HEAVY.set(h)
    if h.admitted >= HEAVY_AT_ONCE + HEAVY_WAITING:
        raise HTTPException(503, "the stats are busy with other requests: try again in a few seconds",
                            headers={"Retry-After": "5"})
    h.admitted += 1
    try:
        return await anyio.to_thread.run_sync(fn, *args, limiter=h.limiter)
    finally:
        h.admitted -= 1


@asynccontextmanager
async def _bounded_threads(app):
    # FastAPI runs plain `def` routes in anyio's default pool (40 threads): fewer here.
    anyio.to_thread.current_default_thread_limiter().total_tokens = WEB_THREADS
    yield


def _docs_assets() -> Path:
    """Swagger UI's files, from the fastapi-offline package (no CDN: /docs works offline)."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


def create_app(store: Store, status: Callable[[], dict],
               trigger: Callable[[str], int] | None = None, *, live: LiveView | RemoteLive | None = None,
               plant: PlantTime | None = None, secure_cookies: bool = False) -> FastAPI:
    app = FastAPI(title="inspector", version=__version__, docs_url=None, redoc_url=None,
                  lifespan=_bounded_threads,
                  description="Verdicts of the visual inspection line. Log in at /login (browsers) or "
                              "send `Authorization: Bearer <token>` (`inspector tokens add`).")
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    # Before /static, which would answer for /static/docs too.
    app.mount("/static/docs", StaticFiles(directory=str(_docs_assets())), name="docs-assets")
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    accounts = Accounts(store.engine)
    app.add_middleware(LoginGate, accounts=accounts)

    @app.middleware("http")
    async def server_timing(request: Request, call_next):
        # The time spent in the app (login check, handler, database), as browsers' dev tools and
        # `inspector bench web` read it; a stream's is the time to its first byte.
        t = time.perf_counter()
        response = await call_next(request)
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - t) * 1000:.2f}"
        return response

    app.add_middleware(SecurityHeaders)  # last added, outermost: the gate's answers get them too

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, e: RequestValidationError):
        # FastAPI's own 422, with each bad input echoed, in JSON that escapes what UTF-8 cannot
        # carry: a lone surrogate in a review note made the error itself a 500.
        return Response(json.dumps({"detail": jsonable_encoder(e.errors())}, ensure_ascii=True),
                        status_code=422, media_type="application/json")

    @app.exception_handler(LineUnavailable)
    async def line_unavailable(request: Request, e: LineUnavailable):
        # A separate dashboard whose line is stopped: what only the line can answer is 503.
        return JSONResponse({"detail": f"the line is not running ({e})"}, status_code=503)
    viewer, operator = Depends(need("viewer")), Depends(need("operator"))
    # Every open page's event stream wants the counts each second; on a big database that is tens
    # of ms, so the streams share one answer per second instead of each running the query.
    counts = shared_for(1.0, store.counts)

    plant = plant or PlantTime()
    tz = plant.tz

    def plant_time(iso: str | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        """A stored time (ISO, UTC) as the plant's clock shows it: what the people at the line read."""
        if not iso:
            return ""
        t = datetime.fromisoformat(iso)
        return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).astimezone(tz).strftime(fmt)

    def plant_local(t: datetime | None) -> datetime | None:
        """A form's time without a zone is the plant's (the pages label their fields so); the JSON
        API's are UTC."""
        return t.replace(tzinfo=tz) if t is not None and t.tzinfo is None else t

    def form_value(t: datetime | None) -> str:
        return t.astimezone(tz).strftime("%Y-%m-%dT%H:%M") if t is not None else ""
    templates.env.filters["plant_time"] = plant_time

    def page(request: Request, name: str, **ctx):
        st = status()
        level, text = MODE_BANNERS.get(st["reasoner_mode"], ("", ""))
        return templates.TemplateResponse(request, name, {
            "status": st, "banner_level": level, "banner": text, "vlm_down": vlm_down_text(st),
            "line_down": line_down_text(st),
            "disk_alert": disk_text(st), "user": request.state.principal, "tz": plant.zone,
            "version": __version__, **ctx})

    # --- logging in -------------------------------------------------------------------------------

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request, next: str = "/"):
        return templates.TemplateResponse(request, "login.html", {"next": safe_next(next), "error": None,
                                                                  "version": __version__})

    @app.post("/login", response_class=HTMLResponse, include_in_schema=False)
    def login(request: Request, username: str = Form(..., max_length=64), password: str = Form(..., max_length=256),
              next: str = Form("/")):
        client = request.client.host if request.client else "?"
        try:
            token, _ = accounts.login(username, password, client)
        except RateLimited as e:
            return templates.TemplateResponse(request, "login.html", {
                "next": safe_next(next), "error": str(e), "version": __version__},
                status_code=429, headers={"Retry-After": str(e.retry_after)})
        except AccountError as e:
            return templates.TemplateResponse(request, "login.html", {
                "next": safe_next(next), "error": str(e), "version": __version__}, status_code=401)
        resp = RedirectResponse(safe_next(next), status_code=303)
        resp.set_cookie(COOKIE, token, httponly=True, samesite="lax", secure=secure_cookies,
                        max_age=int(accounts.session_hours * 3600), path="/")
        return resp

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, who: Principal = viewer):
        accounts.logout(request.cookies.get(COOKIE))
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    def password_form(request: Request, error: str | None = None, status_code: int = 200, headers=None):
        return templates.TemplateResponse(request, "password.html", {
            "error": error, "user": request.state.principal, "version": __version__},
            status_code=status_code, headers=headers)

    @app.get("/password", response_class=HTMLResponse, include_in_schema=False)
    def password_page(request: Request, who: Principal = viewer):
        if who.via != "session":
            raise HTTPException(403, "an API token has no password to change")
        return password_form(request)

    @app.post("/password", response_class=HTMLResponse, include_in_schema=False)
    def change_password(request: Request, current: str = Form(..., max_length=256),
                        new: str = Form(..., max_length=256), again: str = Form(..., max_length=256),
                        who: Principal = viewer):
        if who.via != "session":
            raise HTTPException(403, "an API token has no password to change")
        if new != again:
            return password_form(request, "the two new passwords differ", 422)
        client = request.client.host if request.client else "?"
        try:
            token, _ = accounts.change_password(who.name, current, new, client)
        except RateLimited as e:
            return password_form(request, str(e), 429, {"Retry-After": str(e.retry_after)})
        except AccountError as e:
            return password_form(request, str(e), 422)
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(COOKIE, token, httponly=True, samesite="lax", secure=secure_cookies,
                        max_age=int(accounts.session_hours * 3600), path="/")
        return resp

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs_page(request: Request):
        # Swagger UI from local files, started by a script file (the CSP allows no inline script).
        return templates.TemplateResponse(request, "docs.html", {"version": __version__})

    @app.get("/api/me")
    def me(who: Principal = viewer):
        """Who this request is (name, role, and how it authenticated)."""
        return {"name": who.name, "role": who.role, "via": who.via}

    @app.get("/", response_class=HTMLResponse)
    def feed_page(request: Request, f: FeedFilter = Depends(feed_filter), before_id: int | None = Query(None, ge=1, le=MAX_ID)):
        f = replace(f, since=plant_local(f.since), until=plant_local(f.until))
        rows = store.feed(limit=50, before_id=before_id, **f.store_args())
        older = f"/?{f.query(before_id=rows[-1]['id'])}" if len(rows) == 50 else None
        return page(request, "feed.html", rows=rows, counts=store.counts(), f=f, paged=before_id is not None,
                    older=older, filter_query=f.query(), catalogue=store.catalogue(),
                    local={"since": form_value(f.since), "until": form_value(f.until)})

    @app.get("/api/events")
    async def events(request: Request, f: FeedFilter = Depends(feed_filter), after_id: int = Query(0, ge=0, le=MAX_ID),
                     only: Literal["status"] | None = Query(None, description="status: no verdict events"),
                     last_event_id: int | None = Header(None, alias="Last-Event-ID", ge=0, le=MAX_ID,
                                                        description="sent by a reconnecting EventSource: "
                                                                    "resume after this id")):
        """Server-sent events: `verdict` (a feed row, oldest first, matching the filters) as they
        are stored, and `status` (counts, cameras, VLM and store state) every second. Browsers
        reconnect by themselves (EventSource), resuming after the last id they saw."""
        last = last_event_id or after_id
        if not last and only is None:
            newest = await run_in_threadpool(store.feed, limit=1)
            last = newest[0]["id"] if newest else 0

        async def stream():
            nonlocal last
            yield "retry: 2000\n\n"
            tick = 0
            while not await request.is_disconnected():
                if only is None:
                    rows = await run_in_threadpool(store.feed, limit=200, after_id=last, **f.store_args())
                    for r in reversed(rows):
                        last = max(last, r["id"])
                        yield f"id: {r['id']}\nevent: verdict\ndata: {json.dumps(r)}\n\n"
                if tick % 4 == 0:
                    st = {**status(), "counts": await run_in_threadpool(counts)}
                    yield f"event: status\ndata: {json.dumps(st, default=str)}\n\n"
                tick += 1
                await asyncio.sleep(0.25)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.get("/inspections/{inspection_id}", response_class=HTMLResponse)
    def detail_page(request: Request, inspection_id: InspectionId):
        d = store.inspection(inspection_id)
        if d is None:
            raise HTTPException(404, f"no inspection {inspection_id}")
        return page(request, "detail.html", d=d)

    @app.get("/api/verdicts")
    def api_verdicts(limit: int = Query(50, ge=1, le=500), after_id: int = Query(0, ge=0, le=MAX_ID),
                     before_id: int | None = Query(None, ge=1, le=MAX_ID), f: FeedFilter = Depends(feed_filter)):
        """The feed, newest first: filter by verdict, camera, product, defect type, capture time
        (ISO 8601; no zone = UTC); page with before_id (older) or after_id (newer)."""
        return store.feed(limit=limit, after_id=after_id, before_id=before_id, **f.store_args())

    def health() -> dict:
        st = status()
        db = store.health()
        problems = []
        if not (st.get("line") or {}).get("up", True):
            problems.append(line_down_text(st))
        for c in st["cameras"]:
            if c["state"] == "failed" or c.get("connection") == "reconnecting":
                problems.append(f"camera {c['id']}: {c.get('error') or c.get('last_error') or c['state']}")
        breaker = ((st.get("reasoner") or {}).get("breaker") or {})
        if breaker.get("state", "closed") != "closed":
            problems.append(f"VLM unavailable: {breaker.get('last_error', '')}")
        if not db["reachable"] or not db["schema_ok"]:
            problems.append(f"database: {db['error'] or 'schema ' + str(db['schema'])}")
        s = st.get("store") or {}
        if s.get("images_paused"):
            problems.append(f"pictures paused: {s.get('images_paused_reason')}")
        if s.get("writer_last_error"):
            problems.append(f"database writes failing: {s['writer_last_error']}")
        for e in st.get("events") or []:
            if e.get("last_error"):
                problems.append(f"events to {e['name']} failing for {e['failing_for_s']:.0f} s "
                                f"({e['pending']} waiting): {e['last_error']}")
        queues = {"frames": st.get("frame_queue"), "vlm_queue": st.get("vlm_queue"),
                  "vlm_spool": st.get("vlm_spool"), "vlm_backlog": st.get("vlm_backlog"),
                  "writer_queue": s.get("writer_queue")}
        return {"ok": not problems, "problems": problems, "cameras": st["cameras"],
                "reasoner": {"mode": st["reasoner_mode"], "model": st.get("reasoner_model"), **breaker},
                "queues": queues, "store": s, "database": db, "events": st.get("events") or []}

    @app.get("/health", response_class=HTMLResponse)
    def health_page(request: Request):
        return page(request, "health.html", h=health())

    @app.get("/api/health")
    def api_health():
        """Cameras, the VLM backend, queue depths, disk and database, with what is wrong now."""
        return health()

    def stats_for(since: datetime | None, until: datetime | None, camera: str | None, product: str | None) -> dict:
        from datetime import timedelta

        from inspector.store import stats as stats_mod

        now = datetime.now(timezone.utc).replace(tzinfo=None)
        until = _naive_utc(until) or now
        since = _naive_utc(since) or until - timedelta(hours=24)
        try:
            return stats_mod.compute(store.engine, since, until, camera or None, product or None, plant)
        except stats_mod.WindowError as e:
            raise HTTPException(422, str(e)) from None

    @app.get("/api/stats")
    async def api_stats(since: When = None, until: When = None, camera: Camera = None, product: Product = None):
        """Over a window (default: the last 24 h; at most 366 days; ISO 8601, no zone = UTC): defect
        rate per hour and per shift, Pareto of defect types, per camera and product, VLM agreement
        with the detector, operators' agreement with the machine, throughput and VLM latency."""
        return await heavy(stats_for, since, until, camera, product)

    @app.get("/stats", response_class=HTMLResponse)
    async def stats_page(request: Request, since: When = None, until: When = None, camera: Camera = None,
                         product: Product = None):
        from inspector.web import charts

        s = await heavy(stats_for, plant_local(since), plant_local(until), camera, product)
        local = {k: plant_time(s[k], "%Y-%m-%dT%H:%M") for k in ("since", "until")}
        return await run_in_threadpool(
            lambda: page(request, "stats.html", s=s, local=local, catalogue=store.catalogue(), camera=camera,
                         product=product, hourly_chart=charts.stacked_bars(s["per_hour"], "hour"),
                         pareto_chart=charts.pareto(s["pareto"])))

    @app.get("/api/catalogue")
    def api_catalogue():
        """Cameras, products and defect types, for the feed's filters."""
        return store.catalogue()

    @app.get("/api/inspections/{inspection_id}")
    def api_inspection(inspection_id: InspectionId):
        d = store.inspection(inspection_id)
        if d is None:
            raise HTTPException(404, f"no inspection {inspection_id}")
        return d

    @app.get("/api/status")
    def api_status():
        return {**status(), "counts": store.counts()}

    @app.get("/inspections/{inspection_id}/thumb.jpg")
    def thumb_image(inspection_id: InspectionId):
        path = store.image_file(inspection_id, "thumb")
        if path is None:
            raise HTTPException(404, "no thumbnail kept for this inspection")
        return Response(path.read_bytes(), media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})

    @app.get("/inspections/{inspection_id}/frame.jpg")
    def frame_image(inspection_id: InspectionId, w: int | None = Query(None, ge=16, le=4096)):
        path = store.frame_file(inspection_id)
        if path is None:
            raise HTTPException(404, "no frame kept for this inspection (pass frames are not saved)")
        if w is None:
            return Response(path.read_bytes(), media_type="image/jpeg",
                            headers={"Cache-Control": "max-age=86400"})
        img = cv2.imread(str(path))
        if img is None:
            raise HTTPException(500, "stored frame is unreadable")
        h = max(1, round(img.shape[0] * w / img.shape[1]))
        ok, buf = cv2.imencode(".jpg", cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA),
                               [cv2.IMWRITE_JPEG_QUALITY, 80])
        return Response(buf.tobytes(), media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})

    # --- reviews ----------------------------------------------------------------------------------

    def _review(inspection_id: int, who: Principal, r: ReviewIn) -> dict:
        try:
            return store.add_review(inspection_id, who.name, r.verdict, r.note, r.defect_type)
        except KeyError:
            raise HTTPException(404, f"no inspection {inspection_id}") from None
        except ValueError as e:
            raise HTTPException(422, str(e)) from None

    @app.post("/api/inspections/{inspection_id}/reviews", status_code=201)
    def api_review(inspection_id: InspectionId, body: ReviewIn, who: Principal = operator):
        """Confirm or override the verdict in force; recorded with the caller's name and the time.
        The machine verdict and earlier reviews are never changed."""
        return _review(inspection_id, who, body)

    @app.post("/inspections/{inspection_id}/review", include_in_schema=False)
    def form_review(inspection_id: InspectionId, verdict: Literal["pass", "fail", "review"] = Form(...),
                    note: str = Form("", max_length=2000), defect_type: str = Form("", max_length=64),
                    back: str = Form("", max_length=512), who: Principal = operator):
        _review(inspection_id, who, ReviewIn(verdict=verdict, note=note, defect_type=defect_type or None))
        return RedirectResponse(safe_next(back) if back else f"/inspections/{inspection_id}#reviews",
                                status_code=303)

    @app.get("/review", response_class=HTMLResponse)
    def review_page(request: Request):
        return page(request, "review.html", rows=store.review_queue(limit=100))

    @app.get("/api/review-queue")
    def api_review_queue(limit: int = Query(50, ge=1, le=500),
                         recent_fail_hours: float = Query(24.0, gt=0, le=24 * 90)):
        """Unreviewed `review` verdicts and recent fails, newest first."""
        return store.review_queue(limit=limit, recent_fail_hours=recent_fail_hours)

    @app.post("/api/cameras/{camera_id}/trigger", status_code=202)
    def camera_trigger(camera_id: str, who: Principal = operator):
        """Inspect this camera's next frame (for PLCs and scripts)."""
        if trigger is None:
            raise HTTPException(503, "no line is running behind this dashboard")
        try:
            pending = trigger(camera_id)
        except KeyError:
            known = [c["id"] for c in status()["cameras"]]
            raise HTTPException(404, f"no camera {camera_id!r} (cameras: {known})") from None
        return {"camera": camera_id, "pending": pending}

    # --- live cameras -----------------------------------------------------------------------------

    def live_camera(camera_id: str) -> str:
        if live is None:
            raise HTTPException(503, "no line is running behind this dashboard")
        if camera_id not in live.cameras:
            raise HTTPException(404, f"no camera {camera_id!r} (cameras: {live.cameras})")
        return camera_id

    @app.get("/live", response_class=HTMLResponse)
    def live_page(request: Request):
        return page(request, "live.html", live=live is not None)

    @app.get("/api/cameras")
    def api_cameras():
        """Each camera's state, frame rate, drops and latency, with the candidate boxes on the
        frame the live stream shows now (frame pixels)."""
        cams = status()["cameras"]
        return [{**c, "live": live.info(c["id"]) if live is not None and c["id"] in live.cameras else None}
                for c in cams]

    @app.get("/api/cameras/{camera_id}/snapshot.jpg", response_class=Response,
             responses={200: {"content": {"image/jpeg": {}}}})
    def camera_snapshot(camera_id: str):
        """The camera's newest frame with the current candidate boxes drawn (orange) and the ROI."""
        camera_id = live_camera(camera_id)
        got = live.jpeg(camera_id)
        if got is None:
            raise HTTPException(503, f"camera {camera_id!r} has not delivered a frame yet")
        return Response(got[1], media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/api/cameras/{camera_id}/stream.mjpg", response_class=StreamingResponse,
             responses={200: {"content": {f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}": {}}}})
    async def camera_stream(request: Request, camera_id: str, fps: float = Query(5.0, gt=0, le=30),
                            frames: int | None = Query(None, ge=1, description="stop after this many (default: "
                                                                                 "until the viewer leaves)")):
        """The live page's stream (MJPEG): a new picture whenever the camera or the pre-filter has
        something new, at most `fps` a second."""
        live_camera(camera_id)

        async def stream():
            last, sent = None, 0
            while not await request.is_disconnected():
                try:
                    got = await run_in_threadpool(live.jpeg, camera_id)
                except LineUnavailable:
                    return  # the line stopped: the page shows it and reopens the stream later
                if got is not None and got[0] != last:
                    last = got[0]
                    yield (f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                           f"Content-Length: {len(got[1])}\r\n\r\n").encode() + got[1] + b"\r\n"
                    sent += 1
                    if frames is not None and sent >= frames:
                        return
                await asyncio.sleep(1.0 / fps)

        return StreamingResponse(stream(), media_type=f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.get("/metrics")
    def metrics():
        from prometheus_client import CONTENT_TYPE_LATEST

        from inspector.web.metrics import render

        return Response(render(status), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz():  # on the event loop: the watchdog's probe never waits for a worker thread
        return {"ok": True}

    return app
