"""Operators' reviews: the review queue (page and JSON) and confirming or overriding a verdict
(JSON API and the detail page's form). Only the caller's own review is written; the machine
verdict and earlier reviews are never changed."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from inspector.store import Store
from inspector.web.accounts import Principal
from inspector.web.deps import Ctx, operator
from inspector.web.inputs import InspectionId, ReviewIn
from inspector.web.security import safe_next

router = APIRouter()


def _review(store: Store, inspection_id: int, who: Principal, r: ReviewIn) -> dict:
    try:
        return store.add_review(inspection_id, who.name, r.verdict, r.note, r.defect_type)
    except KeyError:
        raise HTTPException(404, f"no inspection {inspection_id}") from None
    except ValueError as e:
        raise HTTPException(422, str(e)) from None


@router.post("/api/inspections/{inspection_id}/reviews", status_code=201)
def api_review(ctx: Ctx, inspection_id: InspectionId, body: ReviewIn, who: Principal = operator):
    """Confirm or override the verdict in force; recorded with the caller's name and the time.
    The machine verdict and earlier reviews are never changed."""
    return _review(ctx.store, inspection_id, who, body)


@router.post("/inspections/{inspection_id}/review", include_in_schema=False)
def form_review(ctx: Ctx, inspection_id: InspectionId, verdict: Literal["pass", "fail", "review"] = Form(...),
                note: str = Form("", max_length=2000), defect_type: str = Form("", max_length=64),
                back: str = Form("", max_length=512), who: Principal = operator):
    _review(ctx.store, inspection_id, who, ReviewIn(verdict=verdict, note=note, defect_type=defect_type or None))
    return RedirectResponse(safe_next(back) if back else f"/inspections/{inspection_id}#reviews",
                            status_code=303)


@router.get("/review", response_class=HTMLResponse)
def review_page(request: Request, ctx: Ctx):
    return ctx.page(request, "review.html", rows=ctx.store.review_queue(limit=100))


@router.get("/api/review-queue")
def api_review_queue(ctx: Ctx, limit: int = Query(50, ge=1, le=500),
                     recent_fail_hours: float = Query(24.0, gt=0, le=24 * 90)):
    """Unreviewed `review` verdicts and recent fails, newest first."""
    return ctx.store.review_queue(limit=limit, recent_fail_hours=recent_fail_hours)
