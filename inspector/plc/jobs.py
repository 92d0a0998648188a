"""One PLC link's jobs on one camera, whatever the protocol: a trigger starts a job, the camera's
next frame takes it (acquisition done: the link is free for the next trigger), its line decision
and later its final verdict are the job's results.

The camera acquires one image at a time, so a link takes one trigger at a time: a second trigger
before the first one's image is taken is an overrun (OPC 40100-1's SingleExecution -> Ready;
the Busy bit of the Modbus handshake). A job whose image is not taken within `acquire_timeout_s`
(camera gone) is withdrawn and answered NG by the link itself, so the PLC always gets an answer
for every trigger and never two.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from inspector.errors import InspectorError
from inspector.messages import LineAnswer, LineDecision

KEEP = 4096  # jobs remembered after their image was taken (results come later; GetResultById)


class PlcError(InspectorError):
    """A PLC interface cannot start or was given something it cannot do."""


class JobBusy(PlcError):
    """A trigger while the previous one's image is not taken yet (an overrun)."""


class JobRefused(PlcError):
    """The line cannot take the trigger (not ready, too many waiting, unknown camera)."""


@dataclass
class Job:
    job_id: str
    part_id: str | None
    meas_id: str = ""
    recipe: str = ""  # the external recipe id the PLC named, if any
    started_mono: float = field(default_factory=time.monotonic)
    uid: str | None = None  # the inspection, once its image is taken
    decided: LineDecision | None = None
    timed_out: bool = False


class JobDesk:
    def __init__(self, link: str, camera: str, trigger, cancel, acquire_timeout_s: float = 2.0):
        self.link, self.camera = link, camera
        self._trigger = trigger  # (camera, part_id, job_id, product) -> waiting; raises when refused
        self._cancel = cancel  # (camera, job_id) -> bool: withdrawn before a frame took it
        self.acquire_timeout_s = acquire_timeout_s
        self._ids = itertools.count(1)
        self._run = f"{int(time.time()):x}"  # job ids stay unique across restarts
        self.lock = threading.RLock()
        self.acquiring: Job | None = None
        self.by_uid: OrderedDict[str, Job] = OrderedDict()
        self.by_id: OrderedDict[str, Job] = OrderedDict()
        self.jobs = self.overruns = self.timeouts = 0
        self.last_trigger_wall: float | None = None

    def start(self, part_id: str | None, meas_id: str = "", recipe: str = "", product: str | None = None) -> Job:
        """Triggers the camera for a new job (with `product`'s recipe, when given, for this part
        only). JobBusy while the previous job's image is not taken, JobRefused when the line
        cannot take it."""
        with self.lock:
            if self.acquiring is not None:
                self.overruns += 1
                raise JobBusy(f"trigger while job {self.acquiring.job_id} waits for its image")
            job = Job(f"{self.link}-{self._run}-{next(self._ids)}", part_id, meas_id, recipe)
            self.acquiring = job
            self.last_trigger_wall = time.time()
        try:
            self._trigger(self.camera, part_id, job.job_id, product)
        except Exception as e:
            with self.lock:
                self.acquiring = None
            raise JobRefused(str(e) or type(e).__name__) from None
        with self.lock:
            self.jobs += 1
            self._remember(self.by_id, job.job_id, job)
        return job

    def captured(self, camera: str, uid: str, _part_id, job_id: str | None) -> Job | None:
        """The pipeline took a frame (on_capture): the job it answers, if it is ours."""
        if camera != self.camera:
            return None
        with self.lock:
            job = self.by_id.get(job_id) if job_id else None
            if job is None or job.timed_out:
                return None
            job.uid = uid
            self._remember(self.by_uid, uid, job)
            if self.acquiring is job:
                self.acquiring = None
            return job

    def decided(self, d: LineDecision) -> Job | None:
        with self.lock:
            job = self.by_uid.get(d.uid)
            if job is not None:
                job.decided = d
            return job

    def job_of(self, uid: str) -> Job | None:
        with self.lock:
            return self.by_uid.get(uid)

    def expire(self) -> Job | None:
        """The job whose image was not taken in time, withdrawn from the camera (or None)."""
        with self.lock:
            job = self.acquiring
            if job is None or time.monotonic() - job.started_mono < self.acquire_timeout_s:
                return None
            if not self._cancel(self.camera, job.job_id):
                return None  # a frame took it just now: its capture is on its way
            job.timed_out = True
            self.acquiring = None
            self.timeouts += 1
            return job

    @staticmethod
    def _remember(book: OrderedDict, key: str, job: Job) -> None:
        book[key] = job
        while len(book) > KEEP:
            book.popitem(last=False)


def result_code(answer: LineAnswer) -> int:
    """The line decision as both protocols number it: 1 OK, 2 NG."""
    return 1 if answer is LineAnswer.ok else 2


def defect_code(defects: list[str], defect_type: str | None) -> int:
    """A finding's type as a number a PLC can switch on: its 1-based place in the product's
    `defects`, 255 for a type the product does not list, 0 for none."""
    if not defect_type:
        return 0
    return defects.index(defect_type) + 1 if defect_type in defects else 255
