"""Circuit breaker: stop hammering a VLM that keeps failing, and try it again after a cool-down.

closed -> (N consecutive failures) -> open -> (cool-down passed) -> half-open: one trial call
-> success closes it, failure opens it again for another cool-down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(self, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic):
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.consecutive = 0
        self.opened_at: float | None = None
        self.last_error = ""
        self.trips = 0  # times it opened, for the status page
        self._trial = False  # a half-open trial call is in flight
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.cooldown_s else "open"

    def allow(self) -> bool:
        """May a call go out now? In half-open state only one trial call at a time."""
        with self._lock:
            st = self._state()
            if st == "closed":
                return True
            if st == "half_open" and not self._trial:
                self._trial = True
                return True
            return False

    def retry_in(self) -> float:
        with self._lock:
            if self.opened_at is None:
                return 0.0
            return max(0.0, self.cooldown_s - (self.clock() - self.opened_at))

    def success(self) -> None:
        with self._lock:
            self.consecutive = 0
            self.opened_at = None
            self._trial = False

    def failure(self, error: str) -> None:
        with self._lock:
            self.consecutive += 1
            self.last_error = error
            if self._trial or (self.opened_at is None and self.consecutive >= self.threshold):
                self.opened_at = self.clock()  # (re)open: a failed trial waits a whole cool-down
                self.trips += 1
            self._trial = False

    def snapshot(self) -> dict:
        with self._lock:
            return {"state": self._state(), "consecutive_failures": self.consecutive,
                    "last_error": self.last_error, "trips": self.trips}
