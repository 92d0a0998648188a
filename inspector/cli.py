"""Command line: `inspector run | web | demo | detect | reason | bench | doctor | install | ...`."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("inspector")


def _fail(msg: str, code: int = 2):
    print(f"inspector: {msg}", file=sys.stderr)
    sys.exit(code)


def _load(args):
    from inspector.config import ConfigError, load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        _fail(str(e))
    return cfg


STOP_WITHIN_S = 8.0  # SIGTERM to exit: the units allow 10 s before systemd sends SIGKILL


def cmd_run(args) -> int:
    from inspector.config import LlamaCppReasonerConfig

    cfg = _load(args)
    if args.test_vlm:
        cfg.reasoner = LlamaCppReasonerConfig(type="llama_cpp", test_model=True)
    if args.port:
        cfg.web.port = args.port
    if args.no_web:
        cfg.web.enabled = False
    if args.data_dir:
        cfg.data_dir = args.data_dir
    for cam in cfg.cameras:
        if args.exit_when_done and hasattr(cam.source, "loop"):
            cam.source.loop = False  # a looping replay would never be done
        if args.fast and hasattr(cam.source, "fps"):
            cam.source.fps = None
    if cfg.web.enabled:
        _check_port(cfg.web.host, cfg.web.port)
    _hold_data_dir(cfg.data_dir)
    _hold_database(cfg)

    from inspector.errors import InspectorError
    from inspector.line.pipeline import Pipeline

    try:
        pipe = Pipeline(cfg)
    except (InspectorError, ValueError, OSError) as e:
        _fail(f"cannot start: {e}")
    server = (_start_web(cfg, pipe.store, pipe.status, pipe.trigger, pipe.live) if cfg.web.enabled else None)
    from inspector.line.line_socket import serve_line_socket

    line_socket = serve_line_socket(pipe, cfg.line_socket)
    mode = {"none": "detector only (no VLM configured)",
            "test_model": "TEST VLM (random weights - its words mean nothing)",
            "vlm": f"VLM {pipe.reasoner.model_id if pipe.reasoner else ''}"}[pipe.reasoner_mode]
    print(f"inspector: {len(cfg.cameras)} camera(s), reasoner: {mode}, data in {cfg.data_dir}",
          file=sys.stderr)
    if server:
        print(f"inspector: dashboard at http://{cfg.web.host}:{cfg.web.port}", file=sys.stderr)

    if args.verdicts_out:
        pipe.on_verdict.append(_verdict_printer(args.verdicts_out))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    from inspector.service.heap import freeze_startup_heap
    from inspector.service.notify import ServiceNotifier, status_line

    freeze_startup_heap()
    pipe.start()
    # Ready means running: sources opened, models loaded, database migrated and reachable (all in
    # Pipeline()), the dashboard listening, the stages started.
    notifier = ServiceNotifier()
    notifier.ready(f"running: {len(cfg.cameras)} camera(s), reasoner {pipe.reasoner_mode}")
    notifier.start(pipe.stalled_for, lambda: status_line(pipe.status()), stopping)
    try:
        while not stopping.is_set():
            if args.exit_when_done and pipe.done.is_set():
                break
            stopping.wait(0.2)
    except KeyboardInterrupt:
        pass
    st = pipe.status()
    notifier.stopping(f"stopping: {st['vlm_queue']} crop job(s) in flight stay in the spool for the next start")
    stopping.set()
    pipe.stop(STOP_WITHIN_S)
    for srv in (server, line_socket):
        if srv:
            srv.should_exit = True
    if line_socket:
        cfg.line_socket.unlink(missing_ok=True)  # the dashboard then hears "not running" at once
    v = st["verdicts"]
    summary = {"inspected": sum(c["frames_inspected"] for c in st["cameras"]),
               "pass": v.get("pass", 0), "fail": v.get("fail", 0), "review": v.get("review", 0),
               "vlm_crops": st["vlm_crops"], "processing_errors": st["processing_errors"],
               "store_errors": st["store_errors"], "reasoner_mode": st["reasoner_mode"],
               # judged, not yet in the database at the stop deadline: parked for the next start
               "unwritten": pipe.store.writer.parked}
    failed = {c["id"]: c["error"] for c in st["cameras"] if c["state"] == "failed"}
    summary.update(read_errors=sum(c["read_errors"] for c in st["cameras"]), cameras_failed=failed)
    print(json.dumps(summary))
    for cam_id, why in failed.items():  # last, where a person reading the end of the output sees it
        print(f"inspector: camera {cam_id} failed: {why}", file=sys.stderr)
    if summary["unwritten"]:
        print(f"inspector: {summary['unwritten']} verdict(s) not yet in the database "
              f"({pipe.store.writer.last_error or 'it did not answer in time: locked by another process?'}); kept in "
              f"{cfg.data_dir / 'unwritten'} and written at the next start", file=sys.stderr)
    return 0 if not (st["processing_errors"] or st["store_errors"] or failed or summary["unwritten"]) else 1


def _verdict_printer(target: str):
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


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            _fail(f"cannot serve the dashboard on {host}:{port}: {e.strerror} "
                  f"(another inspector running? choose another with --port or web.port)")


def _start_web(cfg, store, status, trigger, live):
    """The dashboard in a thread: in the line's process (`inspector run`) or on its own
    (`inspector web`)."""
    import uvicorn

    from inspector.store.stats import PlantTime
    from inspector.web import create_app
    from inspector.web.accounts import Accounts

    accounts = Accounts(store.engine)
    if not accounts.has_users():
        # First start: one admin with a random password, shown once here (never stored in clear).
        import secrets

        password = secrets.token_urlsafe(12)
        # It lands in a console or a journal others may read: good for one login, which must replace it.
        accounts.add_user("admin", password, "admin", must_change=True)
        print(f"inspector: no dashboard users yet; made user 'admin' with password {password} "
              f"(shown once, and good for one login: the dashboard then asks for a new one; or set "
              f"it with `inspector users passwd admin`; add people with "
              f"`inspector users add NAME --role operator`)", file=sys.stderr)
    app = create_app(store, status, trigger, live=live, plant=PlantTime.from_config(cfg.web),
                     secure_cookies=cfg.web.secure_cookies)
    from inspector.util.threaded_server import start_in_thread

    # X-Forwarded-For is believed only from the configured proxies (uvicorn's default believes
    # 127.0.0.1, so any local client could pose as any address and dodge the login limit).
    server = start_in_thread(uvicorn.Config(app, host=cfg.web.host, port=cfg.web.port, log_level="warning",
                                            access_log=False, proxy_headers=bool(cfg.web.trusted_proxies),
                                            forwarded_allow_ips=cfg.web.trusted_proxies), "web")
    if server is None:
        _fail(f"the dashboard did not start on {cfg.web.host}:{cfg.web.port}")
    return server


_HELD: list = []  # open lock files: the locks last as long as the process


def _hold_data_dir(data_dir: Path) -> None:
    """One line per data directory: a second would resume the same spool and answer on the same
    socket. The lock goes with the process, however it ends."""
    import fcntl
    import os

    data_dir.mkdir(parents=True, exist_ok=True)
    f = open(data_dir / "line.lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        _fail(f"another line is running on data directory {data_dir} (pid {f.read().strip() or '?'}); "
              f"stop it first, or give this one its own data_dir")
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    _HELD.append(f)


def _hold_database(cfg) -> None:
    """One line per database too: two data directories on one database would mix their lines."""
    from sqlalchemy.exc import SQLAlchemyError

    from inspector.util.redact import redact_text
    from inspector.store.line_lock import LineLock, LineLockError

    try:
        _HELD.append(LineLock(cfg.database_url, cfg.box, cfg.data_dir).acquire())
    except LineLockError as e:
        _fail(str(e))
    except (SQLAlchemyError, OSError) as e:
        _fail(redact_text(f"cannot start: database {cfg.database_url}: {getattr(e, 'orig', None) or e}"))


def cmd_web(args) -> int:
    """The dashboard and API as a service of its own (inspector-web.service): the database for
    the history, the line's socket for its status, live pictures and triggers."""
    from inspector.store import Store, StoreError
    from inspector.line.line_link import LineLink, PlantView

    cfg = _load(args)
    if args.port:
        cfg.web.port = args.port
    _check_port(cfg.web.host, cfg.web.port)
    try:
        store = Store(cfg.database_url, cfg.data_dir, cfg.store)
    except (StoreError, ValueError, OSError) as e:
        _fail(f"cannot start: {e}")
    if cfg.web.plant_wide:
        plant = PlantView(store)
        link = None
        status, trigger, live = plant.status, None, None
    else:
        link = LineLink(cfg, cfg.line_socket)
        status, trigger, live = link.status, link.trigger, link.live
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    from inspector.service.heap import freeze_startup_heap
    from inspector.service.notify import ServiceNotifier

    server = _start_web(cfg, store, status, trigger, live)
    up = status().get("line") or {"up": True}
    from inspector.util.redact import redact_url

    print(f"inspector: dashboard at http://{cfg.web.host}:{cfg.web.port} over {redact_url(cfg.database_url)}; "
          + ("plant-wide, no line on this box" if link is None else "line running" if up["up"]
             else f"line not running yet ({up['error']})"), file=sys.stderr)
    freeze_startup_heap()
    notifier = ServiceNotifier()
    notifier.ready(f"serving on {cfg.web.host}:{cfg.web.port}")
    probe = _SelfProbe(cfg.web.host, cfg.web.port)
    notifier.start(probe.stalled_for, lambda: _web_status_line(status()), stopping, what="web server")
    try:
        while not stopping.is_set():
            stopping.wait(0.5)
    except KeyboardInterrupt:
        pass
    notifier.stopping("stopping")
    server.should_exit = True
    if link is not None:
        link.close()
    return 0


def _web_status_line(st: dict) -> str:
    if st["reasoner_mode"] == "plant":
        return f"serving; plant-wide, {len(st['cameras'])} camera(s)"
    if not st["line"]["up"]:
        return f"serving; {st['line']['error']}"
    v = st.get("verdicts", {})
    return (f"serving; line running, {len(st['cameras'])} camera(s), {v.get('pass', 0)} pass, "
            f"{v.get('fail', 0)} fail, {v.get('review', 0)} review")


class _SelfProbe:
    """Seconds since the web server last answered its own /healthz: the watchdog's heartbeat for
    a process whose work is answering requests."""

    def __init__(self, host: str, port: int):
        import httpx

        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(host, host)
        self.url = f"http://{host}:{port}/healthz"
        self._client = httpx.Client(timeout=5.0)
        self._ok = time.monotonic()

    def stalled_for(self) -> float:
        try:
            if self._client.get(self.url).status_code == 200:
                self._ok = time.monotonic()
        except Exception:
            pass
        return time.monotonic() - self._ok


def cmd_detect(args) -> int:
    from inspector.util.image_file import ImageError, read_image
    from inspector.capture.sources.files import list_images

    cfg = _load(args)
    det = _detector_for(cfg)
    roi = _parse_roi(args.roi) if args.roi else None
    failures = 0
    for arg in args.paths:
        p = Path(arg)
        if p.is_dir():
            files = list_images(p)
            if not files:
                print(f"inspector: {p}: folder holds no images", file=sys.stderr)
                failures += 1
        elif p.exists() or p.is_symlink():
            files = [p]  # the reader names what it is if not an image (a FIFO, a symlink loop)
        else:
            print(f"inspector: {p}: no such file or folder", file=sys.stderr)
            failures += 1
            continue
        for f in files:
            try:
                img = read_image(f, cfg.limits.max_image_pixels)
            except ImageError as e:
                print(f"inspector: {e}", file=sys.stderr)
                failures += 1
                continue
            t0 = time.perf_counter()
            try:
                cands = det.detect(img, roi)
            except ValueError as e:
                print(f"inspector: {f}: {e}", file=sys.stderr)
                failures += 1
                continue
            ms = (time.perf_counter() - t0) * 1000
            rec = {"image": str(f), "candidates": [
                {"box": [round(v, 1) for v in c.box], "score": round(c.score, 4), "label": c.label}
                for c in cands], "ms": round(ms, 2)}
            if args.json:
                print(json.dumps(rec), flush=True)
            else:
                print(f"{f}: {len(cands)} candidate(s) in {ms:.1f} ms")
                for c in rec["candidates"]:
                    print(f"  {c['label']} {c['score']:.2f} at {c['box']}")
    return 1 if failures else 0


def _parse_box(text: str, what: str) -> tuple[float, float, float, float]:
    try:
        box = tuple(float(v) for v in text.split(","))
        assert len(box) == 4 and box[0] < box[2] and box[1] < box[3] and min(box) >= 0
    except (ValueError, AssertionError):
        _fail(f"{what} must be x1,y1,x2,y2 (pixels, x1<x2, y1<y2, all >= 0), got {text!r}")
    return box


def cmd_reason(args) -> int:
    from inspector.config import LlamaCppReasonerConfig
    from inspector.cropper import crop_around
    from inspector.util.image_file import ImageError, read_image
    from inspector.messages import Candidate, CropAnswer, Frame
    from inspector.reasoner import ReasonerConfigError, build_reasoner

    cfg = _load(args)
    if args.test_vlm:
        cfg.reasoner = LlamaCppReasonerConfig(type="llama_cpp", test_model=True)
    if cfg.reasoner.type == "none":
        _fail("no VLM configured: set `reasoner` in the config (see README) or use --test-vlm")
    try:
        img = read_image(args.image, cfg.limits.max_image_pixels)
    except ImageError as e:
        _fail(str(e))
    h, w = img.shape[:2]
    box = _parse_box(args.box, "--box") if args.box else (0.0, 0.0, float(w), float(h))
    if box[2] > w or box[3] > h:
        _fail(f"--box {list(box)} reaches outside the {w}x{h} image")
    cam = next((c for c in cfg.cameras if c.id == args.camera), None) if args.camera else cfg.cameras[0]
    if cam is None:
        _fail(f"--camera {args.camera!r} is not in the config (cameras: {[c.id for c in cfg.cameras]})")
    product_name = args.product or cam.product
    if product_name not in {p.name for p in cfg.products}:
        _fail(f"--product {product_name!r} is not in the config")
    try:
        reasoner = build_reasoner(cfg.reasoner, cfg.data_dir)
    except (ReasonerConfigError, ValueError, OSError) as e:
        _fail(f"cannot start the reasoner: {e}")
    try:
        cand = Candidate(box, 1.0, "manual", "cli")
        crop = crop_around(img, cand, 0, padding=cfg.cropper.padding if args.box else 0.0,
                           min_side=cfg.cropper.min_side_px, out_side=cfg.cropper.max_side_px,
                           upscale=False)
        from inspector.capture.camera_calibration import for_camera

        # The image is taken as the line stores frames: already undistorted; only the scale applies.
        frame = Frame(cam.id, 0, img, roi=cam.inspection_roi(), source_name=str(args.image),
                      mm_per_px=for_camera(cfg.calibration_dir, cam)[1])
        rep = reasoner.analyze(crop, cfg.product(product_name), frame)
    finally:
        reasoner.close()
    r1 = lambda b: [round(v, 1) for v in b] if b else None  # noqa: E731
    out = {
        "image": str(args.image), "box": list(box), "answer": rep.answer.value,
        "findings": [{"type": f.defect_type, "severity": f.severity.value,
                      "confidence": round(f.confidence, 3), "box": r1(f.box), "box_mm": r1(f.box_mm),
                      "reason": f.reason, "look": f.look} for f in rep.findings],
        "latency_ms": round(rep.latency_ms, 1), "model_id": rep.model_id,
        "backend": reasoner.backend, "profile": reasoner.profile.name,
        "error": rep.error, "rejected": list(rep.rejected), "raw": rep.raw,
        "looks": [{"look": lk.index, "region": r1(lk.region), "answer": lk.answer.value,
                   "latency_ms": round(lk.latency_ms, 1), "raw": lk.raw, "thinking": lk.thinking,
                   "error": lk.error} for lk in rep.looks],
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.image}: {rep.answer.value} in {rep.latency_ms:.0f} ms "
              f"({len(rep.looks)} look(s), {reasoner.backend} / {reasoner.profile.name})")
        for f in out["findings"]:
            mm = f" = {f['box_mm']} mm" if f["box_mm"] else ""
            print(f"  {f['type']} {f['severity']} {f['confidence']:.2f} at {f['box']} px{mm}: {f['reason']}")
        for r in rep.rejected:
            print(f"  refused: {r}")
        print(f"raw answer: {rep.raw}")
    if rep.answer in (CropAnswer.unavailable, CropAnswer.invalid):
        print(f"inspector: no usable answer: {rep.error}", file=sys.stderr)
        return 1
    return 0


def cmd_bench(args) -> int:
    if args.what == "store":
        from inspector.bench import store as bench_store

        return bench_store.main(writes_n=args.calls or 5000, inspections=args.inspections, as_json=args.json)
    if args.what == "web":
        from inspector.bench import web as bench_web

        return bench_web.main(inspections=args.inspections, rounds=args.calls or 30, as_json=args.json)
    if args.what == "loop":
        from inspector.bench import loop as bench_loop

        return bench_loop.main(frames=args.calls or 200, as_json=args.json)
    if args.what == "prefilter":
        from inspector.bench import prefilter as bench_prefilter

        cfg = _load(args)
        return bench_prefilter.main(cfg.detector, frames=args.calls or 20, as_json=args.json)
    from inspector.bench import reasoner as bench_reasoner

    return bench_reasoner.main(calls=args.calls or 20, as_json=args.json, workdir=args.workdir)


def _detector_for(cfg):
    from inspector.prefilter import ModelError, build_detector

    try:
        return build_detector(cfg.detector)
    except ModelError as e:
        _fail(str(e))


def _parse_roi(text: str) -> tuple[int, int, int, int]:
    try:
        roi = tuple(int(v) for v in text.split(","))
        assert len(roi) == 4 and roi[0] < roi[2] and roi[1] < roi[3]
    except (ValueError, AssertionError):
        _fail(f"--roi must be x1,y1,x2,y2 with x1<x2 and y1<y2, got {text!r}")
    return roi


def _roi_for(args, cfg, product: str | None):
    if getattr(args, "roi", None):
        return _parse_roi(args.roi)
    cam = next((c for c in cfg.cameras if c.product == product), None) if product else None
    if cam is None:
        return None
    if cam.inspection_roi() is None and cam.source.type == "demo":
        from inspector.demo.line import ROI  # the demo source's own ROI

        return ROI
    return cam.inspection_roi()


def _images_in(folder: Path, what: str) -> list[Path]:
    from inspector.capture.sources.files import list_images

    if not folder.is_dir():
        _fail(f"{what} {folder}: no such folder")
    files = list_images(folder)
    if not files:
        _fail(f"{what} {folder}: folder holds no images")
    return files


def cmd_calibrate(args) -> int:
    from inspector.prefilter import calibration as cal
    from inspector.prefilter.evaluate import progress
    from inspector.prefilter.metrics import wilson

    cfg = _load(args)
    if args.product not in {p.name for p in cfg.products}:
        _fail(f"--product {args.product!r} is not in the config (products: "
              f"{[p.name for p in cfg.products]})")
    if not 0 <= args.target < 1:
        _fail(f"--target must be a rate in 0..1, got {args.target}")
    det = _detector_for(cfg)
    roi = _roi_for(args, cfg, args.product)
    good = _images_in(args.good, "--good")
    bad = _images_in(args.bad, "--bad") if args.bad else []
    try:
        best, fits = cal.fit_best(det, good, bad, roi, args.target, args.statistics, progress, args.weighted,
                                  args.components, cfg.limits.max_image_pixels)
    except cal.CalibrationError as e:
        _fail(str(e))
    for f in fits if len(fits) > 1 and best.bad else []:  # with no readable bad part, nothing to compare
        m = f.measured()
        print(f"  {'distance from normal' if f.stats is not None else 'model map':20s}: bad parts "
              f"flagged {m.bad_recall:.2%}, image AUROC {m.image_auroc:.4f}")
    for u in best.unreadable:
        print(f"inspector: {u} (skipped)", file=sys.stderr)
    m, thr = best.measured(), best.threshold
    result = cal.ProductCalibration(product=args.product, detector_model=det.model_id, threshold=thr,
                                    target_false_reject=args.target, roi=roi, measured=m)
    path = cal.save(args.out_dir or cfg.calibration_dir, result, best.stats)
    if best.stats is not None:
        weighed = (f", weighed by {best.stats.anomaly_cells} cells of synthetic anomalies painted on them"
                   if best.stats.anomaly_cells else "")
        k = best.stats.components
        print(f"product {args.product}: normal statistics ({k} Gaussian{'s' if k > 1 else ''} per feature "
              f"group) fitted on {best.stats.cells} cells of {m.good_images} good parts{weighed}; "
              f"threshold {thr:.6g} on the distance from normal")
    else:
        print(f"product {args.product}: threshold {thr:.6g} on the model's map (model default "
              f"{det.threshold:.6g})")
    lo, hi = m.false_reject_ci95
    rejects = round(m.false_reject_rate * m.good_images)
    print(f"  good parts: {m.good_images}, false-reject rate {m.false_reject_rate:.2%} ({rejects} of "
          f"{m.good_images}; 95% interval {lo:.2%}-{hi:.2%}); target at most {args.target:.2%}"
          f"{'; each scored by statistics fitted on the others' if best.stats is not None else ''}")
    if hi > args.target:
        need = cal.parts_to_show(args.target)
        print(f"inspector: note: with {m.good_images} good parts the false-reject rate is only known to be "
              f"below {hi:.2%}" + (f"; showing it is below the {args.target:.2%} target takes at least "
                                   f"{need} good parts with none sent on" if need else ""), file=sys.stderr)
    if best.bad:
        flagged = round(m.bad_recall * m.bad_images)
        blo, bhi = wilson(flagged, m.bad_images)
        print(f"  bad parts: {m.bad_images}, flagged {m.bad_recall:.2%} ({flagged} of {m.bad_images}; 95% "
              f"interval {blo:.2%}-{bhi:.2%}), image AUROC {m.image_auroc:.4f}")
    elif bad:
        print(f"inspector: note: none of the {len(bad)} bad images can be read: no recall measured",
              file=sys.stderr)
    print(f"  written to {path}")
    return 0


def cmd_calibrate_camera(args) -> int:
    from inspector.capture import camera_calibration as cc
    from inspector.prefilter.evaluate import progress

    cfg = _load(args)
    if args.camera not in {c.id for c in cfg.cameras}:
        print(f"inspector: note: camera {args.camera!r} is not in the config (cameras: "
              f"{[c.id for c in cfg.cameras]}); the file is written anyway", file=sys.stderr)
    if not args.square_mm or args.square_mm <= 0:
        _fail(f"--square-mm must be > 0, got {args.square_mm}")
    try:
        board = cc.parse_board(args.board)
        cal, skipped = cc.calibrate(args.camera, _images_in(args.images, "--images"), board,
                                    args.square_mm, progress, cfg.limits.max_image_pixels)
        for s in skipped:
            print(f"inspector: {s} (skipped)", file=sys.stderr)
        tilt = None
        if args.scale:
            cal.mm_per_px, tilt = cc.measure_scale(cal, args.scale, cfg.limits.max_image_pixels)
            cal.scale_image = args.scale.name
        path = cc.save(args.out_dir or cfg.calibration_dir, cal)
    except cc.CameraCalibrationError as e:
        _fail(str(e))
    K, dist = cal.matrices()
    print(f"camera {args.camera}: {len(cal.per_view_error_px)} views of a {board[0]}x{board[1]} board "
          f"({args.square_mm:g} mm squares), {cal.image_size[0]}x{cal.image_size[1]}")
    print(f"  focal length fx {K[0, 0]:.2f} px, fy {K[1, 1]:.2f} px; principal point "
          f"({K[0, 2]:.1f}, {K[1, 2]:.1f})")
    print(f"  distortion k1 {dist[0]:.4f}, k2 {dist[1]:.4f}, p1 {dist[2]:.5f}, p2 {dist[3]:.5f}, k3 {dist[4]:.4f}")
    worst = max(cal.per_view_error_px.items(), key=lambda kv: kv[1])
    print(f"  reprojection error {cal.reprojection_error_px:.3f} px RMS (worst view {worst[0]}: {worst[1]:.3f} px)")
    if cal.mm_per_px:
        print(f"  scale on the working plane: {cal.mm_per_px:.5f} mm per pixel (from {args.scale.name})")
        if tilt > cc.TILT_WARN:
            print(f"inspector: warning: the board in {args.scale.name} looks tilted (x and y spacing "
                  f"differ by {tilt:.1%}); lay it flat on the working plane for an exact scale",
                  file=sys.stderr)
    print(f"  written to {path}")
    return 0


def cmd_eval(args) -> int:
    from inspector.prefilter import calibration as cal
    from inspector.prefilter.evaluate import EvalError, draw_pr_curve, read_labels, report, run

    cfg = _load(args)
    det = _detector_for(cfg)
    try:
        items = read_labels(args.labels, args.images)
    except EvalError as e:
        _fail(str(e))
    thr, source, stats = args.threshold, "--threshold", None
    if args.product:
        try:
            c = cal.load_for(cfg.calibration_dir, args.product, det)
        except cal.CalibrationError as e:
            _fail(str(e))
        if c is None:
            _fail(f"no calibration for product {args.product!r} in {cfg.calibration_dir} "
                  f"(run `inspector calibrate thresholds` first, or leave --product out)")
        stats = c.normal  # --threshold overrides the threshold, not what it is a threshold on
        if thr is None:
            thr, source = c.threshold, f"calibration of {args.product}"
    if thr is None:
        thr, source = det.threshold, "the model's default"
    roi = _roi_for(args, cfg, args.product)
    results, unreadable = run(det, items, roi, thr, normal=stats, max_pixels=cfg.limits.max_image_pixels)
    for u in unreadable:
        print(f"inspector: {u} (skipped)", file=sys.stderr)
    try:
        rep = report(results, thr, unreadable)
    except EvalError as e:
        _fail(str(e))
    out = args.pr_curve or Path("pr-curve.png")
    draw_pr_curve(results, thr, out, f"{det.model_id} on {args.images.name}")
    if args.json:
        print(json.dumps({**rep.as_dict(), "threshold_source": source, "pr_curve": str(out)}))
        return 0
    print(f"{rep.images} images ({rep.good} good, {rep.images - rep.good} defective with "
          f"{rep.defects} defects), threshold {thr:.6g} ({source})")
    print(f"  image AUROC                    {rep.image_auroc:.4f}")
    lo, hi = rep.defect_recall_ci95
    print(f"  defect recall                  {rep.defect_recall:.4f}  ({rep.defects_found}/{rep.defects} found: IoU >= "
          f"0.1 or centre inside; 95% interval {lo:.3f}-{hi:.3f})")
    print(f"  false candidates per good part {rep.false_candidates_per_good:.3f}")
    glo, ghi = rep.good_sent_to_vlm_ci95
    print(f"  frames sent to the VLM         {rep.sent_to_vlm:.2%}  (good parts {rep.good_sent_to_vlm:.2%}, "
          f"95% interval {glo:.2%}-{ghi:.2%}; defective {rep.bad_sent_to_vlm:.2%})")
    print(f"  PR curve: {out}")
    return 0


def _accounts(args):
    from inspector.web.accounts import Accounts

    store = _open_store(_load(args))
    return store, Accounts(store.engine)


def _open_store(cfg):
    """The store for a command that reads or edits it (not the line): a one-line error for a
    database that cannot be used."""
    from inspector.store import Store, StoreError

    try:
        store = Store(cfg.database_url, cfg.data_dir, cfg.store)
    except (StoreError, ValueError, OSError) as e:
        _fail(str(e))
    return store


def _read_password(args, prompt: str = "password") -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        _fail("no terminal to ask for the password on: pipe it in with --password-stdin")
    import getpass

    try:
        first = getpass.getpass(f"{prompt}: ")
        if getpass.getpass("again: ") != first:
            _fail("the two passwords differ")
    except (EOFError, KeyboardInterrupt):
        _fail("no password given")
    return first


def cmd_doctor(args) -> int:
    from inspector.service import doctor

    if not args.verbose:  # the checks' own words, not the libraries' start-up chatter
        logging.getLogger().setLevel(logging.WARNING)
    cfg = _load(args)
    checks = doctor.run(cfg)
    # With --json, stdout is the JSON alone (a script parses it); the words go to stderr.
    human = sys.stderr if args.json else sys.stdout
    for c in checks:
        print(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}", file=human)
    bad = [c for c in checks if not c.ok]
    if args.json:
        print(json.dumps([{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]))
    print(f"{len(bad)} problem(s): {', '.join(c.name for c in bad)}" if bad else "all checks passed",
          file=sys.stderr)
    return 1 if bad else 0


def cmd_install(args) -> int:
    from inspector.service import install

    try:
        return install.main(args.root.resolve(), args.reasoner, args.dry_run)
    except (install.InstallError, OSError) as e:
        _fail(f"install: {e}")


def cmd_users(args) -> int:
    from inspector.web.accounts import AccountError

    if args.action != "list" and not args.name:
        _fail(f"inspector users {args.action} needs a user name")
    store, acc = _accounts(args)
    try:
        if args.action == "list":
            for u in acc.users():
                print(f"{u['username']:24s} {u['role']:9s} since {u['created_at']}"
                      + ("  (must choose a new password at login)" if u["must_change_password"] else ""))
        elif args.action == "add":
            acc.add_user(args.name, _read_password(args), args.role)
            print(f"user {args.name} added ({args.role})")
        elif args.action == "passwd":
            acc.set_password(args.name, _read_password(args, "new password"))
            print(f"password of {args.name} changed; their sessions are ended")
        elif args.action == "role":
            acc.set_role(args.name, args.role)
            print(f"{args.name} is now {args.role}")
        elif args.action == "remove":
            acc.remove_user(args.name)
            print(f"user {args.name} removed")
    except AccountError as e:
        _fail(str(e))
    finally:
        store.close()
    return 0


def cmd_tokens(args) -> int:
    from inspector.web.accounts import AccountError

    if args.action != "list" and not args.name:
        _fail(f"inspector tokens {args.action} needs a token name")
    store, acc = _accounts(args)
    try:
        if args.action == "list":
            for t in acc.tokens():
                print(f"{t['name']:24s} {t['role']:9s} since {t['created_at']}  last used {t['last_used_at'] or 'never'}")
        elif args.action == "add":
            token = acc.add_token(args.name, args.role)
            print(token)
            print(f"token {args.name} ({args.role}): send it as 'Authorization: Bearer <token>'; it is shown "
                  f"only now", file=sys.stderr)
        elif args.action == "revoke":
            acc.revoke_token(args.name)
            print(f"token {args.name} revoked")
    except AccountError as e:
        _fail(str(e))
    finally:
        store.close()
    return 0


def cmd_db(args) -> int:
    from sqlalchemy import create_engine

    from inspector.store import schema

    from sqlalchemy.exc import DBAPIError

    from inspector.util.redact import redact_text, redact_url

    cfg = _load(args)
    url = cfg.database_url
    shown = redact_url(url)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    try:
        if args.action == "current":
            rev = schema.current(engine)
            print(f"{shown}: schema revision {rev or 'none'} (this version needs {schema.head()})")
            return 0
        with schema.one_at_a_time(engine, url):
            before, after = schema.upgrade(engine)
    except schema.SchemaError as e:
        _fail(f"{shown}: {e}")
    except DBAPIError as e:
        _fail(redact_text(f"{shown}: cannot use the database: {str(getattr(e, 'orig', e)).splitlines()[0]}"))
    finally:
        engine.dispose()
    if before == after:
        print(f"{shown}: already at schema revision {after}")
    else:
        print(f"{shown}: schema revision {before or 'none (made before migrations)'} -> {after}")
    return 0


def _when(text: str, what: str):
    """An ISO date/time (UTC), or an age back from now: 30m, 12h, 7d."""
    import re
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc).replace(tzinfo=None)
    m = re.fullmatch(r"(\d+)([mhd])", text.strip())
    if m:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[m[2]]
        return now - timedelta(**{unit: int(m[1])})
    try:
        t = datetime.fromisoformat(text.strip().removesuffix("Z"))
    except ValueError:
        _fail(f"{what} {text!r}: expected an ISO date or time (2026-11-24, 2026-11-24T06:00) or an age "
              f"(30m, 12h, 7d)")
    return t.astimezone(timezone.utc).replace(tzinfo=None) if t.tzinfo else t


def cmd_export(args) -> int:
    from inspector.store.export import export

    cfg = _load(args)
    since = _when(args.since, "--since")
    until = _when(args.until, "--until") if args.until else None
    if until is not None and until <= since:
        _fail("--until must be after --since")
    store = _open_store(cfg)
    try:
        counts = export(store, args.out, args.format, since, until)
    except OSError as e:
        _fail(f"cannot write {args.out}: {e.strerror or e}")
    finally:
        store.close()
    what = (f"{counts['rows']} inspections" if "rows" in counts else
            f"{counts['images']} reviewed defective parts, {counts['boxes']} boxes, classes {counts['classes']}")
    print(f"exported {what} from {since.isoformat()}Z{' to ' + until.isoformat() + 'Z' if until else ''} "
          f"to {args.out} ({args.format})")
    return 0


def cmd_config(args) -> int:
    from inspector.config import defaults_yaml

    if args.config:
        import yaml

        from inspector.util.redact import redact_config

        cfg = _load(args)
        # Secrets stay out of a dump that gets pasted into tickets: URLs' passwords, api_key.
        print(yaml.safe_dump(redact_config(cfg.model_dump(mode="json")), sort_keys=False), end="")
    else:
        print(defaults_yaml(), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="inspector", description="Edge visual quality inspection.")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="command", required=True)

    def run_opts(p):
        p.add_argument("--test-vlm", action="store_true",
                       help="reason with a tiny random-weight VLM through real llama.cpp (words mean nothing)")
        p.add_argument("--exit-when-done", action="store_true",
                       help="stop when file/folder sources are exhausted (no looping)")
        p.add_argument("--fast", action="store_true", help="replay files as fast as they are processed")
        p.add_argument("--no-web", action="store_true", help="do not serve the dashboard")
        p.add_argument("--port", type=int, help="dashboard port (default from config: 8080)")
        p.add_argument("--data-dir", type=Path, help="override data_dir from the config")
        p.add_argument("--verdicts-out", metavar="FILE",
                       help="append one JSON line per verdict once it is committed to the database "
                            "(- = standard output): for a reject gate, a PLC bridge or a log shipper")

    p = sub.add_parser("run", help="run a line from a config file")
    p.add_argument("--config", type=Path, help="YAML config (default: the bundled demo line)")
    run_opts(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("web", help="serve the dashboard and API on their own (inspector-web.service): "
                                   "history from the database, status and live pictures from the "
                                   "running line's socket")
    p.add_argument("--config", type=Path, help="the line's YAML config (default: the bundled demo line)")
    p.add_argument("--port", type=int, help="dashboard port (default from config: 8080)")
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("demo", help="run the bundled demo line with its dashboard")
    run_opts(p)
    p.set_defaults(func=cmd_run, config=None)

    p = sub.add_parser("detect", help="run the pre-filter on image files or folders")
    p.add_argument("paths", nargs="+")
    p.add_argument("--json", action="store_true", help="one JSON object per image per line")
    p.add_argument("--roi", help="inspect only x1,y1,x2,y2 of each image")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("reason", help="ask the configured VLM about one image (or one box of it)")
    p.add_argument("image", type=Path)
    p.add_argument("--box", help="x1,y1,x2,y2 in image pixels: the region to ask about (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--config", type=Path)
    p.add_argument("--camera", help="camera id whose ROI and calibration apply (default: the first)")
    p.add_argument("--product", help="product recipe to ask with (default: the camera's)")
    p.add_argument("--test-vlm", action="store_true", help="use the tiny random-weight test VLM")
    p.set_defaults(func=cmd_reason)

    p = sub.add_parser("calibrate", help="fit per-product thresholds, or a camera's geometry")
    csub = p.add_subparsers(dest="what", required=True)
    p = csub.add_parser("camera", help="intrinsics, distortion and mm per pixel from checkerboard photos")
    p.add_argument("--camera", required=True, help="camera id (writes calibration/<camera>.yaml)")
    p.add_argument("--images", type=Path, required=True, help="folder of photos of the board at varied angles")
    p.add_argument("--board", default="9x6", help="inner corners, COLSxROWS (default 9x6)")
    p.add_argument("--square-mm", type=float, required=True, help="side of one square in mm")
    p.add_argument("--scale", type=Path, help="a photo of the board lying on the working plane: mm per pixel")
    p.add_argument("--out-dir", type=Path, help="where to write <camera>.yaml (default: calibration_dir)")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_calibrate_camera)

    p = csub.add_parser("thresholds", help="per-product pre-filter threshold from golden samples")
    p.add_argument("--product", required=True)
    p.add_argument("--good", type=Path, required=True, help="folder of images of good parts")
    p.add_argument("--bad", type=Path, help="folder of images of defective parts (reports recall)")
    p.add_argument("--target", type=float, default=0.01, help="most good parts to send on (0.01 = 1%%)")
    p.add_argument("--no-statistics", dest="statistics", action="store_false",
                   help="fit the threshold only, not the model's per-product normal statistics")
    p.add_argument("--no-weighting", dest="weighted", action="store_false",
                   help="plain normal statistics: do not re-weigh them by synthetic anomalies painted on "
                        "the good parts")
    p.add_argument("--components", type=int, default=None,
                   help="Gaussians per feature group in the normal statistics (default 4; 1: one Gaussian, "
                        "for a surface of one texture; each costs a little time per frame)")
    p.add_argument("--roi", help="x1,y1,x2,y2 (default: the ROI of the product's camera)")
    p.add_argument("--out-dir", type=Path, help="where to write <product>.yaml (default: calibration_dir)")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("eval", help="measure the pre-filter on labelled images")
    p.add_argument("--images", type=Path, required=True, help="folder the labels' paths are relative to")
    p.add_argument("--labels", type=Path, required=True, help="JSON lines: {image, boxes}")
    p.add_argument("--product", help="use this product's calibrated threshold and camera ROI")
    p.add_argument("--threshold", type=float, help="decision threshold (overrides the calibration)")
    p.add_argument("--roi", help="x1,y1,x2,y2 (default: the product's camera ROI, else the whole image)")
    p.add_argument("--pr-curve", type=Path, help="PNG to write (default: pr-curve.png)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", help="benchmarks that print numbers and ratios")
    p.add_argument("what", choices=["reasoner", "prefilter", "loop", "store", "web"])
    p.add_argument("--inspections", type=int, default=1_000_000, help="store, web: database size for the reads")
    p.add_argument("--config", type=Path, help="prefilter: the detector to measure (default: bundled)")
    p.add_argument("--calls", "--frames", type=int, help="timed calls / frames per case (default 20; loop: 200)")
    p.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    p.add_argument("--workdir", type=Path, help="where to write the test model (default: a temp dir)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("export", help="verdicts as csv/jsonl, reviewed defects as a COCO/YOLO dataset")
    p.add_argument("--since", required=True, help="ISO date/time (UTC) or an age: 30m, 12h, 7d")
    p.add_argument("--until", help="ISO date/time (UTC) or an age (default: now)")
    p.add_argument("--format", choices=["csv", "jsonl", "coco", "yolo"], required=True)
    p.add_argument("--out", type=Path, required=True, help="a file (csv, jsonl) or a folder (coco, yolo)")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("db", help="the database's schema: upgrade it, or show its revision")
    p.add_argument("action", choices=["upgrade", "current"])
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("doctor", help="check cameras, models, the VLM, the database and disk; non-zero if anything is wrong")
    p.add_argument("--config", type=Path)
    p.add_argument("--json", action="store_true", help="the checks as one JSON line")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("install", help="put this installation under systemd: user, directories, config, units")
    p.add_argument("--dry-run", action="store_true", help="print every step, change nothing")
    p.add_argument("--root", type=Path, default=Path("/"),
                   help="write under this directory instead of / (an image, a test); the running "
                        "system (users, systemd) is left alone")
    p.add_argument("--reasoner", action="store_true",
                   help="also the GPU workstation's VLM server (inspector-reasoner.service, reasoner.json)")
    p.set_defaults(func=cmd_install)

    p = sub.add_parser("users", help="dashboard users: list, add, passwd, role, remove")
    p.add_argument("action", choices=["list", "add", "passwd", "role", "remove"])
    p.add_argument("name", nargs="?")
    p.add_argument("--role", choices=["viewer", "operator", "admin"], default="operator")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_users)

    p = sub.add_parser("tokens", help="API tokens for machines: list, add (prints it once), revoke")
    p.add_argument("action", choices=["list", "add", "revoke"])
    p.add_argument("name", nargs="?")
    p.add_argument("--role", choices=["viewer", "operator", "admin"], default="viewer")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_tokens)

    p = sub.add_parser("config", help="print the effective config (all keys, with defaults)")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_config)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from inspector.service import journal

    level = logging.DEBUG if args.verbose else logging.INFO
    if path := journal.wanted():  # under systemd: entries with fields, not lines of text
        logging.basicConfig(level=level, handlers=[journal.JournalHandler(path)])
    else:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "httpcore", "gguf", "alembic.runtime.plugins"):  # a line per request, file, plugin
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    from inspector.errors import InspectorError

    try:
        return args.func(args) or 0
    except InspectorError as e:  # a failure we know about: its words, not a traceback
        print(f"inspector: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
