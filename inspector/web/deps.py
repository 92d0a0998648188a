"""What a route asks FastAPI for: its app's WebContext (the store, the line's status, trigger and
live view, the plant's clock, the templates) and the caller's role.

The context lives on `app.state`, not in closures or module globals: one process holds many apps
(the tests, a line's dashboard next to a plant-wide one), each with its own store and line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from inspector import __version__
from inspector.capture.live_view import LiveView
from inspector.line.line_link import RemoteLive
from inspector.line.status import LineStatus
from inspector.store import Store
from inspector.store.stats import PlantTime
from inspector.web.accounts import Accounts
from inspector.web.alerts import MODE_BANNERS, disk_text, line_down_text, vlm_down_text
from inspector.web.plant_time import PlantClock
from inspector.web.security import need


@dataclass(frozen=True)
class WebContext:
    store: Store
    status: Callable[[], LineStatus]
    trigger: Callable[..., int] | None  # (camera_id, part_id=None) -> requests waiting
    recipe: Callable[[str, str | int, str], tuple[str, str]] | None  # changeover: (camera, which, by) -> (from, to)
    live: LiveView | RemoteLive | None
    plant: PlantTime
    clock: PlantClock
    accounts: Accounts
    templates: Jinja2Templates
    secure_cookies: bool
    # Every open page's event stream wants the counts each second; on a big database that is tens
    # of ms, so the streams share one answer per second instead of each running the query.
    counts: Callable[[], dict]

    def page(self, request: Request, name: str, **values):
        """A signed-in page: the template with the line's status, its banner and alerts around it."""
        st = self.status()
        level, text = MODE_BANNERS.get(st.reasoner_mode, ("", ""))
        return self.templates.TemplateResponse(request, name, {
            "status": st, "banner_level": level, "banner": text, "vlm_down": vlm_down_text(st),
            "line_down": line_down_text(st),
            "disk_alert": disk_text(st), "user": request.state.principal, "tz": self.plant.zone,
            "version": __version__, **values})


async def web_context(request: Request) -> WebContext:
    # async: FastAPI runs a plain `def` dependency in a worker thread, and the routes kept on the
    # event loop (/api/events, the MJPEG stream) must not wait for one.
    return request.app.state.web


Ctx = Annotated[WebContext, Depends(web_context)]
viewer, operator = Depends(need("viewer")), Depends(need("operator"))
