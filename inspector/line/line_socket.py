"""The line's own socket: what only the running line knows (its status, the live pictures) and
can do (a software trigger), for the dashboard when that runs as a service of its own
(`inspector web`, inspector-web.service).

A Unix socket beside the database, not a TCP port: only processes of the line's user (the
dashboard's service runs as the same user) can open it, and nothing on the network can.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from inspector.capture.part_codes import PART_ID
from inspector.capture.triggers import TriggerFull
from inspector.line.recipes import RecipeError
from inspector.line.status import LineStatus

log = logging.getLogger(__name__)
SUN_PATH_MAX = 107  # bytes in sockaddr_un.sun_path, less the trailing NUL


def line_app(pipe) -> FastAPI:
    app = FastAPI(title="inspector line", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/status", response_model=LineStatus)
    def status():
        return pipe.status()

    @app.post("/cameras/{camera_id}/recipe")
    def recipe(camera_id: str, by: str = Query(..., max_length=128), product: str | None = Query(None, max_length=64),
               recipe: int | None = Query(None, ge=0, le=65535)):
        try:
            before, after = pipe.change_recipe(camera_id, product if product is not None else recipe, by)
        except KeyError:
            raise HTTPException(404, f"no camera {camera_id!r}") from None
        except RecipeError as e:
            raise HTTPException(422, str(e)) from None
        return {"from": before, "to": after}

    @app.post("/cameras/{camera_id}/trigger")
    def trigger(camera_id: str, part_id: str | None = Query(None, pattern=PART_ID.pattern)):
        try:
            return {"pending": pipe.trigger(camera_id, part_id)}
        except KeyError:
            raise HTTPException(404, f"no camera {camera_id!r}") from None
        except TriggerFull as e:
            raise HTTPException(429, str(e)) from None

    @app.get("/cameras/{camera_id}/live")
    def live_info(camera_id: str):
        if camera_id not in pipe.live.cameras:
            raise HTTPException(404, f"no camera {camera_id!r}")
        return pipe.live.info(camera_id)

    @app.get("/cameras/{camera_id}/live.jpg")
    async def live_jpeg(camera_id: str, have: int = Query(0, ge=0)):
        """The picture the live view shows now; `have` = the number of the one the caller holds:
        304 while that is still the newest, 204 before the first frame."""
        if camera_id not in pipe.live.cameras:
            raise HTTPException(404, f"no camera {camera_id!r}")
        got = await run_in_threadpool(pipe.live.jpeg, camera_id)
        if got is None:
            return Response(status_code=204)
        if got[0] == have:
            return Response(status_code=304)
        return Response(got[1], media_type="image/jpeg", headers={"X-Picture": str(got[0])})

    return app


def serve_line_socket(pipe, path: Path):
    """Serve `line_app` on `path` in a thread; the uvicorn.Server, or None (logged) when the
    socket cannot be made - the line runs on without it, only a separate dashboard misses it."""
    import uvicorn

    from inspector.util.threaded_server import start_in_thread

    path = Path(path)
    if len(os.fsencode(str(path))) > SUN_PATH_MAX:
        log.error("line socket %s: the path is longer than a Unix socket allows (%d bytes); the "
                  "separate dashboard cannot reach this line (set web.line_socket to a shorter path)",
                  path, SUN_PATH_MAX)
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_socket():
            path.unlink()  # left by a line that was killed (a running one holds the data dir's lock)
    except OSError as e:
        log.error("line socket %s: %s; the separate dashboard cannot reach this line", path, e)
        return None
    server = start_in_thread(uvicorn.Config(line_app(pipe), uds=str(path), log_level="warning",
                                            access_log=False, lifespan="off"), "line-socket")
    if server is None:
        log.error("line socket %s did not start; the separate dashboard cannot reach this line", path)
        return None
    try:
        os.chmod(path, 0o660)
    except OSError:
        pass
    return server
