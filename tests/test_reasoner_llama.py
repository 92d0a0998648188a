"""The reasoner through real llama.cpp (llama-cpp-python) on a generated tiny GGUF + mmproj."""

import cv2
import pytest

from inspector.config import CropperConfig, DetectorConfig, LlamaCppReasonerConfig, ProductConfig
from inspector.cropper import make_crops
from inspector.demo.line import ROI
from inspector.messages import CropAnswer
from inspector.prefilter import build_detector
from inspector.reasoner import Reply, build_reasoner
from inspector.reasoner.llama_cpp import ReasonerConfigError


@pytest.fixture(scope="module")
def reasoner(tiny_vlm):
    cfg = LlamaCppReasonerConfig(type="llama_cpp", model=tiny_vlm.model, mmproj=tiny_vlm.mmproj,
                                 seed=3, temperature=1.0)
    r = build_reasoner(cfg, tiny_vlm.model.parent)
    yield r
    r.close()


@pytest.fixture(scope="module")
def crops(demo_line):
    det = build_detector(DetectorConfig())
    out = []
    for f in sorted(demo_line.frames_dir.iterdir()):
        img = cv2.imread(str(f))
        out += [(img.shape, c) for c in make_crops(img, det.detect(img, ROI), CropperConfig(max_crops=2))]
    assert len(out) >= 6
    return out[:12]


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
    # The random model's coordinates are nonsense: validation must have caught some of them.
    assert any("outside" in r or "inverted" in r or "degenerate" in r for r in rejected), rejected
    assert answers <= {CropAnswer.defect, CropAnswer.ok, CropAnswer.uncertain, CropAnswer.invalid}


def test_malformed_answer_gets_one_repair_then_invalid(reasoner, crops):
    """A backend that keeps talking nonsense: the real prompt path, the model's text replaced."""
    calls = []

    class Nonsense(type(reasoner)):
        def _call(self, messages, schema):
            calls.append(messages)
            return Reply("I think it is fine {")

    r = Nonsense.__new__(Nonsense)
    r.__dict__.update(reasoner.__dict__)
    rep = r.analyze(crops[0][1], ProductConfig())
    assert rep.answer is CropAnswer.invalid and len(calls) == 2
    assert "could not be used" in calls[1][-1]["content"]  # the repair message
    assert rep.raw.count("I think it is fine") == 2


def test_ernie_in_process_is_refused_with_the_route(tiny_vlm):
    cfg = LlamaCppReasonerConfig(type="llama_cpp", model=tiny_vlm.model, mmproj=tiny_vlm.mmproj,
                                 profile="ernie-4.5-vl")
    with pytest.raises(ReasonerConfigError) as e:
        build_reasoner(cfg, tiny_vlm.model.parent)
    assert "projector" in str(e.value) and "OpenAI-compatible" in str(e.value)


def test_missing_model_file_is_named(tmp_path):
    cfg = LlamaCppReasonerConfig(type="llama_cpp", model=tmp_path / "nope.gguf", mmproj=tmp_path / "p.gguf")
    with pytest.raises(ReasonerConfigError, match="reasoner.model.*nope.gguf"):
        build_reasoner(cfg, tmp_path)


def test_corrupt_gguf_is_refused(tmp_path, tiny_vlm):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    cfg = LlamaCppReasonerConfig(type="llama_cpp", model=bad, mmproj=tiny_vlm.mmproj)
    with pytest.raises(ReasonerConfigError, match="could not load"):
        build_reasoner(cfg, tmp_path)
