"""One exception tree: every failure the inspector knows about is an InspectorError, so the command
line can say it in one line with a documented exit code instead of a traceback."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import inspector
from inspector.errors import InspectorError

SKIP = ("inspector.store.migrations",)  # Alembic's scripts run on import


def _modules():
    for m in pkgutil.walk_packages(inspector.__path__, "inspector."):
        if not m.name.startswith(SKIP) and not m.name.endswith("__main__"):
            yield importlib.import_module(m.name)


def test_every_error_class_of_the_package_is_an_inspector_error():
    found = {}
    for mod in _modules():
        for name, obj in vars(mod).items():
            if inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == mod.__name__:
                found[f"{mod.__name__}.{name}"] = obj
    assert len(found) >= 15, sorted(found)  # the walk did find the stages' errors
    strays = sorted(n for n, cls in found.items() if not issubclass(cls, InspectorError))
    assert not strays, f"not under InspectorError: {strays}"
    assert all(cls.exit_code == 2 for cls in found.values())


def test_errors_still_caught_as_their_old_bases_are():
    from inspector.store.schema import SchemaError
    from inspector.web.accounts import AccountError

    assert issubclass(SchemaError, ValueError) and issubclass(AccountError, ValueError)


def test_a_data_directory_that_is_a_file_is_one_line_with_exit_code_2(tmp_path, capsys):
    """`inspector users list` where data_dir names a file: the store cannot be made there."""
    from inspector.cli import main

    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    cfg = tmp_path / "line.yaml"
    cfg.write_text(f"data_dir: {blocker}\n")
    try:
        code = main(["users", "list", "--config", str(cfg)])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.startswith("inspector: ") and str(blocker) in err


def test_one_registry_for_sources_detectors_and_backends():
    from inspector.capture.sources import SOURCES, SourceError
    from inspector.prefilter import DETECTORS, ModelError
    from inspector.reasoner import BACKENDS, ReasonerConfigError
    from inspector.util.registry import Registry

    assert {"folder", "video", "demo", "usb", "rtsp", "mjpeg", "gstreamer"} <= set(SOURCES.names())
    assert {"default", "anomaly_map", "yolo"} <= set(DETECTORS.names())
    assert {"llama_cpp", "openai"} <= set(BACKENDS.names())
    for reg, err in ((SOURCES, SourceError), (DETECTORS, ModelError), (BACKENDS, ReasonerConfigError)):
        try:
            reg.get("nope")
        except err as e:
            assert "unknown" in str(e) and "'nope'" in str(e) and reg.names()[0] in str(e)
        else:
            raise AssertionError(f"{reg.kind}: an unknown type was accepted")
    twice = Registry("thing", SourceError)
    twice.register("a")(len)
    twice.register("a")(len)  # the same factory again (a module imported twice) is harmless
    try:
        twice.register("a")(abs)
    except ValueError as e:
        assert "registered twice" in str(e)
    else:
        raise AssertionError("a second factory under one name was accepted")
