"""Who is asking, and may they: the login gate in front of every route, roles, and CSRF.

- A browser logs in at /login and gets a session cookie (HttpOnly, SameSite=Lax, Secure when
  web.secure_cookies); a machine sends `Authorization: Bearer <token>` (`inspector tokens add`).
- Anonymous requests see only /login (pages are redirected there, the API answers 401); static
  assets and /healthz are open.
- A state-changing request made with a session cookie must echo the session's CSRF token (the
  form field `csrf_token` or the `X-CSRF-Token` header); a bearer token is not sent by browsers on
  their own, so token requests need none.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.middleware.base import BaseHTTPMiddleware

from inspector.web.accounts import Accounts, Principal

COOKIE = "inspector_session"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def _wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith(("/api/", "/metrics", "/openapi.json")):
        return False
    return request.method == "GET" and "text/html" in request.headers.get("accept", "text/html")


class LoginGate(BaseHTTPMiddleware):
    def __init__(self, app, accounts: Accounts):
        super().__init__(app)
        self.accounts = accounts

    async def dispatch(self, request: Request, call_next):
        principal = None
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            principal = self.accounts.token(auth[7:].strip())
            if principal is None:
                return JSONResponse({"detail": "unknown or revoked API token"}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
        else:
            principal = self.accounts.session(request.cookies.get(COOKIE))
        request.state.principal = principal
        path = request.url.path
        if principal is None and not (path in ("/login", "/healthz") or path.startswith("/static/")):
            if _wants_html(request):
                nxt = quote(path + (f"?{request.url.query}" if request.url.query else ""), safe="/?=&")
                return RedirectResponse(f"/login?next={nxt}", status_code=303)
            return JSONResponse({"detail": "log in first (a session cookie from /login, or an "
                                           "Authorization: Bearer token)"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)


def principal(request: Request) -> Principal:
    p = getattr(request.state, "principal", None)
    if p is None:  # the gate lets no anonymous request this far; belt and braces
        raise HTTPException(401, "log in first")
    return p


def need(role: str):
    """A dependency: the caller has at least `role`; for unsafe methods with a session, the CSRF
    token must match too."""
    async def check(request: Request) -> Principal:
        p = principal(request)
        if not p.can(role):
            raise HTTPException(403, f"this needs the {role} role; {p.name} is a {p.role}")
        if request.method in UNSAFE and p.via == "session":
            sent = request.headers.get("x-csrf-token")
            if sent is None and request.headers.get("content-type", "").startswith(
                    ("application/x-www-form-urlencoded", "multipart/form-data")):
                sent = (await request.form()).get("csrf_token")
            if not sent or sent != p.csrf:
                raise HTTPException(403, "CSRF token missing or wrong: reload the page and try again")
        return p
    return check


def safe_next(target: str | None) -> str:
    """Only a path on this site (never //host or a scheme): no open redirect after login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
