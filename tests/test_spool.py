"""The durable spool: a frame waiting for the VLM is on disk until its verdict is committed, and
the next start resumes it exactly once."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sqlalchemy import func, select

from inspector.config import DetectorConfig, parse_config
from inspector.demo.line import ROI
from inspector.messages import Frame
from inspector.line.pipeline import Pipeline
from inspector.prefilter import build_detector
from inspector.reasoner.spool import Spool, SpoolError
from inspector.store import models as m
from tests.scripted_vlm import ScriptedVLM, answer, completion

STAIN = {"type": "stain", "severity": "major", "confidence": 0.9, "box": [100, 100, 900, 900], "reason": "tint"}


def _frame(seq: int) -> Frame:
    img = np.random.default_rng(seq).integers(0, 255, (40, 60, 3), np.uint8)
    return Frame("cam1", seq, img, roi=(1, 2, 50, 30), source_name=f"part_{seq}.png", mm_per_px=0.2)


def test_a_spooled_job_comes_back_whole(tmp_path):
    from inspector.messages import Candidate

    s = Spool(tmp_path / "spool")
    cands = (Candidate((3.0, 4.0, 20.0, 25.0), 0.75, "defect", "m@1"),)
    f = _frame(1)
    s.put("run:cam1:1", "tile", f, cands)
    s.put("run:cam1:2", "tile", _frame(2), ())
    (tmp_path / "spool" / "debris.npy").write_bytes(b"half")  # a crash between the two writes
    (tmp_path / "spool" / "bad.json").write_text("{not json")
    s2 = Spool(tmp_path / "spool")
    assert not (tmp_path / "spool" / "debris.npy").exists()
    jobs = s2.pending()
    assert [j.uid for j in jobs] == ["run:cam1:1", "run:cam1:2"]
    j = jobs[0]
    assert j.product == "tile" and j.candidates == cands
    assert (j.frame.image == f.image).all() and j.frame.roi == f.roi and j.frame.seq == 1
    assert (j.frame.source_name, j.frame.mm_per_px, j.frame.captured_wall) == ("part_1.png", 0.2, f.captured_wall)
    assert (tmp_path / "spool" / "bad.damaged").exists()  # set aside, named in the log, not retried
    s2.done("run:cam1:1")
    assert [j.uid for j in s2.pending()] == ["run:cam1:2"] and len(s2) == 1


def test_a_job_that_cannot_be_spooled_says_so_and_leaves_nothing(tmp_path, monkeypatch):
    s = Spool(tmp_path / "spool")

    def full(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(np, "save", full)
    with pytest.raises(SpoolError, match="could not spool frame 3 of camera cam1: .*No space left"):
        s.put("u3", "tile", _frame(3), ())
    assert list((tmp_path / "spool").iterdir()) == []


def test_the_next_start_resumes_the_spool_once(demo_line, tmp_path):
    """Frames spooled by a run that died: one whose verdict never made it is reasoned and stored;
    one whose verdict did make it just leaves the spool; nothing is stored twice."""
    frames = sorted(demo_line.frames_dir.glob("*.png"))
    det = build_detector(DetectorConfig())
    flagged = []
    for p in frames:
        img = cv2.imread(str(p))
        cands = det.detect(img, ROI)
        if cands:
            flagged.append((p, img, cands))
        if len(flagged) == 2:
            break
    assert len(flagged) == 2, "the demo line has flagged parts"
    data = tmp_path / "data"
    spool = Spool(data / "vlm-spool")
    uids = []
    for n, (p, img, cands) in enumerate(flagged):
        uid = f"deadrun:cam1:{n + 1}"
        spool.put(uid, "demo-tile", Frame("cam1", n + 1, img, roi=ROI, source_name=p.name), cands)
        uids.append(uid)
    empty = tmp_path / "no-new-frames"
    empty.mkdir()
    cv2.imwrite(str(empty / "blank.png"), np.full((480, 640, 3), 128, np.uint8))
    with ScriptedVLM(lambda body: (200, completion(answer("defect", [STAIN])), 0)) as vlm:
        cfg = parse_config({
            "data_dir": str(data),
            "cameras": [{"id": "cam1", "roi": list(ROI), "source": {"type": "folder", "path": str(empty)}}],
            "reasoner": {"type": "openai", "base_url": vlm.base_url, "server": "llama_cpp_python"},
            "web": {"enabled": False},
        })
        # The first job's verdict was committed just before the crash; the spool did not hear of it.
        first = Pipeline(cfg)
        from inspector.line.judge import judge
        first.store.save(judge(Frame("cam1", 1, flagged[0][1], roi=ROI), list(flagged[0][2]), None, cfg.judge),
                         "demo-tile", "vlm", uid=uids[0])
        first.stop()
        pipe = Pipeline(cfg)
        pipe.start()
        try:
            assert pipe.done.wait(60)
            with pipe.store.engine.connect() as c:
                rows = dict(c.execute(select(m.Inspection.uid, func.count()).group_by(m.Inspection.uid)).all())
                kind = c.scalar(select(m.Verdict.kind).join(m.Inspection).where(m.Inspection.uid == uids[1]))
                answers = c.scalar(select(func.count()).select_from(m.VlmAnswer).join(m.Inspection)
                                   .where(m.Inspection.uid == uids[1]))
            assert rows[uids[0]] == 1 and rows[uids[1]] == 1  # once each
            assert len(rows) == 3  # and the one new frame
            assert kind == "fail" and answers >= 1  # the resumed frame was really reasoned
            assert len(vlm.requests) == answers  # the already-stored one was not asked again
            assert pipe.status().vlm_spool == 0 and len(Spool(data / "vlm-spool")) == 0
        finally:
            pipe.stop()


def test_a_spooled_frame_that_cannot_be_asked_again_goes_to_review(tmp_path):
    """Its product left the config between runs: the part is not passed unseen, nor dropped; it
    is judged review with the reason, and the spool entry goes once that verdict is in."""
    from inspector.messages import Candidate

    data = tmp_path / "data"
    Spool(data / "vlm-spool").put("old:cam1:7", "retired-product", _frame(7),
                                  (Candidate((3.0, 4.0, 20.0, 25.0), 0.9, "defect", "m@1"),))
    empty = tmp_path / "frames"
    empty.mkdir()
    cv2.imwrite(str(empty / "blank.png"), np.full((48, 64, 3), 128, np.uint8))
    with ScriptedVLM(lambda body: (200, completion(answer("ok")), 0)) as vlm:
        cfg = parse_config({
            "data_dir": str(data),
            "cameras": [{"id": "cam1", "source": {"type": "folder", "path": str(empty)}}],
            "reasoner": {"type": "openai", "base_url": vlm.base_url, "server": "llama_cpp_python"},
            "web": {"enabled": False},
        })
        pipe = Pipeline(cfg)
        pipe.start()
        try:
            assert pipe.done.wait(60)
            with pipe.store.engine.connect() as c:
                kind, why, explanation = c.execute(
                    select(m.Verdict.kind, m.Verdict.why, m.Verdict.explanation).join(m.Inspection)
                    .where(m.Inspection.uid == "old:cam1:7")).one()
            assert (kind, why) == ("review", "vlm_unavailable")
            assert "'retired-product' is no longer in the config" in explanation
            assert len(Spool(data / "vlm-spool")) == 0 and vlm.requests == []
        finally:
            pipe.stop()
