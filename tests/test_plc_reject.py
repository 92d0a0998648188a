"""The reject gate's coil (issue 26): the inspector's real pymodbus client pulsing a coil on a remote
I/O module played by a real pymodbus server on loopback."""

import asyncio
import threading
import time

from pymodbus.datastore import ModbusServerContext

from inspector.config.plc import RejectOutputConfig
from inspector.messages import LineAnswer, LineDecision
from inspector.plc.reject_output import RejectOutput
from inspector.reasoner.local_server import free_port
from tests.conftest import wait_for


class IoModule:
    """A remote I/O module: 16 coils; every write is kept with the time it arrived."""

    def __init__(self, port: int):
        self.port = port
        self.coils = [False] * 16
        self.writes: list[tuple[float, int, bool]] = []
        self._loop = None
        self._stop = None
        self._up = threading.Event()

    def start(self):
        threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True).start()
        assert self._up.wait(10)
        return self

    def stop(self):
        self._loop.call_soon_threadsafe(self._stop.set)

    async def _serve(self):
        from pymodbus.constants import ExcCodes
        from pymodbus.server import ModbusTcpServer

        module = self

        class Coils(ModbusServerContext):
            def __init__(self):  # noqa: D107 - no pymodbus devices: every request comes here
                self.old_simulator = True
                self.simdevices = []
                self._devices = {1: None}

            def device_ids(self):
                return [1]

            async def async_getValues(self, device_id, func_code, address, count=1):
                if func_code not in (1, 5, 15) or address + count > 16:
                    return ExcCodes(2)
                return module.coils[address:address + count]

            async def async_setValues(self, device_id, func_code, address, values):
                if func_code not in (5, 15) or address + len(values) > 16:
                    return ExcCodes(2)
                for i, v in enumerate(values):
                    module.coils[address + i] = bool(v)
                    module.writes.append((time.monotonic(), address + i, bool(v)))
                return None

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = ModbusTcpServer(Coils(), address=("127.0.0.1", self.port))
        await server.serve_forever(background=True)
        self._up.set()
        await self._stop.wait()
        await server.shutdown()

    def pulses(self, coil: int) -> list[tuple[float, float]]:
        out, on = [], None
        for t, c, v in self.writes:
            if c != coil:
                continue
            if v and on is None:
                on = t
            elif not v and on is not None:
                out.append((on, t))
                on = None
        return out


def _ng(part: str, elapsed_ms: float, answer=LineAnswer.ng, camera="cam1") -> LineDecision:
    return LineDecision(uid=f"u-{part}", camera_id=camera, seq=1, product="p", answer=answer, basis="deadline",
                        policy="reject", verdict_kind=None, captured_wall=time.time(), decided_wall=time.time(),
                        elapsed_ms=elapsed_ms, deadline_ms=300, part_id=part)


def test_ng_parts_pulse_the_gate_coil_after_the_conveyor_delay():
    port = free_port()
    module = IoModule(port).start()
    cfg = RejectOutputConfig(enabled=True, port=port, coil=3, delay_ms=400, pulse_ms=150)
    out = RejectOutput(cfg, "cam1")
    out.start()
    try:
        assert wait_for(lambda: out.connected, 10)
        t_taken = time.monotonic() - 0.05
        out.decision(_ng("A", 50))  # decided 50 ms after its image: the gate is 350 ms away
        out.decision(_ng("B", 50, LineAnswer.ok))  # OK parts pass
        out.decision(_ng("C", 50, camera="cam2"))  # another camera's parts are not this gate's
        out.decision(_ng("D", 900))  # decided after the part passed the gate: not fired, counted
        assert wait_for(lambda: len(module.pulses(3)) == 1, 10)
        on, off = module.pulses(3)[0]
        # Never early: the pulse starts no sooner than the delay after the part was taken, and
        # lasts at least the pulse width (a busy box may only make either longer).
        assert on - t_taken >= 0.4 - 0.005 and off - on >= 0.15 - 0.005
        assert (out.pulses, out.missed, out.errors) == (1, 1, 0)
        # Two NG parts closer than the pulse width: one longer pulse, both counted.
        out.decision(_ng("E", 0))
        out.decision(_ng("F", 0))
        assert wait_for(lambda: len(module.pulses(3)) == 2, 10)
        assert out.pulses == 3 and not module.coils[3]
        st = out.status()
        assert (st.kind, st.ready, st.triggers, st.overruns, st.camera) == ("reject", True, 3, 1, "cam1")
    finally:
        out.stop()
        module.stop()


def test_an_io_module_that_is_away_is_counted_and_found_again():
    port = free_port()
    cfg = RejectOutputConfig(enabled=True, port=port, coil=0, delay_ms=0, pulse_ms=20)
    out = RejectOutput(cfg, "cam1")
    out.start()
    module = None
    try:
        out.decision(_ng("A", 10))
        assert wait_for(lambda: out.errors >= 1, 15)
        st = out.status()
        assert not st.ready and st.errors >= 1 and st.message
        module = IoModule(port).start()
        out.decision(_ng("B", 10))
        assert wait_for(lambda: len(module.pulses(0)) == 1, 15)
        assert out.status().ready and not module.coils[0]
    finally:
        out.stop()
        if module is not None:
            module.stop()
