"""The line's controller (PLC) side: interfaces a PLC triggers parts, names recipes and reads the
line decisions through. Modbus TCP today (`modbus.py`)."""

from __future__ import annotations

from inspector.plc.modbus import ModbusServer, PlcError, VisionHandshake


def start_plc(cfg, pipe) -> list:
    """The configured PLC servers, started and listening to the line; the caller stops them."""
    mb = cfg.plc.modbus
    if not mb.enabled:
        return []
    camera = mb.camera or cfg.cameras[0].id

    def recipe_of():
        return cfg.product(pipe.cameras[camera].product).recipe

    hs = VisionHandshake(camera, pipe.trigger, pipe.change_recipe, recipe_of, queue_size=mb.result_queue,
                         toggle=mb.result_ready == "toggle",
                         defects={p.name: list(p.defects) for p in cfg.products})
    pipe.on_decision.append(hs.decision)
    pipe.on_verdict.append(hs.final)
    server = ModbusServer(hs, mb.host, mb.port, mb.heartbeat_ms)
    server.start()
    pipe.plc_links.append(server)  # its state in the line's status, health, metrics and STATUS=
    return [server]


__all__ = ["ModbusServer", "PlcError", "VisionHandshake", "start_plc"]
