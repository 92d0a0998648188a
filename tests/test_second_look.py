"""A closer look at small or unsure findings: the frame is cropped tighter and asked again."""

import base64

import cv2
import numpy as np
import pytest

from inspector.config import OpenAIReasonerConfig, ProductConfig
from inspector.cropper import region_of
from inspector.messages import CropAnswer, Frame
from inspector.reasoner import build_reasoner
from tests.scripted_vlm import ScriptedVLM, answer, completion

PRODUCT = ProductConfig()
SMALL = {"type": "scratch", "severity": "minor", "confidence": 0.4, "box": [480, 480, 520, 520],
         "reason": "faint line"}
BIG = {"type": "crack", "severity": "major", "confidence": 0.9, "box": [100, 100, 900, 900],
       "reason": "jagged"}


def run(demo_crops, replies, **second_look):
    img, crop = demo_crops[0]
    it = iter(replies)

    def script(body):
        status, content = next(it)
        return status, completion(content) if status == 200 else {"error": "down"}, 0

    with ScriptedVLM(script) as vlm:
        cfg = OpenAIReasonerConfig(type="openai", base_url=vlm.base_url, server="llama_cpp_python",
                                   second_look=second_look, breaker_failures=5)
        r = build_reasoner(cfg, None)
        rep = r.analyze(crop, PRODUCT, Frame("cam", 1, img))
        r.close()
    return img, crop, rep, vlm.requests


def sent_image(request):
    url = request["messages"][1]["content"][0]["image_url"]["url"]
    data = base64.b64decode(url.split(",", 1)[1])
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def test_small_unsure_finding_is_confirmed_by_a_closer_look(demo_crops):
    img, crop, rep, reqs = run(demo_crops, [(200, answer("defect", [SMALL])),
                                            (200, answer("defect", [BIG]))])
    assert len(reqs) == 2 and len(rep.looks) == 2
    assert "closer look" in reqs[1]["messages"][1]["content"][1]["text"]
    first, second = rep.looks
    f0 = first.findings[0]
    # The closer look shows a smaller part of the frame at the same pixel budget: higher resolution.
    (rx1, ry1, rx2, ry2), (cx1, cy1, cx2, cy2) = second.region, region_of(crop)
    assert (rx2 - rx1) * (ry2 - ry1) < (cx2 - cx1) * (cy2 - cy1)
    assert rx1 <= f0.box[0] and ry1 <= f0.box[1] and f0.box[2] <= rx2 and f0.box[3] <= ry2
    assert max(sent_image(reqs[1]).shape[:2]) == max(crop.image.shape[:2])
    # The confirmed finding replaces the first one, located within the closer look's region.
    assert rep.answer is CropAnswer.defect
    (f,) = rep.findings
    assert f.look == 1 and f.defect_type == "crack" and f.confidence == 0.9
    assert rx1 <= f.box[0] < f.box[2] <= rx2 + 1e-6 and ry1 <= f.box[1] < f.box[3] <= ry2 + 1e-6


def test_closer_look_that_finds_nothing_clears_the_finding(demo_crops):
    _, _, rep, reqs = run(demo_crops, [(200, answer("defect", [SMALL])), (200, answer("ok"))])
    assert len(reqs) == 2 and rep.answer is CropAnswer.ok and rep.findings == ()
    assert [lk.answer for lk in rep.looks] == [CropAnswer.defect, CropAnswer.ok]


def test_failed_closer_look_keeps_the_first_finding(demo_crops):
    _, _, rep, reqs = run(demo_crops, [(200, answer("defect", [SMALL])), (500, "")])
    assert rep.answer is CropAnswer.defect and rep.findings[0].look == 0
    assert rep.looks[1].answer is CropAnswer.unavailable and "HTTP 500" in rep.looks[1].error


def test_confident_large_finding_needs_no_second_look(demo_crops):
    _, _, rep, reqs = run(demo_crops, [(200, answer("defect", [BIG]))])
    assert len(reqs) == 1 and len(rep.looks) == 1 and rep.answer is CropAnswer.defect


@pytest.mark.parametrize("max_looks,expected_requests", [(1, 1), (2, 2), (3, 3)])
def test_number_of_looks_is_configurable(demo_crops, max_looks, expected_requests):
    replies = [(200, answer("defect", [SMALL]))] * 3
    _, _, rep, reqs = run(demo_crops, replies, max_looks=max_looks)
    assert len(reqs) == expected_requests == len(rep.looks)
    assert [lk.index for lk in rep.looks] == list(range(expected_requests))
