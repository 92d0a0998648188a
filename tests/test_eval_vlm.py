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
    # tokens/s from the servers' own counts: none from a server that never answered
    assert res["ok.yaml"]["tokens_per_s"] > 0 and res["tiny.yaml"]["tokens_per_s"] > 0
    assert res["dead.yaml"]["tokens_per_s"] is None
    assert (tmp_path / "vlm.png").read_bytes()[:4] == b"\x89PNG"
    assert "recall" in p.stdout and "dead.yaml" in p.stdout and "tokens/s" in p.stdout


def test_an_unknown_product_is_one_line(tmp_path, demo_line):
    cfg = config(tmp_path, "ok", {"type": "llama_cpp", "test_model": True})
    p = run_cli("eval", "vlm", "--images", str(demo_line.frames_dir), "--labels", str(demo_line.ground_truth),
                "--config", str(cfg), "--product", "nope")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().endswith("--product 'nope' is not in the config (products: ['demo-tile'])")


# --- other ground truths: the operators' reviews, and what `inspector export` wrote ---------------

WHOLE = {"type": "scratch", "severity": "major", "confidence": 0.9, "box": [0, 0, 1000, 1000], "reason": "r"}


def _reviewed_line(tmp_path, vlm_url):
    """test_export's store (two parts reviewed fail: one by its VLM finding, one by its detector box;
    one false alarm reviewed pass; one pass never reviewed) and a config asking a scripted VLM."""
    from tests.test_export import _setup

    line, ids = _setup(tmp_path)
    cfg = yaml.safe_load(line.read_text())
    cfg["reasoner"] = {"type": "openai", "base_url": vlm_url, "server": "vllm"}
    line.write_text(yaml.safe_dump(cfg))
    return line, ids


def _eval(*args):
    p = run_cli("eval", "vlm", "--json", *args, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])["configs"][0]


def test_reviews_and_exported_datasets_as_ground_truth(tmp_path):
    with ScriptedVLM(lambda body: (200, completion(answer("defect", [WHOLE])), 0)) as vlm:
        line, ids = _reviewed_line(tmp_path, vlm.base_url)
        # reviews: 2 parts reviewed fail (2 boxes) and the false alarm reviewed pass; the unreviewed
        # pass is no ground truth
        r = _eval("--from-reviews", "--config", str(line))
        assert (r["positives"], r["negatives"]) == (2, 1)
        assert r["recall"] == 1.0 and r["precision"] == round(2 / 3, 3)  # it says defect everywhere
        assert r["type_accuracy"] == 1.0  # only the VLM-found part has a named type: scratch
        assert run_cli("eval", "vlm", "--from-reviews", "--since", "1h", "--config", str(line)).returncode == 0
        # the same parts exported as COCO and as YOLO, the good one included
        for fmt in ("coco", "yolo"):
            out = tmp_path / fmt
            p = run_cli("export", "--since", "1d", "--format", fmt, "--include-good", "--out", str(out),
                        "--config", str(line))
            assert p.returncode == 0 and "1 parts reviewed good" in p.stdout, p.stderr
            r = _eval("--dataset", str(out), "--config", str(line))
            assert (r["positives"], r["negatives"]) == (2, 1), fmt
            # the export names the detector's box by its label ("defect"), which the VLM did not say
            assert r["type_accuracy"] == 0.5 and r["recall"] == 1.0, fmt


def test_a_false_alarm_is_asked_about_where_the_machine_raised_it(tmp_path):
    """From reviews, a part overruled to pass is cropped around the box that flagged it (its false
    alarm), not the middle of the part."""
    from inspector.config import CropperConfig
    from inspector.reasoner.evaluate import cases
    from inspector.store import Store
    from inspector.store.export import reviewed_labels
    from datetime import datetime

    line, ids = _reviewed_line(tmp_path, "http://127.0.0.1:9/v1")
    data = tmp_path / "data"
    store = Store(f"sqlite:///{(data / 'inspector.db').resolve()}", data)
    try:
        items = reviewed_labels(store, datetime(1970, 1, 1))
    finally:
        store.close()
    cs, skipped = cases(items, CropperConfig(), 10**8)
    (neg,) = [c for c in cs if c.box is None]
    assert neg.crop.candidate.box == (10, 20, 50, 60) and not skipped
    # frames are read again when asked about, not held: one gone by then is named, not a crash
    import pytest

    from inspector.config import ProductConfig
    from inspector.reasoner.evaluate import evaluate
    from inspector.util.image_file import ImageError

    neg.path.unlink()
    with pytest.raises(ImageError, match=neg.path.name):
        evaluate(None, [neg], ProductConfig(), 10**8)


def test_the_ground_truth_is_named_once_and_bad_inputs_are_one_line(tmp_path, demo_line):
    empty = config(tmp_path, "empty", {"type": "llama_cpp", "test_model": True})
    labels = ["--labels", str(demo_line.ground_truth), "--images", str(demo_line.frames_dir)]
    cases = [
        ([], "say what to measure on, once"),
        ([*labels, "--from-reviews"], "(got --labels, --from-reviews)"),
        (["--labels", str(demo_line.ground_truth)], "--labels needs --images"),
        (["--dataset", str(tmp_path)], "neither a COCO dataset"),
        (["--dataset", str(tmp_path / "nowhere")], "not a folder"),
        ([*labels, "--since", "1d"], "--since goes with --from-reviews"),
        (["--from-reviews"], "--from-reviews: no database at"),
    ]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "annotations.json").write_text('{"images": [{"id": 1}]}')
    cases.append((["--dataset", str(tmp_path / "bad")], "not a COCO detection file"))
    for args, says in cases:
        p = run_cli("eval", "vlm", *args, "--config", str(empty))
        assert p.returncode == 2 and "Traceback" not in p.stderr and says in p.stderr, (args, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    p = run_cli("eval", "--from-reviews", "--config", str(empty))
    assert p.returncode == 2 and "the detector chose which parts were reviewed" in p.stderr
    # a store with inspections but no review is no ground truth
    from inspector.store import Store

    Store(f"sqlite:///{(tmp_path / 'data' / 'inspector.db').resolve()}", tmp_path / "data").close()
    p = run_cli("eval", "vlm", "--from-reviews", "--config", str(empty))
    assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].endswith(
        "no reviewed inspection with a kept frame in inspector.db: review parts on the dashboard first (pass "
        "or fail), or use --labels or --dataset")


def test_the_deadline_hit_rate_is_measured_against_the_products_deadline(tmp_path, demo_line):
    """A server that takes half a second never makes a 50 ms deadline; one that answers at once
    always makes a minute's. A product without a deadline has no rate."""
    def with_deadline(name, url, delay_ms):
        p = tmp_path / f"{name}.yaml"
        p.write_text(yaml.safe_dump({
            "data_dir": str(tmp_path / "data"),
            "products": [{"name": "demo-tile", "decision_deadline_ms": delay_ms, "decision_guard_ms": 5}],
            "reasoner": {"type": "openai", "base_url": url, "server": "vllm"}}))
        return str(p)
    with ScriptedVLM(lambda body: (200, completion(answer("ok")), 0.5)) as slow, \
            ScriptedVLM(lambda body: (200, completion(answer("ok")), 0)) as fast:
        args = ["eval", "vlm", "--images", str(demo_line.frames_dir), "--labels", str(demo_line.ground_truth),
                "--json", "--config", with_deadline("slow", slow.base_url, 50),
                "--config", with_deadline("fast", fast.base_url, 60_000),
                "--config", str(config(tmp_path, "none", {"type": "openai", "base_url": fast.base_url,
                                                            "server": "vllm"}))]
        p = run_cli(*args, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    rates = [r["deadline_hit_rate"] for r in json.loads(p.stdout.strip().splitlines()[-1])["configs"]]
    assert rates == [0.0, 1.0, None]
