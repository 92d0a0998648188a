"""Turn candidates and VLM reports into one verdict per frame, with the basis stated."""

from __future__ import annotations

from inspector.config import JudgeConfig
from inspector.messages import Candidate, CropAnswer, CropReport, Frame, Verdict, VerdictKind

P, F, R = VerdictKind.passed, VerdictKind.fail, VerdictKind.review


def judge(frame: Frame, candidates: list[Candidate], reports: list[CropReport] | None,
          cfg: JudgeConfig) -> Verdict:
    """`reports` is None when no VLM is configured (detector-only verdicts)."""
    cands = tuple(candidates)

    def v(kind, why, text, reps=()):
        return Verdict(frame, kind, why, text, cands, tuple(reps))

    if not cands:
        return v(P, "no_candidates", "The detector found nothing unusual.")
    if reports is None:
        strong = [c for c in cands if c.score >= cfg.fail_score]
        if strong:
            return v(F, "detector_only", f"Detector flagged {len(strong)} region(s); no VLM to confirm.")
        return v(R, "detector_only_weak",
                 f"Detector flagged {len(cands)} weak region(s) below the fail score; no VLM to confirm.")
    confident = [f for r in reports for f in r.findings if f.confidence >= cfg.min_confidence]
    if confident:
        types = sorted({f.defect_type for f in confident})
        return v(F, "vlm_agreed", f"VLM confirmed {len(confident)} defect(s): {', '.join(types)}.", reports)
    if any(r.answer is CropAnswer.unavailable for r in reports):
        err = next(r.error for r in reports if r.answer is CropAnswer.unavailable)
        return v(R, "vlm_unavailable", f"VLM unavailable, a person must look: {err}", reports)
    if any(r.answer is CropAnswer.invalid for r in reports):
        return v(R, "vlm_invalid", "VLM answer unusable after a repair attempt; raw answer kept.", reports)
    if any(r.answer in (CropAnswer.uncertain, CropAnswer.defect) for r in reports):
        return v(R, "vlm_uncertain", "VLM uncertain or not confident enough; a person must look.", reports)
    return v(P, "vlm_overruled", f"VLM found the {len(reports)} flagged region(s) acceptable.", reports)
