"""Modbus TCP for PLCs without an OPC UA client: the classic vision handshake on holding registers.

The PLC writes PartId and then a rising edge on Trigger; the inspector is Busy until the line
decision for that part is published, which it shows as Result (1 OK, 2 NG) with ResultPartId,
counts in JobCounter and signals with ResultReady. The PLC acknowledges with a rising edge on
ResultAck; results that come before the acknowledgement wait in a short queue (overflow is an
error code, never a silent loss). The VLM's later verdict goes to a separate "final result"
block and never changes what the line was told. The state lives in the server, so a PLC that
reconnects reads the same registers it left.

The register map (0-based holding registers; `REGISTERS` is the one source of it):
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from inspector.messages import LineAnswer, LineDecision, Verdict, VerdictKind
from inspector.plc.jobs import JobBusy, JobDesk, JobRefused, defect_code, result_code
from inspector.plc.loop_thread import LoopThread
from inspector.plc.vision_state import ERROR, READY, VisionState

log = logging.getLogger(__name__)

# name: (address, words, PLC may write, meaning)
REGISTERS: dict[str, tuple[int, int, bool, str]] = {
    "Trigger": (0, 1, True, "rising edge 0 -> 1: inspect the next part"),
    "PartId": (1, 2, True, "the next part's id, 32-bit, high word first, written before Trigger "
                           "(0: none; the part's printed code is read if the product has one)"),
    "RecipeIndex": (3, 1, True, "write a products[].recipe number to change over; 0 leaves the recipe"),
    "ResultAck": (4, 1, True, "rising edge 0 -> 1: the shown result is taken (ResultReady drops); "
                              "back to 0: the next waiting result is shown"),
    "Ready": (10, 1, False, "1 while the line runs and takes triggers (State 3 or 4)"),
    "Busy": (11, 1, False, "1 from a trigger until its image is taken; a trigger now is an overrun"),
    "ResultReady": (12, 1, False, "level: 1 while a result waits for ResultAck; toggle: flips per result"),
    "Result": (13, 1, False, "the line decision shown: 0 none, 1 OK, 2 NG"),
    "DefectCode": (14, 1, False, "the first finding's type when the verdict decided (1-based place in the "
                                 "product's defects, 255 other), else 0; later verdicts: the final block"),
    "ResultPartId": (15, 2, False, "the part the shown result is for, 32-bit, high word first"),
    "JobCounter": (17, 1, False, "line decisions shown so far, modulo 65536"),
    "Heartbeat": (18, 1, False, "increments every plc.modbus.heartbeat_ms while the inspector runs"),
    "ErrorCode": (19, 1, False, "the last error: 0 none, 1 trigger while busy, 2 unknown recipe, "
                                "3 result queue overflow, 4 trigger refused by the line, "
                                "5 no image in time (the part is answered NG)"),
    "Overruns": (20, 1, False, "triggers refused because the inspector was busy, modulo 65536"),
    "ActiveRecipe": (21, 1, False, "the recipe number in force (65535: the product has none)"),
    "QueuedResults": (22, 1, False, "results waiting behind the shown one"),
    "State": (23, 1, False, "OPC 40100-1's state: 0 Preoperational, 2 Error, 3 Ready, "
                            "4 SingleExecution (acquiring), 5 ContinuousExecution"),
    "FinalPartId": (30, 2, False, "final result block: the part, 32-bit (the VLM's later verdict)"),
    "FinalResult": (32, 1, False, "1 pass, 2 fail, 3 review"),
    "FinalDefectCode": (33, 1, False, "the first finding's type: its 1-based place in the product's "
                                      "defects, 255 other, 0 none"),
    "FinalCounter": (34, 1, False, "final results published, modulo 65536"),
}
SIZE = 40
STOP_LINGER_S = 0.3
TICK_S = 0.05  # how often the state and a trigger's image timeout are looked at
WRITABLE = {a for a, n, w, _ in REGISTERS.values() if w for a in range(a, a + n)}
ERR_BUSY, ERR_RECIPE, ERR_OVERFLOW, ERR_REFUSED, ERR_NO_IMAGE = 1, 2, 3, 4, 5
# Modbus exception codes
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS = 1, 2


def addr(name: str) -> int:
    return REGISTERS[name][0]


@dataclass(frozen=True)
class _Result:
    part: int
    code: int
    defect: int = 0


class VisionHandshake:
    """The register state and its rules, without any I/O (the server and the line call it)."""

    def __init__(self, desk: JobDesk, change_recipe, recipe_of, state_of, *, queue_size: int = 8,
                 toggle: bool = False, defects: dict[str, list[str]] | None = None):
        self.desk = desk
        self.camera = desk.camera
        self._change_recipe = change_recipe  # (camera, number, by) -> (from, to)
        self._recipe_of = recipe_of  # () -> recipe number in force, or None
        self._state_of = state_of  # (acquiring) -> VisionState
        self.toggle = toggle
        self.defects = defects or {}
        self.regs = [0] * SIZE
        self.lock = threading.Lock()
        self.queue: deque[_Result] = deque()
        self.queue_size = queue_size
        self.showing = False
        self.ack_high = False  # ResultAck is 1: the next result waits for it to drop
        self.errors = 0
        self.state: VisionState | None = None
        self.stopped = False
        self._set("ActiveRecipe", self._recipe_number())

    @property
    def triggers(self) -> int:
        return self.desk.jobs

    @property
    def overruns(self) -> int:
        return self.desk.overruns

    # --- registers ------------------------------------------------------------------------------

    def _set(self, name: str, value: int) -> None:
        a, n, _, _ = REGISTERS[name]
        if n == 2:
            self.regs[a], self.regs[a + 1] = (value >> 16) & 0xFFFF, value & 0xFFFF
        else:
            self.regs[a] = value & 0xFFFF

    def _get(self, name: str) -> int:
        a, n, _, _ = REGISTERS[name]
        return (self.regs[a] << 16 | self.regs[a + 1]) if n == 2 else self.regs[a]

    def _error(self, code: int) -> None:
        self.errors += 1
        self._set("ErrorCode", code)

    def _recipe_number(self) -> int:
        n = self._recipe_of()
        return 0xFFFF if n is None else n

    def read(self, address: int, count: int) -> list[int] | int:
        if address < 0 or count < 1 or address + count > SIZE:
            return ILLEGAL_ADDRESS
        with self.lock:
            return self.regs[address:address + count]

    def write(self, address: int, values: list[int]) -> int | None:
        """A PLC write: None, or a Modbus exception code (nothing is written then)."""
        if address < 0 or not values or address + len(values) > SIZE or \
                any(a not in WRITABLE for a in range(address, address + len(values))):
            return ILLEGAL_ADDRESS
        actions = []
        with self.lock:
            before = list(self.regs)
            for i, v in enumerate(values):
                self.regs[address + i] = int(v) & 0xFFFF
            if before[addr("Trigger")] == 0 and self.regs[addr("Trigger")] == 1:
                actions.append(("trigger", self._get("PartId")))
            if before[addr("ResultAck")] == 0 and self.regs[addr("ResultAck")] == 1:
                self._on_ack()
            elif before[addr("ResultAck")] == 1 and self.regs[addr("ResultAck")] == 0:
                self._on_ack_low()
            if self.regs[addr("RecipeIndex")] != before[addr("RecipeIndex")] and self.regs[addr("RecipeIndex")]:
                actions.append(("recipe", self.regs[addr("RecipeIndex")]))
        for act in actions:  # outside the lock: the camera may take the frame at once
            self._act(*act)
        return None

    # --- the PLC's edges ------------------------------------------------------------------------

    def _act(self, kind: str, value: int) -> None:
        if kind == "trigger":
            if self.state is not None and self.state.name not in (READY, "SingleExecution"):
                with self.lock:
                    self._error(ERR_REFUSED)
                log.error("PLC trigger for part %d refused: the vision system is %s (%s)", value,
                          self.state.name, self.state.message)
                return
            try:
                self.desk.start(str(value) if value else None)
            except JobBusy:
                with self.lock:
                    self._set("Overruns", self.desk.overruns)
                    self._error(ERR_BUSY)
            except JobRefused as e:  # too many waiting, line down
                log.error("PLC trigger for part %d refused: %s", value, e)
                with self.lock:
                    self._error(ERR_REFUSED)
            with self.lock:
                self._set("Busy", 1 if self.desk.acquiring is not None else 0)
        elif kind == "recipe":
            try:
                self._change_recipe(self.camera, value, "plc:modbus")
            except Exception as e:
                log.error("PLC recipe %d refused: %s", value, e)
                with self.lock:
                    self._error(ERR_RECIPE)
                return
            with self.lock:
                self._set("ActiveRecipe", self._recipe_number())

    def _on_ack(self) -> None:
        if not self.showing:
            return
        self.showing = False
        self.ack_high = True
        if not self.toggle:
            self._set("ResultReady", 0)

    def _on_ack_low(self) -> None:
        # The next result only once ResultAck is back to 0: with a level ResultReady, the PLC
        # could not tell a new result from the one it just acknowledged otherwise.
        self.ack_high = False
        if self.queue and not self.showing:
            self._show(self.queue.popleft())
        self._set("QueuedResults", len(self.queue))

    def _show(self, r: _Result) -> None:
        self._set("Result", r.code)
        self._set("DefectCode", r.defect)
        self._set("ResultPartId", r.part)
        self._set("JobCounter", self._get("JobCounter") + 1)
        self._set("ResultReady", (self._get("ResultReady") ^ 1) if self.toggle else 1)
        self.showing = True

    def _publish(self, part: int, code: int, defect: int = 0) -> None:
        r = _Result(part, code, defect)
        if not self.showing and not self.ack_high and not self.queue:
            self._show(r)
        elif len(self.queue) < self.queue_size:
            self.queue.append(r)
        else:
            self._error(ERR_OVERFLOW)
            log.error("PLC result queue full (%d): the result for part %d is not shown", self.queue_size, part)
        self._set("QueuedResults", len(self.queue))

    # --- the line's side ------------------------------------------------------------------------

    def captured(self, camera: str, uid: str, part_id, job_id) -> None:
        if self.desk.captured(camera, uid, part_id, job_id) is not None:
            with self.lock:
                self._set("Busy", 1 if self.desk.acquiring is not None else 0)

    def decision(self, d: LineDecision) -> None:
        if d.camera_id != self.camera:
            return
        self.desk.decided(d)
        defect = defect_code(self.defects.get(d.product, []), d.defects[0]) if d.defects else 0
        with self.lock:
            self._publish(_part_number(d.part_id), result_code(d.answer), defect)

    def final(self, _inspection_id, _uid, verdict: Verdict) -> None:
        f = verdict.frame
        if f.camera_id != self.camera:
            return
        code = {VerdictKind.passed: 1, VerdictKind.fail: 2, VerdictKind.review: 3}[verdict.kind]
        defect = defect_code(self.defects.get(f.product, []),
                             verdict.findings[0].defect_type if verdict.findings else None)
        with self.lock:
            self._set("FinalPartId", _part_number(f.part_id))
            self._set("FinalResult", code)
            self._set("FinalDefectCode", defect)
            self._set("FinalCounter", self._get("FinalCounter") + 1)

    def tick(self) -> None:
        """Every few tens of ms: the state, and a trigger whose image never came."""
        late = self.desk.expire()
        state = self.current_state()
        with self.lock:
            self.state = state
            self._set("State", state.number)
            self._set("Ready", 1 if state.main == "Operational" else 0)
            if late is not None:
                self._set("Busy", 0)
                self._error(ERR_NO_IMAGE)
                log.error("PLC part %s: no image within %.1f s; answered NG", late.part_id,
                          self.desk.acquire_timeout_s)
                self._publish(_part_number(late.part_id), result_code(LineAnswer.ng))

    def current_state(self) -> VisionState:
        if self.stopped:
            return VisionState(ERROR, None, "the inspector is stopping")
        return self._state_of(self.desk.acquiring is not None)

    def beat(self) -> None:
        with self.lock:
            self._set("Heartbeat", self._get("Heartbeat") + 1)

    def stopping(self) -> None:
        """Error from now on: the server goes on answering a moment so that the PLC reads it."""
        self.stopped = True
        self.tick()


def _part_number(part_id: str | None) -> int:
    """A part id as the 32-bit number the PLC gave (0 when it is not one)."""
    if part_id is not None and part_id.isdigit() and int(part_id) < 2**32:
        return int(part_id)
    return 0


class ModbusServer(LoopThread):
    """pymodbus' TCP server on an asyncio loop of its own thread, serving a VisionHandshake."""

    thread_name = "plc-modbus"

    def __init__(self, handshake: VisionHandshake, host: str, port: int, heartbeat_ms: int):
        self.hs = handshake
        self.host, self.port = host, port
        self.heartbeat_s = heartbeat_ms / 1000.0
        self.clients = 0
        super().__init__()

    def describe(self) -> str:
        return f"Modbus TCP server on {self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        self._start_thread(timeout)
        self.hs.tick()

    def stop(self, timeout: float = 5.0) -> None:
        self.hs.stopping()
        time.sleep(STOP_LINGER_S)  # a PLC polling every 100 ms reads State 2 before the socket closes
        self._stop_thread(timeout)

    def status(self):
        from inspector.line.status import PlcLinkStatus

        hs = self.hs
        state = hs.current_state()  # now, not as of the registers' last tick
        with hs.lock:
            return PlcLinkStatus(kind="modbus", listen=f"{self.host}:{self.port}", camera=hs.camera,
                                 ready=state.main == "Operational", clients=max(0, self.clients),
                                 triggers=hs.triggers, overruns=hs.overruns, errors=hs.errors,
                                 error_code=hs._get("ErrorCode"), queued_results=len(hs.queue),
                                 state=state.name, message=state.message,
                                 last_trigger_wall=hs.desk.last_trigger_wall, no_image=hs.desk.timeouts)

    async def _serve(self) -> None:
        from pymodbus.server import ModbusTcpServer

        def connected(up: bool) -> None:
            self.clients += 1 if up else -1

        try:
            server = ModbusTcpServer(_Context(self.hs), address=(self.host, self.port), trace_connect=connected)
            await server.serve_forever(background=True)
        except (OSError, RuntimeError) as e:
            self._refused(f"Modbus TCP server cannot listen on {self.host}:{self.port}: {e}")
            return
        sock = server.transport.sockets[0] if getattr(server.transport, "sockets", None) else None
        if sock is not None:
            self.port = sock.getsockname()[1]
        self._serving()
        next_beat = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_beat:
                    self.hs.beat()
                    next_beat = now + self.heartbeat_s
                self.hs.tick()
                try:
                    await asyncio.wait_for(self._stop.wait(), TICK_S)
                except asyncio.TimeoutError:
                    pass
        finally:
            await server.shutdown()


def _context_class():
    from pymodbus.datastore import ModbusServerContext

    class Context(ModbusServerContext):
        """Every request goes to the handshake; function codes other than the holding-register
        ones are refused."""

        def __init__(self, hs: VisionHandshake):  # noqa: D107 - no devices of pymodbus' own
            self.hs = hs
            self.old_simulator = True  # "serve through my async get/set", in pymodbus' terms
            self.simdevices = []
            self._devices = {0: None}

        def device_ids(self):
            return [0]

        async def async_getValues(self, device_id, func_code, address, count=1):
            from pymodbus.constants import ExcCodes

            if func_code not in (3, 23, 6, 16):
                return ExcCodes(ILLEGAL_FUNCTION)
            got = self.hs.read(address, count)
            return ExcCodes(got) if isinstance(got, int) else got

        async def async_setValues(self, device_id, func_code, address, values):
            from pymodbus.constants import ExcCodes

            if func_code not in (6, 16, 23):
                return ExcCodes(ILLEGAL_FUNCTION)
            rc = self.hs.write(address, [int(v) for v in values])
            return ExcCodes(rc) if rc else None

    return Context


def _Context(hs: VisionHandshake):
    return _context_class()(hs)


def register_table() -> str:
    """The register map as a Markdown table (README)."""
    rows = ["| register | address | words | PLC writes | meaning |", "| --- | ---: | ---: | :---: | --- |"]
    for name, (a, n, w, what) in REGISTERS.items():
        rows.append(f"| {name} | {a} | {n} | {'yes' if w else ''} | {what} |")
    return "\n".join(rows)
