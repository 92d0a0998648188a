"""Model-driven zoom (issue 29): the scripted OpenAI-compatible server answers in FastDeploy's shapes
for ERNIE-4.5-VL-Thinking (tool_calls with image_zoom_in_tool / bbox_2d, thinking apart)."""

import base64
import json

import cv2
import numpy as np

from inspector.config import OpenAIReasonerConfig, ProductConfig
from inspector.messages import CropAnswer, Frame
from inspector.reasoner import build_reasoner
from inspector.reasoner.scripted_server import ScriptedVLM, answer, completion, text_tool_call, tool_call

PRODUCT = ProductConfig()
FOUND = {"type": "scratch", "severity": "minor", "confidence": 0.8, "box": [400, 400, 600, 600],
         "reason": "a thin line"}


def run(demo_crops, replies, rounds=2, profile="ernie-4.5-vl", server="fastdeploy"):
    img, crop = demo_crops[0]
    it = iter(replies)
    with ScriptedVLM(lambda body: (200, next(it), 0)) as vlm:
        cfg = OpenAIReasonerConfig(type="openai", base_url=vlm.base_url, server=server,
                                   profile=profile, max_zoom_rounds=rounds, second_look={"max_looks": 1})
        r = build_reasoner(cfg, None)
        rep = r.analyze(crop, PRODUCT, Frame("cam", 1, img))
        errors = r.zoom_errors
        st = r.status()  # what /metrics reports: every round, served or not
        assert (st["zoom_rounds"], st["zoom_errors"]) == (len(rep.looks[0].zoomed), errors)
        assert st["zoom_rounds"] + st["zoom_errors"] == len(rep.looks[0].zooms)
        r.close()
    return img, crop, rep, vlm.requests, errors


def tool_image(msg) -> np.ndarray:
    url = msg["content"][0]["image_url"]["url"]
    return cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)


def test_one_zoom_round_then_the_answer(demo_crops):
    img, crop, rep, reqs, errors = run(demo_crops, [tool_call([250, 250, 750, 750]),
                                                    completion(answer("defect", [FOUND]))])
    assert rep.answer is CropAnswer.defect and errors == 0 and len(reqs) == 2
    first, second = reqs
    assert [t["function"]["name"] for t in first["tools"]] == ["image_zoom_in_tool"]
    assert "tools" in second  # round 1 of 2: still offered
    asked, told = second["messages"][-2], second["messages"][-1]
    assert asked["role"] == "assistant" and json.loads(asked["tool_calls"][0]["function"]["arguments"]) == \
        {"bbox_2d": [250, 250, 750, 750]}
    assert told["role"] == "tool" and told["tool_call_id"] == "call_0"
    # the zoom is the middle half of the crop's region, cut from the frame at the crop's pixel budget
    zoom = tool_image(told)
    assert max(zoom.shape[:2]) == max(crop.image.shape[:2])
    (zx1, zy1, zx2, zy2), = rep.looks[0].zoomed
    (z,) = rep.looks[0].zooms
    assert z.asked == (250, 250, 750, 750) and z.thinking == "let me look closer" and not z.error
    rx1, ry1, rx2, ry2 = crop.transform.to_frame((0, 0, crop.image.shape[1], crop.image.shape[0]))
    assert abs(zx1 - (rx1 + (rx2 - rx1) / 4)) <= 2 and abs(zx2 - (rx2 - (rx2 - rx1) / 4)) <= 2
    assert "let me look closer" in rep.looks[0].thinking


def test_a_bad_region_is_answered_with_an_error_and_counted(demo_crops):
    img, crop, rep, reqs, errors = run(demo_crops, [tool_call([700, 100, 300, 900]),
                                                    completion(answer("ok"))])
    assert rep.answer is CropAnswer.ok and errors == 1 and rep.looks[0].zoomed == ()
    told = reqs[1]["messages"][-1]
    assert told["role"] == "tool" and "is not a region of the image" in told["content"]
    (z,) = rep.looks[0].zooms  # kept, with what the model asked and why it was not served
    assert z.region is None and z.asked == (700, 100, 300, 900) and "is not a region" in z.error


def test_rounds_are_limited_and_the_last_call_offers_no_tool(demo_crops):
    replies = [tool_call([0, 0, 500, 500], call_id="a"), tool_call([0, 0, 250, 250], call_id="b"),
               completion(answer("ok"))]
    img, crop, rep, reqs, errors = run(demo_crops, replies, rounds=2)
    assert rep.answer is CropAnswer.ok and len(reqs) == 3 and len(rep.looks[0].zoomed) == 2
    assert "tools" in reqs[0] and "tools" in reqs[1] and "tools" not in reqs[2]
    # Both boxes name regions of the image first shown (the crop): the quarter nearer its corner
    # is cut around a centre nearer that corner.
    (a, b) = rep.looks[0].zoomed
    assert (b[0] + b[2]) < (a[0] + a[2]) and (b[1] + b[3]) < (a[1] + a[3])


def test_hostile_zoom_arguments_are_refused_not_raised(demo_crops):
    """Arguments no box can come from: each call is answered with an error and counted."""
    bad = [{"bbox_2d": [10 ** 400, 0, 1, 1]}, {"bbox_2d": "1,2,3,4"}, [1, 2, 3, 4], "x" * 50,
           {"bbox_2d": [float("nan"), 0, 1, 1]}, {"bbox_2d": list(range(10 ** 5))}]
    def calls(args, first):
        reply = tool_call([0, 0, 1, 1])
        reply["choices"][0]["message"]["tool_calls"] = [
            {"id": f"c{first + i}", "type": "function",
             "function": {"name": "image_zoom_in_tool", "arguments": json.dumps(a)}} for i, a in enumerate(args)]
        return reply
    nested = tool_call([0, 0, 1, 1], call_id="deep")
    nested["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = "[" * 100_000
    replies = [calls(bad[:4], 0), calls(bad[4:], 4), nested, completion(answer("ok"))]
    img, crop, rep, reqs, errors = run(demo_crops, replies, rounds=3)
    assert rep.answer is CropAnswer.ok and errors == 7 and rep.looks[0].zoomed == ()
    told = [m for m in reqs[3]["messages"] if m["role"] == "tool"]
    assert len(told) == 7 and all(m["content"].startswith("error: ") for m in told)


def test_at_most_four_regions_are_cut_per_reply(demo_crops):
    """A model repeating itself writes a dozen calls in one reply: four are served, the rest told no."""
    many = tool_call([0, 0, 500, 500], call_id="c0")
    many["choices"][0]["message"]["tool_calls"] = [
        {"id": f"c{i}", "type": "function",
         "function": {"name": "image_zoom_in_tool", "arguments": json.dumps({"bbox_2d": [0, 0, 500 + i, 500]})}}
        for i in range(12)]
    img, crop, rep, reqs, errors = run(demo_crops, [many, completion(answer("ok"))], profile="qwen3-vl",
                                       server="vllm")
    assert len(rep.looks[0].zoomed) == 4 and errors == 8
    images = [m for m in reqs[1]["messages"] if m["role"] == "user" and m is not reqs[1]["messages"][1]]
    assert len(images) == 4 and sum(m["role"] == "tool" for m in reqs[1]["messages"]) == 12


def test_while_the_zoom_is_offered_no_schema_constrains_the_answer(demo_crops):
    """FastDeploy and vLLM enforce response_format by guided decoding, which would forbid the tool
    call: the schema goes only with calls that offer no tool."""
    img, crop, rep, reqs, errors = run(demo_crops, [tool_call([0, 0, 500, 500]), completion(answer("ok"))],
                                       rounds=1)
    assert "tools" in reqs[0] and "response_format" not in reqs[0]
    assert "tools" not in reqs[1] and reqs[1]["response_format"]["type"] == "json_schema"


def test_a_tool_call_on_the_last_round_is_told_no_and_costs_an_attempt(demo_crops):
    """The rounds are spent and the tool no longer offered, yet the model calls it again (a server
    does not stop it): the call is answered "no zoom is left", counted, and the model asked again;
    its answer then stands."""
    replies = [tool_call([0, 0, 500, 500], call_id="a"), tool_call([0, 0, 250, 250], call_id="b"),
               completion(answer("defect", [FOUND]))]
    img, crop, rep, reqs, errors = run(demo_crops, replies, rounds=1)
    assert rep.answer is CropAnswer.defect and len(reqs) == 3 and errors == 1
    assert "tools" in reqs[0] and "tools" not in reqs[1] and "tools" not in reqs[2]
    told = reqs[2]["messages"][-1]
    assert told["role"] == "tool" and told["tool_call_id"] == "b" and "no zoom is left" in told["content"]
    served, refused = rep.looks[0].zooms
    assert served.region is not None and refused.region is None and "no zoom is left" in refused.error


def test_a_model_that_never_stops_calling_ends_invalid_within_bounds(demo_crops):
    replies = [tool_call([0, 0, 500, 500], call_id=f"c{i}") for i in range(10)]
    img, crop, rep, reqs, errors = run(demo_crops, replies, rounds=2)
    # two served rounds, then two refused calls (the answer and its one repair), nothing more
    assert rep.answer is CropAnswer.invalid and len(reqs) == 4 and errors == 2
    assert "no zoom was left" in rep.error


def test_qwen3_vl_tool_calls_written_in_the_text_are_read_and_answered_openai_style(demo_crops):
    """Qwen3-VL behind a server without a tool parser: the call is a <tool_call> block in the
    content. It is served; the history echoes it as a structured call; the tool message holds only
    text (OpenAI's rule) and the zoomed image follows as a user message."""
    replies = [text_tool_call([100, 100, 600, 600], thinking="is that a scratch"),
               completion(answer("ok"))]
    img, crop, rep, reqs, errors = run(demo_crops, replies, profile="qwen3-vl", server="vllm")
    assert rep.answer is CropAnswer.ok and errors == 0 and len(reqs) == 2
    assert [t["function"]["name"] for t in reqs[0]["tools"]] == ["image_zoom_in_tool"]
    echo, told, shown = reqs[1]["messages"][-3:]
    assert echo["role"] == "assistant" and "<tool_call>" not in echo["content"]
    assert json.loads(echo["tool_calls"][0]["function"]["arguments"])["bbox_2d"] == [100, 100, 600, 600]
    assert told["role"] == "tool" and isinstance(told["content"], str) and told["tool_call_id"] == echo["tool_calls"][0]["id"]
    assert shown["role"] == "user" and max(tool_image(shown).shape[:2]) == max(crop.image.shape[:2])
    (z,) = rep.looks[0].zooms
    assert z.label == "the mark" and z.thinking == "is that a scratch" and z.region is not None


def test_two_calls_in_one_reply_answer_every_call_before_any_image(demo_crops):
    """OpenAI's order: every tool message straight after the assistant's calls, then the images."""
    two = tool_call([0, 0, 500, 500], call_id="a")
    two["choices"][0]["message"]["tool_calls"].append(
        {"id": "b", "type": "function", "function": {"name": "image_zoom_in_tool",
                                                     "arguments": json.dumps({"bbox_2d": [500, 500, 1000, 1000]})}})
    img, crop, rep, reqs, errors = run(demo_crops, [two, completion(answer("ok"))], profile="qwen3-vl",
                                       server="vllm")
    roles = [m["role"] for m in reqs[1]["messages"][-5:]]
    assert roles == ["assistant", "tool", "tool", "user", "user"]
    assert [m["tool_call_id"] for m in reqs[1]["messages"][-4:-2]] == ["a", "b"]
    assert len(rep.looks[0].zoomed) == 2


def test_zoom_off_offers_no_tool(demo_crops):
    img, crop, rep, reqs, errors = run(demo_crops, [completion(answer("ok"))], rounds=0)
    assert rep.answer is CropAnswer.ok and "tools" not in reqs[0]


def test_no_zoom_is_offered_when_the_deadline_leaves_no_time(demo_crops):
    """A part whose decision is due (a deadline of 10 ms, long past when the model is asked) gets no
    zoom offer: a zoom costs two more calls."""
    img, crop = demo_crops[0]
    product = ProductConfig(decision_deadline_ms=10, decision_guard_ms=5)
    with ScriptedVLM(lambda body: (200, completion(answer("ok")), 0)) as vlm:
        cfg = OpenAIReasonerConfig(type="openai", base_url=vlm.base_url, server="fastdeploy",
                                   profile="ernie-4.5-vl", max_zoom_rounds=2, second_look={"max_looks": 1})
        r = build_reasoner(cfg, None)
        frame = Frame("cam", 1, img, captured_mono=0.0)  # captured long ago
        rep = r.analyze(crop, product, frame)
        assert rep.answer is CropAnswer.ok and "tools" not in vlm.requests[0] and r.zooms_past_deadline == 1
        rep = r.analyze(crop, PRODUCT, Frame("cam", 1, img))  # no deadline: offered
        assert "tools" in vlm.requests[1]
        r.close()


def test_the_zoom_rounds_are_stored_with_the_answer(demo_crops, tmp_path):
    """The regions the model zoomed into reach the store and the inspection's detail."""
    from inspector.config import StoreConfig
    from inspector.messages import Verdict, VerdictKind
    from inspector.store import Store

    img, crop, rep, reqs, errors = run(demo_crops, [tool_call([250, 250, 750, 750]),
                                                    completion(answer("defect", [FOUND]))])
    store = Store(f"sqlite:///{tmp_path / 'z.db'}", tmp_path, StoreConfig())
    try:
        frame = Frame("cam", 1, img)
        verdict = Verdict(frame, VerdictKind.fail, "vlm_agreed", "the VLM saw a scratch", (crop.candidate,), (rep,))
        iid = store.save(verdict, "demo-tile", "openai", crops=(crop,))
        d = store.inspection(iid)
        (zoomed,) = [a for a in d["vlm_answers"] if a["zooms"]]
        (z,) = zoomed["zooms"]
        assert z["region"] == [round(v, 1) for v in rep.looks[0].zoomed[0]]
        assert z["asked"] == [250, 250, 750, 750] and z["thinking"] == "let me look closer"
        # the detail page draws the region on the frame and shows what the model was shown, with
        # the thinking of that round
        from fastapi.testclient import TestClient

        from inspector.line.status import LineStatus
        from inspector.web import create_app
        from tests.conftest import authorize

        with TestClient(create_app(store, lambda: LineStatus(detector_model="t", store=store.status()))) as c:
            authorize(c, store, "viewer")
            page = c.get(f"/inspections/{iid}").text
        r = z["region"]
        assert f'class="box-zoom" x="{r[0]}" y="{r[1]}"' in page
        assert f'class="zoom-view" viewBox="{r[0]} {r[1]} {r[2] - r[0]} {r[3] - r[1]}"' in page
        assert "asked [250, 250, 750, 750]" in page and "let me look closer</pre>" in page
    finally:
        store.close()


def test_zoom_regions_stored_before_rounds_were_kept_whole_still_read(tmp_path):
    """Rows from the first version of the zoom hold bare frame regions; they read as rounds."""
    from inspector.store.store import _zooms

    assert _zooms([[1.0, 2.0, 30.0, 40.0]]) == [{"asked": [], "region": [1.0, 2.0, 30.0, 40.0], "thinking": "",
                                                  "error": "", "label": ""}]
    assert _zooms(None) == []


# --- the grammar route: llama.cpp in process and its servers (no tool calls needed) ---------------

def test_a_llama_cpp_server_gets_the_zoom_through_the_grammar_not_tools(demo_crops):
    """llama-cpp-python's server (gbnf dialect) may not parse tool calls for a template: the zoom is
    one of the grammar's answers instead, and the zoomed region comes back as the next user turn."""
    img, crop, rep, reqs, errors = run(demo_crops, [completion('{"zoom": [250, 250, 750, 750]}'),
                                                    completion(answer("ok"))],
                                       rounds=1, server="llama_cpp_python")
    assert rep.answer is CropAnswer.ok and len(reqs) == 2 and errors == 0
    assert "tools" not in reqs[0] and '\\"zoom\\"' in reqs[0]["grammar"]
    assert '\\"zoom\\"' not in reqs[1]["grammar"]  # the one round is spent
    shown = reqs[1]["messages"][-1]
    assert shown["role"] == "user" and max(tool_image(shown).shape[:2]) == max(crop.image.shape[:2])
    assert shown["content"][-1]["text"].startswith("the region [250, 250, 750, 750]")
    (z,) = rep.looks[0].zooms
    assert z.asked == (250, 250, 750, 750) and z.region is not None


# --- in process -------------------------------------------------------------------------------

def test_in_process_the_grammar_offers_the_zoom_until_the_rounds_are_spent(tiny_vlm, demo_crops):
    """The tiny real model through llama.cpp: the grammar of each call allows {"zoom": box} while a
    round is left and not after; whatever the random model chose, every zoom it asked for was served
    inside the frame."""
    from inspector.config import LlamaCppReasonerConfig

    cfg = LlamaCppReasonerConfig(type="llama_cpp", model=tiny_vlm.model, mmproj=tiny_vlm.mmproj, seed=3,
                                 temperature=1.0, max_zoom_rounds=1, second_look={"max_looks": 1})
    r = build_reasoner(cfg, tiny_vlm.model.parent)
    calls = []
    real = r._call

    def spy(messages, schema, gbnf, tools=None):
        reply = real(messages, schema, gbnf)
        calls.append((gbnf, reply.text, messages))
        return reply
    r._call = spy
    try:
        for img, crop in demo_crops[:4]:
            before = len(calls)
            rep = r.analyze(crop, PRODUCT, Frame("cam", 1, img))
            mine = calls[before:]
            assert "zoomreq" in mine[0][0] and '\\"zoom\\"' in mine[0][0]
            assert "If you need to see a region closer" in mine[0][2][1]["content"][1]["text"]
            asked = [i for i, (_, text, _) in enumerate(mine) if text.lstrip().startswith('{"zoom"')]
            for i in asked:  # after a zoom, the next call may not zoom again (1 round)
                assert "zoomreq" not in mine[i + 1][0]
            h, w = img.shape[:2]
            for z in rep.looks[0].zoomed:
                assert 0 <= z[0] < z[2] <= w and 0 <= z[1] < z[3] <= h
            assert len(rep.looks[0].zoomed) <= 1
    finally:
        r.close()


def test_in_process_a_zoom_request_is_served_and_answered(tiny_vlm, demo_crops):
    """The model's choice injected (a random model rarely zooms): the grammar-route request gets the
    zoomed region as the next user turn, and the answer after it is the look's answer."""
    from inspector.config import LlamaCppReasonerConfig
    from inspector.reasoner import Reply

    cfg = LlamaCppReasonerConfig(type="llama_cpp", model=tiny_vlm.model, mmproj=tiny_vlm.mmproj,
                                 max_zoom_rounds=2, second_look={"max_looks": 1})
    r = build_reasoner(cfg, tiny_vlm.model.parent)
    replies = iter(['{"zoom": [250, 250, 750, 750]}', answer("ok")])
    seen = []

    def scripted(messages, schema, gbnf, tools=None):
        seen.append(messages)
        return Reply(next(replies))
    r._call = scripted
    try:
        img, crop = demo_crops[0]
        rep = r.analyze(crop, PRODUCT, Frame("cam", 1, img))
        assert rep.answer is CropAnswer.ok and len(rep.looks[0].zoomed) == 1
        shown = seen[1][-1]
        assert shown["role"] == "user" and shown["content"][0]["type"] == "image_url"
        assert max(tool_image(shown).shape[:2]) == max(crop.image.shape[:2])
    finally:
        r.close()
