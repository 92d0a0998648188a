"""Running the box: health (page and JSON), the line's status, Prometheus metrics, the API's
docs, and the watchdog's liveness probe."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from inspector import __version__
from inspector.web.alerts import line_down_text
from inspector.web.deps import Ctx, WebContext

router = APIRouter()


def health(ctx: WebContext) -> dict:
    st = ctx.status()
    db = ctx.store.health()
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


@router.get("/docs", response_class=HTMLResponse, include_in_schema=False)
def docs_page(request: Request, ctx: Ctx):
    # Swagger UI from local files, started by a script file (the CSP allows no inline script).
    return ctx.templates.TemplateResponse(request, "docs.html", {"version": __version__})


@router.get("/health", response_class=HTMLResponse)
def health_page(request: Request, ctx: Ctx):
    return ctx.page(request, "health.html", h=health(ctx))


@router.get("/api/health")
def api_health(ctx: Ctx):
    """Cameras, the VLM backend, queue depths, disk and database, with what is wrong now."""
    return health(ctx)


@router.get("/api/status")
def api_status(ctx: Ctx):
    return {**ctx.status(), "counts": ctx.store.counts()}


@router.get("/metrics")
def metrics(ctx: Ctx):
    from prometheus_client import CONTENT_TYPE_LATEST

    from inspector.web.metrics import render

    return Response(render(ctx.status), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz")
async def healthz():  # on the event loop: the watchdog's probe never waits for a worker thread
    return {"ok": True}
