"""The `openai` backend: against the real llama_cpp.server, and against a scripted server for the
faults a real one cannot produce on demand."""

import json
import threading
import time

import pytest

from inspector.config import OpenAIReasonerConfig, ProductConfig
from inspector.messages import CropAnswer, Frame
from inspector.reasoner import ReasonerConfigError, build_reasoner
from tests.scripted_vlm import ScriptedVLM, answer, completion

PRODUCT = ProductConfig()


def openai_cfg(base_url, **kw):
    kw.setdefault("server", "llama_cpp_python")
    return OpenAIReasonerConfig(type="openai", base_url=base_url, **kw)


def frame_of(img):
    return Frame("cam", 1, img)


# --- the real server ----------------------------------------------------------------------------

def test_real_llama_cpp_server_answers_are_validated(llama_server, demo_crops):
    r = build_reasoner(openai_cfg(llama_server.base_url, seed=5, temperature=1.0), None)
    try:
        seen = set()
        for img, crop in demo_crops[:8]:
            rep = r.analyze(crop, PRODUCT, frame_of(img))
            assert rep.answer is not CropAnswer.unavailable, rep.error
            assert rep.raw and rep.looks and rep.looks[0].raw == rep.raw
            h, w = img.shape[:2]
            for f in rep.findings:
                assert 0 <= f.box[0] < f.box[2] <= w and 0 <= f.box[1] < f.box[3] <= h
            seen.add(rep.answer)
        assert seen <= {CropAnswer.defect, CropAnswer.ok, CropAnswer.uncertain, CropAnswer.invalid}
        assert r.breaker.state == "closed"
    finally:
        r.close()


def test_wrong_response_format_dialect_is_explained(llama_server, demo_crops):
    # llama-cpp-python's server accepts only json_object+schema; json_schema is refused.
    r = build_reasoner(openai_cfg(llama_server.base_url, server="vllm"), None)
    rep = r.analyze(demo_crops[0][1], PRODUCT)
    r.close()
    assert rep.answer is CropAnswer.unavailable
    assert "json_schema" in rep.error and "reasoner.server" in rep.error, rep.error


# --- faults ----------------------------------------------------------------------------------------

def test_server_not_running(demo_crops):
    from inspector.reasoner.local_server import free_port

    r = build_reasoner(openai_cfg(f"http://127.0.0.1:{free_port()}/v1"), None)
    rep = r.analyze(demo_crops[0][1], PRODUCT)
    assert rep.answer is CropAnswer.unavailable
    assert "cannot reach the VLM server" in rep.error
    assert r.probe() and "cannot reach" in r.probe()


def test_slow_server_times_out(demo_crops):
    with ScriptedVLM(lambda b: (200, completion(answer()), 3)) as vlm:
        r = build_reasoner(openai_cfg(vlm.base_url, timeout_s=0.5), None)
        t = time.monotonic()
        rep = r.analyze(demo_crops[0][1], PRODUCT)
        assert time.monotonic() - t < 2.5
        r.close()
    assert rep.answer is CropAnswer.unavailable
    assert "did not answer within 0.5 s" in rep.error


def test_http_500_then_circuit_opens_and_recovers(demo_crops):
    state = {"down": True}

    def script(body):
        if state["down"]:
            return 500, {"error": {"message": "CUDA out of memory"}}, 0
        return 200, completion(answer()), 0

    with ScriptedVLM(script) as vlm:
        r = build_reasoner(openai_cfg(vlm.base_url, breaker_failures=3, breaker_cooldown_s=0.3), None)
        crop = demo_crops[0][1]
        reps = [r.analyze(crop, PRODUCT) for _ in range(5)]
        assert all(x.answer is CropAnswer.unavailable for x in reps)
        assert "HTTP 500" in reps[0].error and "CUDA out of memory" in reps[0].error
        assert len(vlm.requests) == 3, "an open circuit must stop calling the server"
        assert "circuit open after 3 failed calls" in reps[3].error
        assert r.breaker.state == "open"
        state["down"] = False
        time.sleep(0.35)  # cool-down over: one trial call goes out and closes the circuit
        rep = r.analyze(crop, PRODUCT)
        assert rep.answer is CropAnswer.ok and r.breaker.state == "closed"
        assert len(vlm.requests) == 4
        r.close()


def test_non_json_answer_gets_one_repair_then_invalid(demo_crops):
    with ScriptedVLM(lambda b: (200, completion("I think the part is fine."), 0)) as vlm:
        r = build_reasoner(openai_cfg(vlm.base_url), None)
        rep = r.analyze(demo_crops[0][1], PRODUCT)
        r.close()
    assert rep.answer is CropAnswer.invalid
    assert len(vlm.requests) == 2
    repair = vlm.requests[1]["messages"][-1]["content"]
    assert "could not be used" in repair and "not valid JSON" in repair
    assert rep.raw.count("I think the part is fine.") == 2
    assert "not valid JSON" in rep.error


def test_wrong_schema_answer_is_repaired(demo_crops):
    replies = iter([json.dumps({"verdict": "maybe", "findings": []}), answer("ok")])
    with ScriptedVLM(lambda b: (200, completion(next(replies)), 0)) as vlm:
        r = build_reasoner(openai_cfg(vlm.base_url), None)
        rep = r.analyze(demo_crops[0][1], PRODUCT)
        r.close()
    assert rep.answer is CropAnswer.ok and len(vlm.requests) == 2
    assert "'verdict' must be" in vlm.requests[1]["messages"][-1]["content"]
    assert "maybe" in rep.raw  # the refused first answer is kept for audit


def test_not_an_openai_reply(demo_crops):
    with ScriptedVLM(lambda b: (200, b"<html>proxy login</html>", 0)) as vlm:
        r = build_reasoner(openai_cfg(vlm.base_url), None)
        rep = r.analyze(demo_crops[0][1], PRODUCT)
        r.close()
    assert rep.answer is CropAnswer.unavailable
    assert "did not send an OpenAI chat completion" in rep.error and "proxy login" in rep.error


# --- how requests are made ------------------------------------------------------------------------

def test_connections_are_reused_and_key_is_sent(demo_crops, monkeypatch):
    monkeypatch.setenv("VLM_KEY", "s3cret")
    with ScriptedVLM() as vlm:
        r = build_reasoner(openai_cfg(vlm.base_url, api_key_env="VLM_KEY", workers=1), None)
        for _ in range(5):
            assert r.analyze(demo_crops[0][1], PRODUCT).answer is CropAnswer.ok
        r.close()
    assert len(vlm.requests) == 5 and vlm.connections == 1
    assert all(h.get("Authorization") == "Bearer s3cret" for h in vlm.headers)


def test_the_key_can_come_from_a_systemd_credential(demo_crops, monkeypatch, tmp_path):
    """LoadCredential=VLM_KEY:/etc/inspector/credentials/vlm-key puts the file in
    $CREDENTIALS_DIRECTORY; the environment, when set, wins."""
    monkeypatch.delenv("VLM_KEY", raising=False)
    (tmp_path / "VLM_KEY").write_text("from-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    with ScriptedVLM() as vlm:
        r = build_reasoner(openai_cfg(vlm.base_url, api_key_env="VLM_KEY", workers=1), None)
        assert r.analyze(demo_crops[0][1], PRODUCT).answer is CropAnswer.ok
        r.close()
        monkeypatch.setenv("VLM_KEY", "from-env")
        r = build_reasoner(openai_cfg(vlm.base_url, api_key_env="VLM_KEY", workers=1), None)
        assert r.analyze(demo_crops[0][1], PRODUCT).answer is CropAnswer.ok
        r.close()
    assert [h.get("Authorization") for h in vlm.headers] == ["Bearer from-credential", "Bearer from-env"]
    monkeypatch.delenv("VLM_KEY")
    (tmp_path / "VLM_KEY").unlink()
    with pytest.raises(ReasonerConfigError, match=f"no environment variable VLM_KEY nor a credential in {tmp_path}"):
        build_reasoner(openai_cfg(vlm.base_url, api_key_env="VLM_KEY"), None)


def test_missing_key_variable_is_named(monkeypatch):
    monkeypatch.delenv("NOPE_KEY", raising=False)
    with pytest.raises(ReasonerConfigError, match="no environment variable NOPE_KEY"):
        build_reasoner(openai_cfg("http://127.0.0.1:9/v1", api_key_env="NOPE_KEY"), None)


def test_requests_in_flight_are_bounded(demo_crops):
    with ScriptedVLM(lambda b: (200, completion(answer()), 0.3)) as vlm:
        r = build_reasoner(openai_cfg(vlm.base_url, workers=2), None)
        threads = [threading.Thread(target=r.analyze, args=(demo_crops[0][1], PRODUCT))
                   for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        r.close()
    assert len(vlm.requests) == 6 and vlm.max_in_flight == 2


@pytest.mark.parametrize("server,expected", [
    ("llama_cpp_python", "grammar"),
    ("llama_server", "grammar"),
    ("vllm", {"type": "json_schema"}),
    ("fastdeploy", {"type": "json_schema"}),
    ("other", None),
])
def test_response_format_dialect_per_server(demo_crops, server, expected):
    with ScriptedVLM() as vlm:
        r = build_reasoner(openai_cfg(vlm.base_url, server=server, model="m"), None)
        r.analyze(demo_crops[0][1], PRODUCT)
        r.close()
    body = vlm.requests[0]
    assert body["model"] == "m" and body["messages"][1]["content"][0]["image_url"]["url"].startswith(
        "data:image/png;base64,")
    rf = body.get("response_format")
    if expected is None:
        assert rf is None and "grammar" not in body
    elif expected == "grammar":
        assert rf is None and 'xc ::= "0" | [1-9] [0-9]{0,2} | "1000"' in body["grammar"]
    else:
        assert rf["type"] == expected["type"]
        schema = rf["schema"] if rf["type"] == "json_object" else rf["json_schema"]["schema"]
        assert schema["properties"]["findings"]["items"]["properties"]["type"]["enum"][-1] == "other"


def test_json_object_schema_dialect_on_the_real_server(llama_server, demo_crops):
    r = build_reasoner(openai_cfg(llama_server.base_url, response_format="json_object_schema"), None)
    rep = r.analyze(demo_crops[1][1], PRODUCT)
    r.close()
    assert rep.answer is not CropAnswer.unavailable, rep.error


def test_thinking_kept_apart_from_the_answer(demo_crops):
    """ERNIE-style thinking, both inline <think> and a server's separate reasoning_content."""
    img, crop = demo_crops[0]
    inline = "<think>The surface looks even; is that {\"verdict\": \"defect\"}?</think>" + answer("ok")
    replies = iter([completion(inline), completion(answer("ok"), reasoning="Checked the edges.")])
    with ScriptedVLM(lambda b: (200, next(replies), 0)) as vlm:
        r = build_reasoner(openai_cfg(vlm.base_url, server="fastdeploy", profile="ernie-4.5-vl"), None)
        a = r.analyze(crop, PRODUCT)
        b = r.analyze(crop, PRODUCT)
        r.close()
    assert a.answer is CropAnswer.ok and "surface looks even" in a.looks[0].thinking
    assert b.answer is CropAnswer.ok and b.looks[0].thinking == "Checked the edges."
    # ERNIE's FastDeploy thinking switch travels with the profile.
    assert vlm.requests[0]["chat_template_kwargs"] == {"options": {"thinking_mode": "open"}}


def test_line_over_http_end_to_end(llama_server, demo_line, tmp_path):
    """`inspector run` with the openai backend against the real server: every verdict stored with
    the raw answers, nothing lost, no errors."""
    import sqlite3

    from inspector.demo.line import ROI
    from tests.conftest import run_cli

    cfg = tmp_path / "line.yaml"
    cfg.write_text(
        f"data_dir: {tmp_path / 'data'}\n"
        f"cameras: [{{id: cam1, roi: {list(ROI)}, source: {{type: folder, path: '{demo_line.frames_dir}'}}}}]\n"
        f"reasoner: {{type: openai, base_url: '{llama_server.base_url}', server: llama_cpp_python,\n"
        f"           workers: 2, seed: 1, temperature: 1.0}}\n")
    p = run_cli("run", "--config", str(cfg), "--exit-when-done", "--fast", "--no-web")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert summary["reasoner_mode"] == "vlm" and summary["inspected"] == 12
    assert summary["vlm_crops"] >= 6 and summary["pass"] + summary["fail"] + summary["review"] == 12
    db = sqlite3.connect(tmp_path / "data" / "inspector.db")
    answers = db.execute("select answer, raw, model_id from vlm_answers where look = 0").fetchall()
    assert len(answers) == summary["vlm_crops"]
    assert all(raw and model == llama_server.base_url for _, raw, model in answers)
    assert not {a for a, _, _ in answers} & {"unavailable"}
