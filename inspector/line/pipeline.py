"""Wires the stages: capture -> pre-filter + crop -> (reasoner) -> judge -> store.

Threads, not processes, for this first version: onnxruntime and llama.cpp release the GIL while
they compute. Capture only ever waits on the bounded frame queue (replay sources are paced by their
fps); the pre-filter never waits on the VLM: crops go to a bounded reasoner queue served by
`reasoner.workers` threads, and when it is full the frame is judged `review` ("VLM queue full")
rather than blocking the line. A frame handed to the reasoner queue is first made durable in the
spool and leaves it only when its verdict is committed, so a crash or restart loses none (the
next start resumes them). Crops the VLM could not answer (down, circuit open, queue full) go to a
disk backlog and are reasoned when it is back; their answers join the stored inspection.

Verdicts go to the store's writer thread; a verdict counts as reported (stats, latency,
`on_verdict` listeners) only once it is committed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field

from inspector.capture import camera_calibration
from inspector.config import Config
from inspector.config.base import ConfigError
from inspector.cropper import make_crops
from inspector.events import build_senders
from inspector.capture.framebuffer import FrameBuffer
from inspector.line.decisions import LineDecider
from inspector.line.judge import judge
from inspector.line.recipes import RecipeError
from inspector.line.status import CameraStatus, DecisionStatus, LineStatus
from inspector.capture.live_view import LiveView
from inspector.messages import Candidate, Crop, CropAnswer, CropReport, Frame, LineDecision, Verdict
from inspector.capture.orientation import inside, orienter
from inspector.capture.part_codes import PartCodeReader
from inspector.prefilter import build_detector
from inspector.prefilter import product_model
from inspector.prefilter.calibration import product_tuning
from inspector.reasoner import build_reasoner
from inspector.reasoner.backlog import Backlog
from inspector.reasoner.spool import Spool, SpoolError
from inspector.capture.sources import SourceError, open_source
from inspector.store import Store
from inspector.capture.triggers import Trigger

log = logging.getLogger(__name__)


LATENCY_WINDOW = 1000  # verdicts per camera the latency percentiles are taken over


@dataclass
class CameraState:
    id: str
    source: str
    state: str = "starting"  # running / exhausted / failed
    frames_in: int = 0
    frames_inspected: int = 0
    read_errors: int = 0
    last_frame_wall: float | None = None
    error: str | None = None  # why it failed, for the API and dashboard
    untriggered: int = 0  # frames captured but not inspected (the trigger did not fire)
    product: str = ""  # the recipe now; a frame takes the one in force when it is triggered


@dataclass
class Stats:
    verdicts: Counter = field(default_factory=Counter)
    candidates: int = 0
    vlm_crops: int = 0
    vlm_overflow: int = 0
    vlm_late: int = 0  # backlog crops answered after their verdict
    processing_errors: int = 0
    store_errors: int = 0


@dataclass(frozen=True)
class _Job:
    uid: str  # the inspection's uid-to-be; also the job's name in the spool
    frame: Frame
    product: str
    candidates: list[Candidate]
    crops: list[Crop]


class Pipeline:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.detector = build_detector(cfg.detector)
        self.tuning = product_tuning(cfg, self.detector)
        self.reasoner = build_reasoner(cfg.reasoner, cfg.data_dir)
        self.store = Store(cfg.database_url, cfg.data_dir, cfg.store)
        self.store.sync_config(cfg)
        self.store.unpark()  # verdicts an earlier stop could not write: before anything new
        self.versions = self._register_models()
        # A product with its own model (`inspector train`): its verdicts name that file instead.
        self.product_versions = {
            p: {**self.versions, "detector": self.store.register_model(
                "detector", t.detector.model_id, product_model.paths(cfg.calibration_dir, p)[0])}
            for p, t in self.tuning.items() if t.detector is not None}
        self.run_id = uuid.uuid4().hex[:12]  # with camera and seq, names each inspection for good
        self.on_verdict: list = []  # called with (inspection_id, uid, verdict) once committed
        self.events = build_senders(cfg, self.store)
        self.on_verdict.extend(s.notify for s in self.events)
        self.stop_event = threading.Event()
        self.sources = {cam.id: open_source(cam.source, cfg.data_dir, cfg.limits.max_image_pixels, self.stop_event)
                        for cam in cfg.cameras}
        for cam in cfg.cameras:
            src = self.sources[cam.id]
            if cam.trigger.acquisition == "triggered" and not src.acquires_on_read:
                raise ConfigError(f"camera {cam.id}: trigger.acquisition: triggered needs a camera that takes "
                                  f"an image on a trigger; a {cam.source.type} source streams (use free_running"
                                  + (", or source.trigger: software" if hasattr(cam.source, "trigger") else "") + ")")
            if getattr(cam.source, "trigger", None) == "software" and cam.trigger.acquisition != "triggered":
                raise ConfigError(f"camera {cam.id}: source.trigger: software takes an image only when the line "
                                  "asks: set trigger.mode: software and trigger.acquisition: triggered")
        self.on_verdict.append(self._source_judged)
        # Called with each LineDecision (OK/NG for the line), once per part, by its deadline.
        self.on_decision: list = []
        self.plc_links: list = []  # PLC interfaces serving this line (plc/), for the status
        # Called with (camera_id, uid, part_id, job) once a frame to inspect is taken: the image is
        # acquired, so the camera may be triggered for the next part.
        self.on_capture: list = []
        self.decider = LineDecider(cfg.products, cfg.judge, self._publish_decision,
                                   record=lambda d: self.store.decisions.add(d))
        # (undistorter, mm per pixel) per camera; a broken calibration file stops the start.
        self.geometry = {cam.id: camera_calibration.for_camera(cfg.calibration_dir, cam) for cam in cfg.cameras}
        self.cameras = {cam.id: CameraState(cam.id, self.sources[cam.id].name, product=cam.product)
                        for cam in cfg.cameras}
        self.stats = Stats()
        self.live = LiveView([cam.id for cam in cfg.cameras])
        self.frames = FrameBuffer()
        self.frames.on_drop = self._dropped
        for cam in cfg.cameras:
            policy = cam.buffer.policy
            # A replay loses nothing by waiting, and neither does a camera that takes an image only
            # when a trigger asks (each image is a part: none may be dropped); a streaming camera
            # must not wait.
            may_wait = self.sources[cam.id].replay or cam.trigger.acquisition == "triggered"
            if policy == "auto":
                policy = "block" if may_wait else "latest"
            elif policy == "block" and not may_wait:
                raise ValueError(f"camera {cam.id}: buffer.policy block is for offline replay and triggered "
                                 f"acquisition only; a streaming camera would fall behind the line (use latest "
                                 f"or drop_oldest)")
            self.frames.add_camera(cam.id, policy, cam.buffer.size or cfg.frame_queue)
        self._latency = {cam.id: deque(maxlen=LATENCY_WINDOW) for cam in cfg.cameras}
        self.triggers = {cam.id: Trigger(cam.trigger) for cam in cfg.cameras}
        # The reasoner's settings exist only when one is configured (`reasoner.type: none` has none).
        rcfg = cfg.reasoner if self.reasoner is not None else None
        self.jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=rcfg.queue_size if rcfg else 1)
        self.workers = rcfg.workers if rcfg else 1
        self._workers_left = self.workers
        self.backlog = Backlog(cfg.data_dir / "vlm-backlog", rcfg.backlog_max) if rcfg else None
        self.spool = Spool(cfg.data_dir / "vlm-spool", fsync=cfg.store.synchronous == "full") \
            if self.reasoner is not None else None
        self.resumed: deque[_Job] = deque()  # spooled by an earlier run: reasoned before new frames
        self.done = threading.Event()  # every source exhausted and every frame judged
        # The pre-filter loop beats on every pass (at least every 0.2 s, frames or not); the
        # systemd watchdog is fed only while it does.
        self.heartbeat = time.monotonic()
        self._process_ended = False
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    # --- public -------------------------------------------------------------------------------

    @property
    def reasoner_mode(self) -> str:
        if self.reasoner is None:
            return "none"
        return "test_model" if self.reasoner.is_test_model else "vlm"

    def status(self) -> LineStatus:
        with self._lock:
            return LineStatus(
                reasoner_mode=self.reasoner_mode,
                reasoner_model=self.reasoner.model_id if self.reasoner else None,
                detector_model=self.detector.model_id,
                detector_thresholds={p: t.threshold for p, t in self.tuning.items()},
                cameras=[self._camera_status(c) for c in self.cameras.values()],
                verdicts=dict(self.stats.verdicts),
                candidates=self.stats.candidates,
                vlm_crops=self.stats.vlm_crops,
                vlm_queue=self.jobs.qsize(),
                vlm_overflow=self.stats.vlm_overflow,
                vlm_backlog=len(self.backlog) if self.backlog is not None else 0,
                vlm_late=self.stats.vlm_late,
                reasoner=self.reasoner.status() if self.reasoner else None,
                frame_queue=self.frames.depth(),
                processing_errors=self.stats.processing_errors,
                store_errors=self.stats.store_errors + self.store.writer.failed,
                vlm_spool=len(self.spool) if self.spool is not None else 0,
                vlm_resumed=len(self.resumed),
                store=self.store.status(),
                events=[s.status() for s in self.events],
                done=self.done.is_set(),
                decisions=DecisionStatus(**{k: self.decider.counts[k] for k in (
                    "ok", "ng", "verdict", "deadline", "overrun", "error", "late")}, pending=self.decider.pending),
                plc=[link.status() for link in self.plc_links],
            )

    def stalled_for(self) -> float:
        """Seconds since the pre-filter loop last beat; 0 once it has finished its sources."""
        return 0.0 if self._process_ended else time.monotonic() - self.heartbeat

    def _register_models(self) -> dict[str, int]:
        """Every model file in use, by content, so each verdict says which files made it."""
        out = {"detector": self.store.register_model("detector", self.detector.model_id, self.cfg.detector.model)}
        if self.reasoner is not None:
            files = self.reasoner.model_files
            for role, path in files.items():
                vid = self.store.register_model(role, self.reasoner.model_id, path)
                if role == "vlm":
                    out["vlm"] = vid
            if "vlm" not in files:  # behind an HTTP server: known by name only
                out["vlm"] = self.store.register_model("vlm", self.reasoner.model_id)
        return out

    def trigger(self, camera_id: str, part_id: str | None = None, job: str | None = None,
                product: str | None = None) -> int:
        """A software trigger: the camera's next frame is inspected (as part `part_id`, when
        given; with `product`'s recipe, when given, else the camera's; `job` comes back to the
        `on_capture` listeners with its frame). Returns the requests waiting; KeyError for an
        unknown camera, TriggerFull when too many wait already."""
        return self.triggers[camera_id].request(part_id, product or self.cameras[camera_id].product, job)

    def cancel_trigger(self, camera_id: str, job: str) -> bool:
        """Withdraws `job`'s software trigger if no frame has taken it yet."""
        return self.triggers[camera_id].cancel(job)

    def change_recipe(self, camera_id: str, which: str | int, by: str) -> tuple[str, str]:
        """Changeover: the camera inspects `which` (a product name or recipe number) from its
        next trigger on; parts already taken finish with the recipe they were taken under.
        Returns (from, to). KeyError for an unknown camera, RecipeError for an unknown recipe
        (the camera keeps its recipe)."""
        state = self.cameras[camera_id]
        try:
            product = self.cfg.recipe(which)
        except KeyError:
            known = ", ".join(p.name + (f" (#{p.recipe})" if p.recipe is not None else "") for p in self.cfg.products)
            raise RecipeError(f"no recipe {which!r}; known: {known}") from None
        with self._lock:
            before, state.product = state.product, product.name
        if before != product.name:
            try:
                self.store.add_recipe_change(camera_id, before, product.name, by)
            except Exception as e:  # the changeover stands: the line must follow the PLC
                log.error("changeover of camera %s to %s not recorded: %s", camera_id, product.name, e)
            log.info("camera %s: recipe %s -> %s (by %s)", camera_id, before, product.name, by)
        return before, product.name

    def _camera_status(self, c: CameraState) -> CameraStatus:
        lat = sorted(self._latency[c.id])
        pct = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 1) if lat else None  # noqa: E731
        src = self.sources[c.id]
        link = {"connection": src.state, "reconnects": src.reconnects, "last_error": src.last_error,
                "lost": src.lost}
        t = self.triggers[c.id]
        link.update(trigger=t.mode, parts_seen=t.parts if t.mode == "part_presence" else None)
        return CameraStatus(**vars(c), **link, fps=self.live.fps(c.id),
                            dropped=self.frames.dropped[c.id], buffered=self.frames.depth(c.id),
                            latency_p50_ms=pct(0.5), latency_p95_ms=pct(0.95))

    def _resume_spool(self) -> None:
        """Frames an earlier run spooled but did not finish: reason them first. One whose verdict
        did get in before the crash just leaves the spool. Returns the uids it found."""
        pending = self.spool.pending()
        for sj in pending:
            if self.store.has_uid(sj.uid):
                self.spool.done(sj.uid)
                continue
            job = _Job(sj.uid, sj.frame, sj.product, list(sj.candidates), [])
            if sj.product not in {p.name for p in self.cfg.products}:
                why = f"product {sj.product!r} is no longer in the config; not asked after the restart"
            else:
                try:
                    job = _Job(sj.uid, sj.frame, sj.product, job.candidates,
                               make_crops(sj.frame.image, job.candidates, self.cfg.cropper))
                    self._expect_resumed(job)
                    self.resumed.append(job)
                    continue
                except Exception as e:
                    why = f"could not crop the spooled frame again ({e})"
            # The part must not pass unseen: a person looks at it, and the spool entry goes once
            # that verdict is in.
            log.error("spool: frame %s: %s; judged review without the VLM", sj.uid, why)
            self._expect_resumed(job)
            self._unavailable(job, why, spooled=True)
        if self.resumed:
            log.warning("resuming %d frame(s) spooled for the VLM by the previous run", len(self.resumed))
        return {sj.uid for sj in pending}

    def _expect_resumed(self, job: _Job) -> None:
        """A part the previous run handed to the VLM: told to the line then, or (it stopped
        first) long past its deadline now."""
        if self.store.decisions.has(job.uid):
            self.decider.already_decided(job.uid)
        else:
            self.decider.expect(job.uid, job.frame, job.product, job.candidates)

    def _remember_inspected(self, spooled: set[str]) -> None:
        """Folder sources that remember (or move) what they inspected: their memory counts a file
        an earlier run handed on once its inspection is stored or spooled."""
        for cam in self.cfg.cameras:
            self.sources[cam.id].remember(self.cfg.data_dir / "inspected" / f"{cam.id}.jsonl",
                                          lambda uid: uid in spooled or self.store.has_uid(uid),
                                          fsync=self.cfg.store.synchronous == "full")

    def _dropped(self, camera_id: str, frames: list[Frame]) -> None:
        """A part-triggered frame the buffer let go (the pre-filter fell behind) is a part the
        line must still hear about: NG, not inspected. A continuous camera's frames are not
        parts, and dropping them is what its `latest` buffer is for."""
        if self.triggers[camera_id].mode == "continuous":
            return
        for frame in frames:
            product = frame.product or self.cameras[camera_id].product
            self.decider.uninspected(self._uid(self.run_id, camera_id, frame.seq), frame, product)

    def _publish_decision(self, d: LineDecision) -> None:
        """To the line (its listeners); the decider then has it stored."""
        for listener in self.on_decision:
            try:
                listener(d)
            except Exception:
                log.exception("line decision listener failed for %s", d.uid)

    def _source_judged(self, inspection_id: int, uid: str, verdict: Verdict) -> None:
        src = self.sources.get(verdict.frame.camera_id)
        if src is not None:
            src.judged(uid)

    @staticmethod
    def _uid(run_id: str, camera_id: str, seq: int) -> str:
        return f"{run_id}:{camera_id}:{seq}"

    def start(self) -> None:
        self.heartbeat = time.monotonic()
        spooled = self._resume_spool() if self.spool is not None else set()
        self._remember_inspected(spooled)
        self.store.start_retention()
        self.decider.start()
        for sender in self.events:
            sender.start()
        for cam in self.cfg.cameras:
            self._spawn(f"capture-{cam.id}", self._capture, cam)
        self._spawn("prefilter", self._process)
        if self.reasoner is not None:
            for n in range(self.workers):
                self._spawn(f"reasoner-{n}", self._reason)
            if self.backlog is not None and self.backlog.max_items:
                self._spawn("vlm-backlog", self._drain_backlog)
        if self.reasoner is not None and (problem := self.reasoner.probe()):
            log.warning("%s; verdicts that need the VLM go to review until it answers", problem)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop capture, let the stages finish what they hold, flush the database; all within
        `timeout` seconds. A VLM call still running then is abandoned: its frame stays in the
        spool and is asked again at the next start."""
        deadline = time.monotonic() + timeout
        left = lambda reserve=0.0: max(0.0, deadline - reserve - time.monotonic())  # noqa: E731
        self.stop_event.set()
        for t in self._threads:
            t.join(left(reserve=min(2.0, timeout / 4)))  # the rest is the database's
        # After the stages: what they judged in the meantime was told as usual; the parts still
        # with the VLM are told by their policy now, before the database's last flush.
        self.decider.stop(min(1.0, timeout / 10))
        # Parts taken but not yet inspected: told as not inspected, as a dropped one is.
        for frame in self.frames.drain():
            self._dropped(frame.camera_id, [frame])
        # The database's share ends a little early: what it has not taken by then is parked on
        # disk for the next start (Store.close), which must fit in the deadline too.
        park = min(1.5, timeout / 5)
        self.store.flush(left(reserve=park))
        for sender in self.events:  # after the flush, so the last verdicts can still go out
            sender.stop(min(left(reserve=park), 5.0))
        for src in self.sources.values():
            src.close()
        if self.reasoner is not None:
            self.reasoner.close()
        self.store.close(left(reserve=park / 2))

    # --- stages -------------------------------------------------------------------------------

    def _spawn(self, name, target, *args):
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _capture(self, cam) -> None:
        src, state = self.sources[cam.id], self.cameras[cam.id]
        state.state = "running"
        seq = 0
        period = 1.0 / src.fps if src.fps else 0.0
        next_due = time.monotonic()
        roi = cam.inspection_roi() or src.default_roi
        orient = orienter(cam.rotate, cam.flip)
        undistort, mm_per_px = self.geometry[cam.id]
        trigger = self.triggers[cam.id]
        readers: dict[str, PartCodeReader] = {}  # per product: a changeover may bring another code
        # A camera that acquires on trigger takes an image only when asked (no frame to wait for,
        # none decoded for nothing); fps is then its fastest rate.
        on_trigger = cam.trigger.acquisition == "triggered"
        try:
            while not self.stop_event.is_set():
                if on_trigger and not trigger.wait_request(0.2):
                    continue
                item = src.read()
                state.read_errors = src.errors
                if item is None:
                    if not state.frames_in and src.errors and not self.stop_event.is_set():
                        state.state = "failed"
                        state.error = f"no readable frame ({src.errors} unreadable)"
                        log.error("camera %s failed: %s", cam.id, state.error)
                    else:
                        state.state = "exhausted"
                    break
                image, name = item
                if period:  # a replay plays at the camera's rate, inspected or not
                    next_due += period
                    delay = next_due - time.monotonic()
                    if delay > 0 and self.stop_event.wait(delay):
                        break
                # The part's clock starts here, not after undistortion, the live view and a code
                # read: its deadline is counted from it.
                taken_mono, taken_wall = time.monotonic(), time.time()
                state.frames_in += 1
                state.last_frame_wall = taken_wall
                if undistort is not None:
                    image = undistort(image)  # in the sensor's geometry, so before turning
                if orient is not None:
                    image = orient(image)
                self.live.frame(cam.id, image, roi)
                if not trigger.fire(image, roi):
                    state.untriggered += 1
                    continue
                seq += 1
                uid = self._uid(self.run_id, cam.id, seq)
                src.taken(uid)
                product = trigger.requested_product or state.product  # the recipe at the trigger, for good
                part_id = trigger.part_id or self._read_part_id(readers, product, image)
                frame = Frame(cam.id, seq, image, roi=roi, source_name=name, mm_per_px=mm_per_px,
                              part_id=part_id, product=product, triggered_mono=trigger.requested_mono,
                              captured_mono=taken_mono, captured_wall=taken_wall,
                              device_frame_id=src.last_frame_id, device_timestamp=src.last_timestamp)
                for listener in self.on_capture:
                    try:
                        listener(cam.id, uid, part_id, trigger.job)
                    except Exception:  # a PLC link's fault must not stop the camera
                        log.exception("capture listener failed")
                if not self.frames.put(cam.id, frame, self.stop_event):
                    break
        except (camera_calibration.CameraCalibrationError, SourceError) as e:
            state.state, state.error = "failed", str(e)
            log.error("camera %s failed: %s", cam.id, e)
        except Exception as e:
            state.state, state.error = "failed", f"{type(e).__name__}: {e}"
            log.exception("camera %s failed", cam.id)
        finally:
            self.frames.close(cam.id)

    def _read_part_id(self, readers: dict, product: str, image) -> str | None:
        code = self.cfg.product(product).part_code
        if code.type == "none":
            return None
        reader = readers.get(product)
        if reader is None:
            reader = readers[product] = PartCodeReader(code.type, code.region)
        return reader.read(image)

    def _process(self) -> None:
        products = {cam.id: cam.product for cam in self.cfg.cameras}
        polygons = {cam.id: cam.roi_polygon for cam in self.cfg.cameras}
        while not self.stop_event.is_set():
            self.heartbeat = time.monotonic()
            try:
                frame = self.frames.get(timeout=0.2)
            except TimeoutError:
                continue
            if frame is None:
                self._process_ended = True  # every source is done: nothing left to hang
                if self.reasoner is not None:
                    for _ in range(self.workers):
                        self.jobs.put(None)
                else:
                    self._finish()
                return
            product = frame.product or products[frame.camera_id]
            try:
                tune = self.tuning.get(product)
                cands = ((tune.detector or self.detector).detect(frame.image, frame.roi, tune.threshold, tune.normal)
                         if tune else self.detector.detect(frame.image, frame.roi))
                cands = inside(polygons[frame.camera_id], cands)
                crops = make_crops(frame.image, cands, self.cfg.cropper) if cands else []
            except Exception as e:
                self.stats.processing_errors += 1
                log.error("camera %s frame %d (%s): pre-filter failed: %s",
                          frame.camera_id, frame.seq, frame.source_name, e)
                self.decider.uninspected(self._uid(self.run_id, frame.camera_id, frame.seq), frame, product)
                continue
            self.live.inspected(frame.camera_id, frame.seq, frame.image, cands)
            self.cameras[frame.camera_id].frames_inspected += 1
            self.stats.candidates += len(cands)
            uid = self._uid(self.run_id, frame.camera_id, frame.seq)
            if not cands or self.reasoner is None:
                self._record(judge(frame, cands, None if self.reasoner is None else [], self.cfg.judge),
                             product, crops, uid)
                continue
            job = _Job(uid, frame, product, cands, crops)
            if self.jobs.full():  # checked first: a frame that cannot wait is not spooled at all
                self._unavailable(job, "VLM queue full (the VLM cannot keep up with the line)")
                self.stats.vlm_overflow += 1
                continue
            try:
                self.spool.put(uid, product, frame, cands)
            except SpoolError as e:
                log.error("%s; judged without the VLM", e)
                self._unavailable(job, f"could not keep the frame for the VLM ({e})")
                continue
            # Before the queue: a verdict quicker than this line would otherwise find no deadline
            # to cancel, and the timer would decide the part a second time.
            self.decider.expect(uid, frame, product, cands)
            try:
                self.jobs.put_nowait(job)
            except queue.Full:  # only this thread puts, but workers may be slow to take
                self.spool.done(uid)
                self.stats.vlm_overflow += 1
                self._unavailable(job, "VLM queue full (the VLM cannot keep up with the line)")

    def _unavailable(self, job: _Job, why: str, spooled: bool = False) -> None:
        # One report per crop; one for the frame when there are no crops (with none, the judge
        # would read "the VLM saw nothing wrong").
        reports = [CropReport(c.index, CropAnswer.unavailable, (), (), "", "", 0.0, why)
                   for c in job.crops] or [CropReport(0, CropAnswer.unavailable, (), (), "", "", 0.0, why)]
        self._record(judge(job.frame, job.candidates, reports, self.cfg.judge), job.product, job.crops, job.uid,
                     spooled=spooled)

    def _next_job(self) -> _Job | None | bool:
        """A resumed job first, else the next live one; False when nothing came in time."""
        with self._lock:
            if self.resumed:
                return self.resumed.popleft()
        try:
            return self.jobs.get(timeout=0.2)
        except queue.Empty:
            return False

    def _finish(self) -> None:
        """Every frame is judged: wait until the last verdicts are committed, then say done."""
        self.store.flush(60)
        self.done.set()

    def _reason(self) -> None:
        while not self.stop_event.is_set():
            job = self._next_job()
            if job is False:
                continue
            if job is None:
                with self._lock:
                    self._workers_left -= 1
                    last = self._workers_left == 0
                if last:
                    self._finish()
                return
            product = self.cfg.product(job.product)
            reports = []
            for crop in job.crops:
                try:
                    reports.append(self.reasoner.analyze(crop, product, job.frame))
                except Exception as e:  # never let one bad crop kill the thread and strand the queue
                    log.exception("reasoner failed on camera %s frame %d crop %d",
                                  job.frame.camera_id, job.frame.seq, crop.index)
                    reports.append(CropReport(crop.index, CropAnswer.unavailable, (), (), "",
                                              self.reasoner.model_id, 0.0, f"reasoner error: {e}"))
                with self._lock:
                    self.stats.vlm_crops += 1
            self._record(judge(job.frame, job.candidates, reports, self.cfg.judge), job.product,
                         job.crops, job.uid, spooled=True)

    def _drain_backlog(self) -> None:
        """Reason kept crops when the VLM answers again; the live line always goes first."""
        while not self.stop_event.wait(0.5):
            if self.reasoner.breaker.state == "open" or not self.jobs.empty():
                continue
            item = self.backlog.oldest()
            if item is None:
                continue
            try:
                report = self.reasoner.analyze(item.crop, self.cfg.product(item.product))
            except Exception:
                log.exception("VLM backlog: reasoning inspection %d failed", item.inspection_id)
                continue
            if report.answer is CropAnswer.unavailable:
                continue  # still down: the item stays; the breaker paces the retries
            late_s = time.time() - item.queued_wall
            found = ", ".join(f"{f.defect_type} {f.confidence:.2f}" for f in report.findings)
            note = (f"[VLM answered {late_s:.0f} s later for crop {item.crop.index}: "
                    f"{report.answer.value}{': ' + found if found else ''}]")
            try:
                stored = self.store.add_late_report(item.inspection_id, report, note)
            except Exception as e:
                log.error("VLM backlog: could not store the late answer for inspection %d: %s",
                          item.inspection_id, e)
                continue
            self.backlog.done(item)
            if stored:
                with self._lock:
                    self.stats.vlm_late += 1

    def _record(self, verdict: Verdict, product: str, crops: list[Crop] = (), uid: str | None = None,
                spooled: bool = False) -> None:
        """Hand the verdict to the store's writer; what follows a commit happens in `committed`."""
        def committed(inspection_id: int) -> None:
            if spooled:
                self.spool.done(uid)
            with self._lock:
                self.stats.verdicts[verdict.kind.value] += 1
                lat = self._latency.get(verdict.frame.camera_id)  # None: a resumed frame of a camera since removed
                if lat is not None:
                    lat.append(time.monotonic() - verdict.frame.captured_mono)
            if self.backlog is not None:
                by_index = {c.index: c for c in crops}
                for r in verdict.reports:
                    if r.answer is CropAnswer.unavailable and r.crop_index in by_index:
                        self.backlog.put(inspection_id, product, verdict.frame.camera_id,
                                         by_index[r.crop_index])
            for listener in self.on_verdict:
                listener(inspection_id, uid, verdict)

        # The line first; stored with the verdict. None: the line was told earlier, and this
        # verdict is the second opinion.
        decision = self.decider.verdict(uid, verdict, product) if uid is not None else None
        try:
            self.store.submit(verdict, product, self.reasoner_mode, uid=uid, versions=self.product_versions.get(product, self.versions),
                              crops=tuple(crops), on_commit=committed, decision=decision)
        except Exception as e:
            self.stats.store_errors += 1
            log.error("could not store verdict for camera %s frame %d: %s",
                      verdict.frame.camera_id, verdict.frame.seq, e)
