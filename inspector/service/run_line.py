"""Running a line on a box: hold its data directory and database, start the pipeline, its
dashboard and socket, tell systemd, and at SIGTERM stop within the units' deadline and print the
summary."""

from __future__ import annotations

import json
import signal
import sys
import threading

from inspector.service.dashboard import check_port, start_web
from inspector.service.errors import StartError
from inspector.service.locks import hold_data_dir, hold_database

STOP_WITHIN_S = 8.0  # SIGTERM to exit: the units allow 10 s before systemd sends SIGKILL


def run_line(cfg, exit_when_done: bool = False, verdicts_out: str | None = None) -> int:
    """Runs until SIGTERM, Ctrl-C or, with `exit_when_done`, the sources are exhausted. Returns
    the exit code: 0, or 1 when something went wrong on the way (see the summary)."""
    if cfg.web.enabled:
        check_port(cfg.web.host, cfg.web.port)
    hold_data_dir(cfg.data_dir)
    hold_database(cfg)

    from inspector.errors import InspectorError
    from inspector.line.pipeline import Pipeline

    try:
        pipe = Pipeline(cfg)
    except (InspectorError, ValueError, OSError) as e:
        raise StartError(f"cannot start: {e}") from e
    server = (start_web(cfg, pipe.store, pipe.status, pipe.trigger, pipe.live, pipe.change_recipe) if cfg.web.enabled else None)
    from inspector.line.line_socket import serve_line_socket

    line_socket = serve_line_socket(pipe, cfg.line_socket)
    mode = {"none": "detector only (no VLM configured)",
            "test_model": "TEST VLM (random weights - its words mean nothing)",
            "vlm": f"VLM {pipe.reasoner.model_id if pipe.reasoner else ''}"}[pipe.reasoner_mode]
    print(f"inspector: {len(cfg.cameras)} camera(s), reasoner: {mode}, data in {cfg.data_dir}",
          file=sys.stderr)
    if server:
        print(f"inspector: dashboard at http://{cfg.web.host}:{cfg.web.port}", file=sys.stderr)

    if verdicts_out:
        pipe.on_verdict.append(verdict_printer(verdicts_out))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    from inspector.service.heap import freeze_startup_heap
    from inspector.service.notify import ServiceNotifier, status_line

    freeze_startup_heap()
    pipe.start()
    from inspector.plc import PlcError, start_plc

    try:
        plc = start_plc(cfg, pipe)  # after the stages: a PLC trigger must find a running line
    except PlcError as e:
        pipe.stop(STOP_WITHIN_S)
        raise StartError(f"cannot start: {e}") from None
    # Ready means running: sources opened, models loaded, database migrated and reachable (all in
    # Pipeline()), the dashboard listening, the stages started.
    notifier = ServiceNotifier()
    notifier.ready(f"running: {len(cfg.cameras)} camera(s), reasoner {pipe.reasoner_mode}")
    notifier.start(pipe.stalled_for, lambda: status_line(pipe.status()), stopping)
    try:
        while not stopping.is_set():
            if exit_when_done and pipe.done.is_set():
                break
            stopping.wait(0.2)
    except KeyboardInterrupt:
        pass
    st = pipe.status()
    notifier.stopping(f"stopping: {st.vlm_queue} crop job(s) in flight stay in the spool for the next start")
    stopping.set()
    for p in plc:  # first: the PLC sees Ready drop before the line stops taking triggers
        p.stop(1.0)
    pipe.stop(STOP_WITHIN_S)
    for srv in (server, line_socket):
        if srv:
            srv.should_exit = True
    if line_socket:
        cfg.line_socket.unlink(missing_ok=True)  # the dashboard then hears "not running" at once
    summary = {"inspected": sum(c.frames_inspected for c in st.cameras),
               "pass": st.verdict_count("pass"), "fail": st.verdict_count("fail"),
               "review": st.verdict_count("review"), "vlm_crops": st.vlm_crops,
               "processing_errors": st.processing_errors, "store_errors": st.store_errors,
               "reasoner_mode": st.reasoner_mode,
               # judged, not yet in the database at the stop deadline: parked for the next start
               "unwritten": pipe.store.writer.parked}
    failed = {c.id: c.error for c in st.cameras if c.state == "failed"}
    summary.update(read_errors=sum(c.read_errors for c in st.cameras), cameras_failed=failed)
    print(json.dumps(summary))
    for cam_id, why in failed.items():  # last, where a person reading the end of the output sees it
        print(f"inspector: camera {cam_id} failed: {why}", file=sys.stderr)
    if summary["unwritten"]:
        print(f"inspector: {summary['unwritten']} verdict(s) not yet in the database "
              f"({pipe.store.writer.last_error or 'it did not answer in time: locked by another process?'}); kept in "
              f"{cfg.data_dir / 'unwritten'} and written at the next start", file=sys.stderr)
    return 0 if not (st.processing_errors or st.store_errors or failed or summary["unwritten"]) else 1


def verdict_printer(target: str):
    """One JSON line per verdict once it is committed, to a file or standard output (`-`)."""
    out = sys.stdout if target == "-" else open(target, "a", buffering=1)
    lock = threading.Lock()

    def emit(inspection_id, uid, verdict) -> None:
        f = verdict.frame
        line = json.dumps({"id": inspection_id, "uid": uid, "camera_id": f.camera_id, "seq": f.seq,
                           "source_name": f.source_name, "verdict": verdict.kind.value, "why": verdict.why})
        with lock:
            out.write(line + "\n")
            out.flush()
    return emit
