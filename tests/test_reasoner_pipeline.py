"""The reasoner inside the running pipeline: a VLM that goes down gives review verdicts with the
reason, its crops are kept, and their answers join the stored inspections once it is back."""

import pytest

from sqlalchemy import select
from sqlalchemy.orm import Session

from inspector.config import parse_config
from inspector.demo.line import ROI
from inspector.line.pipeline import Pipeline
from inspector.store.models import FindingRow, Inspection, VlmAnswer
from tests.conftest import authorize, wait_for
from tests.scripted_vlm import ScriptedVLM, answer, completion

STAIN = {"type": "stain", "severity": "major", "confidence": 0.9, "box": [100, 100, 900, 900],
         "reason": "tint"}


def started_line(demo_line, data_dir, vlm, mm_per_px, **reasoner) -> Pipeline:
    """The demo frames through a real pipeline whose VLM is `vlm`, run until every frame is judged."""
    cfg = parse_config({
        "data_dir": str(data_dir),
        "cameras": [{"id": "cam1", "roi": list(ROI), "mm_per_px": mm_per_px,
                     "source": {"type": "folder", "path": str(demo_line.frames_dir)}}],
        "reasoner": {"type": "openai", "base_url": vlm.base_url, "server": "llama_cpp_python",
                     **reasoner},
        "web": {"enabled": False},
    })
    pipe = Pipeline(cfg)
    pipe.start()
    if not pipe.done.wait(60):
        pipe.stop()
        raise AssertionError("the line did not finish within 60 s")
    return pipe


def test_vlm_down_then_back(demo_line, tmp_path):
    state = {"down": True}

    def script(body):
        if state["down"]:
            return 503, {"error": "loading model"}, 0
        return 200, completion(answer("defect", [STAIN])), 0

    with ScriptedVLM(script) as vlm:
        pipe = started_line(demo_line, tmp_path, vlm, 0.25, breaker_failures=2,
                            breaker_cooldown_s=0.3, workers=2)
        try:
            st = pipe.status()
            assert st.verdicts.get("review", 0) >= 1 and st.verdicts.get("fail", 0) == 0
            assert st.reasoner.breaker.state in ("open", "half_open")
            assert vlm.requests and len(vlm.requests) < st.vlm_crops, \
                "the open circuit must spare the server most calls"
            kept = st.vlm_backlog
            assert kept == st.vlm_crops, "every crop the VLM did not answer must be kept"
            with Session(pipe.store.engine) as s:
                reviews = s.scalars(select(Inspection).join(Inspection.verdict)).all()
                why = {i.verdict.why for i in reviews if i.verdict.kind == "review"}
                assert why == {"vlm_unavailable"}
                errors = [a.error for i in reviews for a in i.answers]
                assert errors and all(
                    e.startswith((f"VLM server {vlm.base_url} answered HTTP 503",
                                  "VLM unavailable: circuit open")) for e in errors), errors

            state["down"] = False
            assert wait_for(lambda: pipe.status().vlm_backlog == 0), (pipe.status().reasoner, pipe.status().vlm_backlog, pipe.status().vlm_late, len(vlm.requests))
            assert pipe.status().vlm_late == kept
            with Session(pipe.store.engine) as s:
                late = s.scalars(select(VlmAnswer).where(VlmAnswer.late)).all()
                assert len(late) == kept and {a.answer for a in late} == {"defect"}
                found = s.scalars(select(FindingRow).where(FindingRow.late)).all()
                assert len(found) == kept
                insp = s.get(Inspection, late[0].inspection_id)
                assert insp.verdict.kind == "review"  # the part was handled; the verdict stands
                assert "VLM answered" in insp.verdict.explanation and "stain 0.90" in insp.verdict.explanation
        finally:
            pipe.stop()


def test_backlog_survives_a_restart(demo_crops, tmp_path):
    from inspector.reasoner.backlog import Backlog

    b = Backlog(tmp_path / "bl", max_items=3)
    for n, (_, crop) in enumerate(demo_crops[:5]):
        assert b.put(100 + n, "demo-tile", "cam", crop)
    (tmp_path / "bl" / "debris.png").write_bytes(b"half")  # a crash between the two writes
    b2 = Backlog(tmp_path / "bl", max_items=3)
    assert len(b2) == 3 and b.dropped == 2  # bounded: the oldest went first
    assert not (tmp_path / "bl" / "debris.png").exists()
    item = b2.oldest()
    assert item.inspection_id == 102
    _, crop = demo_crops[2]
    assert (item.crop.image == crop.image).all() and item.crop.transform == crop.transform
    b2.done(item)
    assert len(b2) == 2


def test_looks_thinking_and_millimetres_reach_the_dashboard(demo_line, tmp_path):
    from fastapi.testclient import TestClient

    from inspector.web import create_app

    small = {"type": "scratch", "severity": "minor", "confidence": 0.3, "box": [450, 450, 550, 550],
             "reason": "maybe a line"}
    sure = {"type": "scratch", "severity": "major", "confidence": 0.95, "box": [200, 200, 800, 800],
            "reason": "a clear straight cut"}

    def script(body):
        closer = "closer look" in body["messages"][1]["content"][1]["text"]
        text = answer("defect", [sure if closer else small])
        return 200, completion(f"<think>{'zoomed in' if closer else 'first glance'}</think>{text}"), 0

    with ScriptedVLM(script) as vlm:
        pipe = started_line(demo_line, tmp_path, vlm, 0.2)
        try:
            st = pipe.status()
            assert st.verdicts["fail"] >= 1 and st.vlm_backlog == 0
            with TestClient(create_app(pipe.store, pipe.status)) as c:
                authorize(c, pipe.store)
                fail = c.get("/api/verdicts", params={"verdict": "fail"}).json()[0]
                d = c.get(f"/api/inspections/{fail['id']}").json()
                page = c.get(f"/inspections/{fail['id']}").text
        finally:
            pipe.stop()
    assert d["models"]["vlm"]["sha256"] is None  # behind an HTTP server: known by name only
    assert d["models"]["detector"]["sha256"]
    looks = [a for a in d["vlm_answers"] if a["crop_index"] == 0]
    assert [a["look"] for a in looks] == [0, 1]
    assert looks[0]["thinking"] == "first glance" and looks[1]["thinking"] == "zoomed in"
    f = d["findings"][0]
    assert f["look"] == 1 and f["confidence"] == 0.95
    w_mm, h_mm = f["box_mm"][2] - f["box_mm"][0], f["box_mm"][3] - f["box_mm"][1]
    assert w_mm == pytest.approx((f["box"][2] - f["box"][0]) * 0.2, abs=0.01)
    assert f"{w_mm:.1f} &times; {h_mm:.1f}" in page
    assert 'class="box-look"' in page and "closer look 1" in page and "zoomed in" in page
