"""The line's controller (PLC) side: the interfaces a PLC triggers parts, names recipes and reads
the line decisions through (OPC UA per OPC 40100-1 in `opcua.py`, Modbus TCP in `modbus.py`),
and the reject gate's output (`reject_output.py`)."""

from __future__ import annotations

from inspector.plc.jobs import JobDesk, PlcError


def start_plc(cfg, pipe) -> list:
    """The configured PLC interfaces, started and listening to the line; the caller stops them
    (in the order given) before it stops the line."""
    started: list = []
    try:
        if cfg.plc.opcua.enabled:
            started.append(_start_opcua(cfg, pipe))
        if cfg.plc.modbus.enabled:
            started.append(_start_modbus(cfg, pipe))
        if cfg.plc.reject_output.enabled:
            started.append(_start_reject(cfg, pipe))
    except BaseException:
        for s in started:
            s.stop(1.0)
        raise
    return started


def _defects(cfg) -> dict[str, list[str]]:
    return {p.name: list(p.defects) for p in cfg.products}


def _start_modbus(cfg, pipe):
    from inspector.plc.modbus import ModbusServer, VisionHandshake
    from inspector.plc.vision_state import line_state

    mb = cfg.plc.modbus
    camera = mb.camera or cfg.cameras[0].id

    def recipe_of():
        return cfg.product(pipe.cameras[camera].product).recipe

    desk = JobDesk("modbus", camera, pipe.trigger, pipe.cancel_trigger, mb.acquire_timeout_ms / 1000)
    hs = VisionHandshake(desk, pipe.change_recipe, recipe_of,
                         lambda acquiring: line_state(pipe, camera, acquiring=acquiring, continuous=False),
                         queue_size=mb.result_queue, toggle=mb.result_ready == "toggle", defects=_defects(cfg))
    server = ModbusServer(hs, mb.host, mb.port, mb.heartbeat_ms)
    pipe.on_capture.append(hs.captured)
    pipe.on_decision.append(hs.decision)
    pipe.on_verdict.append(hs.final)
    server.start()
    pipe.plc_links.append(server)  # its state in the line's status, health, metrics and STATUS=
    return server


def _start_opcua(cfg, pipe):
    from inspector.plc.opcua import OpcUaServer
    from inspector.web.accounts import Accounts

    ua = cfg.plc.opcua
    server = OpcUaServer(ua, pipe, Accounts(pipe.store.engine), ua.pki_dir or cfg.data_dir / "opcua", _defects(cfg))
    pipe.on_capture.append(server.captured)
    pipe.on_decision.append(server.decision)
    pipe.on_verdict.append(server.final)
    server.start()
    pipe.plc_links.extend(server.links())
    return server


def _start_reject(cfg, pipe):
    from inspector.plc.reject_output import RejectOutput

    out = RejectOutput(cfg.plc.reject_output, cfg.plc.reject_output.camera or cfg.cameras[0].id)
    pipe.on_decision.append(out.decision)
    out.start()
    pipe.plc_links.append(out)
    return out


__all__ = ["PlcError", "start_plc"]
