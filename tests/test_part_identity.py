"""Part identity (issue 25): a part id from the software trigger or from a QR code printed on the
part, on every inspection; search by it, re-inspections, exports, hostile ids refused."""

import csv
from datetime import datetime
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from inspector.capture.part_codes import PartCodeReader, clean_part_id
from inspector.capture.triggers import MAX_WAITING, Trigger, TriggerFull
from inspector.config import TriggerConfig, parse_config
from inspector.demo.line import CODE_AT, ROI, generate, print_code
from inspector.line.pipeline import Pipeline
from inspector.store.export import export
from inspector.web import create_app
from tests.conftest import authorize, wait_for


@pytest.fixture(scope="module")
def coded_line(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("coded") / "line", parts=10, seed=5, codes=True)


def _truth(line) -> dict[str, dict]:
    return {r["image"]: r for r in map(json.loads, line.ground_truth.read_text().splitlines())}


def test_qr_codes_printed_on_parts_become_their_ids(coded_line, tmp_path):
    cfg = parse_config({
        "data_dir": str(tmp_path / "data"), "web": {"enabled": False},
        "products": [{"name": "tile", "part_code": {"type": "qr", "region": [0, 150, 96, 300]}}],
        "cameras": [{"id": "cam1", "product": "tile", "roi": list(ROI),
                     "source": {"type": "folder", "path": str(coded_line.frames_dir)}}]})
    pipe = Pipeline(cfg)
    told = []
    pipe.on_decision.append(told.append)
    pipe.start()
    try:
        assert pipe.done.wait(60)
    finally:
        pipe.stop()
    truth = _truth(coded_line)
    rows = pipe.store.feed(limit=100)
    assert len(rows) == len(truth)
    assert {r["part_id"] for r in rows} == {t["part_id"] for t in truth.values()}
    assert {d.part_id for d in told} == {t["part_id"] for t in truth.values()}, "the PLC hears the part id"
    detail = pipe.store.inspection(rows[0]["id"])
    assert detail["part_id"] == truth[detail["source_name"]]["part_id"]
    one = truth["part_0003.png"]["part_id"]
    found = pipe.store.feed(part_id=one)
    assert [r["part_id"] for r in found] == [one] and not found[0]["reinspection"]

    out = tmp_path / "out.csv"
    export(pipe.store, out, "csv", since=datetime.fromisoformat(rows[-1]["captured_at"].removesuffix("Z")))
    exported = {r["source_name"]: r for r in csv.DictReader(out.open())}
    assert all(exported[name]["part_id"] == t["part_id"] for name, t in truth.items())
    assert {r["line_decision"] for r in exported.values()} <= {"ok", "ng"}


def test_the_trigger_names_the_part_and_a_second_look_is_a_reinspection(demo_line, tmp_path):
    cfg = parse_config({
        "data_dir": str(tmp_path / "data"), "web": {"enabled": False},
        "cameras": [{"id": "plc-cam", "trigger": {"mode": "software"}, "roi": list(ROI),
                     "source": {"type": "folder", "path": str(demo_line.frames_dir), "loop": True, "fps": 30}}]})
    pipe = Pipeline(cfg)
    pipe.start()
    try:
        with TestClient(create_app(pipe.store, pipe.status, pipe.trigger)) as c:
            authorize(c, pipe.store)
            for k, pid in enumerate(("A-1001", "A-1002", "A-1001"), 1):
                r = c.post("/api/cameras/plc-cam/trigger", json={"part_id": pid})
                assert r.status_code == 202 and r.json()["part_id"] == pid
                assert wait_for(lambda: len(pipe.store.feed(limit=10)) == k, 15)
            r = c.post("/api/cameras/plc-cam/trigger")  # no body: a part without an id
            assert r.status_code == 202 and r.json()["part_id"] is None
            assert wait_for(lambda: len(pipe.store.feed(limit=10)) == 4, 15)
            for bad in ("has space", "x" * 65, "tab\there", "", "\u00e9t\u00e9"):
                r = c.post("/api/cameras/plc-cam/trigger", json={"part_id": bad})
                assert r.status_code == 422, bad
            assert c.post("/api/cameras/plc-cam/trigger", json={"part": "A"}).status_code == 422

            rows = c.get("/api/verdicts?limit=10").json()
            assert [r["part_id"] for r in rows] == [None, "A-1001", "A-1002", "A-1001"]
            assert [r["reinspection"] for r in rows] == [False, True, False, False]
            again = c.get("/api/verdicts", params={"part_id": "A-1001"}).json()
            assert len(again) == 2
            page = c.get("/", params={"part_id": "A-1001"}).text
            assert page.count('class="tag">re-inspection') == 1
            detail = c.get(f"/inspections/{rows[1]['id']}").text
            assert 'id="part-id">A-1001' in detail and "re-inspection" in detail
            assert f'href="/inspections/{rows[3]["id"]}"' in detail  # the first look, linked
    finally:
        pipe.stop()


def test_trigger_requests_are_bounded():
    t = Trigger(TriggerConfig(mode="software"))
    for i in range(MAX_WAITING):
        t.request(f"P{i}")
    with pytest.raises(TriggerFull):
        t.request("one-too-many")
    img = np.zeros((8, 8, 3), np.uint8)
    assert t.fire(img, None) and t.part_id == "P0" and t.requested_mono is not None
    assert t.fire(img, None) and t.part_id == "P1"
    free = Trigger(TriggerConfig(mode="continuous"))
    assert free.fire(img, None) and free.part_id is None and free.requested_mono is None


def test_a_hostile_or_missing_code_gives_no_part_id():
    frame = np.full((480, 640, 3), 60, np.uint8)
    reader = PartCodeReader("any", (0, 150, 96, 300))
    assert reader.read(frame) is None and reader.unreadable == 1
    for text in ("two words", "x" * 70, "line\nbreak"):
        f = frame.copy()
        print_code(f, text)
        assert reader.read(f) is None, text
    f = frame.copy()
    print_code(f, "OK-42")
    assert reader.read(f) == "OK-42"
    # the region is honoured: a code outside it is not the part's
    elsewhere = PartCodeReader("qr", (300, 0, 640, 480))
    assert elsewhere.read(f) is None
    assert clean_part_id("  P-1 ") == "P-1" and clean_part_id("P 1") is None
    assert CODE_AT[0] + 87 < ROI[0], "the demo's code lies outside the inspected region"


def test_a_barcode_is_read_too():
    # An EAN-13 drawn from its module pattern (OpenCV has no 1D encoder).
    digits = "4006381333931"
    L = ["0001101", "0011001", "0010011", "0111101", "0100011", "0110001", "0101111", "0111011", "0110111", "0001011"]
    G = ["0100111", "0110011", "0011011", "0100001", "0011101", "0111001", "0000101", "0010001", "0001001", "0010111"]
    R = ["1110010", "1100110", "1101100", "1000010", "1011100", "1001110", "1010000", "1000100", "1001000", "1110100"]
    parity = ["LLLLLL", "LLGLGG", "LLGGLG", "LLGGGL", "LGLLGG", "LGGLLG", "LGGGLL", "LGLGLG", "LGLGGL", "LGGLGL"]
    p = parity[int(digits[0])]
    bits = "101" + "".join((L if p[i] == "L" else G)[int(d)] for i, d in enumerate(digits[1:7])) + "01010" + \
        "".join(R[int(d)] for d in digits[7:]) + "101"
    strip = np.array([0 if b == "1" else 255 for b in bits], np.uint8)
    code = np.repeat(np.repeat(strip[None, :], 60, 0), 2, 1)  # 2 px a module
    frame = np.full((200, 420, 3), 255, np.uint8)
    frame[70:130, 30:30 + code.shape[1]] = code[..., None]
    assert PartCodeReader("barcode").read(frame) == digits
    assert PartCodeReader("qr").read(frame) is None


def test_a_reinspection_is_the_same_camera_seeing_a_part_again(tmp_path):
    """A top and a bottom station both look at part X: neither is a re-inspection; the top
    station looking again is."""
    from inspector.messages import Frame, Verdict, VerdictKind
    from inspector.store import Store

    store = Store(f"sqlite:///{tmp_path / 'x.db'}", tmp_path)
    img = np.zeros((16, 16, 3), np.uint8)
    for cam, seq in (("top", 1), ("bottom", 1), ("top", 2)):
        store.save(Verdict(Frame(cam, seq, img, part_id="X-1"), VerdictKind.passed, "no_candidates", "ok", (), ()),
                   "demo-tile", "none")
    rows = store.feed(part_id="X-1")
    assert [(r["camera_id"], r["seq"], r["reinspection"]) for r in rows] == \
        [("top", 2, True), ("bottom", 1, False), ("top", 1, False)]
    detail = store.inspection(rows[1]["id"])
    assert [o["camera_id"] for o in detail["same_part"]] == ["top", "top"]
    store.close()


def test_a_request_keeps_the_recipe_it_was_made_under():
    t = Trigger(TriggerConfig(mode="software"))
    t.request("P1", "tile-a")
    img = np.zeros((8, 8, 3), np.uint8)
    assert t.fire(img, None) and (t.part_id, t.requested_product) == ("P1", "tile-a")
