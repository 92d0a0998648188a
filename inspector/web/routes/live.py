"""The line's cameras: the live page, each camera's state, its newest picture and MJPEG stream
(from the live view, in process or through the line's socket), and triggering an inspection."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from inspector.capture.part_codes import PART_ID
from inspector.capture.triggers import TriggerFull

from inspector.line.line_link import LineUnavailable
from inspector.line.recipes import RecipeError
from inspector.web.inputs import Camera
from inspector.web.accounts import Principal
from inspector.web.deps import Ctx, WebContext, operator

router = APIRouter()
MJPEG_BOUNDARY = "frame"


def live_camera(ctx: WebContext, camera_id: str) -> str:
    if ctx.live is None:
        raise HTTPException(503, "no line is running behind this dashboard")
    if camera_id not in ctx.live.cameras:
        raise HTTPException(404, f"no camera {camera_id!r} (cameras: {ctx.live.cameras})")
    return camera_id


class TriggerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    part_id: str | None = Field(None, pattern=PART_ID.pattern,
                                description="the part's identity, as the PLC or MES knows it "
                                            "(printable ASCII, no spaces, at most 64 characters)")


def _no_camera(ctx: WebContext, camera_id: str) -> HTTPException:
    known = [c.id for c in ctx.status().cameras]
    return HTTPException(404, f"no camera {camera_id!r} (cameras: {known})")


@router.post("/api/cameras/{camera_id}/trigger", status_code=202)
def camera_trigger(ctx: Ctx, camera_id: str, body: TriggerBody | None = None, who: Principal = operator):
    """Inspect this camera's next frame (for PLCs and scripts), as part `part_id` when given."""
    if ctx.trigger is None:
        raise HTTPException(503, "no line is running behind this dashboard")
    part_id = body.part_id if body is not None else None
    try:
        pending = ctx.trigger(camera_id, part_id)
    except KeyError:
        raise _no_camera(ctx, camera_id) from None
    except TriggerFull as e:
        raise HTTPException(429, str(e)) from None
    return {"camera": camera_id, "pending": pending, "part_id": part_id}


class RecipeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="a product's name")
    recipe: int | None = Field(None, ge=0, le=65535, description="or its recipe number (products[].recipe)")


@router.post("/api/cameras/{camera_id}/recipe")
def camera_recipe(ctx: Ctx, camera_id: str, body: RecipeBody, who: Principal = operator):
    """Changeover: the camera inspects another product from its next trigger on (parts already
    taken finish with theirs). By name or recipe number; an unknown one is refused and the camera
    keeps its recipe. Recorded with who asked."""
    if (body.product is None) == (body.recipe is None):
        raise HTTPException(422, "give exactly one of product (a name) or recipe (a number)")
    if ctx.recipe is None:
        raise HTTPException(503, "no line is running behind this dashboard")
    try:
        before, after = ctx.recipe(camera_id, body.product if body.product is not None else body.recipe,
                                   f"{who.via}:{who.name}")
    except KeyError:
        raise _no_camera(ctx, camera_id) from None
    except RecipeError as e:
        raise HTTPException(422, str(e)) from None
    return {"camera": camera_id, "from": before, "to": after}


@router.get("/api/recipes")
def recipe_changes(ctx: Ctx, camera: Camera = None, limit: int = Query(20, ge=1, le=500)):
    """The latest changeovers, newest first: camera, from, to, who, when (UTC)."""
    return ctx.store.recipe_changes(limit=limit, camera=camera)


@router.get("/live", response_class=HTMLResponse)
def live_page(request: Request, ctx: Ctx):
    return ctx.page(request, "live.html", live=ctx.live is not None)


@router.get("/api/cameras")
def api_cameras(ctx: Ctx):
    """Each camera's state, frame rate, drops and latency, with the candidate boxes on the
    frame the live stream shows now (frame pixels)."""
    live = ctx.live
    cams = ctx.status().cameras
    return [{**c.model_dump(), "live": live.info(c.id) if live is not None and c.id in live.cameras else None}
            for c in cams]


@router.get("/api/cameras/{camera_id}/snapshot.jpg", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}})
def camera_snapshot(ctx: Ctx, camera_id: str):
    """The camera's newest frame with the current candidate boxes drawn (orange) and the ROI."""
    camera_id = live_camera(ctx, camera_id)
    got = ctx.live.jpeg(camera_id)
    if got is None:
        raise HTTPException(503, f"camera {camera_id!r} has not delivered a frame yet")
    return Response(got[1], media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/api/cameras/{camera_id}/stream.mjpg", response_class=StreamingResponse,
            responses={200: {"content": {f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}": {}}}})
async def camera_stream(request: Request, ctx: Ctx, camera_id: str, fps: float = Query(5.0, gt=0, le=30),
                        frames: int | None = Query(None, ge=1, description="stop after this many (default: "
                                                                             "until the viewer leaves)")):
    """The live page's stream (MJPEG): a new picture whenever the camera or the pre-filter has
    something new, at most `fps` a second."""
    live_camera(ctx, camera_id)
    live = ctx.live

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
