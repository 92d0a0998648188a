"""`inspector train`: the bundled network fine-tuned on one product's good parts, exported to ONNX
behind the same contract, hashed, calibrated, and run by that product's cameras only."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import yaml

import importlib.util

from inspector.config import DetectorConfig, load_config  # noqa: E402
from inspector.prefilter import ModelError, build_detector  # noqa: E402
from inspector.prefilter.calibration import product_tuning  # noqa: E402
from inspector.prefilter.product_model import detector_for, paths  # noqa: E402
from tests.conftest import run_cli  # noqa: E402

# The tests of a model being trained need the [train] extra (bootstrap.sh test installs it); the
# ones of what happens without it, or of a refused setup, run anyway.
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None or importlib.util.find_spec("onnx") is None,
                                 reason="inspector train needs the [train] extra (PyTorch, onnx)")


def grain(rng, size=192) -> np.ndarray:
    """A busy wood-like surface: stretched noise with fine speckle, a different cut each part."""
    n = cv2.resize(rng.normal(size=(size // 16, size // 2)).astype(np.float32), (size, size),
                   interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.normal(size=(size, size)).astype(np.float32), (0, 0), 1.0)
    lum = 120 + 28 * n + 14 * fine
    return np.clip(np.stack([lum * 0.7, lum * 0.85, lum], -1), 0, 255).astype(np.uint8)


def _plant(tmp_path):
    rng = np.random.default_rng(7)
    good = tmp_path / "good"
    good.mkdir()
    for i in range(12):
        cv2.imwrite(str(good / f"g{i:02d}.png"), grain(rng))
    line = tmp_path / "line"
    line.mkdir()
    for i in range(2):
        cv2.imwrite(str(line / f"p{i}.png"), grain(rng))
    cfg = tmp_path / "line.yaml"
    cfg.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / "data"), "calibration_dir": str(tmp_path / "cal"), "web": {"enabled": False},
        "products": [{"name": "oak"}, {"name": "steel"}],
        "cameras": [{"id": "c-oak", "product": "oak", "source": {"type": "folder", "path": str(line)}},
                    {"id": "c-steel", "product": "steel", "source": {"type": "folder", "path": str(line)}}]}))
    return cfg


@pytest.fixture
def plant(tmp_path):
    return tmp_path, _plant(tmp_path)


@needs_torch
def test_the_torch_network_computes_what_onnxruntime_computes():
    """What is trained is the bundled graph itself: interpreted in torch, its map matches
    onnxruntime's, and written back unchanged it is the same model."""
    import onnx
    import onnxruntime as ort
    import torch

    from inspector.prefilter.onnx_torch import build, write_back

    model = onnx.load(str(DetectorConfig().model))
    net, names = build(model, "anomaly_map")
    assert len(names) == 26  # 13 convolutions' weights and biases: the parameters that train
    x = np.random.default_rng(1).integers(0, 256, (1, 96, 128, 3), dtype=np.uint8)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        ["anomaly_map"], {"image": x})[0]
    with torch.no_grad():
        got = net(torch.from_numpy(x))[0].numpy()
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-4
    with torch.no_grad():
        next(iter(net.params.values())).mul_(0.5)  # a changed weight lands in the written file
    out = write_back(model, net, names)
    again = ort.InferenceSession(out.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        ["anomaly_map"], {"image": x})[0]
    assert np.abs(again - want).max() > 1e-3
    assert [o.name for o in out.graph.output] == [o.name for o in model.graph.output]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One plant whose product oak was trained (briefly) and calibrated by the CLI, as a user would."""
    tmp = tmp_path_factory.mktemp("trained")
    cfg_path = _plant(tmp)
    p = run_cli("train", "--product", "oak", "--good", str(tmp / "good"), "--steps", "12", "--target", "0.1",
                "--config", str(cfg_path), timeout=600)
    assert p.returncode == 0, p.stderr
    model = paths(tmp / "cal", "oak")[0]
    return tmp, cfg_path, hashlib.sha256(model.read_bytes()).hexdigest(), p.stdout


@needs_torch
def test_train_writes_a_hashed_model_and_calibrates_it(trained):
    tmp, cfg_path, sha, out = trained
    assert "fine-tuned default-anomaly@" in out and "on 12 good parts, 12 steps" in out
    assert "calibrating its own model oak-anomaly@" in out
    model, manifest = paths(tmp / "cal", "oak")
    entry = json.loads(manifest.read_text())["models"][0]
    assert entry["sha256"] == sha and entry["file"] == model.name and entry["name"] == "oak-anomaly"
    assert entry["recipe"]["steps"] == 12 and entry["recipe"]["good_parts"] == 12
    bundled = json.loads(DetectorConfig().manifest.read_text())["models"][0]
    assert sha != bundled["sha256"] and entry["normal_statistics"] == bundled["normal_statistics"]
    cal = yaml.safe_load((tmp / "cal" / "oak.yaml").read_text())
    assert cal["detector_model"] == f"oak-anomaly@{sha[:12]}" and cal["normal_statistics"]


@needs_torch
def test_only_the_trained_product_runs_its_model_and_its_verdicts_say_so(trained):
    tmp, cfg_path, sha, _ = trained
    cfg = load_config(cfg_path)
    tuning = product_tuning(cfg, build_detector(cfg.detector))
    assert tuning["oak"].detector.model_id == f"oak-anomaly@{sha[:12]}" and "steel" not in tuning
    from inspector.line.pipeline import Pipeline

    pipe = Pipeline(cfg)
    pipe.start()
    try:
        assert pipe.done.wait(120)
        rows = pipe.store.feed(limit=10)
        by_camera = {r["camera_id"]: pipe.store.inspection(r["id"])["models"]["detector"] for r in rows}
    finally:
        pipe.stop()
    bundled = json.loads(DetectorConfig().manifest.read_text())["models"][0]
    assert by_camera["c-oak"] == {"name": f"oak-anomaly@{sha[:12]}", "sha256": sha}
    assert by_camera["c-steel"]["sha256"] == bundled["sha256"]
    doctor = run_cli("doctor", "--config", str(cfg_path))
    assert "oak threshold" in doctor.stdout and f"on its own model oak-anomaly@{sha[:12]}" in doctor.stdout
    assert "FAIL camera" not in doctor.stdout, doctor.stdout  # each camera inspected with its product's model


@needs_torch
def test_bench_prefilter_times_the_product_against_the_bundled_model(trained):
    tmp, cfg_path, sha, _ = trained
    p = run_cli("bench", "prefilter", "--frames", "4", "--product", "oak", "--json", "--config", str(cfg_path),
                timeout=600)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout.strip().splitlines()[-1])["product"]
    assert r["model"] == f"oak-anomaly@{sha[:12]}" and r["calibrated"] and r["normal_statistics"]
    assert r["ratio"] == pytest.approx(r["stage_ms"] / r["bundled_stage_ms"], rel=0.02)
    assert r["over_bar"] == (r["ratio"] > r["bar"]) and f"ratio {r['ratio']:.3f} (bar 1.5" in p.stdout
    bad = run_cli("bench", "prefilter", "--product", "walnut", "--config", str(cfg_path))
    assert bad.returncode == 2 and "'walnut' is not in the config" in bad.stderr


@needs_torch
def test_a_changed_product_model_is_refused_by_its_hash(trained, tmp_path):
    tmp, cfg_path, sha, _ = trained
    cal = tmp_path / "cal"
    shutil.copytree(tmp / "cal", cal)
    doc = yaml.safe_load(cfg_path.read_text())
    doc["calibration_dir"] = str(cal)
    cfg2 = tmp_path / "line.yaml"
    cfg2.write_text(yaml.safe_dump(doc))
    model = paths(cal, "oak")[0]
    data = bytearray(model.read_bytes())
    data[-1] ^= 1
    model.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its manifest"):
        detector_for(load_config(cfg2), "oak")
    e = run_cli("eval", "--images", str(tmp / "good"), "--labels", str(tmp / "none.jsonl"), "--product", "oak",
                "--config", str(cfg2))
    assert e.returncode == 2 and "does not match its manifest" in e.stderr and "Traceback" not in e.stderr
    r = run_cli("run", "--config", str(cfg2), "--no-web", "--exit-when-done")
    assert r.returncode != 0 and "does not match its manifest" in r.stderr and "Traceback" not in r.stderr


@needs_torch
def test_training_lowers_the_loss_and_repeats_with_its_seed(plant):
    from inspector.prefilter import train

    tmp, cfg_path = plant
    cfg = load_config(cfg_path)
    det = build_detector(cfg.detector)
    good = sorted((tmp / "good").glob("*.png"))
    a = train.fine_tune(det, cfg.detector.model, good, None, steps=40, threads=1)
    b = train.fine_tune(det, cfg.detector.model, good, None, steps=40, threads=1)
    assert a.loss_last < a.loss_first
    assert a.sha256 == b.sha256  # same seed, same parts, same threads: the same file


def test_train_without_torch_says_what_to_install(plant, tmp_path):
    tmp, cfg_path = plant
    block = tmp_path / "block"
    block.mkdir()
    (block / "torch.py").write_text("raise ImportError('no torch here')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(block), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-m", "inspector", "train", "--product", "oak", "--good", str(tmp / "good"),
                        "--config", str(cfg_path)], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "pip install 'inspector[train]'" in p.stderr
    assert not paths(tmp / "cal", "oak")[1].exists()


@needs_torch
@pytest.mark.parametrize("args, message", [
    (["--product", "walnut"], "is not in the config"),
    (["--product", "oak", "--steps", "0"], "--steps must be at least 1"),
    (["--product", "oak", "--target", "1.5"], "--target must be a rate"),
])
def test_train_bad_input_is_named(plant, args, message):
    tmp, cfg_path = plant
    p = run_cli("train", *args, "--good", str(tmp / "good"), "--config", str(cfg_path))
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr
    assert not paths(tmp / "cal", "oak")[1].exists()


@needs_torch
def test_train_needs_enough_readable_good_parts(plant):
    tmp, cfg_path = plant
    few = tmp / "few"
    few.mkdir()
    for f in sorted((tmp / "good").glob("*.png"))[:5]:
        (few / f.name).write_bytes(f.read_bytes())
    (few / "broken.png").write_bytes(b"not a png")
    p = run_cli("train", "--product", "oak", "--good", str(few), "--config", str(cfg_path))
    assert p.returncode == 2 and "5 readable good parts are too few" in p.stderr
    assert "broken.png" in p.stderr


def test_a_product_model_with_another_detector_type_is_refused(plant, tmp_path):
    tmp, cfg_path = plant
    model, manifest = paths(tmp / "cal", "oak")
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text('{"models": []}')
    doc = yaml.safe_load(cfg_path.read_text())
    from tests.onnx_models import anomalib_map

    doc["detector"] = {"type": "anomaly_map", "model": str(anomalib_map(tmp_path / "a.onnx"))}
    cfg_path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ModelError, match="has its own model .* but detector.type is 'anomaly_map'"):
        detector_for(load_config(cfg_path), "oak")


@needs_torch
def test_train_with_bad_parts_keeps_whichever_model_flags_more_of_them(plant):
    """Given bad parts, the shared model is measured first and kept unless the trained one flags
    more of them (then the higher AUROC): what the files say follows what was printed."""
    from inspector.demo.defects import PAINTERS

    tmp, cfg_path = plant
    rng = np.random.default_rng(11)
    bad = tmp / "bad"
    bad.mkdir()
    for i in range(6):
        im = grain(rng)
        PAINTERS[["scratch", "hole", "stain"][i % 3]](im, rng, (0, 0, 192, 192), (40, 40, 40))
        cv2.imwrite(str(bad / f"b{i}.png"), im)
    p = run_cli("train", "--product", "oak", "--good", str(tmp / "good"), "--bad", str(bad), "--steps", "12",
                "--target", "0.1", "--config", str(cfg_path), timeout=600)
    assert p.returncode == 0, p.stderr
    line = next(x for x in p.stdout.splitlines() if x.startswith("product oak: kept"))
    (t_recall, t_auc), (s_recall, s_auc) = re.findall(r"([\d.]+)% \(AUROC ([\d.]+)\)", line)
    trained_better = (float(t_recall), float(t_auc)) > (float(s_recall), float(s_auc))
    cal = yaml.safe_load((tmp / "cal" / "oak.yaml").read_text())
    model, manifest = paths(tmp / "cal", "oak")
    if trained_better:
        assert "kept its own model" in line and manifest.exists()
        assert cal["detector_model"].startswith("oak-anomaly@")
    else:
        assert "kept the shared model" in line and not manifest.exists() and not model.exists()
        assert cal["detector_model"].startswith("default-anomaly@") and cal["measured"]["bad_images"] == 6


def test_train_refuses_a_fixed_threshold_and_bad_threads(plant):
    tmp, cfg_path = plant
    doc = yaml.safe_load(cfg_path.read_text())
    p = run_cli("train", "--product", "oak", "--good", str(tmp / "good"), "--threads", "0", "--config", str(cfg_path))
    assert p.returncode == 2 and "--threads must be at least 1" in p.stderr
    doc["detector"] = {"threshold": 0.5}
    cfg_path.write_text(yaml.safe_dump(doc))
    p = run_cli("train", "--product", "oak", "--good", str(tmp / "good"), "--config", str(cfg_path))
    assert p.returncode == 2 and "detector.threshold is set" in p.stderr
    assert not paths(tmp / "cal", "oak")[1].exists()


def test_an_unfinished_calibration_puts_the_files_back(tmp_path):
    """What `inspector train` restores when calibrating its model fails or is interrupted: the
    product's files exactly as they were, so the line never meets a model without calibration."""
    from inspector.cli.calibrate import _restore, _snapshot

    cal = tmp_path / "cal"
    cal.mkdir()
    (cal / "oak.yaml").write_text("old calibration\n")
    kept = _snapshot(cal, "oak")
    model, manifest = paths(cal, "oak")
    model.write_bytes(b"new model")
    manifest.write_text("{}")
    (cal / "oak.yaml").write_text("half-written\n")
    (cal / "oak.normal.npz").write_bytes(b"new statistics")
    _restore(kept)
    assert (cal / "oak.yaml").read_text() == "old calibration\n"
    assert not model.exists() and not manifest.exists() and not (cal / "oak.normal.npz").exists()
