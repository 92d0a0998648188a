"""`inspector bench plc`: from a PLC's trigger to its result, over Modbus TCP, in one run.

A real pymodbus client plays the PLC against the inspector's Modbus server on loopback, with the
detector only, demo parts replayed at 100 frames/s behind a software trigger. Measured:
1. the bare round trip of the same stack: one holding-register read;
2. the bare pre-filter: `detect` on a demo frame;
3. trigger to ResultReady: PartId and Trigger written, ResultReady polled as fast as the stack
   answers, per part; p50 and p99.
The target: the p50 under 2x (round trip + pre-filter). What is left is the camera's next frame
(up to 10 ms at 100 frames/s), judging and the decision's hand-off.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main(parts: int = 50, as_json: bool = False) -> int:
    from pymodbus.client import ModbusTcpClient

    from inspector.bench.line import bare_prefilter
    from inspector.config import parse_config
    from inspector.demo.line import ROI, generate
    from inspector.line.pipeline import Pipeline
    from inspector.plc import start_plc
    from inspector.plc.modbus import addr
    from inspector.reasoner.local_server import free_port

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        line = generate(d / "demo", parts=24, seed=11, defect_rate=0.4)
        pre = statistics.median(bare_prefilter(line.frames_dir, d / "bare"))
        port = free_port()
        cfg = parse_config({
            "data_dir": str(d / "data"), "web": {"enabled": False},
            "cameras": [{"id": "cam1", "trigger": {"mode": "software"}, "roi": list(ROI),
                         "source": {"type": "folder", "path": str(line.frames_dir), "loop": True, "fps": 100}}],
            "plc": {"modbus": {"enabled": True, "port": port}}})
        pipe = Pipeline(cfg)
        pipe.start()
        servers = start_plc(cfg, pipe)
        inside = []  # the line's own trigger-to-decision time, per part
        pipe.on_decision.append(lambda d: inside.append(d.elapsed_ms))
        c = ModbusTcpClient("127.0.0.1", port=port)
        try:
            if not c.connect():
                raise RuntimeError(f"cannot connect to the Modbus server on port {port}")
            rt = []
            for _ in range(200):
                t = time.perf_counter()
                c.read_holding_registers(addr("Ready"), count=1)
                rt.append((time.perf_counter() - t) * 1000)
            rt = rt[20:]
            took = []
            for k in range(1, parts + 1):
                c.write_registers(addr("PartId"), [0, k])
                t = time.perf_counter()
                c.write_register(addr("Trigger"), 1)
                while True:
                    r = c.read_holding_registers(addr("ResultReady"), count=6).registers
                    if r[0] == 1 and r[5] == k % 65536:  # ResultReady, JobCounter
                        break
                    if time.perf_counter() - t > 30:
                        raise RuntimeError(f"no result for part {k} within 30 s")
                took.append((time.perf_counter() - t) * 1000)
                c.write_registers(addr("Trigger"), [0])
                c.write_register(addr("ResultAck"), 1)
                c.write_register(addr("ResultAck"), 0)
        finally:
            c.close()
            for s in servers:
                s.stop()
            pipe.stop()
    bare = statistics.median(rt)
    p50, p99 = float(np.percentile(took, 50)), float(np.percentile(took, 99))
    ratio = p50 / (bare + pre)
    line_p50 = float(np.percentile(inside, 50)) if inside else float("nan")
    res = {"bench": "plc", "link": "modbus", "parts": parts, "round_trip_median_ms": round(bare, 3),
           "line_trigger_to_decision_p50_ms": round(line_p50, 2),
           "prefilter_median_ms": round(pre, 2), "trigger_to_result_p50_ms": round(p50, 2),
           "trigger_to_result_p99_ms": round(p99, 2), "ratio": round(ratio, 2)}
    print(f"PLC bench (Modbus TCP on loopback, pymodbus client, detector only, {parts} parts)")
    print(f"  bare round trip (one register read)   median {bare:7.2f} ms")
    print(f"  bare pre-filter (detect)              median {pre:7.2f} ms")
    print(f"  trigger to ResultReady                p50 {p50:7.2f} ms  p99 {p99:7.2f} ms")
    print(f"    of which the line, trigger request to its decision: p50 {line_p50:7.2f} ms")
    print(f"  p50 / (round trip + pre-filter)       {ratio:.2f} (target < 2)")
    if as_json:
        print(json.dumps(res))
    return 0
