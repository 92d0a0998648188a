"""The collector and a long-running process: what is loaded at start-up (libraries, models, the
app) lives until the process ends, yet every full collection walks all of it again. On this box
one full pass over a started inspector takes 70-90 ms, and it comes every few seconds of traffic,
stalling whatever request or frame is running then (`inspector bench web` prints the pass before
and after). Freezing the start-up heap leaves the full passes only the objects made since."""

from __future__ import annotations

import gc
import time


def full_pass_ms() -> float:
    t = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - t) * 1000


def freeze_startup_heap() -> None:
    """Call once, when start-up is done: garbage is collected first so none of it is kept for good."""
    gc.collect()
    gc.freeze()
