"""The dashboard's load bounds: it shares the line's process (and its GIL), so however many
requests come, at most WEB_THREADS of them run Python at once, and of those at most HEAVY_AT_ONCE
are the heavy ones (stats over a long window); HEAVY_WAITING more wait their turn, beyond that
they get a 503. Event streams share one answer per second instead of each running its query."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager

import anyio
from anyio.lowlevel import RunVar
from fastapi import HTTPException

WEB_THREADS, HEAVY_AT_ONCE, HEAVY_WAITING = 8, 1, 16


class _Heavy:
    """One per event loop: the limiter, and the requests let in (running or waiting) - counted
    here, on the loop, because the limiter's own count lags the requests that are on their way."""

    def __init__(self):
        self.limiter, self.admitted = anyio.CapacityLimiter(HEAVY_AT_ONCE), 0


# Per event loop, not per app: the bound is on the process's threads, whichever app asks.
_HEAVY: RunVar[_Heavy] = RunVar("inspector_heavy")


async def heavy(fn: Callable, *args):
    """fn(*args) in a worker thread, with at most HEAVY_AT_ONCE such calls at a time."""
    try:
        h = _HEAVY.get()
    except LookupError:
        h = _Heavy()
        _HEAVY.set(h)
    if h.admitted >= HEAVY_AT_ONCE + HEAVY_WAITING:
        raise HTTPException(503, "the stats are busy with other requests: try again in a few seconds",
                            headers={"Retry-After": "5"})
    h.admitted += 1
    try:
        return await anyio.to_thread.run_sync(fn, *args, limiter=h.limiter)
    finally:
        h.admitted -= 1


@asynccontextmanager
async def bounded_threads(app):
    # FastAPI runs plain `def` routes in anyio's default pool (40 threads): fewer here.
    anyio.to_thread.current_default_thread_limiter().total_tokens = WEB_THREADS
    yield


def shared_for(seconds: float, fn: Callable[[], dict]) -> Callable[[], dict]:
    """fn's answer, computed at most once per `seconds` however many callers ask."""
    lock, cache = threading.Lock(), {"at": -1e9, "value": None}

    def get() -> dict:
        with lock:
            if time.monotonic() - cache["at"] >= seconds:
                cache["value"], cache["at"] = fn(), time.monotonic()
            return cache["value"]
    return get
