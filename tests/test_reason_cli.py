"""`inspector reason IMAGE` and `inspector bench reasoner`, as a user runs them."""

import json

import cv2
import pytest

from inspector.demo.line import ROI
from tests.conftest import run_cli
from tests.scripted_vlm import ScriptedVLM, answer, completion


@pytest.fixture(scope="module")
def frame_png(demo_line, tmp_path_factory):
    return sorted(demo_line.frames_dir.iterdir())[0]


def test_reason_with_the_test_vlm(frame_png, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'data'}\n")
    p = run_cli("reason", str(frame_png), "--box", "200,150,260,210", "--json", "--test-vlm",
                "--config", str(cfg))
    assert p.returncode in (0, 1), p.stderr
    out = json.loads(p.stdout)
    assert out["box"] == [200, 150, 260, 210] and out["backend"] == "llama_cpp"
    assert out["latency_ms"] > 0 and out["raw"] and out["looks"][0]["raw"] == out["raw"]
    assert out["answer"] in ("defect", "ok", "uncertain", "invalid")
    h, w = cv2.imread(str(frame_png)).shape[:2]
    for f in out["findings"]:
        assert 0 <= f["box"][0] < f["box"][2] <= w and 0 <= f["box"][1] < f["box"][3] <= h


def test_reason_maps_the_answer_to_frame_pixels_and_mm(frame_png, tmp_path):
    """A known answer (through a scripted server) must land on the known frame pixels."""
    found = {"type": "hole", "severity": "critical", "confidence": 0.97, "box": [250, 250, 750, 750],
             "reason": "round pit"}
    with ScriptedVLM(lambda b: (200, completion(answer("defect", [found])), 0)) as vlm:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(
            f"data_dir: {tmp_path / 'data'}\n"
            f"cameras: [{{id: cam1, roi: {list(ROI)}, mm_per_px: 0.1}}]\n"
            f"cropper: {{padding: 0.0, min_side_px: 8}}\n"
            f"reasoner: {{type: openai, base_url: '{vlm.base_url}', server: llama_cpp_python}}\n")
        p = run_cli("reason", str(frame_png), "--box", "200,100,400,300", "--json", "--config", str(cfg))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    (f,) = out["findings"]
    # The crop is exactly the box (no padding), 200x200 px shown as is; 250..750 of 1000 is its middle.
    assert f["box"] == [250.0, 150.0, 350.0, 250.0]
    assert f["box_mm"] == pytest.approx([(250 - ROI[0]) * 0.1, (150 - ROI[1]) * 0.1,
                                         (350 - ROI[0]) * 0.1, (250 - ROI[1]) * 0.1], abs=0.01)
    assert out["answer"] == "defect" and f["type"] == "hole" and f["severity"] == "critical"


def test_reason_shows_the_zoom_rounds(frame_png, tmp_path):
    """The model zooms once (FastDeploy's tool call) and then answers: the round is printed with the
    frame region it was shown, and in --json with what it asked."""
    from inspector.reasoner.scripted_server import tool_call

    replies = iter([tool_call([0, 0, 500, 500]), completion(answer("ok"))])
    with ScriptedVLM(lambda b: (200, next(replies), 0)) as vlm:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"data_dir: {tmp_path / 'data'}\ncropper: {{padding: 0.0, min_side_px: 8}}\n"
                       f"reasoner: {{type: openai, base_url: '{vlm.base_url}', server: fastdeploy, "
                       f"profile: ernie-4.5-vl, max_zoom_rounds: 1}}\n")
        p = run_cli("reason", str(frame_png), "--box", "200,100,400,300", "--config", str(cfg))
    assert p.returncode == 0, p.stderr
    # the top-left quarter of the 200x200 box at (200, 100)
    assert "look 0 zoom 1: asked [0.0, 0.0, 500.0, 500.0]: shown frame region [200.0, 100.0, 300.0, 200.0] px" in p.stdout


def test_reason_reports_an_unreachable_server(frame_png, tmp_path):
    from inspector.reasoner.local_server import free_port

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"reasoner: {{type: openai, base_url: 'http://127.0.0.1:{free_port()}/v1'}}\n"
                   f"data_dir: {tmp_path}\n")
    p = run_cli("reason", str(frame_png), "--json", "--config", str(cfg))
    assert p.returncode == 1
    assert json.loads(p.stdout)["answer"] == "unavailable"
    assert "no usable answer: cannot reach the VLM server" in p.stderr


@pytest.mark.parametrize("args,message", [
    (["missing.png"], "missing.png: cannot open: No such file or directory"),
    (["FRAME", "--box", "5,5,1"], "--box must be x1,y1,x2,y2"),
    (["FRAME", "--box", "0,0,9000,10"], "reaches outside the 640x480 image"),
    (["FRAME", "--camera", "nope"], "--camera 'nope' is not in the config"),
])
def test_reason_bad_input(frame_png, args, message):
    args = [str(frame_png) if a == "FRAME" else a for a in args]
    p = run_cli("reason", *args, "--test-vlm")
    assert p.returncode == 2 and message in p.stderr, p.stderr


def test_reason_without_a_vlm_says_how_to_get_one(frame_png):
    p = run_cli("reason", str(frame_png))
    assert p.returncode == 2 and "no VLM configured" in p.stderr


def test_bench_reasoner_prints_medians_and_ratios(tmp_path):
    p = run_cli("bench", "reasoner", "--calls", "3", "--json", "--workdir", str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert "ratio = our p50 per model call" in p.stdout
    res = json.loads(p.stdout.strip().splitlines()[-1])
    rows = {r["case"]: r for r in res["rows"]}
    assert set(rows) == {"bare llama-cpp-python", "llama_cpp backend", "bare HTTP POST",
                         "openai backend, 1 worker", "openai backend, 4 workers"}
    for r in rows.values():
        assert r["calls"] == 3 and 0 < r["p50_ms"] <= r["p95_ms"] and r["calls_per_s"] > 0
    for case, base in (("llama_cpp backend", "bare llama-cpp-python"),
                       ("openai backend, 1 worker", "bare HTTP POST")):
        assert rows[case]["overhead_ratio"] == pytest.approx(
            rows[case]["p50_ms_per_model_call"] / rows[base]["p50_ms"], abs=0.002)
