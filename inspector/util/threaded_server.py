"""A uvicorn server in a thread of the current process (the dashboard, the line's socket)."""

from __future__ import annotations

import threading
import time

import uvicorn


def start_in_thread(config: uvicorn.Config, name: str, wait_s: float = 10.0) -> uvicorn.Server | None:
    """Start it and wait until it listens; None if it did not within `wait_s` (the caller says
    what that means for it)."""
    server = uvicorn.Server(config)
    t = threading.Thread(target=server.run, name=name, daemon=True)
    t.start()
    deadline = time.monotonic() + wait_s
    while not server.started and t.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    return server if server.started else None
