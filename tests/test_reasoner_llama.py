"""The reasoner through real llama.cpp (llama-cpp-python) on a generated tiny GGUF + mmproj."""

import pytest

from inspector.config import LlamaCppReasonerConfig, ProductConfig
from inspector.demo.line import ROI
from inspector.messages import CropAnswer
from inspector.reasoner import ReasonerConfigError, Reply, build_reasoner


@pytest.fixture(scope="module")
def reasoner(tiny_vlm):
    cfg = LlamaCppReasonerConfig(type="llama_cpp", model=tiny_vlm.model, mmproj=tiny_vlm.mmproj,
                                 seed=3, temperature=1.0)
    r = build_reasoner(cfg, tiny_vlm.model.parent)
    yield r
    r.close()


@pytest.fixture(scope="module")
def crops(demo_crops):
    return [(img.shape, c) for img, c in demo_crops]


def test_findings_are_validated_and_inside_the_frame(reasoner, crops):
    product = ProductConfig()
    answers, rejected, findings = set(), [], []
    for shape, crop in crops:
        rep = reasoner.analyze(crop, product)
        answers.add(rep.answer)
        assert rep.raw, "the raw answer must be kept for audit"
        assert rep.answer is not CropAnswer.unavailable, rep.error
        assert rep.latency_ms > 0
        rejected += rep.rejected
        for f in rep.findings:
            x1, y1, x2, y2 = f.box
            assert 0 <= x1 < x2 <= shape[1] and 0 <= y1 < y2 <= shape[0], f.box
            assert 0 <= f.confidence <= 1
            assert f.defect_type in (*product.defects, "other")
            findings.append(f)
    # The grammar bounds every number, so nothing is out of range; but it cannot order corners,
    # and the random model's boxes are nonsense: validation must have caught some of them.
    assert not any("outside" in r for r in rejected), rejected
    assert any("inverted" in r or "degenerate" in r for r in rejected), rejected
    assert answers <= {CropAnswer.defect, CropAnswer.ok, CropAnswer.uncertain, CropAnswer.invalid}


def test_malformed_answer_gets_one_repair_then_invalid(reasoner, crops):
    """A backend that keeps talking nonsense: the real prompt path, the model's text replaced."""
    calls = []

    class Nonsense(type(reasoner)):
        def _call(self, messages, schema, gbnf):
            calls.append(messages)
            return Reply("I think it is fine {")

    r = Nonsense.__new__(Nonsense)
    r.__dict__.update(reasoner.__dict__)
    rep = r.analyze(crops[0][1], ProductConfig())
    assert rep.answer is CropAnswer.invalid and len(calls) == 2
    assert "could not be used" in calls[1][-1]["content"]  # the repair message
    assert rep.raw.count("I think it is fine") == 2


def test_ernie_answers_demo_crops_in_process(tiny_ernie, crops):
    """The tiny ERNIE-4.5-VL through the patched llama.cpp in process: the chat template from its GGUF,
    the image through mtmd, our grammar, validation, and 0-1000 boxes mapped to crop pixels."""
    cfg = LlamaCppReasonerConfig(type="llama_cpp", model=tiny_ernie.model, mmproj=tiny_ernie.mmproj,
                                 profile="ernie-4.5-vl", seed=3, temperature=1.0, max_tokens=160)
    r = build_reasoner(cfg, tiny_ernie.model.parent)
    product = ProductConfig()
    try:
        assert r.model_id == tiny_ernie.model.name and not r.is_test_model
        seen, boxes = set(), 0
        for shape, crop in crops[:6]:
            rep = r.analyze(crop, product)
            assert rep.answer is not CropAnswer.unavailable, rep.error
            assert rep.raw
            seen.add(rep.answer)
            for f in rep.findings:
                x1, y1, x2, y2 = f.box
                assert 0 <= x1 < x2 <= shape[1] and 0 <= y1 < y2 <= shape[0], f.box
                boxes += 1
            assert not any("outside" in why for why in rep.rejected), rep.rejected
        # random weights: the words mean nothing, but the grammar held every answer to the schema
        assert seen <= {CropAnswer.defect, CropAnswer.ok, CropAnswer.uncertain, CropAnswer.invalid}
    finally:
        r.close()


def test_ernie_on_a_build_without_the_patches_is_refused_with_the_fix(tiny_ernie, monkeypatch):
    """A plain llama-cpp-python would fail with "unknown model architecture"; the reasoner says what
    to run instead. (The unpatched build cannot be had here: bootstrap installs the patched one.)"""
    from inspector.reasoner import ernie_vl

    monkeypatch.setattr(ernie_vl, "llama_build", lambda: "0.3.36")
    cfg = LlamaCppReasonerConfig(type="llama_cpp", model=tiny_ernie.model, mmproj=tiny_ernie.mmproj,
                                 profile="ernie-4.5-vl")
    with pytest.raises(ReasonerConfigError, match="needs llama-cpp-python built with patches/llama.cpp; "
                                                  "this one is 0.3.36: run ./bootstrap.sh"):
        build_reasoner(cfg, tiny_ernie.model.parent)


def test_missing_model_file_is_named(tmp_path):
    cfg = LlamaCppReasonerConfig(type="llama_cpp", model=tmp_path / "nope.gguf", mmproj=tmp_path / "p.gguf")
    with pytest.raises(ReasonerConfigError, match="reasoner.model.*nope.gguf"):
        build_reasoner(cfg, tmp_path)


def test_corrupt_gguf_is_refused(tmp_path, tiny_vlm):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    cfg = LlamaCppReasonerConfig(type="llama_cpp", model=bad, mmproj=tiny_vlm.mmproj)
    with pytest.raises(ReasonerConfigError, match="reasoner.model: llama.cpp could not load"):
        build_reasoner(cfg, tmp_path)


def test_a_file_that_is_not_gguf_is_named(tmp_path, tiny_vlm):
    png = tmp_path / "model.gguf"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    cfg = LlamaCppReasonerConfig(type="llama_cpp", model=tiny_vlm.model, mmproj=png)
    with pytest.raises(ReasonerConfigError, match=r"reasoner.mmproj: .*model.gguf is not a GGUF file"):
        build_reasoner(cfg, tmp_path)


def test_projector_for_another_model_is_refused_at_start(tmp_path, tiny_vlm):
    from inspector.reasoner.test_model import write_mmproj

    other = write_mmproj(tmp_path / "other-mmproj.gguf", text_embd=48)  # text model has 64
    cfg = LlamaCppReasonerConfig(type="llama_cpp", model=tiny_vlm.model, mmproj=other)
    with pytest.raises(ReasonerConfigError, match="reasoner.mmproj: .*the mmproj made for this model"):
        build_reasoner(cfg, tmp_path)


def test_per_call_timeout_in_process(tiny_vlm, crops):
    cfg = LlamaCppReasonerConfig(type="llama_cpp", model=tiny_vlm.model, mmproj=tiny_vlm.mmproj,
                                 timeout_s=0.001, breaker_failures=1)
    r = build_reasoner(cfg, tiny_vlm.model.parent)
    try:
        rep = r.analyze(crops[0][1], ProductConfig())
        assert rep.answer is CropAnswer.unavailable
        assert "did not finish within 0.001 s" in rep.error
        assert r.breaker.state == "open"
        # The aborted context is usable again: the same crop, now with time, gets an answer.
        r.cfg = r.cfg.model_copy(update={"timeout_s": 60.0})
        r.breaker.success()
        again = r.analyze(crops[0][1], ProductConfig())
        assert again.answer is not CropAnswer.unavailable, again.error
    finally:
        r.close()


def test_closer_looks_with_the_real_model(tiny_vlm, demo_crops):
    """Every finding qualifies for a closer look here; each one asked must be a stored look of a
    smaller region of the same frame, whatever the random model says."""
    from inspector.cropper import region_of
    from inspector.messages import Frame

    closer = 0
    # Random weights rarely write a valid box; a few seeds make sure some finding is looked at.
    for seed in (0, 3, 1, 2):
        cfg = LlamaCppReasonerConfig(type="llama_cpp", model=tiny_vlm.model, mmproj=tiny_vlm.mmproj,
                                     seed=seed, temperature=1.5,
                                     second_look={"max_looks": 2, "min_confidence": 1.0,
                                                  "padding": 0.0, "min_side_px": 8})
        r = build_reasoner(cfg, tiny_vlm.model.parent)
        try:
            for img, crop in demo_crops:
                rep = r.analyze(crop, ProductConfig(), Frame("c", 1, img, roi=ROI, mm_per_px=0.5))
                first = rep.looks[0]
                expected = min(len(first.findings), cfg.second_look.max_per_look)
                assert len(rep.looks) <= 1 + expected  # findings filling the crop are skipped
                for lk in rep.looks[1:]:
                    closer += 1
                    (x1, y1, x2, y2), (cx1, cy1, cx2, cy2) = lk.region, region_of(crop)
                    assert 0 <= x1 < x2 <= img.shape[1] and 0 <= y1 < y2 <= img.shape[0]
                    assert (x2 - x1) * (y2 - y1) < (cx2 - cx1) * (cy2 - cy1)  # sharper
                    assert lk.raw or lk.error
                for f in rep.findings:
                    assert f.box_mm == pytest.approx(
                        ((f.box[0] - ROI[0]) / 2, (f.box[1] - ROI[1]) / 2,
                         (f.box[2] - ROI[0]) / 2, (f.box[3] - ROI[1]) / 2))
        finally:
            r.close()
        if closer:
            break
    assert closer >= 1, "the random model produced no finding at all under 4 seeds"


def test_schema_constraint_instead_of_our_grammar(tiny_vlm, crops):
    cfg = LlamaCppReasonerConfig(type="llama_cpp", model=tiny_vlm.model, mmproj=tiny_vlm.mmproj,
                                 constrain="json_schema", second_look={"max_looks": 1})
    r = build_reasoner(cfg, tiny_vlm.model.parent)
    try:
        rep = r.analyze(crops[0][1], ProductConfig())
    finally:
        r.close()
    assert rep.answer is not CropAnswer.unavailable, rep.error
    assert rep.raw.lstrip().startswith("{")
