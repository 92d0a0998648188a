"""`inspector bench plc`: from a PLC's trigger to its result, over OPC UA and over Modbus TCP, in one run.

The inspector runs as it does at a plant, `inspector run` in a process of its own, with the detector
only; the PLC is another process (this one), playing both links through the real clients
(`plc_sim.py`: asyncua, pymodbus) on loopback, one part at a time. Each camera acquires on the
trigger (`trigger.acquisition: triggered`, as a PLC-triggered camera does) from demo parts stored
as uncompressed BMP (a camera hands over raw pixels; decoding a PNG, about 5 ms here, would be the
replay's own cost). Measured, per link, in the same run:
1. the bare round trip of the same stack: Modbus one holding-register read; OPC UA one method
   call (GetResultById of an unknown id) over Basic256Sha256 SignAndEncrypt, as StartSingleJob is;
2. the bare pre-filter: `detect` on the demo frames, called as the line calls it (the product's
   calibrated threshold and normal statistics);
3. trigger to result: Modbus PartId + Trigger written to ResultReady read (a 1 ms scan cycle);
   OPC UA StartSingleJob called to its ResultReady event received (1 ms publishing interval);
   p50 and p99; and the line's own share, trigger request to decision, from its stored decisions.
The target: p50 under 2x (round trip + pre-filter).
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PASSWORD = "bench-plc-password"
WARMUP = 3  # parts per link not counted


def main(parts: int = 50, as_json: bool = False, acquisition: str = "triggered") -> int:
    import cv2
    import yaml

    from inspector.config import parse_config
    from inspector.bench.plc_sim import ModbusPlc, OpcUaPlc
    from inspector.demo.line import ROI, generate
    from inspector.plc import pki
    from inspector.reasoner.local_server import free_port

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        line = generate(d / "demo", parts=24, seed=11, defect_rate=0.4)
        frames = d / "frames-raw"
        frames.mkdir()
        for f in sorted(line.frames_dir.glob("*.png")):
            cv2.imwrite(str(frames / (f.stem + ".bmp")), cv2.imread(str(f)))
        mb_port, ua_port = free_port(), free_port()
        src = {"type": "folder", "path": str(frames), "loop": True, "fps": 100}
        trig = {"mode": "software", "acquisition": acquisition}
        data = d / "data"
        cfg_path = d / "line.yaml"
        cfg_path.write_text(yaml.safe_dump({
            "data_dir": str(data), "web": {"enabled": False},
            "cameras": [{"id": "cam1", "trigger": trig, "roi": list(ROI), "source": src},
                        {"id": "cam2", "trigger": trig, "roi": list(ROI), "source": src}],
            "plc": {"modbus": {"enabled": True, "port": mb_port, "camera": "cam1"},
                    "opcua": {"enabled": True, "port": ua_port, "cameras": ["cam2"]}}}))
        pre = _bare_prefilter(parse_config(yaml.safe_load(cfg_path.read_text())), frames)
        cli = [sys.executable, "-m", "inspector"]
        made = subprocess.run(cli + ["users", "add", "bench", "--role", "operator", "--password-stdin",
                                     "--config", str(cfg_path)], input=PASSWORD + "\n", capture_output=True, text=True)
        if made.returncode:
            raise RuntimeError(f"cannot add the bench's OPC UA user: {made.stderr.strip()}")
        cert, key = d / "plc.der", d / "plc.pem"
        pki.make_client_certificate(cert, key, "urn:bench:plc")
        (data / "opcua" / "trusted").mkdir(parents=True)
        (data / "opcua" / "trusted" / "plc.der").write_bytes(cert.read_bytes())
        log = open(d / "run.log", "w")
        proc = subprocess.Popen(cli + ["run", "--config", str(cfg_path)], stdout=subprocess.DEVNULL, stderr=log)
        try:
            mb = ModbusPlc("127.0.0.1", mb_port)
            mb.connect(120)
            rt_mb = []
            for _ in range(200):
                t = time.perf_counter()
                mb.client.read_holding_registers(10, count=1)
                rt_mb.append((time.perf_counter() - t) * 1000)
            mb.run([900000 + k for k in range(WARMUP)], None, scan_s=0.001)  # the first detect allocates
            mb_run = mb.run([k + 1 for k in range(parts)], None, scan_s=0.001)
            mb.close()

            async def opcua():
                from asyncua import ua

                plc = OpcUaPlc(f"opc.tcp://127.0.0.1:{ua_port}", "cam2", cert, key, "bench", PASSWORD,
                               application_uri="urn:bench:plc", publishing_ms=1)
                await plc.connect()
                try:
                    rt = []
                    for _ in range(100):
                        t = time.perf_counter()
                        await plc.call("ResultManagement", "GetResultById", "none", ua.Variant(0, ua.VariantType.Int32))
                        rt.append((time.perf_counter() - t) * 1000)
                    await plc.run([f"W-{k}" for k in range(WARMUP)], None)
                    plc.events.clear()
                    return rt, await plc.run([f"B-{k + 1}" for k in range(parts)], None)
                finally:
                    await plc.close()

            rt_ua, ua_run = asyncio.run(opcua())
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        inside = _line_times(data)
    rows = []
    for link, rt, run, cam in (("opcua", rt_ua[10:], ua_run, "cam2"), ("modbus", rt_mb[20:], mb_run, "cam1")):
        took = [p.latency_ms for p in run.parts if p.latency_ms is not None]
        if len(took) < len(run.parts):
            raise RuntimeError(f"{link}: {len(run.parts) - len(took)} part(s) got no result")
        bare = statistics.median(rt)
        p50, p99 = float(np.percentile(took, 50)), float(np.percentile(took, 99))
        rows.append({"link": link, "round_trip_median_ms": round(bare, 3), "trigger_to_result_p50_ms": round(p50, 2),
                     "trigger_to_result_p99_ms": round(p99, 2),
                     "line_trigger_to_decision_p50_ms": round(float(np.percentile(inside[cam], 50)), 2),
                     "ratio": round(p50 / (bare + pre), 2),
                     "results_heard": len(took), "line_decisions_stored": len(inside[cam])})
    print(f"PLC bench (inspector run and the PLC in two processes, loopback, real clients, detector only, "
          f"camera acquisition {acquisition}, {parts} parts per link, one at a time)")
    print(f"  bare pre-filter (detect)                       median {pre:7.2f} ms")
    for r in rows:
        what = "one method call, SignAndEncrypt" if r["link"] == "opcua" else "one register read"
        print(f"  {r['link']:6s} bare round trip ({what:31s}) median {r['round_trip_median_ms']:7.2f} ms")
        print(f"  {r['link']:6s} trigger to result          p50 {r['trigger_to_result_p50_ms']:7.2f} ms  "
              f"p99 {r['trigger_to_result_p99_ms']:7.2f} ms")
        print(f"  {r['link']:6s}   of which the line, trigger request to decision: p50 "
              f"{r['line_trigger_to_decision_p50_ms']:7.2f} ms")
        print(f"  {r['link']:6s} p50 / (round trip + pre-filter)  {r['ratio']:.2f} (target < 2)")
    if as_json:
        print(json.dumps({"bench": "plc", "parts": parts, "acquisition": acquisition,
                          "prefilter_median_ms": round(pre, 2), "links": rows}))
    return 0


def _bare_prefilter(cfg, frames: Path) -> float:
    """`detect` alone, called exactly as the line calls it for the camera's product (its
    calibrated threshold and normal statistics): median ms."""
    import cv2

    from inspector.prefilter import build_detector
    from inspector.prefilter.calibration import product_tuning

    det = build_detector(cfg.detector)
    tune = product_tuning(cfg, det).get(cfg.cameras[0].product)
    roi = cfg.cameras[0].roi
    imgs = [cv2.imread(str(p)) for p in sorted(frames.glob("*.bmp"))]

    def detect(img):
        return (tune.detector or det).detect(img, roi, tune.threshold, tune.normal) if tune else det.detect(img, roi)

    detect(imgs[0])  # warm-up: the first run allocates
    out = []
    for _ in range(3):
        for img in imgs:
            t = time.perf_counter()
            detect(img)
            out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out)


def _line_times(data: Path) -> dict[str, list[float]]:
    """The line's own trigger-to-decision times, per camera, as it stored them."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from inspector.store.models import LineDecisionRow

    engine = create_engine(f"sqlite:///{data / 'inspector.db'}")
    out: dict[str, list[float]] = {"cam1": [], "cam2": []}
    with Session(engine) as s:
        rows = s.execute(select(LineDecisionRow.camera_id, LineDecisionRow.elapsed_ms, LineDecisionRow.part_id))
        for cam, ms, part in rows:
            if part and not part.startswith(("W-", "9000")):  # not the warm-up parts
                out.setdefault(cam, []).append(ms)
    engine.dispose()
    return out
