"""Running the box: health (page and JSON), the line's status, Prometheus metrics, the API's
docs, and the watchdog's liveness probe."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from inspector import __version__
from inspector.line.status import ApiStatus
from inspector.web.alerts import line_down_text
from inspector.web.deps import Ctx, WebContext

router = APIRouter()


def health(ctx: WebContext) -> dict:
    st = ctx.status()
    db = ctx.store.health()
    problems = []
    if not st.line.up:
        problems.append(line_down_text(st))
    for c in st.cameras:
        if c.state == "failed" or c.connection == "reconnecting":
            problems.append(f"camera {c.id}: {c.error or c.last_error or c.state}")
    breaker = st.breaker
    if breaker.state != "closed":
        problems.append(f"VLM unavailable: {breaker.last_error or ''}")
    if not db["reachable"] or not db["schema_ok"]:
        problems.append(f"database: {db['error'] or 'schema ' + str(db['schema'])}")
    s = st.store
    if s is not None and s.images_paused:
        problems.append(f"pictures paused: {s.images_paused_reason}")
    if s is not None and s.writer_last_error:
        problems.append(f"database writes failing: {s.writer_last_error}")
    for e in st.events:
        if e.last_error:
            problems.append(f"events to {e.name} failing for {e.failing_for_s or 0:.0f} s "
                            f"({e.pending} waiting): {e.last_error}")
    for p in st.plc:
        if not p.ready:
            what = "reject gate unreachable" if p.kind == "reject" else f"not ready for triggers ({p.state or 'down'})"
            problems.append(f"PLC {p.kind} on {p.listen} ({p.camera}): {what}" + (f": {p.message}" if p.message else ""))
        elif p.error_code:
            problems.append(f"PLC {p.kind} on {p.listen}: error code {p.error_code} "
                            f"({p.overruns} overrun(s), {p.errors} error(s))")
    queues = {"frames": st.frame_queue, "vlm_queue": st.vlm_queue, "vlm_spool": st.vlm_spool,
              "vlm_backlog": st.vlm_backlog, "writer_queue": s.writer_queue if s is not None else None}
    # The health's shape predates the typed status: breaker and store went in as plain dicts.
    return {"ok": not problems, "problems": problems, "cameras": [c.model_dump() for c in st.cameras],
            "reasoner": {"mode": st.reasoner_mode, "model": st.reasoner_model,
                         **(st.reasoner.breaker.model_dump() if st.reasoner is not None else {})},
            "queues": queues, "store": s.model_dump() if s is not None else {}, "database": db,
            "events": [e.model_dump() for e in st.events], "plc": [p.model_dump() for p in st.plc]}


@router.get("/docs", response_class=HTMLResponse, include_in_schema=False)
def docs_page(request: Request, ctx: Ctx):
    # Swagger UI from local files, started by a script file (the CSP allows no inline script).
    return ctx.templates.TemplateResponse(request, "docs.html", {"version": __version__})


@router.get("/health", response_class=HTMLResponse)
def health_page(request: Request, ctx: Ctx):
    return ctx.page(request, "health.html", h=health(ctx), changes=ctx.store.recipe_changes(limit=10))


@router.get("/api/health")
def api_health(ctx: Ctx):
    """Cameras, the VLM backend, queue depths, disk and database, with what is wrong now."""
    return health(ctx)


@router.get("/api/status", response_model=ApiStatus)
def api_status(ctx: Ctx) -> ApiStatus:
    """The line now: cameras, queues, the reasoner and its breaker, the store, event sinks; with
    the verdicts of all time (`counts`)."""
    return ApiStatus(**dict(ctx.status()), counts=ctx.store.counts())


@router.get("/metrics")
def metrics(ctx: Ctx):
    from prometheus_client import CONTENT_TYPE_LATEST

    from inspector.web.metrics import render

    return Response(render(ctx.status), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz")
async def healthz():  # on the event loop: the watchdog's probe never waits for a worker thread
    return {"ok": True}
