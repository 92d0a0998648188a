"""Modbus TCP for the PLC (issue 26, first part): a real pymodbus client against the inspector's
real pymodbus server on loopback, driving a real line; the handshake's rules on their own."""

import pytest
from pymodbus.client import ModbusTcpClient

from inspector.config import parse_config
from inspector.demo.line import ROI
from inspector.line.pipeline import Pipeline
from inspector.messages import LineAnswer, LineDecision
from inspector.plc import start_plc
from inspector.plc.jobs import JobDesk
from inspector.plc.modbus import (ERR_BUSY, ERR_NO_IMAGE, ERR_OVERFLOW, ERR_RECIPE, ERR_REFUSED, REGISTERS,
                                  VisionHandshake, addr, register_table)
from inspector.plc.vision_state import VisionState
from inspector.reasoner.local_server import free_port
from tests.conftest import wait_for


def reg(c, name):
    a, n, _, _ = REGISTERS[name]
    r = c.read_holding_registers(a, count=n)
    assert not r.isError(), r
    return (r.registers[0] << 16 | r.registers[1]) if n == 2 else r.registers[0]


@pytest.fixture
def plc_line(tmp_path, demo_line):
    port = free_port()
    cfg = parse_config({
        "data_dir": str(tmp_path / "data"), "web": {"enabled": False},
        "products": [{"name": "demo-tile", "recipe": 1}, {"name": "other", "recipe": 2}],
        "cameras": [{"id": "cam1", "trigger": {"mode": "software"}, "roi": list(ROI),
                     "source": {"type": "folder", "path": str(demo_line.frames_dir), "loop": True, "fps": 20}}],
        "plc": {"modbus": {"enabled": True, "port": port, "heartbeat_ms": 100}}})
    pipe = Pipeline(cfg)
    pipe.start()
    servers = start_plc(cfg, pipe)
    client = ModbusTcpClient("127.0.0.1", port=port)
    assert client.connect()
    yield pipe, client, port
    client.close()
    for s in servers:
        s.stop()
    pipe.stop()


def one_part(c, part: int, k: int) -> int:
    """The PLC's side of one part: PartId, Trigger edge, wait ResultReady, read, acknowledge."""
    a = addr("PartId")
    assert not c.write_registers(a, [part >> 16, part & 0xFFFF]).isError()
    assert not c.write_register(addr("Trigger"), 1).isError()
    assert not c.write_register(addr("Trigger"), 0).isError()
    assert wait_for(lambda: reg(c, "ResultReady") == 1 and reg(c, "JobCounter") == k, 20), part
    assert reg(c, "ResultPartId") == part and reg(c, "Busy") == 0
    result = reg(c, "Result")
    assert not c.write_register(addr("ResultAck"), 1).isError()
    assert reg(c, "ResultReady") == 0
    assert not c.write_register(addr("ResultAck"), 0).isError()
    return result


def test_the_plc_triggers_parts_and_reads_their_decisions(plc_line):
    pipe, c, port = plc_line
    assert reg(c, "Ready") == 1 and reg(c, "ActiveRecipe") == 1 and reg(c, "State") == 3
    beat = reg(c, "Heartbeat")
    assert wait_for(lambda: reg(c, "Heartbeat") > beat, 5)
    parts = [70001, 70002, 2**32 - 1, 5]
    results = [one_part(c, p, k) for k, p in enumerate(parts, 1)]
    assert set(results) <= {1, 2}
    # The line is told before the verdict is stored: wait for the last one's write.
    assert wait_for(lambda: {r["part_id"] for r in pipe.store.feed(limit=20)} == {str(p) for p in parts}, 20)
    rows = {r["part_id"]: r for r in pipe.store.feed(limit=20)}
    for p, res in zip(parts, results):  # what the PLC read is what the line decided for that part
        assert rows[str(p)]["line"] == ("ok" if res == 1 else "ng")
    assert reg(c, "Overruns") == 0 and reg(c, "ErrorCode") == 0
    assert wait_for(lambda: reg(c, "FinalCounter") == len(parts), 10)  # the verdicts, as a separate block

    # A PLC that drops the connection and comes back finds the same registers.
    c.close()
    c2 = ModbusTcpClient("127.0.0.1", port=port)
    assert c2.connect()
    assert reg(c2, "JobCounter") == len(parts)
    assert one_part(c2, 42, len(parts) + 1) in (1, 2)

    # Bad input: read-only registers refuse writes, an unknown recipe is an error code; the line
    # keeps going.
    r = c2.write_register(addr("Result"), 1)
    assert r.isError() and r.exception_code == 2
    assert c2.read_holding_registers(38, count=5).isError()  # past the map
    assert not c2.write_register(addr("RecipeIndex"), 9).isError()
    assert reg(c2, "ErrorCode") == ERR_RECIPE and reg(c2, "ActiveRecipe") == 1
    assert pipe.status().cameras[0].product == "demo-tile"
    assert not c2.write_register(addr("RecipeIndex"), 2).isError()
    assert reg(c2, "ActiveRecipe") == 2 and pipe.status().cameras[0].product == "other"
    assert pipe.store.recipe_changes()[0]["by"] == "plc:modbus"
    assert one_part(c2, 43, len(parts) + 2) in (1, 2)
    # The link's state, as the status, health, metrics and STATUS= show it.
    from fastapi.testclient import TestClient

    from inspector.service.notify import status_line
    from inspector.web import create_app
    from tests.conftest import authorize

    assert wait_for(lambda: pipe.status().plc[0].clients == 1, 10)  # the first connection's close is seen
    link = pipe.status().plc[0]
    assert (link.kind, link.camera, link.ready, link.clients, link.triggers) == ("modbus", "cam1", True, 1,
                                                                                len(parts) + 2)
    assert link.error_code == ERR_RECIPE and link.errors == 1
    assert "PLC modbus 1 client(s)" in status_line(pipe.status())
    with TestClient(create_app(pipe.store, pipe.status)) as web:
        authorize(web, pipe.store)
        h = web.get("/api/health").json()
        assert h["plc"][0]["triggers"] == len(parts) + 2
        assert any("PLC modbus" in p and "error code 2" in p for p in h["problems"])
        assert 'id="plc"' in web.get("/health").text
        assert 'inspector_plc_triggers_total{camera="cam1",link="modbus"} 6.0' in web.get("/metrics").text
    c2.close()


def _decision(part: int, answer=LineAnswer.ng) -> LineDecision:
    return LineDecision(uid=f"u{part}", camera_id="cam", seq=part, product="p", answer=answer, basis="verdict",
                        policy=None, verdict_kind="fail", captured_wall=0.0, decided_wall=0.0, elapsed_ms=1.0,
                        deadline_ms=None, part_id=str(part))


def _handshake(triggered=None, recipe=None, cancel=lambda cam, job: True, timeout_s=2.0, **kw):
    triggered = [] if triggered is None else triggered
    desk = JobDesk("modbus", "cam", lambda cam, p, job, product: triggered.append((p, job)), cancel, timeout_s)
    state = VisionState("Operational", "Ready", "")
    return VisionHandshake(desk, lambda *a: None, lambda: recipe, lambda acquiring: state, **kw)


def test_the_handshake_rules():
    triggered = []
    hs = _handshake(triggered, queue_size=2)
    hs.tick()
    hs.write(addr("PartId"), [0, 7])
    hs.write(addr("Trigger"), [1])
    assert [p for p, _ in triggered] == ["7"] and hs.read(addr("Busy"), 1) == [1]
    # A trigger before the image is taken: refused, counted, an error code; no second part.
    hs.write(addr("Trigger"), [0])
    hs.write(addr("Trigger"), [1])
    assert len(triggered) == 1 and hs.read(addr("Overruns"), 1) == [1] and hs.read(addr("ErrorCode"), 1) == [ERR_BUSY]
    # The image is taken: Busy drops, the next trigger is welcome while part 7 is still judged.
    hs.captured("cam", "u7", "7", triggered[0][1])
    assert hs.read(addr("Busy"), 1) == [0]
    hs.write(addr("Trigger"), [0])
    hs.write(addr("PartId"), [0, 8])
    hs.write(addr("Trigger"), [1])
    assert [p for p, _ in triggered] == ["7", "8"] and hs.read(addr("Busy"), 1) == [1]
    hs.captured("cam", "u8", "8", triggered[1][1])
    hs.decision(_decision(7))
    assert hs.read(addr("Busy"), 1) == [0] and hs.read(addr("Result"), 1) == [2]
    hs.write(addr("ResultAck"), [1])
    hs.write(addr("ResultAck"), [0])
    # Results the PLC has not acknowledged wait (2 here); one more is an error, never silent.
    for p in (8, 9, 10, 11):
        hs.decision(_decision(p, LineAnswer.ok))
    assert hs.read(addr("QueuedResults"), 1) == [2] and hs.read(addr("ErrorCode"), 1) == [ERR_OVERFLOW]
    hs.write(addr("ResultAck"), [1])
    # The acknowledge takes the result away; the next is shown only once it drops again, so that
    # a level ResultReady always goes 0 between two results.
    assert hs.read(addr("ResultReady"), 1) == [0] and hs.read(addr("ResultPartId") + 1, 1) == [8]
    hs.write(addr("ResultAck"), [1])  # holding it high acknowledges once: the edge counts
    hs.decision(_decision(13, LineAnswer.ok))  # while ResultAck is high: it queues behind
    assert hs.read(addr("ResultReady"), 1) == [0]
    hs.write(addr("ResultAck"), [0])
    assert hs.read(addr("ResultPartId") + 1, 1) == [9] and hs.read(addr("ResultReady"), 1) == [1]
    assert hs.write(addr("Ready"), [1]) == 2 and hs.write(addr("Trigger"), [1, 0, 0, 0, 0, 1]) == 2
    assert hs.read(39, 2) == 2
    # Decisions of another camera are not this PLC's.
    other = LineDecision(**{**_decision(12).__dict__, "camera_id": "cam2"})
    hs.decision(other)
    assert hs.read(addr("QueuedResults"), 1) == [1]


def test_a_trigger_whose_image_never_comes_is_answered_ng_once():
    triggered = []
    hs = _handshake(triggered, timeout_s=0.05)
    hs.tick()
    hs.write(addr("PartId"), [0, 31])
    hs.write(addr("Trigger"), [1])
    import time

    time.sleep(0.06)
    hs.tick()  # the camera is gone: the request is withdrawn and the part answered NG
    assert hs.read(addr("Busy"), 1) == [0] and hs.read(addr("ErrorCode"), 1) == [ERR_NO_IMAGE]
    assert hs.read(addr("Result"), 1) == [2] and hs.read(addr("ResultPartId") + 1, 1) == [31]
    assert hs.read(addr("JobCounter"), 1) == [1] and hs.desk.timeouts == 1
    # Should a frame still come for it, it is not this PLC's job any more.
    assert hs.desk.captured("cam", "late", "31", triggered[0][1]) is None
    hs.tick()
    assert hs.read(addr("JobCounter"), 1) == [1]


def test_a_trigger_outside_ready_is_refused_with_an_error_code():
    triggered = []
    desk = JobDesk("modbus", "cam", lambda cam, p, job, product: triggered.append(p), lambda *a: True)
    hs = VisionHandshake(desk, lambda *a: None, lambda: None,
                         lambda acquiring: VisionState("Error", None, "camera cam failed"))
    hs.tick()
    hs.write(addr("Trigger"), [1])
    assert triggered == [] and hs.read(addr("ErrorCode"), 1) == [ERR_REFUSED]
    assert hs.read(addr("Ready"), 1) == [0] and hs.read(addr("State"), 1) == [2]


def test_a_stopping_inspector_stays_error_for_the_plc_whatever_the_line_says():
    hs = _handshake()
    hs.tick()
    assert hs.read(addr("State"), 1) == [3] and hs.read(addr("Ready"), 1) == [1]
    hs.stopping()
    hs.tick()  # the server's own loop goes on ticking during the linger
    assert hs.read(addr("State"), 1) == [2] and hs.read(addr("Ready"), 1) == [0]
    assert hs.state.message == "the inspector is stopping"


def test_toggle_mode_flips_result_ready():
    hs = _handshake(recipe=4, toggle=True)
    assert hs.read(addr("ActiveRecipe"), 1) == [4]
    hs.decision(_decision(1))
    assert hs.read(addr("ResultReady"), 1) == [1]
    hs.write(addr("ResultAck"), [1])
    hs.write(addr("ResultAck"), [0])
    hs.decision(_decision(2))
    assert hs.read(addr("ResultReady"), 1) == [0] and hs.read(addr("JobCounter"), 1) == [2]


def test_the_register_map_is_documented():
    table = register_table()
    for name in REGISTERS:
        assert f"| {name} |" in table
    # no two registers overlap
    used = [a + i for a, n, _, _ in REGISTERS.values() for i in range(n)]
    assert len(used) == len(set(used))


def test_a_port_in_use_is_a_clear_error(tmp_path):
    import socket

    from inspector.plc import PlcError
    from inspector.plc.modbus import ModbusServer

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        hs = _handshake()
        with pytest.raises(PlcError, match=f"cannot listen on 127.0.0.1:{port}"):
            ModbusServer(hs, "127.0.0.1", port, 500).start()
    finally:
        s.close()



def test_the_readme_shows_the_register_map_the_code_serves():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert register_table() in readme


def test_a_verdict_that_decided_shows_its_defect_code_with_the_result():
    hs = _handshake(defects={"p": ["scratch", "stain", "dent"]})
    d = _decision(5)
    hs.decision(LineDecision(**{**d.__dict__, "defects": ("stain", "scratch")}))
    assert hs.read(addr("Result"), 1) == [2] and hs.read(addr("DefectCode"), 1) == [2]
    hs.write(addr("ResultAck"), [1])
    hs.write(addr("ResultAck"), [0])
    hs.decision(LineDecision(**{**_decision(6).__dict__, "defects": ("crack",)}))  # not the product's
    assert hs.read(addr("DefectCode"), 1) == [255]
