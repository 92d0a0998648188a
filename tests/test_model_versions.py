"""Every verdict says which model files made it, by sha256; a file is hashed once per change."""

import json

import pytest

from inspector.config import DetectorConfig, parse_config
from inspector.line.pipeline import Pipeline
from inspector.store import Store
from inspector.store import store as store_module


def test_the_line_records_the_detector_by_content(tmp_path, demo_line):
    cfg = parse_config({"data_dir": str(tmp_path / "data"), "web": {"enabled": False},
                        "cameras": [{"source": {"type": "folder", "path": str(demo_line.frames_dir)}}]})
    pipe = Pipeline(cfg)
    pipe.start()
    try:
        assert pipe.done.wait(60)
        row = pipe.store.feed(limit=1)[0]
        models = pipe.store.inspection(row["id"])["models"]
    finally:
        pipe.stop()
    manifest = json.loads(DetectorConfig().manifest.read_text())["models"][0]
    assert models["detector"] == {"name": pipe.detector.model_id, "sha256": manifest["sha256"]}
    assert "vlm" not in models  # no VLM configured


def test_a_file_is_hashed_once_and_a_changed_file_is_a_new_version(tmp_path, monkeypatch):
    calls = []
    real = store_module._sha256
    monkeypatch.setattr(store_module, "_sha256", lambda p: calls.append(p) or real(p))
    model = tmp_path / "m.onnx"
    model.write_bytes(b"version one")
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path)
    try:
        a = store.register_model("detector", "m@1", model)
        assert store.register_model("detector", "m@1", model) == a and len(calls) == 1
        model.write_bytes(b"version two, longer")
        b = store.register_model("detector", "m@1", model)
        assert b != a and len(calls) == 2
        http = store.register_model("vlm", "qwen3-vl-8b")
        assert store.register_model("vlm", "qwen3-vl-8b") == http and len(calls) == 2
    finally:
        store.close()


def test_a_missing_model_file_is_an_error_not_a_silent_blank(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path)
    try:
        with pytest.raises(FileNotFoundError):
            store.register_model("detector", "gone", tmp_path / "gone.onnx")
    finally:
        store.close()
