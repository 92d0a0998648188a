"""Logging in and out, changing one's password, and who the caller is."""

from __future__ import annotations

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from inspector import __version__
from inspector.web.accounts import AccountError, Principal, RateLimited
from inspector.web.deps import Ctx, WebContext, viewer
from inspector.web.security import COOKIE, safe_next

router = APIRouter()


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(request: Request, ctx: Ctx, next: str = "/"):
    return ctx.templates.TemplateResponse(request, "login.html", {"next": safe_next(next), "error": None,
                                                                  "version": __version__})


@router.post("/login", response_class=HTMLResponse, include_in_schema=False)
def login(request: Request, ctx: Ctx, username: str = Form(..., max_length=64),
          password: str = Form(..., max_length=256), next: str = Form("/")):
    client = request.client.host if request.client else "?"
    try:
        token, _ = ctx.accounts.login(username, password, client)
    except RateLimited as e:
        return ctx.templates.TemplateResponse(request, "login.html", {
            "next": safe_next(next), "error": str(e), "version": __version__},
            status_code=429, headers={"Retry-After": str(e.retry_after)})
    except AccountError as e:
        return ctx.templates.TemplateResponse(request, "login.html", {
            "next": safe_next(next), "error": str(e), "version": __version__}, status_code=401)
    resp = RedirectResponse(safe_next(next), status_code=303)
    resp.set_cookie(COOKIE, token, httponly=True, samesite="lax", secure=ctx.secure_cookies,
                    max_age=int(ctx.accounts.session_hours * 3600), path="/")
    return resp


@router.post("/logout", include_in_schema=False)
def logout(request: Request, ctx: Ctx, who: Principal = viewer):
    ctx.accounts.logout(request.cookies.get(COOKIE))
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/")
    return resp


def password_form(ctx: WebContext, request: Request, error: str | None = None, status_code: int = 200,
                  headers=None):
    return ctx.templates.TemplateResponse(request, "password.html", {
        "error": error, "user": request.state.principal, "version": __version__},
        status_code=status_code, headers=headers)


@router.get("/password", response_class=HTMLResponse, include_in_schema=False)
def password_page(request: Request, ctx: Ctx, who: Principal = viewer):
    if who.via != "session":
        raise HTTPException(403, "an API token has no password to change")
    return password_form(ctx, request)


@router.post("/password", response_class=HTMLResponse, include_in_schema=False)
def change_password(request: Request, ctx: Ctx, current: str = Form(..., max_length=256),
                    new: str = Form(..., max_length=256), again: str = Form(..., max_length=256),
                    who: Principal = viewer):
    if who.via != "session":
        raise HTTPException(403, "an API token has no password to change")
    if new != again:
        return password_form(ctx, request, "the two new passwords differ", 422)
    client = request.client.host if request.client else "?"
    try:
        token, _ = ctx.accounts.change_password(who.name, current, new, client)
    except RateLimited as e:
        return password_form(ctx, request, str(e), 429, {"Retry-After": str(e.retry_after)})
    except AccountError as e:
        return password_form(ctx, request, str(e), 422)
    resp = RedirectResponse("/", status_code=303)
    resp.set_cookie(COOKIE, token, httponly=True, samesite="lax", secure=ctx.secure_cookies,
                    max_age=int(ctx.accounts.session_hours * 3600), path="/")
    return resp


@router.get("/api/me")
def me(who: Principal = viewer):
    """Who this request is (name, role, and how it authenticated)."""
    return {"name": who.name, "role": who.role, "via": who.via}
