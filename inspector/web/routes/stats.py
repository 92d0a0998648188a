"""The stats over a window: the page with its charts and the JSON API, computed in a worker
thread behind the heavy-request gate (web/load.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from inspector.web.deps import Ctx, WebContext
from inspector.web.inputs import Camera, Product, When, naive_utc
from inspector.web.load import heavy

router = APIRouter()


def stats_for(ctx: WebContext, since: datetime | None, until: datetime | None, camera: str | None,
              product: str | None) -> dict:
    from inspector.store import stats as stats_mod

    now = datetime.now(timezone.utc).replace(tzinfo=None)
    until = naive_utc(until) or now
    since = naive_utc(since) or until - timedelta(hours=24)
    try:
        return stats_mod.compute(ctx.store.engine, since, until, camera or None, product or None, ctx.plant)
    except stats_mod.WindowError as e:
        raise HTTPException(422, str(e)) from None


@router.get("/api/stats")
async def api_stats(ctx: Ctx, since: When = None, until: When = None, camera: Camera = None, product: Product = None):
    """Over a window (default: the last 24 h; at most 366 days; ISO 8601, no zone = UTC): defect
    rate per hour and per shift, Pareto of defect types, per camera and product, VLM agreement
    with the detector, operators' agreement with the machine, throughput and VLM latency."""
    return await heavy(stats_for, ctx, since, until, camera, product)


@router.get("/stats", response_class=HTMLResponse)
async def stats_page(request: Request, ctx: Ctx, since: When = None, until: When = None, camera: Camera = None,
                     product: Product = None):
    from inspector.web import charts

    clock = ctx.clock
    s = await heavy(stats_for, ctx, clock.plant_local(since), clock.plant_local(until), camera, product)
    local = {k: clock.plant_time(s[k], "%Y-%m-%dT%H:%M") for k in ("since", "until")}
    return await run_in_threadpool(
        lambda: ctx.page(request, "stats.html", s=s, local=local, catalogue=ctx.store.catalogue(), camera=camera,
                         product=product, hourly_chart=charts.stacked_bars(s["per_hour"], "hour"),
                         pareto_chart=charts.pareto(s["pareto"])))
