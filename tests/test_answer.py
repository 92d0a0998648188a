"""Validation of VLM answers and the coordinate round trips of every profile."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inspector.messages import CropAnswer, CropTransform
from inspector.reasoner.answer import AnswerError, validate
from inspector.reasoner.profiles import PROFILES, get_profile

TAX = ["scratch", "crack", "stain", "hole", "chip"]
T = CropTransform(100, 50, 0.5)  # crop is half size; origin at (100, 50) in the frame


def check(doc, profile="generic", w=200, h=100):
    text = doc if isinstance(doc, str) else json.dumps(doc)
    return validate(text, profile=get_profile(profile), taxonomy=TAX, crop_w=w, crop_h=h,
                    to_frame=T.to_frame, crop_index=0, model_id="m")


def f(**kw):
    base = {"type": "scratch", "severity": "major", "confidence": 0.9, "box": [100, 200, 500, 600],
            "reason": "line"}
    return {**base, **kw}


def test_a_good_answer_maps_to_frame_pixels():
    v = check({"verdict": "defect", "findings": [f()]})
    assert v.answer is CropAnswer.defect and not v.rejected
    # 0..1000 of a 200x100 crop -> crop px (20, 20, 100, 60) -> frame: 100 + px / 0.5
    assert v.findings[0].box == pytest.approx((140, 90, 300, 170))


@pytest.mark.parametrize("bad, why", [
    (f(box=[0, 0, 1200, 500]), "outside"),
    (f(box=[-50, 0, 100, 100]), "outside"),
    (f(box=[500, 0, 100, 100]), "inverted"),
    (f(box=[100, 100, 101, 101]), "degenerate"),
    (f(box=[1, 2, 3]), "4 finite numbers"),
    (f(box=[10 ** 400, 0, 1, 1]), "4 finite numbers"),  # an integer no float holds
    (f(confidence=97.5), "outside 0..1"),
    (f(confidence=True), "outside 0..1"),
    (f(severity="catastrophic"), "severity"),
])
def test_bad_findings_are_rejected_with_a_reason(bad, why):
    v = check({"verdict": "defect", "findings": [bad]})
    assert not v.findings and why in v.rejected[0]
    assert v.answer is CropAnswer.uncertain  # a defect claimed but nowhere valid


def test_slightly_out_of_range_is_clamped():
    v = check({"verdict": "defect", "findings": [f(box=[-5, 0, 1008, 1000])]})
    x1, y1, x2, y2 = v.findings[0].box
    assert (x1, x2) == pytest.approx((100, 100 + 200 / 0.5))


def test_unknown_type_becomes_other_and_keeps_the_name():
    v = check({"verdict": "defect", "findings": [f(type="dent")]})
    assert v.findings[0].defect_type == "other" and "dent" in v.findings[0].reason


def test_ok_with_findings_is_uncertain():
    assert check({"verdict": "ok", "findings": [f()]}).answer is CropAnswer.uncertain
    # even when every finding was refused, the answer contradicts itself: it must not pass a part
    v = check({"verdict": "ok", "findings": [f(box=[0, 0, 99999, 5])]})
    assert v.answer is CropAnswer.uncertain and not v.findings
    assert check({"verdict": "ok", "findings": []}).answer is CropAnswer.ok


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", '{"verdict": "maybe", "findings": []}',
                                  '{"verdict": "ok"}', '{"verdict": "ok", "findings": {}}',
                                  "[" * 100_000,  # nested past Python's recursion limit
                                  '{"verdict": "ok", "findings": [], "n": ' + "9" * 5000 + "}"])  # too many digits
def test_malformed_answers_raise(text):
    with pytest.raises(AnswerError):
        check(text)


def test_thinking_is_split_off_and_not_parsed():
    p = get_profile("ernie-4.5-vl")
    thoughts, body = p.split_thinking('<think>maybe {"verdict": "ok"}</think>\n{"verdict": "defect"}')
    assert "maybe" in thoughts and body == '{"verdict": "defect"}'
    thoughts, body = p.split_thinking('{"a": 1}<think>cut off by max_tok')
    assert body == '{"a": 1}' and "cut off" in thoughts


def test_unknown_profile_is_named():
    with pytest.raises(ValueError, match="qwen3-vl"):
        get_profile("llava-9000")


sides = st.integers(min_value=8, max_value=4000)
coords = st.floats(min_value=0, max_value=1, allow_nan=False)


@given(name=st.sampled_from(sorted(PROFILES)), w=sides, h=sides, a=coords, b=coords, c=coords, d=coords)
def test_profile_round_trip(name, w, h, a, b, c, d):
    p = PROFILES[name]
    box = (min(a, c) * w, min(b, d) * h, max(a, c) * w, max(b, d) * h)
    back = p.to_pixels(p.from_pixels(box, w, h), w, h)
    assert back == pytest.approx(box, abs=1e-6)


@given(ox=st.floats(0, 4000), oy=st.floats(0, 4000), s=st.floats(0.05, 1), a=coords, b=coords)
def test_crop_transform_round_trip(ox, oy, s, a, b):
    t = CropTransform(ox, oy, s)
    box = (a * 500, b * 500, a * 500 + 10, b * 500 + 10)
    assert t.to_crop(t.to_frame(box)) == pytest.approx(box, abs=1e-6)


def test_qwen25_uses_resized_pixels():
    p = get_profile("qwen2.5-vl")
    # a 300 x 150 crop is shown as 308 x 140 (multiples of 28)
    assert p.model_size(300, 150) == (308, 140)
    assert p.to_pixels((0, 0, 308, 140), 300, 150) == pytest.approx((0, 0, 300, 150))
