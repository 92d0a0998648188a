"""A PLC link's asyncio server on a thread of its own: `start` returns once it serves, or raises
PlcError saying why not (in one line); `stop` ends its loop from any thread."""

from __future__ import annotations

import asyncio
import logging
import threading

from inspector.plc.jobs import PlcError

log = logging.getLogger(__name__)


class LoopThread:
    thread_name = "plc"

    def __init__(self):
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: str | None = None
        self._stop: asyncio.Event | None = None

    def describe(self) -> str:  # what the errors name
        raise NotImplementedError

    async def _serve(self) -> None:
        """Serves until `self._stop` is set; calls `self._serving()` once it listens, or
        `self._refused(why)` when it cannot."""
        raise NotImplementedError

    def _serving(self) -> None:
        self._started.set()

    def _refused(self, why: str) -> None:
        self._error = why
        self._started.set()

    def _start_thread(self, timeout: float) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise PlcError(f"{self.describe()} did not start within {timeout:.0f} s")
        if self._error:
            raise PlcError(self._error)

    def _stop_thread(self, timeout: float) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop closed between the check and the call: it has stopped
                pass
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except Exception as e:  # never a traceback for a server that could not start
            if not self._started.is_set():
                self._refused(f"{self.describe()}: {e}")
            else:
                log.exception("%s failed", self.describe())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        await self._serve()
