"""Who is asking, and may they: the login gate in front of every route, roles, and CSRF.

- A browser logs in at /login and gets a session cookie (HttpOnly, SameSite=Lax, Secure when
  web.secure_cookies); a machine sends `Authorization: Bearer <token>` (`inspector tokens add`).
- Anonymous requests see only /login (pages are redirected there, the API answers 401); static
  assets and /healthz are open.
- A state-changing request made with a session cookie must echo the session's CSRF token (the
  form field `csrf_token` or the `X-CSRF-Token` header); a bearer token is not sent by browsers on
  their own, so token requests need none.
- A session whose password was printed on the console (the first admin's) can do nothing but
  choose a new one at /password.
- Every answer carries headers that keep it out of frames, other sites' scripts and shared
  caches (SecurityHeaders).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.datastructures import MutableHeaders
from starlette.middleware.base import BaseHTTPMiddleware

from inspector.web.accounts import Accounts, Principal

COOKIE = "inspector_session"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
OPEN = ("/login", "/healthz")
PASSWORD_CHANGE = ("/password", "/logout", *OPEN)  # all that a session that must change its password may see
# Everything the pages use is served from here (no CDN: plant networks are often offline); the
# Swagger UI at /docs draws icons from data: URLs. No inline script or style is allowed, and no
# other site may frame a page (clickjacking a review button).
CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
HEADERS = {"content-security-policy": CSP, "x-frame-options": "DENY", "x-content-type-options": "nosniff",
           "referrer-policy": "same-origin"}


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
        # The lookups read (a token's also writes) the database: in a worker thread, so that a
        # database busy with the line's writes holds up this request, not the event loop.
        if auth[:7].lower() == "bearer ":
            principal = await run_in_threadpool(self.accounts.token, auth[7:].strip())
            if principal is None:
                return JSONResponse({"detail": "unknown or revoked API token"}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
        else:
            principal = await run_in_threadpool(self.accounts.session, request.cookies.get(COOKIE))
        request.state.principal = principal
        path = request.url.path
        if principal is None and not (path in OPEN or path.startswith("/static/")):
            if _wants_html(request):
                nxt = quote(path + (f"?{request.url.query}" if request.url.query else ""), safe="/?=&")
                return RedirectResponse(f"/login?next={nxt}", status_code=303)
            return JSONResponse({"detail": "log in first (a session cookie from /login, or an "
                                           "Authorization: Bearer token)"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        if principal is not None and principal.must_change and not (
                path in PASSWORD_CHANGE or path.startswith("/static/")):
            if _wants_html(request):
                return RedirectResponse("/password", status_code=303)
            return JSONResponse({"detail": "choose a new password first, at /password (this one was shown on "
                                           "the console)"}, status_code=403)
        return await call_next(request)


class SecurityHeaders:
    """HEADERS on every answer, and no copy of a signed-in answer in any cache: `no-store`
    unless the route says how it may be cached, and then `private` (pictures may stay in the
    browser's own cache, never in a proxy's). /static/ is public and cached as files are."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        public = scope["path"].startswith("/static/")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                h = MutableHeaders(scope=message)
                for k, v in HEADERS.items():
                    h.setdefault(k, v)
                cc = h.get("cache-control")
                if not public and cc is None:
                    h["cache-control"] = "no-store"
                elif not public and "no-store" not in cc and "private" not in cc:
                    h["cache-control"] = f"private, {cc}"
            await send(message)

        await self.app(scope, receive, send_with_headers)


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
