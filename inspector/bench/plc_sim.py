"""PLC simulators for `inspector bench plc` and the tests: what a line's controller does, through
the real client stacks (pymodbus, asyncua), against the inspector's PLC interfaces.

Each plays a run of parts: at each part's time it triggers (Modbus: PartId and a Trigger edge,
once Busy is down; OPC UA: StartSingleJob), and it takes every result the inspector publishes
(Modbus: ResultReady / ResultAck; OPC UA: ResultReady events, and GetResultById for jobs whose
events it could not hear while it was disconnected). It can send a second trigger right after a
part's first (an overrun the inspector must refuse and count) and drop its connection midway.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class Part:
    part: str
    triggered: float  # monotonic
    job: str | None = None  # OPC UA: the JobId StartSingleJob returned
    refused: str | None = None  # why the trigger was refused (overrun, state)
    results: list = field(default_factory=list)  # (monotonic, "OK"/"NG") line results heard
    finals: list = field(default_factory=list)  # (monotonic, line decision, final verdict): OPC UA updates
    fetched: bool = False  # its line result came from GetResultById (events missed while away)

    @property
    def latency_ms(self) -> float | None:
        return (self.results[0][0] - self.triggered) * 1000 if self.results else None


@dataclass
class Run:
    parts: list[Part] = field(default_factory=list)
    doubles: list[Part] = field(default_factory=list)  # the second triggers sent
    unknown: list = field(default_factory=list)  # results for no part of ours
    states: list[str] = field(default_factory=list)  # states seen, in order (changes only)
    overruns: int = 0  # what the inspector reported at the end


# --- Modbus TCP --------------------------------------------------------------------------------

class ModbusPlc:
    def __init__(self, host: str, port: int):
        from pymodbus.client import ModbusTcpClient

        self.host, self.port = host, port
        self.client = ModbusTcpClient(host, port=port, timeout=5)

    def connect(self, timeout: float = 30.0, reset: bool = False) -> None:
        end = time.monotonic() + timeout
        while not self.client.connect():
            if time.monotonic() > end:
                raise ConnectionError(f"no Modbus server on {self.host}:{self.port}")
            time.sleep(0.1)
        if reset:  # this PLC program starts its handshake afresh: its outputs go back to 0
            self.write(0, [0])
            self.write(4, [0])

    def close(self) -> None:
        self.client.close()

    def regs(self) -> dict[str, int]:
        from inspector.plc.modbus import REGISTERS

        r = self.client.read_holding_registers(10, count=14)
        if r.isError():
            raise ConnectionError(f"Modbus read failed: {r}")
        v = r.registers
        out = {}
        for name, (a, n, _, _) in REGISTERS.items():
            if 10 <= a < 24:
                out[name] = (v[a - 10] << 16 | v[a - 9]) if n == 2 else v[a - 10]
        return out

    def write(self, address: int, values: list[int]) -> None:
        r = self.client.write_registers(address, values)
        if r.isError():
            raise ConnectionError(f"Modbus write at {address} failed: {r}")

    def run(self, parts: list[int], period_s: float | None, double_every: int = 0,
            disconnect_at: int | None = None, settle_s: float = 10.0, scan_s: float = 0.002) -> Run:
        """`period_s` None: the next part as soon as the last one's result is in (the bench);
        `scan_s`: the PLC's scan cycle (0: as fast as the stack answers)."""
        run = Run()
        by_part: dict[int, Part] = {}
        accepted_doubles: dict[str, int] = {}
        acked = trigger_high = False
        i, due = 0, time.monotonic()
        last_result = time.monotonic()
        while True:
            now = time.monotonic()
            try:
                r = self.regs()
            except ConnectionError:
                self.close()
                self.connect(reset=True)
                acked = trigger_high = False
                continue
            self._state(run, r)
            if r["ResultReady"] == 1 and not acked:
                p = by_part.get(r["ResultPartId"])
                code = {1: "OK", 2: "NG"}.get(r["Result"], str(r["Result"]))
                (p.results if p else run.unknown).append((now, code) if p else (r["ResultPartId"], code))
                self.write(4, [1])
                acked, last_result = True, now
            elif r["ResultReady"] == 0 and acked:
                self.write(4, [0])
                acked = False
            if trigger_high:
                self.write(0, [0])
                trigger_high = False
            waiting = period_s is None and i and not by_part[parts[i - 1]].results
            if i < len(parts) and now >= due and not waiting and not r["Busy"]:
                if disconnect_at is not None and i == disconnect_at:
                    disconnect_at = None
                    self.close()
                    time.sleep(0.3)
                    self.connect(reset=True)
                    acked = trigger_high = False
                    continue
                k = parts[i]
                p = by_part[k] = Part(str(k), time.monotonic())
                before = r["Overruns"]
                self.write(0, [1, k >> 16, k & 0xFFFF])
                if double_every and (i + 1) % double_every == 0:
                    self.write(0, [0])
                    d = Part(str(k), time.monotonic())
                    self.write(0, [1])
                    if self.regs()["Overruns"] != before:
                        d.refused = "overrun"
                    else:
                        accepted_doubles[d.part] = accepted_doubles.get(d.part, 0) + 1
                    run.doubles.append(d)
                run.parts.append(p)
                trigger_high = True
                i += 1
                due = (due + period_s) if period_s else now
            # done when every accepted trigger has its result (a double the inspector took is a job of
            # its own, whose result comes under the same part id, so results are counted per part),
            # or none came for settle_s
            if i >= len(parts) and not r["QueuedResults"] and not acked and \
                    (all(len(by_part[k].results) >= 1 + accepted_doubles.get(str(k), 0) for k in parts)
                     or time.monotonic() - last_result > settle_s):
                break
            if scan_s:
                time.sleep(scan_s)
        run.overruns = self.regs()["Overruns"]
        return run

    @staticmethod
    def _state(run: Run, r: dict) -> None:
        from inspector.plc.vision_state import NUMBERS

        name = next((k for k, v in NUMBERS.items() if v == r["State"]), str(r["State"]))
        if not run.states or run.states[-1] != name:
            run.states.append(name)


# --- OPC UA ------------------------------------------------------------------------------------

class OpcUaPlc:
    def __init__(self, url: str, camera: str, cert, key, user: str, password: str,
                 application_uri: str = "urn:test:plc", sign_only: bool = False, publishing_ms: float = 5):
        self.url, self.camera = url, camera
        self.cert, self.key, self.user, self.password = cert, key, user, password
        self.application_uri = application_uri
        self.sign_only = sign_only
        self.publishing_ms = publishing_ms
        self.client = None
        self.idx = None
        self.events: list[tuple[float, dict]] = []

    async def connect(self) -> None:
        from asyncua import Client, ua
        from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

        from inspector.plc.opcua import NAMESPACE

        c = Client(self.url, timeout=10)
        c.application_uri = self.application_uri
        mode = ua.MessageSecurityMode.Sign if self.sign_only else ua.MessageSecurityMode.SignAndEncrypt
        await c.set_security(SecurityPolicyBasic256Sha256, str(self.cert), str(self.key), mode=mode)
        c.set_user(self.user)
        c.set_password(self.password)
        await c.connect()
        self.client = c
        self.idx = await c.get_namespace_index(NAMESPACE)
        etype = await c.nodes.root.get_child(["0:Types", "0:EventTypes", "0:BaseEventType",
                                              f"{self.idx}:ResultReadyEventType"])
        sub = await c.create_subscription(self.publishing_ms, self)
        await sub.subscribe_events(self.node(""), etype)

    def node(self, path: str):
        from asyncua import ua

        return self.client.get_node(ua.NodeId(f"{self.camera}.{path}" if path else self.camera, self.idx))

    def event_notification(self, ev) -> None:  # asyncua's subscription handler
        from asyncua import ua

        self.events.append((time.monotonic(), {k: (v.Value if isinstance(v, ua.Variant) else v)
                                               for k, v in ev.get_event_props_as_fields_dict().items()}))

    async def close(self) -> None:
        if self.client is not None:
            try:
                await self.client.disconnect()
            except Exception:
                pass
            self.client = None

    async def call(self, obj: str, method: str, *args):
        from asyncua import ua

        return await self.node(obj).call_method(ua.NodeId(f"{self.camera}.{obj}.{method}", self.idx), *args)

    async def start_job(self, part: str):
        from asyncua import ua

        try:
            job, _ = await self.call("VisionStateMachine.AutomaticModeStateMachine", "StartSingleJob", "", part, "", "")
            return job, None
        except ua.UaStatusCodeError as e:
            return None, type(e).__name__  # asyncua's class per status code: BadInvalidState, ...

    async def state(self) -> str:
        main = (await self.node("VisionStateMachine.CurrentState").read_value()).Text
        auto = (await self.node("VisionStateMachine.AutomaticModeStateMachine.CurrentState").read_value()).Text
        return auto if main == "Operational" else main

    async def run(self, parts: list[str], period_s: float | None, double_every: int = 0,
                  disconnect_at: int | None = None, settle_s: float = 10.0) -> Run:
        from asyncua import ua

        run = Run()
        by_job: dict[str, Part] = {}
        seen = 0
        due = time.monotonic()

        def take_events():
            nonlocal seen
            for t, e in self.events[seen:]:
                p = by_job.get(e["JobId"])
                if p is None:
                    run.unknown.append(e)
                elif not p.results:
                    p.results.append((t, e["LineDecision"]))
                    if not e["IsPartial"]:
                        p.finals.append((t, e["LineDecision"], e["FinalVerdict"]))
                elif not e["IsPartial"]:
                    p.finals.append((t, e["LineDecision"], e["FinalVerdict"]))
                else:
                    p.results.append((t, e["LineDecision"]))  # a second line result: a duplicate
            seen = len(self.events)

        for i, part in enumerate(parts):
            if disconnect_at is not None and i == disconnect_at:
                await self.close()
                await asyncio.sleep(0.3)
                await self.connect()
                take_events()
                for p in run.parts:  # what it could not hear while away, asked for by JobId
                    if p.job and not p.results:
                        out = await self.call("ResultManagement", "GetResultById", p.job,
                                              ua.Variant(5000, ua.VariantType.Int32))
                        if out[-1] == 0:
                            p.results.append((time.monotonic(), out[6]))
                            p.fetched = True
            while True:
                take_events()
                now = time.monotonic()
                last = run.parts[-1] if run.parts else None
                if now >= due and (period_s is not None or last is None or last.results or last.refused):
                    break
                await asyncio.sleep(0.001 if period_s is None else min(0.002, max(0.0, due - now)))
            p = Part(part, time.monotonic())
            p.job, p.refused = await self.start_job(part)
            run.parts.append(p)
            if p.job:
                by_job[p.job] = p
            if double_every and (i + 1) % double_every == 0:
                d = Part(part, time.monotonic())
                d.job, d.refused = await self.start_job(part)
                if d.job:
                    by_job[d.job] = d
                run.doubles.append(d)
            due = (due + period_s) if period_s else time.monotonic()
        end = time.monotonic() + settle_s
        while time.monotonic() < end:
            take_events()
            if all(p.results for p in run.parts + run.doubles if p.job):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # final updates still on their way are not what is waited for
        take_events()
        run.overruns = await self.node("Overruns").read_value()
        return run
