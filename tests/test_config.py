from pathlib import Path

import pytest

from inspector.config import Config, ConfigError, defaults_yaml, load_config, parse_config
from tests.conftest import run_cli


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "line.yaml"
    p.write_text(text)
    return p


def test_defaults_run_the_demo():
    cfg = parse_config({})
    assert cfg.cameras[0].source.type == "demo"
    assert cfg.reasoner.type == "none"
    assert cfg.detector.model.is_file(), "the bundled detector must ship with the repo"
    assert cfg.web.host == "127.0.0.1" and cfg.web.port == 8080


def test_unknown_key_is_named_with_file(tmp_path):
    p = write(tmp_path, "detector:\n  treshold: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and "detector.treshold" in msg and "unknown key" in msg


def test_wrong_type_and_range_are_named(tmp_path):
    p = write(tmp_path, "web:\n  port: seventy\ncropper:\n  padding: -1\n")
    msg = str(pytest.raises(ConfigError, load_config, p).value)
    assert "web.port" in msg and "cropper.padding" in msg


def test_unknown_source_type_is_named(tmp_path):
    p = write(tmp_path, "cameras:\n  - id: c1\n    source: {type: ftp, path: x}\n")
    msg = str(pytest.raises(ConfigError, load_config, p).value)
    assert "cameras.0.source" in msg and "ftp" in msg


def test_camera_must_use_a_known_product(tmp_path):
    p = write(tmp_path, "cameras:\n  - id: c1\n    product: widgets\n")
    msg = str(pytest.raises(ConfigError, load_config, p).value)
    assert "widgets" in msg and "demo-tile" in msg


def test_llama_backend_needs_files_unless_test_model():
    with pytest.raises(ConfigError, match="reasoner.*model"):
        parse_config({"reasoner": {"type": "llama_cpp"}})
    assert parse_config({"reasoner": {"type": "llama_cpp", "test_model": True}}).reasoner.test_model


def test_bad_yaml_reports_line(tmp_path):
    p = write(tmp_path, "web:\n  port: [1, 2\n")
    msg = str(pytest.raises(ConfigError, load_config, p).value)
    assert "not valid YAML" in msg and "line" in msg


def test_relative_paths_resolve_against_the_file(tmp_path):
    p = write(tmp_path, "data_dir: data\ncameras:\n  - id: c1\n    source: {type: folder, path: imgs}\n")
    cfg = load_config(p)
    assert cfg.data_dir == tmp_path / "data"
    assert cfg.cameras[0].source.path == tmp_path / "imgs"


def test_defaults_yaml_round_trips():
    import yaml

    cfg = Config.model_validate(yaml.safe_load(defaults_yaml()))
    assert cfg.detector.model.name == "default-anomaly.onnx"


def test_cli_bad_config_exits_with_key(tmp_path):
    p = write(tmp_path, "judge:\n  min_confidence: 7\n")
    r = run_cli("run", "--config", str(p), "--no-web", "--exit-when-done")
    assert r.returncode == 2
    assert "judge.min_confidence" in r.stderr and str(p) in r.stderr


def test_shipped_example_config_is_valid():
    root = Path(__file__).resolve().parent.parent
    cfg = load_config(root / "systemd" / "inspector.yaml")
    assert cfg.reasoner.type == "openai" and cfg.reasoner.profile == "ernie-4.5-vl"
    assert cfg.reasoner.dialect == "json_schema" and cfg.reasoner.workers == 4
    assert cfg.cameras[0].roi == (100, 80, 540, 400) and cfg.cameras[0].mm_per_px == 0.12
    assert cfg.store.synchronous == "full"  # an edge box on a factory floor loses power


@pytest.mark.parametrize("reasoner,message", [
    ({"type": "openai"}, "reasoner.base_url: Field required"),
    ({"type": "openai", "base_url": "gpu:8000"}, "reasoner.base_url: String should match"),
    ({"type": "openai", "base_url": "http://g/v1", "server": "ollama"}, "reasoner.server"),
    ({"type": "openai", "base_url": "http://g/v1", "workers": 0}, "reasoner.workers"),
    ({"type": "llama_cpp", "test_model": True, "second_look": {"max_looks": 9}},
     "reasoner.second_look.max_looks"),
    ({"type": "llama_cpp", "model": "m.gguf"}, "needs 'model' and 'mmproj'"),
    ({"type": "vllm"}, "reasoner: Input tag 'vllm'"),
])
def test_reasoner_config_errors_name_the_key(reasoner, message):
    with pytest.raises(ConfigError) as e:
        parse_config({"reasoner": reasoner}, "line.yaml")
    assert message in str(e.value) and "line.yaml" in str(e.value), str(e.value)
