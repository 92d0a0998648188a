"""The bounded buffer between the cameras' capture workers and the pre-filter.

Each camera has its own small queue with its own policy, so a fast camera cannot crowd out a slow
one and capture never waits on processing:
- `latest`: keep only the newest frame; one still waiting is replaced (live cameras: the
  pre-filter always sees the present).
- `drop_oldest`: a full queue drops its oldest frame to take the new one.
- `block`: capture waits for room. Nothing is lost, so only for offline replay (files, folders).
Every dropped frame is counted per camera. The consumer takes frames round-robin over cameras.
"""

from __future__ import annotations

import threading
from collections import deque

POLICIES = ("latest", "drop_oldest", "block")


class FrameBuffer:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queues: dict[str, deque] = {}
        self._sizes: dict[str, int] = {}
        self._policies: dict[str, str] = {}
        self._open: set[str] = set()
        self._order: list[str] = []
        self._next = 0
        self.dropped: dict[str, int] = {}
        # Called with (camera, frames) for frames a `latest` or `drop_oldest` buffer let go.
        self.on_drop = None

    def add_camera(self, camera: str, policy: str, size: int) -> None:
        if policy not in POLICIES:
            raise ValueError(f"buffer policy {policy!r}: expected one of {POLICIES}")
        if size < 1:
            raise ValueError(f"buffer size must be >= 1, got {size}")
        with self._cond:
            self._queues[camera], self._sizes[camera] = deque(), size
            self._policies[camera] = policy
            self._open.add(camera)
            self._order.append(camera)
            self.dropped[camera] = 0

    def put(self, camera: str, frame, stop: threading.Event | None = None) -> bool:
        """Queue a frame; False only when `block` was interrupted by `stop`."""
        lost = []
        with self._cond:
            q, size, policy = self._queues[camera], self._sizes[camera], self._policies[camera]
            if policy == "block":
                while len(q) >= size:
                    if stop is not None and stop.is_set():
                        return False
                    self._cond.wait(0.2)
            elif policy == "latest" and q:
                self.dropped[camera] += len(q)
                lost = list(q)
                q.clear()
            elif len(q) >= size:
                lost = [q.popleft()]
                self.dropped[camera] += 1
            q.append(frame)
            self._cond.notify_all()
        if lost and self.on_drop is not None:  # outside the lock: the listener may take its time
            self.on_drop(camera, lost)
        return True

    def drain(self) -> list:
        """Every frame still waiting, taken out (the line is stopping)."""
        with self._cond:
            left = [f for q in self._queues.values() for f in q]
            for q in self._queues.values():
                q.clear()
            return left

    def close(self, camera: str) -> None:
        """The camera will send no more frames (exhausted or failed)."""
        with self._cond:
            self._open.discard(camera)
            self._cond.notify_all()

    def get(self, timeout: float | None = None):
        """The next frame, round-robin over cameras; None when every camera is closed and drained.
        Raises TimeoutError when nothing came within `timeout`."""
        with self._cond:
            while True:
                n = len(self._order)
                for i in range(n):
                    cam = self._order[(self._next + i) % n]
                    if self._queues[cam]:
                        self._next = (self._next + i + 1) % n
                        frame = self._queues[cam].popleft()
                        self._cond.notify_all()  # room for a blocked producer
                        return frame
                if not self._open:
                    return None
                if not self._cond.wait(timeout):
                    raise TimeoutError

    def depth(self, camera: str | None = None) -> int:
        with self._cond:
            if camera is not None:
                return len(self._queues[camera])
            return sum(len(q) for q in self._queues.values())
