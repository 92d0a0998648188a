"""Model profiles: coordinate round trips for every profile (hypothesis), thinking tags, and a new
profile that needs no change anywhere else."""

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from inspector.config import ConfigError, parse_config
from inspector.messages import CropTransform, Frame
from inspector.reasoner.answer import validate
from inspector.reasoner.profiles import PROFILES, Profile, get_profile, register_profile, smart_resize

ALL = sorted(PROFILES)
sizes = st.integers(16, 1600)


@st.composite
def pixel_box(draw, w, h):
    x1 = draw(st.floats(0, w - 4))
    y1 = draw(st.floats(0, h - 4))
    x2 = draw(st.floats(x1 + 3, w))
    y2 = draw(st.floats(y1 + 3, h))
    return (x1, y1, x2, y2)


@pytest.mark.parametrize("name", ALL)
@given(data=st.data(), w=sizes, h=sizes)
@settings(max_examples=60, deadline=None)
def test_pixels_to_model_and_back(name, data, w, h):
    p = PROFILES[name]
    box = data.draw(pixel_box(w, h))
    back = p.to_pixels(p.from_pixels(box, w, h), w, h)
    assert back == pytest.approx(box, abs=1e-6)
    mw, mh = p.model_size(w, h)
    m = p.from_pixels(box, w, h)
    assert -1e-9 <= m[0] <= m[2] <= mw + 1e-9 and -1e-9 <= m[1] <= m[3] <= mh + 1e-9


@pytest.mark.parametrize("name", ALL)
@given(data=st.data(), w=st.integers(32, 900), h=st.integers(32, 900),
       ox=st.integers(0, 2000), oy=st.integers(0, 2000), scale=st.floats(0.2, 3.0))
@settings(max_examples=60, deadline=None)
def test_model_answer_lands_on_the_right_frame_pixels(name, data, w, h, ox, oy, scale):
    """model box (as the model writes it, rounded) -> crop pixels -> frame pixels, through the
    real validator, lands within one model unit of where the region is in the frame."""
    p = PROFILES[name]
    t = CropTransform(ox, oy, scale)
    frame_box = data.draw(pixel_box(w / scale, h / scale))
    frame_box = (frame_box[0] + ox, frame_box[1] + oy, frame_box[2] + ox, frame_box[3] + oy)
    model = p.from_pixels(t.to_crop(frame_box), w, h)
    if p.integer_boxes:
        model = tuple(round(v) for v in model)
    mw, mh = p.model_size(w, h)
    px_per_unit = max(w / mw, h / mh)
    assume((model[2] - model[0]) * w / mw >= 3 and (model[3] - model[1]) * h / mh >= 3)
    text = ('{"verdict":"defect","findings":[{"type":"scratch","severity":"minor",'
            f'"confidence":0.9,"box":{list(model)},"reason":"x"}}]}}')
    v = validate(text, profile=p, taxonomy=["scratch"], crop_w=w, crop_h=h, to_frame=t.to_frame,
                 crop_index=0, model_id="m")
    (f,) = v.findings
    tol = (0.5 if p.integer_boxes else 1e-6) * px_per_unit / scale + 1e-6
    assert f.box == pytest.approx(frame_box, abs=tol)


@given(h=st.integers(1, 5000), w=st.integers(1, 5000))
def test_smart_resize_is_a_multiple_of_the_patch_within_the_pixel_bounds(h, w):
    assume(max(h, w) / min(h, w) < 100)
    p = PROFILES["qwen2.5-vl"]
    rh, rw = smart_resize(h, w, p.patch, p.min_pixels, p.max_pixels)
    assert rh % 28 == 0 and rw % 28 == 0
    assert rh * rw <= p.max_pixels
    assert rh * rw >= p.min_pixels or max(h, w) / min(h, w) > 4


def test_qwen25_coordinates_are_pixels_of_the_resized_image():
    p = PROFILES["qwen2.5-vl"]
    assert p.model_size(448, 300) == (448.0, 308.0)  # 300 -> nearest multiple of 28
    assert p.to_pixels((0, 0, 448, 308), 448, 300) == pytest.approx((0, 0, 448, 300))
    assert "448 x 308" in p.describe_coords(448, 300)
    assert PROFILES["qwen3-vl"].model_size(448, 300) == (1000, 1000)
    assert PROFILES["ernie-4.5-vl"].to_pixels((500, 500, 1000, 1000), 200, 100) == (100, 50, 200, 100)


@pytest.mark.parametrize("text,thinking,answer", [
    ('<think>even texture</think>{"verdict":"ok"}', "even texture", '{"verdict":"ok"}'),
    ('<think>a</think> <think>b {"verdict":"defect"}</think>\n{"v":1}', 'a\nb {"verdict":"defect"}',
     '{"v":1}'),
    ('{"v":1}<think>cut off by max_tok', "cut off by max_tok", '{"v":1}'),
    ('opened by the template</think>{"v":2}', "opened by the template", '{"v":2}'),
    ('{"v":3}', "", '{"v":3}'),
])
def test_thinking_is_split_from_the_answer(text, thinking, answer):
    assert PROFILES["ernie-4.5-vl"].split_thinking(text) == (thinking, answer)


def test_thinking_tags_can_be_overridden():
    p = get_profile("generic", {"think_open": "<|begin_of_thought|>", "think_close": "<|end_of_thought|>"})
    assert p.split_thinking("<|begin_of_thought|>hm<|end_of_thought|>{}") == ("hm", "{}")


def test_generic_profile_is_configured_from_yaml():
    cfg = parse_config({"reasoner": {"type": "openai", "base_url": "http://gpu:8000/v1",
                                     "profile": "generic",
                                     "profile_overrides": {"coords": "abs"}}})
    assert cfg.reasoner.profile_overrides == {"coords": "abs"}
    with pytest.raises(ConfigError, match="reasoner.*coords must be one of"):
        parse_config({"reasoner": {"type": "openai", "base_url": "http://x/v1",
                                   "profile_overrides": {"coords": "feet"}}})
    with pytest.raises(ConfigError, match="unknown key.*colour"):
        parse_config({"reasoner": {"type": "openai", "base_url": "http://x/v1",
                                   "profile_overrides": {"colour": 1}}})
    with pytest.raises(ConfigError, match="unknown model profile 'llava-9'"):
        parse_config({"reasoner": {"type": "openai", "base_url": "http://x/v1", "profile": "llava-9"}})


def test_a_new_profile_needs_no_change_elsewhere(demo_crops):
    """Register a family with fractional coordinates; the whole reasoner uses it as it is."""
    from inspector.config import OpenAIReasonerConfig, ProductConfig
    from inspector.reasoner import build_reasoner
    from tests.scripted_vlm import ScriptedVLM, answer, completion

    register_profile(Profile("fraction-vl", coords="rel1", think_open="[[", think_close="]]"))
    img, crop = demo_crops[0]
    h, w = crop.image.shape[:2]
    found = {"type": "stain", "severity": "major", "confidence": 0.95, "box": [0.25, 0.25, 0.75, 0.75],
             "reason": "tint"}
    with ScriptedVLM(lambda b: (200, completion("[[hmm]]" + answer("defect", [found])), 0)) as vlm:
        r = build_reasoner(OpenAIReasonerConfig(type="openai", base_url=vlm.base_url,
                                                profile="fraction-vl", server="vllm"), None)
        rep = r.analyze(crop, ProductConfig(), Frame("c", 1, img))
        r.close()
        r = build_reasoner(OpenAIReasonerConfig(type="openai", base_url=vlm.base_url,
                                                profile="fraction-vl", server="llama_server"), None)
        r.analyze(crop, ProductConfig(), Frame("c", 1, img))
        r.close()
    assert 'xc ::= "0" ("." [0-9]{1,4})?' in vlm.requests[1]["grammar"]
    body = vlm.requests[0]
    assert "fractions from 0 to 1" in body["messages"][1]["content"][1]["text"]
    box_schema = body["response_format"]["json_schema"]["schema"]["properties"]["findings"]["items"]
    assert box_schema["properties"]["box"]["items"]["type"] == "number"
    (f,) = rep.findings
    assert f.box == pytest.approx(crop.transform.to_frame((w * 0.25, h * 0.25, w * 0.75, h * 0.75)))
    assert rep.looks[0].thinking == "hmm"


def test_millimetres_from_the_roi_origin():
    import numpy as np

    f = Frame("c", 1, np.zeros((10, 10, 3), np.uint8), roi=(100, 50, 400, 300), mm_per_px=0.2)
    assert f.to_mm((110, 60, 160, 110)) == pytest.approx((2, 2, 12, 12))
    assert Frame("c", 1, np.zeros((1, 1, 3), np.uint8)).to_mm((0, 0, 1, 1)) is None


def test_tool_styles_are_named_and_checked():
    from inspector.reasoner.profiles import get_profile

    assert get_profile("ernie-4.5-vl").image_in_tool_message
    assert not get_profile("qwen3-vl").image_in_tool_message
    with pytest.raises(ValueError, match="tool_style must be one of"):
        get_profile("generic", {"tool_style": "anthropic"})


def test_qwen_tool_calls_in_text_are_read_and_unreadable_ones_kept_for_an_error_reply():
    from inspector.reasoner.profiles import get_profile

    q = get_profile("qwen3-vl")
    text = ('<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2, 3, 4]}}</tool_call>'
            '<tool_call>{"name": oops}</tool_call> rest')
    calls, left = q.text_tool_calls(text)
    assert calls[0] == ("image_zoom_in_tool", '{"bbox_2d": [1, 2, 3, 4]}') and calls[1][0] == "" and left == "rest"
    # other styles take the text as it is (their servers parse tool calls)
    assert get_profile("ernie-4.5-vl").text_tool_calls(text) == ([], text)
