"""`inspector eval vlm`: configs side by side on the demo line's labelled parts. The numbers are
meaningless here (a scripted server, the tiny random model); what is checked is that each was
measured as it says."""

import json

import yaml

from inspector.reasoner.scripted_server import ScriptedVLM, answer, completion
from tests.conftest import run_cli


def config(tmp_path, name, reasoner):
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "reasoner": reasoner}))
    return p


def test_configs_side_by_side_including_a_dead_and_a_babbling_model(tmp_path, demo_line, tiny_vlm):
    gt = [json.loads(line) for line in demo_line.ground_truth.read_text().splitlines()]
    positives = sum(len(r["defects"]) for r in gt)
    negatives = sum(not r["defects"] for r in gt)
    with ScriptedVLM(lambda body: (200, completion(answer("ok")), 0)) as says_ok, \
            ScriptedVLM(lambda body: (200, completion("I think it is fine {"), 0)) as babbles, \
            ScriptedVLM(lambda body: (200, completion(answer("ok")), 5)) as dead:
        common = {"type": "openai", "server": "llama_cpp_python", "breaker_failures": 1000}
        cfgs = [config(tmp_path, "ok", {**common, "base_url": says_ok.base_url}),
                config(tmp_path, "garbage", {**common, "base_url": babbles.base_url}),
                config(tmp_path, "dead", {**common, "base_url": dead.base_url, "timeout_s": 0.2}),
                config(tmp_path, "tiny", {"type": "llama_cpp", "test_model": True, "max_tokens": 96})]
        args = ["eval", "vlm", "--images", str(demo_line.frames_dir), "--labels", str(demo_line.ground_truth),
                "--json", "--chart", str(tmp_path / "vlm.png")]
        for c in cfgs:
            args += ["--config", str(c)]
        p = run_cli(*args, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    res = {r["config"].rsplit("/", 1)[-1]: r for r in json.loads(p.stdout.strip().splitlines()[-1])["configs"]}
    assert set(res) == {"ok.yaml", "garbage.yaml", "dead.yaml", "tiny.yaml"}
    for r in res.values():  # the same crops for every config
        assert (r["positives"], r["negatives"], r["crops"]) == (positives, negatives, positives + negatives)
        assert r["latency_p50_ms"] <= r["latency_p95_ms"]
    assert res["ok.yaml"]["recall"] == 0.0 and res["ok.yaml"]["precision"] is None and res["ok.yaml"]["unavailable"] == 0
    assert res["garbage.yaml"]["invalid_answers"] == positives + negatives and res["garbage.yaml"]["recall"] == 0.0
    assert res["dead.yaml"]["unavailable"] == positives + negatives
    assert (tmp_path / "vlm.png").read_bytes()[:4] == b"\x89PNG"
    assert "recall" in p.stdout and "dead.yaml" in p.stdout


def test_an_unknown_product_is_one_line(tmp_path, demo_line):
    cfg = config(tmp_path, "ok", {"type": "llama_cpp", "test_model": True})
    p = run_cli("eval", "vlm", "--images", str(demo_line.frames_dir), "--labels", str(demo_line.ground_truth),
                "--config", str(cfg), "--product", "nope")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().endswith("--product 'nope' is not in the config (products: ['demo-tile'])")
