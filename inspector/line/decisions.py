"""The line decision: OK/NG for every part, exactly once, by the product's deadline.

The judge's verdict can take as long as the VLM takes; the reject gate cannot wait. A part whose
product has `decision_deadline_ms` is tracked from the moment it is handed to the VLM: when its
verdict comes in time, the verdict decides; when the deadline (less the guard) comes first, the
product's `late_policy` decides and the verdict, whenever it arrives, is the second opinion,
stored on the same inspection. A part that reaches the judge after its deadline has already
passed (the box is overloaded) is decided by the policy too and counted as an overrun, never
waved through silently.

The clock is the monotonic one, from the part's software trigger when it had one, else from the
frame's capture: a wall clock stepped by NTP must not move a deadline.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from inspector.config import JudgeConfig, ProductConfig
from inspector.messages import Candidate, Frame, LineAnswer, LineDecision, Verdict, VerdictKind

log = logging.getLogger(__name__)


def answer_for(verdict: Verdict) -> LineAnswer:
    """A line gets OK or NG: a part sent to review leaves the line for a person to look at."""
    return LineAnswer.ok if verdict.kind is VerdictKind.passed else LineAnswer.ng


def policy_answer(policy: str, candidates: tuple[Candidate, ...] | list[Candidate],
                  judge_cfg: JudgeConfig) -> LineAnswer:
    if policy == "pass":
        return LineAnswer.ok
    if policy == "detector":
        strong = any(c.score >= judge_cfg.fail_score for c in candidates)
        return LineAnswer.ng if strong else LineAnswer.ok
    return LineAnswer.ng  # reject: fail-safe


@dataclass
class _Part:
    uid: str
    frame: Frame
    product: ProductConfig
    candidates: tuple[Candidate, ...]
    due: float  # monotonic: the deadline less the guard


class LineDecider:
    """Publishes one LineDecision per part to `publish` (called outside the lock, from the
    deciding thread: the pipeline's stage for verdicts in time, this class's timer otherwise).
    A decision made on a verdict is returned to the caller, who stores it with the verdict; one
    made without (deadline, overrun) is handed to `record` as well, to be stored now."""

    def __init__(self, products: list[ProductConfig], judge_cfg: JudgeConfig,
                 publish: Callable[[LineDecision], None],
                 record: Callable[[LineDecision], None] = lambda d: None):
        self.products = {p.name: p for p in products}
        self.judge_cfg = judge_cfg
        self.publish = publish
        self.record = record
        self.counts: Counter = Counter()
        self._waiting: dict[str, _Part] = {}  # uid -> part the VLM is still working on
        self._decided: set[str] = set()  # decided early; the verdict still to come
        self._heap: list[tuple[float, str]] = []
        self._cv = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    # --- life ---------------------------------------------------------------------------------

    def start(self) -> None:
        if any(p.decision_deadline_ms for p in self.products.values()):
            self._thread = threading.Thread(target=self._run, name="line-decisions", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the timer, and decide by their policy the parts the VLM still has: the line
        stops, their deadlines will not be kept, and the line must not be left without an
        answer (their verdicts, if they come, are second opinions)."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
            left = list(self._waiting.values())
            self._waiting.clear()
            self._heap.clear()
            self._decided.update(part.uid for part in left)
        if self._thread is not None:
            self._thread.join(timeout)
        for part in left:
            try:
                self._by_policy(part, "deadline", remember=False)
            except Exception:
                log.exception("line decision for %s at stop failed", part.uid)

    @property
    def pending(self) -> int:
        with self._cv:
            return len(self._waiting)

    # --- the stages' calls --------------------------------------------------------------------

    def expect(self, uid: str, frame: Frame, product: str, candidates: list[Candidate]) -> None:
        """The part goes to the VLM: decide by the policy if the VLM is not back in time. (A
        part resumed from the spool has its capture time moved onto this run's clock, so one an
        earlier run never told the line about is long past its deadline: an overrun now.)"""
        p = self.products.get(product)
        if p is None or p.decision_deadline_ms is None:
            return
        due = frame.started_mono + (p.decision_deadline_ms - p.decision_guard_ms) / 1000.0
        part = _Part(uid, frame, p, tuple(candidates), due)
        now = time.monotonic()
        if now >= due:  # inside the guard: decide now; past the deadline itself: an overrun
            late = now - frame.started_mono > p.decision_deadline_ms / 1000.0
            self._by_policy(part, "overrun" if late else "deadline")
            return
        with self._cv:
            if uid in self._decided or uid in self._waiting:
                return
            self._waiting[uid] = part
            heapq.heappush(self._heap, (due, uid))
            self._cv.notify()

    def uninspected(self, uid: str, frame: Frame, product: str) -> LineDecision:
        """The part could not be inspected (the pre-filter failed on its frame, or the frame
        buffer dropped it): NG, whatever the late policy, since nothing looked at it. Recorded
        like every decision made without a verdict."""
        p = self.products.get(product)
        return self._emit(uid, frame, product, LineAnswer.ng, "error", None, None,
                          p.decision_deadline_ms if p is not None else None)

    def already_decided(self, uid: str) -> None:
        """An earlier run decided this part (a frame resumed from the spool): its verdict, when
        it comes, is the second opinion only."""
        with self._cv:
            self._decided.add(uid)

    def verdict(self, uid: str, verdict: Verdict, product: str) -> LineDecision | None:
        """The judge's verdict for a part: it decides, unless the part was decided already.
        Returns the decision made now, or None when this verdict is the second opinion."""
        with self._cv:
            if uid in self._decided:
                self._decided.discard(uid)
                return None
            part = self._waiting.pop(uid, None)
        p = self.products.get(product)
        deadline = p.decision_deadline_ms if p is not None else None
        frame = verdict.frame
        if deadline is not None and part is None and \
                time.monotonic() - frame.started_mono > deadline / 1000.0:
            # Judged without the VLM, but only after the part had passed the gate.
            return self._by_policy(_Part(uid, frame, p, verdict.candidates, 0.0), "overrun", remember=False,
                                   record=False)
        if deadline is not None and verdict.why == "vlm_unavailable":
            # The VLM cannot answer (down, circuit open, queue full): the product's policy for a
            # part without the VLM's judgement decides, as at the deadline, not the review verdict.
            return self._by_policy(_Part(uid, frame, p, verdict.candidates, 0.0), "deadline", remember=False,
                                   record=False)
        return self._emit(uid, frame, product, answer_for(verdict), "verdict", None, verdict.kind.value,
                          deadline, record=False, defects=tuple(f.defect_type for f in verdict.findings))

    # --- deciding -----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stop and (not self._heap or self._heap[0][0] > time.monotonic()):
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cv.wait(wait)
                if self._stop:
                    return
                _, uid = heapq.heappop(self._heap)
                part = self._waiting.pop(uid, None)
                if part is not None:  # else: its verdict came first
                    self._decided.add(uid)  # in the same hold: a verdict now is the second opinion
            if part is not None:
                try:
                    self._by_policy(part, "deadline", remember=False)
                except Exception:  # a broken listener must not stop every later decision
                    log.exception("line decision for %s failed", uid)

    def _by_policy(self, part: _Part, basis: str, remember: bool = True,
                   record: bool = True) -> LineDecision | None:
        p = part.product
        if remember:
            with self._cv:
                if part.uid in self._decided:
                    return None
                self._decided.add(part.uid)
        answer = policy_answer(p.late_policy, part.candidates, self.judge_cfg)
        return self._emit(part.uid, part.frame, p.name, answer, basis, p.late_policy, None,
                          p.decision_deadline_ms, record)

    def _emit(self, uid, frame: Frame, product: str, answer: LineAnswer, basis: str, policy, kind,
              deadline, record: bool = True, defects: tuple[str, ...] = ()) -> LineDecision:
        elapsed = (time.monotonic() - frame.started_mono) * 1000.0
        d = LineDecision(uid=uid, camera_id=frame.camera_id, seq=frame.seq, product=product,
                         answer=answer, basis=basis, policy=policy, verdict_kind=kind,
                         captured_wall=frame.captured_wall, decided_wall=time.time(),
                         elapsed_ms=elapsed, deadline_ms=deadline, part_id=frame.part_id, defects=defects)
        with self._cv:
            self.counts[answer.value] += 1
            self.counts[basis] += 1
            if not d.on_time:
                self.counts["late"] += 1
        if basis != "verdict":
            # A deadline decision is the design working (a slow VLM); an overrun (the box too
            # slow for the line) or an error is something someone must hear about.
            (log.info if basis == "deadline" else log.warning)("camera %s part %d: %s by late_policy %s (%s after %.0f ms, deadline %s ms)",
                        frame.camera_id, frame.seq, answer.value.upper(), policy, basis, d.elapsed_ms,
                        deadline)
        self.publish(d)
        if record:
            self.record(d)
        return d
