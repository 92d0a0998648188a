"""`inspector bench stop`: how long `inspector run` takes from SIGTERM to exit while a VLM call is in
flight (the VLM answers after 120 s, so the line must abandon the call and leave the crop in its
spool), against the same line stopped with nothing in flight (reasoner none) in the same run.

The bar: the line's own stop deadline (STOP_WITHIN_S), which sits under the units'
TimeoutStopSec=10, after which systemd sends SIGKILL and a stop is no longer orderly.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VLM_DELAY_S = 120.0  # far beyond any stop: a call in flight is abandoned, never waited out
STARTED_WITHIN_S = 120.0  # a line that has not got going by then is a failed round, not a number


def _config(data: Path, frames: Path, reasoner: dict) -> dict:
    from inspector.demo.line import ROI

    return {"data_dir": str(data), "web": {"enabled": False}, "reasoner": reasoner,
            "cameras": [{"id": "cam1", "roi": list(ROI),
                         "source": {"type": "folder", "path": str(frames), "fps": 8, "loop": True}}]}


def one_stop(d: Path, frames: Path, reasoner: dict, started) -> float:
    """Start a line, wait until `started()` says it is busy, SIGTERM it; seconds to exit."""
    import yaml

    d.mkdir(parents=True)
    cfg = d / "line.yaml"
    out = d / "verdicts.jsonl"
    cfg.write_text(yaml.safe_dump(_config(d / "data", frames, reasoner)))
    log = d / "stderr.log"  # a file, not a pipe nobody reads while the line runs
    with open(log, "w") as err:
        p = subprocess.Popen([sys.executable, "-m", "inspector", "run", "--config", str(cfg), "--no-web",
                              "--verdicts-out", str(out)], stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + STARTED_WITHIN_S
        while not started(out):
            if p.poll() is not None or time.monotonic() > deadline:
                p.kill()
                p.wait()
                raise RuntimeError(f"the line did not get going: {log.read_text()[-500:]}")
            time.sleep(0.05)
        t = time.perf_counter()
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=STARTED_WITHIN_S)
        return time.perf_counter() - t
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _rounds(tmp: Path, frames: Path, vlm, rounds: int, in_flight: list, idle: list) -> None:
    for r in range(rounds):  # interleaved, so the machine's drift hits both alike
        asked = len(vlm.requests)
        in_flight.append(one_stop(tmp / f"vlm{r}", frames,
                                  {"type": "openai", "base_url": vlm.base_url, "server": "llama_cpp_python",
                                   "timeout_s": VLM_DELAY_S * 2},
                                  lambda out, asked=asked: len(vlm.requests) > asked))
        idle.append(one_stop(tmp / f"none{r}", frames, {"type": "none"},
                             lambda out: out.exists() and out.stat().st_size > 0))


def main(rounds: int = 3, as_json: bool = False) -> int:
    from inspector.demo.line import generate
    from inspector.reasoner.scripted_server import ScriptedVLM, answer, completion
    from inspector.service.run_line import STOP_WITHIN_S

    with tempfile.TemporaryDirectory() as tmp, \
            ScriptedVLM(lambda body: (200, completion(answer("ok")), VLM_DELAY_S)) as vlm:
        tmp = Path(tmp)
        frames = generate(tmp / "demo", parts=12, seed=7).frames_dir
        in_flight, idle = [], []
        try:
            _rounds(tmp, frames, vlm, rounds, in_flight, idle)
        except RuntimeError as e:
            print(f"inspector: bench stop: {e}", file=sys.stderr)
            return 1
    res = {"bench": "stop", "rounds": rounds, "stop_in_flight_s": round(statistics.median(in_flight), 2),
           "stop_idle_s": round(statistics.median(idle), 2), "bar_s": STOP_WITHIN_S, "systemd_kill_s": 10.0}
    res["ratio"] = round(res["stop_in_flight_s"] / res["stop_idle_s"], 2) if res["stop_idle_s"] else None
    over = res["stop_in_flight_s"] > STOP_WITHIN_S
    print(f"stop bench: SIGTERM to exit of `inspector run`, medians of {rounds} rounds")
    print(f"  a VLM call in flight (answer due in {VLM_DELAY_S:.0f} s)  {res['stop_in_flight_s']:6.2f} s  "
          f"(bar <= {STOP_WITHIN_S:.0f} s; systemd kills at 10 s){'  OVER' if over else ''}")
    print(f"  nothing in flight (reasoner none)          {res['stop_idle_s']:6.2f} s  ratio {res['ratio']}")
    if as_json:
        print(json.dumps(res))
    return 0
