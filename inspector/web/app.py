"""The operator dashboard and its JSON API (FastAPI + Jinja2, no external assets): the app
factory. The routes are in web/routes/, one APIRouter per area; what they share per app is the
WebContext on app.state (web/deps.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from inspector import __version__
from inspector.capture.live_view import LiveView
from inspector.line.line_link import LineUnavailable, RemoteLive
from inspector.line.status import LineStatus
from inspector.store import Store
from inspector.store.stats import PlantTime
from inspector.web.accounts import Accounts
from inspector.web.deps import WebContext
from inspector.web.load import bounded_threads, shared_for
from inspector.web.plant_time import PlantClock
from inspector.web.routes import auth, feed, inspections, live as live_routes, ops, review, stats
from inspector.web.security import LoginGate, SecurityHeaders

HERE = Path(__file__).resolve().parent
ROUTERS = (auth, feed, inspections, review, stats, live_routes, ops)


def _docs_assets() -> Path:
    """Swagger UI's files, from the fastapi-offline package (no CDN: /docs works offline)."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


def create_app(store: Store, status: Callable[[], LineStatus],
               trigger: Callable[[str], int] | None = None, *, live: LiveView | RemoteLive | None = None,
               plant: PlantTime | None = None, secure_cookies: bool = False,
               recipe: Callable[[str, str | int, str], tuple[str, str]] | None = None) -> FastAPI:
    app = FastAPI(title="inspector", version=__version__, docs_url=None, redoc_url=None,
                  lifespan=bounded_threads,
                  description="Verdicts of the visual inspection line. Log in at /login (browsers) or "
                              "send `Authorization: Bearer <token>` (`inspector tokens add`).")
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    # Before /static, which would answer for /static/docs too.
    app.mount("/static/docs", StaticFiles(directory=str(_docs_assets())), name="docs-assets")
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    accounts = Accounts(store.engine)
    app.add_middleware(LoginGate, accounts=accounts)

    @app.middleware("http")
    async def server_timing(request: Request, call_next):
        # The time spent in the app (login check, handler, database), as browsers' dev tools and
        # `inspector bench web` read it; a stream's is the time to its first byte.
        t = time.perf_counter()
        response = await call_next(request)
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - t) * 1000:.2f}"
        return response

    app.add_middleware(SecurityHeaders)  # last added, outermost: the gate's answers get them too

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, e: RequestValidationError):
        # FastAPI's own 422, with each bad input echoed, in JSON that escapes what UTF-8 cannot
        # carry: a lone surrogate in a review note made the error itself a 500.
        return Response(json.dumps({"detail": jsonable_encoder(e.errors())}, ensure_ascii=True),
                        status_code=422, media_type="application/json")

    @app.exception_handler(LineUnavailable)
    async def line_unavailable(request: Request, e: LineUnavailable):
        # A separate dashboard whose line is stopped: what only the line can answer is 503.
        return JSONResponse({"detail": f"the line is not running ({e})"}, status_code=503)

    plant = plant or PlantTime()
    clock = PlantClock(plant.tz)
    templates.env.filters["plant_time"] = clock.plant_time
    app.state.web = WebContext(store=store, status=status, trigger=trigger, recipe=recipe, live=live, plant=plant,
                               clock=clock,
                               accounts=accounts, templates=templates, secure_cookies=secure_cookies,
                               counts=shared_for(1.0, store.counts))
    for area in ROUTERS:
        app.include_router(area.router)
    return app
