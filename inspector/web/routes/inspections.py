"""One inspection: its page, its JSON, its pictures; and the catalogue the filters offer."""

from __future__ import annotations

import cv2
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from inspector.web.deps import Ctx
from inspector.web.inputs import InspectionId

router = APIRouter()


@router.get("/inspections/{inspection_id}", response_class=HTMLResponse)
def detail_page(request: Request, ctx: Ctx, inspection_id: InspectionId):
    d = ctx.store.inspection(inspection_id)
    if d is None:
        raise HTTPException(404, f"no inspection {inspection_id}")
    return ctx.page(request, "detail.html", d=d)


@router.get("/api/catalogue")
def api_catalogue(ctx: Ctx):
    """Cameras, products and defect types, for the feed's filters."""
    return ctx.store.catalogue()


@router.get("/api/inspections/{inspection_id}")
def api_inspection(ctx: Ctx, inspection_id: InspectionId):
    d = ctx.store.inspection(inspection_id)
    if d is None:
        raise HTTPException(404, f"no inspection {inspection_id}")
    return d


@router.get("/inspections/{inspection_id}/thumb.jpg")
def thumb_image(ctx: Ctx, inspection_id: InspectionId):
    path = ctx.store.image_file(inspection_id, "thumb")
    if path is None:
        raise HTTPException(404, "no thumbnail kept for this inspection")
    return Response(path.read_bytes(), media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})


@router.get("/inspections/{inspection_id}/frame.jpg")
def frame_image(ctx: Ctx, inspection_id: InspectionId, w: int | None = Query(None, ge=16, le=4096)):
    path = ctx.store.frame_file(inspection_id)
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
