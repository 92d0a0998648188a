"""The line's status is one typed definition (inspector/line/status.py): the running line, a
separate dashboard hearing it over the line's socket, the line down, a plant-wide view and
`/api/status` all give the same shape, and a number a stage reports cannot go missing from it."""

from __future__ import annotations

import tempfile
import types
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from inspector.line.line_link import LineLink, PlantView, offline_status
from inspector.line.line_socket import serve_line_socket
from inspector.line.status import CameraStatus, LineStatus, ReasonerStatus, SinkStatus, StoreStatus
from inspector.util.threaded_server import start_in_thread
from inspector.web import create_app
from tests.conftest import authorize, judged_demo_line


def _keys(d, prefix=""):
    """Every key path of a JSON-like value; lists by their first item."""
    if isinstance(d, dict):
        return {k for key, v in d.items() for k in {prefix + key} | _keys(v, prefix + key + ".")}
    if isinstance(d, list) and d:
        return _keys(d[0], prefix + "[].")
    return set()


@pytest.fixture
def short_dir():
    # A Unix socket's path must fit in 107 bytes; pytest's tmp_path may not.
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        yield Path(d)


def test_every_place_gives_the_same_status(tmp_path, short_dir):
    pipe = judged_demo_line(tmp_path, 6, events={"sinks": [{"type": "webhook", "url": "http://127.0.0.1:9/x"}]})
    server = serve_line_socket(pipe, short_dir / "line.sock")
    link = LineLink(pipe.cfg, short_dir / "line.sock")
    try:
        here, there = pipe.status(), link.status()
        assert isinstance(there, LineStatus) and there.line.up
        # Over the socket: the same numbers (the line has finished, so they hold still).
        assert there.verdicts == here.verdicts and sum(here.verdicts.values()) == 6
        assert there.cameras[0].frames_inspected == here.cameras[0].frames_inspected == 6
        assert there.store.writer_committed == here.store.writer_committed == 6
        assert there.events[0].name == here.events[0].name and there.detector_model == here.detector_model
        shapes = {name: _keys(st.model_dump(mode="json")) for name, st in (
            ("line", here), ("socket", there), ("down", offline_status(pipe.cfg, "stopped")),
            ("plant", PlantView(pipe.store).status()))}
        # Nested parts are absent (None) while down; the top level and the cameras never differ.
        top = {k for k in shapes["line"] if "." not in k or k.startswith("cameras.")}
        for name, keys in shapes.items():
            assert top <= keys, (name, top - keys)
        assert shapes["socket"] == shapes["line"]
        with TestClient(create_app(pipe.store, pipe.status)) as c:
            authorize(c, pipe.store, "viewer")
            api = c.get("/api/status").json()
            schema = c.get("/openapi.json").json()
        assert _keys(api) == shapes["line"] | {"counts", "counts.pass", "counts.fail", "counts.review",
                                               "counts.total"}
        assert api["counts"]["total"] == 6
        ok = schema["paths"]["/api/status"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": "#/components/schemas/ApiStatus"}
        assert set(schema["components"]["schemas"]["ApiStatus"]["properties"]) == set(api)
    finally:
        link.close()
        if server is not None:
            server.should_exit = True
        pipe.stop()


def test_the_stages_report_exactly_what_the_status_names(tmp_path):
    """A stage's status keys are the model's fields, no more (the strict model would refuse the
    line's status) and no fewer (a field left at its default would show a number nobody counts)."""
    pipe = judged_demo_line(tmp_path, 4, reasoner={"type": "llama_cpp", "test_model": True},
                            events={"sinks": [{"type": "webhook", "url": "http://127.0.0.1:9/x"}]})
    try:
        for got, model in ((pipe.store.status(), StoreStatus), (pipe.reasoner.status(), ReasonerStatus),
                           (pipe.events[0].status(), SinkStatus)):
            assert set(got) == set(model.model_fields), model.__name__
        cam = pipe._camera_status(pipe.cameras["cam1"])
        assert set(vars(pipe.cameras["cam1"])) < set(CameraStatus.model_fields)
        assert cam.state == "exhausted" and cam.frames_in == 4
        with pytest.raises(ValidationError, match="new_counter"):
            StoreStatus(**pipe.store.status(), new_counter=1)
    finally:
        pipe.stop()


def test_the_line_down_names_an_in_process_model_as_the_line_does(tmp_path):
    from inspector.config import parse_config

    for name in ("m.gguf", "p.gguf"):
        (tmp_path / name).write_bytes(b"GGUF")
    cfg = parse_config({"data_dir": str(tmp_path / "d"), "cameras": [{"id": "cam1", "source": {"type": "demo"}}],
                        "reasoner": {"type": "llama_cpp", "model": str(tmp_path / "m.gguf"),
                                     "mmproj": str(tmp_path / "p.gguf")}})
    st = offline_status(cfg, "no answer")
    assert st.reasoner_mode == "vlm" and st.reasoner_model == "m.gguf" and not st.line.up


def test_a_line_socket_answering_another_shape_reads_as_the_line_down(tmp_path, short_dir):
    """Another version of the line, or something else on its socket path: the dashboard says the
    line is down and why, in one line, and keeps serving."""
    from inspector.config import parse_config

    odd = FastAPI()
    odd.get("/status")(lambda: {"reasoner_mode": "vlm", "cameras": "three", "surprise": 1})
    server = start_in_thread(uvicorn.Config(odd, uds=str(short_dir / "odd.sock"), log_level="warning",
                                            lifespan="off"), "odd-line")
    cfg = parse_config({"data_dir": str(tmp_path / "d"), "cameras": [{"id": "cam1", "source": {"type": "demo"}}]})
    link = LineLink(cfg, short_dir / "odd.sock")
    try:
        st = link.status()
        assert not st.line.up and "\n" not in st.line.error
        assert "not understood" in st.line.error and "cameras" in st.line.error
        assert [c.id for c in st.cameras] == ["cam1"] and st.cameras[0].state == "stopped"
    finally:
        link.close()
        server.should_exit = True


def test_a_source_plugin_that_is_not_a_frame_source_is_refused_in_one_line(tmp_path):
    from inspector.capture.sources import SOURCES, SourceError, open_source

    class Bare:  # reads frames, but declares none of what the line uses besides
        name, fps, errors = "bare", None, 0

        def read(self):
            return None

        def close(self):
            pass

    SOURCES.register("bare-test")(lambda cfg, data_dir: Bare())
    try:
        with pytest.raises(SourceError) as e:
            open_source(types.SimpleNamespace(type="bare-test"), tmp_path)
        msg = str(e.value)
        assert "\n" not in msg and "'bare-test' is not a FrameSource" in msg
        assert "judged" in msg and "remember" in msg and "replay" in msg
    finally:
        SOURCES._plugins.pop("bare-test")


def test_a_backend_that_is_not_a_reasoner_is_refused_in_one_line(tmp_path):
    from inspector.reasoner import BACKENDS, ReasonerConfigError, build_reasoner

    BACKENDS.register("bare-test")(lambda cfg, data_dir: object())
    try:
        with pytest.raises(ReasonerConfigError, match="'bare-test' is not a Reasoner"):
            build_reasoner(types.SimpleNamespace(type="bare-test"), tmp_path)
    finally:
        BACKENDS._plugins.pop("bare-test")
