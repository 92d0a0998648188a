"""The reject gate, driven directly: a coil on a remote I/O module pulsed over Modbus TCP (the
inspector is the client), as plants wire gates when no PLC program should sit in between.

Each NG line decision of the camera schedules one pulse `delay_ms` after the part's image was
taken (the conveyor's travel from the camera to the gate), `pulse_ms` long; pulses that overlap
merge into one longer pulse. A decision that comes after its part has passed the gate is not
fired (it would throw out the part behind it) but counted and logged as missed: the deadline
must be shorter than the delay. The I/O module going away is retried on every pulse; pulses it
misses are counted as errors.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time

from inspector.messages import LineAnswer, LineDecision

log = logging.getLogger(__name__)


class RejectOutput:
    def __init__(self, cfg, camera: str):
        self.cfg, self.camera = cfg, camera
        self._heap: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._client = None
        self.connected = False
        self.pulses = self.missed = self.errors = 0
        self.last_error = ""
        self.log: list[tuple[float, float]] = []  # (on, off) monotonic, the newest 1000 (tests, bench)

    def decision(self, d: LineDecision) -> None:
        if d.camera_id != self.camera or d.answer is not LineAnswer.ng:
            return
        now = time.monotonic()
        taken = now - d.elapsed_ms / 1000.0
        due = taken + self.cfg.delay_ms / 1000.0
        with self._cond:
            if self.cfg.delay_ms and now > due:
                self.missed += 1
                log.error("reject for part %s missed: decided %.0f ms after its image, the gate is %d ms "
                          "downstream", d.part_id or d.uid, d.elapsed_ms, self.cfg.delay_ms)
                return
            heapq.heappush(self._heap, (due, d.part_id or d.uid))
            self._cond.notify()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="plc-reject", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self):
        from inspector.line.status import PlcLinkStatus

        return PlcLinkStatus(kind="reject", listen=f"{self.cfg.host}:{self.cfg.port} coil {self.cfg.coil}",
                             camera=self.camera, ready=self.connected, clients=1 if self.connected else 0,
                             triggers=self.pulses, overruns=self.missed, errors=self.errors,
                             message=self.last_error, state=None)

    # --- the pulse thread -----------------------------------------------------------------------

    def _run(self) -> None:
        self._connect()
        on_until: float | None = None
        on_since = 0.0
        while True:
            with self._cond:
                if self._stop:
                    break
                now = time.monotonic()
                wake = [t for t in (on_until, self._heap[0][0] if self._heap else None) if t is not None]
                if not wake or min(wake) > now:
                    self._cond.wait(min(wake) - now if wake else 1.0)
                    continue
                starting = []
                while self._heap and self._heap[0][0] <= now:
                    starting.append(heapq.heappop(self._heap)[1])
            end = time.monotonic() + self.cfg.pulse_ms / 1000.0
            if starting:
                self.pulses += len(starting)
                if on_until is None:
                    if self._write(True, starting):
                        on_since, on_until = time.monotonic(), time.monotonic() + self.cfg.pulse_ms / 1000.0
                else:
                    on_until = max(on_until, end)  # merges with the pulse already on
            if on_until is not None and time.monotonic() >= on_until:
                self._write(False, [])
                self.log.append((on_since, time.monotonic()))
                del self.log[:-1000]
                on_until = None
        if on_until is not None:
            self._write(False, [])
        if self._client is not None:
            self._client.close()

    def _connect(self) -> bool:
        from pymodbus.client import ModbusTcpClient

        if self._client is None:
            self._client = ModbusTcpClient(self.cfg.host, port=self.cfg.port, timeout=1, retries=0)
        try:
            self.connected = bool(self._client.connect())
        except Exception as e:
            self.connected, self.last_error = False, str(e)
        if not self.connected and not self.last_error:
            self.last_error = f"I/O module {self.cfg.host}:{self.cfg.port} unreachable"
        return self.connected

    def _write(self, on: bool, parts: list[str]) -> bool:
        for attempt in range(2):  # a dropped connection gets one reconnect
            if not self.connected and not self._connect():
                continue
            try:
                r = self._client.write_coil(self.cfg.coil, on, device_id=self.cfg.device_id)
                if not r.isError():
                    self.last_error = ""
                    return True
                self.last_error = f"I/O module refused coil {self.cfg.coil}: {r}"
                break
            except Exception as e:  # ConnectionException, ModbusIOException
                self.connected, self.last_error = False, f"{type(e).__name__}: {e}"
                self._client.close()
        self.errors += 1
        log.error("reject coil %s %s failed%s: %s", self.cfg.coil, "on" if on else "off",
                  f" (parts {', '.join(parts)})" if parts else "", self.last_error)
        return False
