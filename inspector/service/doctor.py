"""`inspector doctor`: is this box ready to run its line? Each check runs against the real thing
(the cameras are opened and read, the models loaded and hashed, the VLM asked one real question,
the database connected) and says what is wrong in words someone at the line can act on. Nothing
is changed: the database is not migrated, no verdict is written.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inspector.util.redact import redact_text, redact_url

CAMERA_TIMEOUT_S = 20.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def _within(seconds: float, fn: Callable[[], str]) -> str:
    """fn's answer, or an error if it takes longer (a camera or server that hangs must not hang doctor)."""
    box: dict = {}

    def run():
        try:
            box["ok"] = fn()
        except BaseException as e:  # noqa: BLE001 - reported, not raised
            box["err"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise TimeoutError(f"no answer within {seconds:g} s")
    if "err" in box:
        raise box["err"]
    return box["ok"]


def check_database(cfg) -> Check:
    from sqlalchemy import create_engine, text

    from inspector.store import schema

    url = cfg.database_url
    shown = redact_url(url)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return Check("database", True, f"{shown}: not created yet (the first start creates it)")
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            c.execute(text("SELECT 1"))
        # The same diagnosis as the line's start: what doctor passes, `run` accepts.
        if schema.is_new(engine):
            return Check("database", True, f"{shown}: empty, the first start creates the schema ({schema.head()})")
        if (why := schema.problem(engine, shown)) is not None:
            return Check("database", False, why)
        return Check("database", True, f"{shown}: reachable, schema at {schema.head()}")
    except Exception as e:
        return Check("database", False, redact_text(f"{shown}: {type(e).__name__}: {getattr(e, 'orig', None) or e}"))
    finally:
        engine.dispose()


def check_disk(cfg) -> Check:
    d = cfg.data_dir
    probe = d if d.exists() else next((p for p in d.parents if p.exists()), d)
    free_mb = shutil.disk_usage(probe).free / 1e6
    need = cfg.store.retention.min_free_mb
    if free_mb < need:
        return Check("disk", False, f"{probe}: {free_mb:,.0f} MB free, under store.retention.min_free_mb "
                                    f"({need:,.0f} MB): pictures would not be kept")
    durable = ("every write fsynced: survives a power cut" if cfg.store.synchronous == "full" else
               "store.synchronous is normal: a power cut may take back the last verdicts and waiting "
               "crops (full fsyncs them)")
    return Check("disk", True, f"{probe}: {free_mb:,.0f} MB free (keeps at least {need:,.0f} MB); {durable}")


def check_detector(cfg) -> tuple[Check, object | None, dict]:
    """(the check, the shared detector, each product's tuning: its threshold, statistics, own model)."""
    from inspector.prefilter.calibration import product_tuning
    from inspector.prefilter import build_detector

    try:
        det = build_detector(cfg.detector)
        tuning = product_tuning(cfg, det)
    except Exception as e:
        return Check("detector", False, f"{type(e).__name__}: {e}"), None, {}
    cal = ", ".join(f"{p} threshold {t.threshold:.3f}"
                    + (f" on its own model {t.detector.model_id} (file matches its hash)" if t.detector else "")
                    for p, t in tuning.items()) or "model defaults"
    return Check("detector", True, f"{det.model_id} loaded, file matches its hash; {cal}"), det, tuning


def check_camera(cfg, cam, detector, tuning: dict | None = None) -> Check:
    from inspector.capture.sources import open_source

    opened: list = []

    def read() -> str:
        src = open_source(cam.source, cfg.data_dir, cfg.limits.max_image_pixels)
        opened.append(src)
        try:
            t = time.monotonic()
            if getattr(cam.source, "trigger", None) == "hardware":
                # a frame comes only when a part passes the trigger input: check the link and settings
                if not src.connect():
                    raise RuntimeError(src.last_error or "cannot connect")
                return (f"{src.name}: connected, features set, waiting for parts on {cam.source.trigger_line} "
                        "(hardware trigger: no frame taken)")
            item = src.read()
            if item is None:
                raise RuntimeError("the source gave no frame (empty folder, or the stream ended)")
            image, name = item
            h, w = image.shape[:2]
            roi = cam.inspection_roi()
            if roi and (roi[2] > w or roi[3] > h):
                raise RuntimeError(f"roi {list(roi)} reaches outside its {w}x{h} frames")
            tune = (tuning or {}).get(cam.product)  # as the line inspects this camera's product
            found = (None if detector is None else
                     len((tune.detector or detector).detect(image, roi, tune.threshold, tune.normal)) if tune else
                     len(detector.detect(image, roi)))
            extra = f", {found} candidate(s) in it" if found is not None else ""
            return f"{src.name}: a {w}x{h} frame in {(time.monotonic() - t) * 1000:.0f} ms{extra}"
        finally:
            src.close()
    try:
        return Check(f"camera {cam.id}", True, _within(CAMERA_TIMEOUT_S, read))
    except Exception as e:
        why = f"{type(e).__name__}: {e}"
        if opened and opened[0].last_error:  # a live camera that kept failing: say why it did
            why += f"; last error: {opened[0].last_error}"
        if opened:  # the reading thread ends its read and closes the source itself
            opened[0].stop_event.set()
        return Check(f"camera {cam.id}", False, why)


def check_vlm(cfg) -> Check:
    import numpy as np

    from inspector.cropper import crop_around
    from inspector.messages import Candidate, CropAnswer
    from inspector.reasoner import build_reasoner

    if cfg.reasoner.type == "none":
        return Check("VLM", True, "none configured: the line runs on the detector alone")
    try:
        reasoner = build_reasoner(cfg.reasoner, cfg.data_dir)
    except Exception as e:
        return Check("VLM", False, f"cannot start the reasoner: {e}")
    try:
        if problem := reasoner.probe():
            return Check("VLM", False, problem)
        # One real question about a plain grey patch: the answer's content does not matter, that
        # it comes back in time and passes validation does.
        img = np.full((256, 256, 3), 128, np.uint8)
        crop = crop_around(img, Candidate((64.0, 64.0, 192.0, 192.0), 1.0, "doctor", "doctor"), 0, padding=0.0,
                           min_side=cfg.cropper.min_side_px, out_side=cfg.cropper.max_side_px, upscale=False)
        product = cfg.product(cfg.cameras[0].product) if cfg.cameras else cfg.products[0]
        rep = reasoner.analyze(crop, product)
        if rep.answer is CropAnswer.unavailable:
            return Check("VLM", False, f"{reasoner.model_id}: asked one question, no usable answer: {rep.error}")
        build = ""
        if reasoner.backend == "llama_cpp":  # which llama.cpp: ERNIE-4.5-VL needs the patched one
            from inspector.reasoner import ernie_vl

            build = f"; llama-cpp-python {ernie_vl.llama_build()}" + (
                " (with patches/llama.cpp: ERNIE-4.5-VL)" if ernie_vl.build_has_patches() else "")
        return Check("VLM", True, f"{reasoner.model_id}: answered '{rep.answer.value}' in {rep.latency_ms:.0f} ms"
                                  + (" (TEST model: random weights)" if reasoner.is_test_model else "") + build)
    except Exception as e:
        return Check("VLM", False, f"{type(e).__name__}: {e}")
    finally:
        reasoner.close()


def check_opcua(cfg) -> Check:
    """The OPC UA server's certificate: there (or made at first start), not about to expire, and
    which PLC certificates are trusted."""
    from inspector.plc import PlcError, pki

    pki_dir = cfg.plc.opcua.pki_dir or cfg.data_dir / "opcua"
    try:
        s = pki.certificate_summary(pki_dir)
    except PlcError as e:
        return Check("OPC UA", False, str(e))
    if not s["present"]:
        return Check("OPC UA", True, f"no server certificate in {pki_dir}/own yet: the first start makes one "
                                     "(or `inspector install`)")
    trusted = f"{len(s['trusted'])} trusted client certificate(s)" if s["trusted"] else \
        f"no trusted client certificate: no PLC can connect until one is copied to {pki_dir}/trusted"
    if s["expires_in_days"] < 30:
        return Check("OPC UA", False, f"server certificate {s['thumbprint'][:16]} expires in {s['expires_in_days']} "
                                      f"day(s): PLCs will refuse it; {trusted}")
    return Check("OPC UA", bool(s["trusted"]), f"server certificate {s['thumbprint'][:16]}, valid "
                                               f"{s['expires_in_days']} more days; {trusted}")


def run(cfg) -> list[Check]:
    checks = [check_database(cfg), check_disk(cfg)]
    if cfg.plc.opcua.enabled:
        checks.append(check_opcua(cfg))
    det_check, detector, tuning = check_detector(cfg)
    checks.append(det_check)
    checks += [check_camera(cfg, cam, detector, tuning) for cam in cfg.cameras]
    checks.append(check_vlm(cfg))
    return checks
