"""The feed of verdicts: the page, the JSON API and the live event stream, one set of filters."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, StreamingResponse

from inspector.line.status import ApiStatus
from inspector.web.deps import Ctx
from inspector.web.inputs import MAX_ID, FeedFilter, feed_filter

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def feed_page(request: Request, ctx: Ctx, f: FeedFilter = Depends(feed_filter),
              before_id: int | None = Query(None, ge=1, le=MAX_ID)):
    store, clock = ctx.store, ctx.clock
    f = replace(f, since=clock.plant_local(f.since), until=clock.plant_local(f.until))
    rows = store.feed(limit=50, before_id=before_id, **f.store_args())
    older = f"/?{f.query(before_id=rows[-1]['id'])}" if len(rows) == 50 else None
    return ctx.page(request, "feed.html", rows=rows, counts=store.counts(), f=f, paged=before_id is not None,
                    older=older, filter_query=f.query(), catalogue=store.catalogue(),
                    local={"since": clock.form_value(f.since), "until": clock.form_value(f.until)})


@router.get("/api/events")
async def events(request: Request, ctx: Ctx, f: FeedFilter = Depends(feed_filter),
                 after_id: int = Query(0, ge=0, le=MAX_ID),
                 only: Literal["status"] | None = Query(None, description="status: no verdict events"),
                 last_event_id: int | None = Header(None, alias="Last-Event-ID", ge=0, le=MAX_ID,
                                                    description="sent by a reconnecting EventSource: "
                                                                "resume after this id")):
    """Server-sent events: `verdict` (a feed row, oldest first, matching the filters) as they
    are stored, and `status` (counts, cameras, VLM and store state) every second. Browsers
    reconnect by themselves (EventSource), resuming after the last id they saw."""
    store, status, counts = ctx.store, ctx.status, ctx.counts
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
                st = ApiStatus(**dict(status()), counts=await run_in_threadpool(counts))
                yield f"event: status\ndata: {st.model_dump_json()}\n\n"
            tick += 1
            await asyncio.sleep(0.25)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/api/verdicts")
def api_verdicts(ctx: Ctx, limit: int = Query(50, ge=1, le=500), after_id: int = Query(0, ge=0, le=MAX_ID),
                 before_id: int | None = Query(None, ge=1, le=MAX_ID), f: FeedFilter = Depends(feed_filter)):
    """The feed, newest first: filter by verdict, camera, product, defect type, capture time
    (ISO 8601; no zone = UTC); page with before_id (older) or after_id (newer)."""
    return ctx.store.feed(limit=limit, after_id=after_id, before_id=before_id, **f.store_args())
