"""The dashboard's view of a line that runs in another process (`inspector web`): status, trigger
and live pictures over the line's socket (inspector/line/line_socket.py), with the same shapes the
in-process line gives `create_app`.

When the line is not running (stopped, restarting, crashed) the dashboard stays up: the history
is in the database. Status then says so (`line.up` false, with why) with the cameras from the
config; a trigger or a live picture answers 503 with the same reason.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
from pydantic import ValidationError

from inspector.errors import InspectorError
from inspector.config import Config
from inspector.capture.triggers import TriggerFull
from inspector.line.recipes import RecipeError
from inspector.line.status import CameraStatus, LineStatus, LineUp

STATUS_FRESH_S = 0.5  # every open page's event stream asks each second; they share one answer


class LineUnavailable(InspectorError):
    """The line did not answer on its socket; the message says where and why."""


class LineLink:
    def __init__(self, cfg: Config, socket_path: Path, timeout_s: float = 2.0):
        self.cfg = cfg
        self.socket_path = Path(socket_path)
        self._client = httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path)),
                                    base_url="http://line", timeout=timeout_s)
        self._lock = threading.Lock()
        self._status: tuple[float, LineStatus] | None = None
        self.live = RemoteLive(self)

    def close(self) -> None:
        self._client.close()

    def _request(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            return self._client.request(method, path, **kw)
        except httpx.TransportError as e:
            why = getattr(e, "__cause__", None) or e
            raise LineUnavailable(f"no answer on {self.socket_path}: "
                                  f"{getattr(why, 'strerror', None) or why}") from None

    def status(self) -> LineStatus:
        with self._lock:
            if self._status is not None and time.monotonic() - self._status[0] < STATUS_FRESH_S:
                return self._status[1]
        try:
            r = self._request("GET", "/status")
            r.raise_for_status()
            st = LineStatus.model_validate_json(r.content)
        except (LineUnavailable, httpx.HTTPStatusError) as e:
            st = offline_status(self.cfg, str(e))
        except ValidationError as e:  # another version of the line, or not the line at all
            st = offline_status(self.cfg, f"its status on {self.socket_path} is not understood "
                                          f"({e.error_count()} error(s), first: {_first_error(e)})")
        with self._lock:
            self._status = (time.monotonic(), st)
        return st

    def trigger(self, camera_id: str, part_id: str | None = None) -> int:
        r = self._request("POST", f"/cameras/{camera_id}/trigger",
                          params={"part_id": part_id} if part_id is not None else None)
        if r.status_code == 404:
            raise KeyError(camera_id)
        if r.status_code == 429:
            raise TriggerFull(r.json().get("detail", "too many trigger requests waiting"))
        r.raise_for_status()
        return int(r.json()["pending"])


    def change_recipe(self, camera_id: str, which: str | int, by: str) -> tuple[str, str]:
        key = "recipe" if isinstance(which, int) else "product"
        r = self._request("POST", f"/cameras/{camera_id}/recipe", params={key: which, "by": by})
        if r.status_code == 404:
            raise KeyError(camera_id)
        if r.status_code == 422:
            detail = r.json().get("detail")
            raise RecipeError(detail if isinstance(detail, str) else f"recipe {which!r} refused by the line")
        r.raise_for_status()
        return r.json()["from"], r.json()["to"]


def _first_error(e: ValidationError) -> str:
    err = e.errors(include_url=False, include_input=False)[0]
    return f"{'.'.join(map(str, err['loc'])) or 'status'}: {err['msg']}"


class RemoteLive:
    """`LiveView`'s reading half (cameras, info, jpeg) for a line in another process. The last
    picture is kept, so a viewer's poll costs a 304 until the line has a new one."""

    def __init__(self, link: LineLink):
        self.link = link
        self._last: dict[str, tuple[int, bytes]] = {}
        self._lock = threading.Lock()

    @property
    def cameras(self) -> list[str]:
        return [c.id for c in self.link.cfg.cameras]

    def info(self, camera: str) -> dict | None:
        try:
            r = self.link._request("GET", f"/cameras/{camera}/live")
        except LineUnavailable:
            return None
        return r.json() if r.status_code == 200 else None

    def jpeg(self, camera: str) -> tuple[int, bytes] | None:
        with self._lock:
            last = self._last.get(camera)
        r = self.link._request("GET", f"/cameras/{camera}/live.jpg", params={"have": last[0] if last else 0})
        if r.status_code == 304:
            return last
        if r.status_code == 204:
            return None
        if r.status_code == 404:
            raise KeyError(camera)
        r.raise_for_status()
        got = (int(r.headers["X-Picture"]), r.content)
        with self._lock:
            self._last[camera] = got
        return got


class PlantView:
    """A plant-wide dashboard's status (`web.plant_wide`): no line of its own, every box's cameras
    from the shared database. Live pictures, triggers and each line's health stay on each box's
    own dashboard."""

    def __init__(self, store, refresh_s: float = 5.0):
        self.store, self.refresh_s = store, refresh_s
        self._cached: tuple[float, LineStatus] | None = None
        self._lock = threading.Lock()

    def status(self) -> LineStatus:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self.refresh_s:
                return self._cached[1]
        cams = [CameraStatus(id=c["id"], source=f"{c['box'] or '?'}: {c['source']}", state="remote", box=c["box"])
                for c in self.store.cameras()]
        st = LineStatus(reasoner_mode="plant", cameras=cams)
        with self._lock:
            self._cached = (time.monotonic(), st)
        return st


def offline_status(cfg: Config, why: str) -> LineStatus:
    """The status with nothing running: cameras as configured, no counts."""
    from inspector.store.store import describe_source

    mode = "none" if cfg.reasoner.type == "none" else (
        "test_model" if getattr(cfg.reasoner, "test_model", False) else "vlm")
    cams = [CameraStatus(id=c.id, source=describe_source(c.source), error=why, trigger=c.trigger.mode)
            for c in cfg.cameras]
    # As the running line names it: a model file by its name (llama_cpp), a server's model as sent.
    model = getattr(cfg.reasoner, "model", None)
    return LineStatus(reasoner_mode=mode, reasoner_model=model.name if isinstance(model, Path) else model,
                      cameras=cams, line=LineUp(up=False, error=why))
