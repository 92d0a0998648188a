from pathlib import Path

import pytest
from pydantic import Field

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


def test_every_relative_path_of_every_section_resolves_against_the_file(tmp_path):
    p = write(tmp_path, "cameras:\n  - id: c1\n    source: {type: folder, path: imgs, after: move, move_to: done}\n"
                        "detector: {type: yolo, model: m/y.onnx, labels: m/labels.txt}\n"
                        "reasoner: {type: llama_cpp, model: g/m.gguf, mmproj: g/p.gguf}\n"
                        "events:\n  sinks:\n    - {type: mqtt, host: broker, tls: true, ca_file: pki/ca.pem}\n"
                        "web: {line_socket: run/line.sock}\ncalibration_dir: cal\n")
    cfg = load_config(p)
    assert cfg.cameras[0].source.move_to == tmp_path / "done"
    assert (cfg.detector.model, cfg.detector.labels) == (tmp_path / "m/y.onnx", tmp_path / "m/labels.txt")
    assert (cfg.reasoner.model, cfg.reasoner.mmproj) == (tmp_path / "g/m.gguf", tmp_path / "g/p.gguf")
    assert cfg.events.sinks[0].ca_file == tmp_path / "pki/ca.pem"  # was left relative to the cwd
    assert cfg.web.line_socket == tmp_path / "run/line.sock" and cfg.calibration_dir == tmp_path / "cal"
    absolute = write(tmp_path, "cameras:\n  - id: c1\n    source: {type: folder, path: /srv/imgs}\n")
    assert load_config(absolute).cameras[0].source.path == Path("/srv/imgs")


def test_a_plugins_settings_are_one_class_the_union_and_errors_follow():
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, ValidationError

    from inspector.config.plugins import PluginConfigs

    kinds = PluginConfigs("gadget", default="plain")

    @kinds.add("plain")
    class Plain(BaseModel):
        model_config = ConfigDict(extra="forbid")
        type: Literal["plain"] = "plain"

    @kinds.add("fancy")
    class Fancy(BaseModel):
        model_config = ConfigDict(extra="forbid")
        type: Literal["fancy"]
        level: int

    with pytest.raises(ValueError, match="Literal"):
        @kinds.add("odd")
        class Misnamed(BaseModel):
            type: Literal["other"]

    class Holder(BaseModel):
        gadget: kinds.union() = Field(default_factory=Plain)

    assert isinstance(Holder.model_validate({"gadget": {}}).gadget, Plain)  # no type: the default
    assert Holder.model_validate({"gadget": {"type": "fancy", "level": 3}}).gadget.level == 3
    with pytest.raises(ValidationError, match="plain.*fancy|fancy.*plain"):
        Holder.model_validate({"gadget": {"type": "nope"}})
    with pytest.raises(RuntimeError, match="after its union"):
        kinds.add("late")(Plain)


def test_every_configurable_type_has_its_plugin_and_every_plugin_its_settings():
    from inspector.capture.sources import SOURCES
    from inspector.config import DETECTOR_CONFIGS, REASONER_CONFIGS, SINK_CONFIGS, SOURCE_CONFIGS
    from inspector.events.sinks import SINKS
    from inspector.prefilter import DETECTORS
    from inspector.reasoner import BACKENDS

    for plugins, settings in ((SOURCES, SOURCE_CONFIGS), (DETECTORS, DETECTOR_CONFIGS),
                              (BACKENDS, REASONER_CONFIGS), (SINKS, SINK_CONFIGS)):
        assert plugins.names() == settings.names(), plugins.kind


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
