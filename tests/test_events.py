"""Outbound events against real receivers: an HTTP server on loopback and Debian's mosquitto."""

import hashlib
import hmac
import json
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from inspector.config import WebhookSinkConfig
from inspector.events import EventSender
from tests.conftest import judged_demo_line, wait_for


class Receiver:
    """A webhook receiver that records what it gets and can be told to answer errors."""

    def __init__(self):
        self.got, self.fail_next, self.status_when_failing = [], 0, 503
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.fail_next:
                    outer.fail_next -= 1
                    self.send_response(outer.status_when_failing)
                    self.end_headers()
                    self.wfile.write(b"busy")
                    return
                outer.got.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self):
        return [json.loads(b) for _, b in self.got]

    def wait_for(self, n, timeout=20):
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.events()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def fails_in(store):
    return [r["id"] for r in reversed(store.feed(limit=500, kind="fail"))]


def test_fail_verdicts_reach_a_webhook_once_each_in_order_and_signed(tmp_path, receiver, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    pipe = judged_demo_line(tmp_path, 10, events={
        "dashboard_url": "http://line3:8080/",
        "sinks": [{"type": "webhook", "url": receiver.url, "secret_env": "HOOK_SECRET",
                   "headers": {"X-Plant": "north"}}]})
    try:
        fails = fails_in(pipe.store)
        assert 0 < len(fails) < 10  # the demo line has good parts too, which must not be sent
        got = receiver.wait_for(len(fails))
        time.sleep(0.3)  # nothing more may come
        assert [e["id"] for e in receiver.events()] == fails
        for (headers, body), e in zip(receiver.got, got):
            want = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
            assert headers["X-Inspector-Signature"] == f"sha256={want}"
            assert headers["X-Plant"] == "north" and headers["Idempotency-Key"] == e["uid"]
            d = pipe.store.inspection(e["id"])
            assert e["verdict"] == "fail" and e["camera"] == "cam1" and e["uid"] == d["uid"]
            assert len(e["candidates"]) == len(d["candidates"]) >= 1
            assert e["url"] == f"http://line3:8080/inspections/{e['id']}"
        st = pipe.status().events[0]
        assert st.sent == len(fails) and st.failures == 0 and st.pending == 0
    finally:
        pipe.stop()


def test_a_receiver_that_fails_gets_every_event_after_retries(tmp_path, receiver):
    pipe = judged_demo_line(tmp_path, 10)  # no sinks while the line runs
    pipe.stop()
    fails = fails_in(pipe.store)
    receiver.fail_next = 3
    cfg = WebhookSinkConfig(type="webhook", url=receiver.url, retry_initial_s=0.05, retry_max_s=0.2)
    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "webhook.cursor").write_text("0\n")  # deliver from the start
    from inspector.store import Store

    store = Store(pipe.cfg.database_url, tmp_path)
    s = EventSender(store, cfg, tmp_path / "ev", ["cam1"])
    s.start()
    try:
        got = receiver.wait_for(len(fails))
        assert [e["id"] for e in got] == fails  # in order, none lost, none twice
        # The cursor moves once the receiver has answered: a moment after it has the event.
        cursor = tmp_path / "ev" / "webhook.cursor"
        assert wait_for(lambda: int(cursor.read_text()) == fails[-1], 10), cursor.read_text()
        assert s.failures == 3 and s.status()["last_error"] is None
    finally:
        s.stop()
    # A restart resends nothing already delivered.
    s2 = EventSender(store, cfg, tmp_path / "ev", ["cam1"])
    s2.start()
    time.sleep(0.5)
    s2.stop()
    assert len(receiver.got) == len(fails) and s2.sent == 0
    store.close()


def test_backlog_is_bounded_while_the_receiver_is_away(tmp_path):
    pipe = judged_demo_line(tmp_path, 12)
    pipe.stop()
    fails = fails_in(pipe.store)
    assert len(fails) >= 4
    with socket.socket() as sock:  # a port nobody listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    cfg = WebhookSinkConfig(type="webhook", url=dead, backlog_max=2, retry_initial_s=0.05, retry_max_s=0.1)
    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "webhook.cursor").write_text("0\n")
    from inspector.store import Store

    store = Store(pipe.cfg.database_url, tmp_path)
    s = EventSender(store, cfg, tmp_path / "ev", ["cam1"])
    s.start()
    deadline = time.monotonic() + 10
    while s.dropped == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    s.stop()
    assert s.dropped == len(fails) - 2 and "ConnectError" in s.status()["last_error"]
    # When the receiver is back, the two newest arrive, the skipped ones do not.
    r = Receiver()
    try:
        s2 = EventSender(store, cfg.model_copy(update={"url": r.url}), tmp_path / "ev", ["cam1"])
        s2.start()
        r.wait_for(2)
        time.sleep(0.3)
        s2.stop()
        assert [e["id"] for e in r.events()] == fails[-2:]
    finally:
        r.close()
        store.close()


def test_events_of_other_boxes_cameras_are_not_sent(tmp_path, receiver):
    pipe = judged_demo_line(tmp_path, 8)
    pipe.stop()
    from inspector.store import Store

    store = Store(pipe.cfg.database_url, tmp_path)
    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "webhook.cursor").write_text("0\n")
    s = EventSender(store, WebhookSinkConfig(type="webhook", url=receiver.url), tmp_path / "ev", ["other-cam"])
    s.start()
    time.sleep(0.5)
    s.stop()
    store.close()
    assert receiver.got == [] and s.cursor == 0


def test_a_new_sink_starts_at_the_newest_inspection_and_bad_settings_are_named(tmp_path, receiver):
    pipe = judged_demo_line(tmp_path, 6)
    pipe.stop()
    from inspector.store import Store

    store = Store(pipe.cfg.database_url, tmp_path)
    s = EventSender(store, WebhookSinkConfig(type="webhook", url=receiver.url), tmp_path / "ev", None)
    assert s.cursor == store.last_inspection_id() > 0  # history is not replayed into a new receiver
    (tmp_path / "ev" / "webhook.cursor").write_text("garbage")
    with pytest.raises(ValueError, match="cursor file .* is not an inspection id"):
        EventSender(store, WebhookSinkConfig(type="webhook", url=receiver.url), tmp_path / "ev", None)
    with pytest.raises(ValueError, match="no environment variable NOT_SET_ANYWHERE"):
        EventSender(store, WebhookSinkConfig(type="webhook", url=receiver.url, secret_env="NOT_SET_ANYWHERE"),
                    tmp_path / "ev2", None)
    store.close()


# --- MQTT against a real broker ---------------------------------------------------------------

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Broker:
    def __init__(self, tmp_path, port=None):
        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.port = port
        conf = tmp_path / f"mosquitto-{port}.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(self.proc.stderr.read().decode())
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def subscriber(port, topic):
    import paho.mqtt.client as mqtt

    got, ready = [], threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}-{time.monotonic_ns()}")
    c.on_connect = lambda cl, *a: (cl.subscribe(topic, qos=1), ready.set())
    c.on_message = lambda cl, ud, msg: got.append((msg.topic, json.loads(msg.payload)))
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert ready.wait(5)
    time.sleep(0.2)  # the SUBACK
    return c, got


@pytest.mark.skipif(not shutil.which(MOSQUITTO) and not __import__("os").path.exists(MOSQUITTO),
                    reason="Debian's mosquitto is not installed (./bootstrap.sh test installs it)")
def test_fail_events_reach_an_mqtt_broker_and_survive_its_restart(tmp_path):
    broker = Broker(tmp_path)
    sub, got = subscriber(broker.port, "inspector/#")
    pipe = judged_demo_line(tmp_path, 10, events={"sinks": [{
        "type": "mqtt", "host": "127.0.0.1", "port": broker.port, "topic": "inspector/{camera}/{verdict}",
        "retry_initial_s": 0.1, "retry_max_s": 0.5, "timeout_s": 2,
        "retain": True}]})  # retained: a subscriber that comes after the publish still gets it
    try:
        fails = fails_in(pipe.store)
        deadline = time.monotonic() + 15
        while len(got) < len(fails) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [e["id"] for _, e in got] == fails
        assert {t for t, _ in got} == {"inspector/cam1/fail"}
        sub.disconnect()
        sub.loop_stop()
        # The broker goes away; a fail judged meanwhile waits and goes out once it is back.
        broker.stop()
        sender = pipe.events[0]
        last = pipe.store.last_inspection_id()
        import numpy as np

        from inspector.messages import Candidate, Frame, Verdict, VerdictKind

        frame = Frame("cam1", 999, np.zeros((64, 64, 3), np.uint8))
        v = Verdict(frame, VerdictKind.fail, "detector_only", "a chip", (Candidate((1, 1, 9, 9), 0.9, "defect", "m"),), ())
        pipe.store.save(v, "demo-tile", "none", uid="restart-test")
        sender.notify()
        deadline = time.monotonic() + 10
        while sender.failures == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sender.failures > 0 and "MQTT" in sender.status()["last_error"]
        broker2 = Broker(tmp_path, broker.port)
        try:
            sub2, got2 = subscriber(broker2.port, "inspector/#")
            deadline = time.monotonic() + 15
            while not got2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert [e["uid"] for _, e in got2] == ["restart-test"] and got2[0][1]["id"] > last
            assert sender.status()["last_error"] is None
            sub2.disconnect()
            sub2.loop_stop()
        finally:
            broker2.stop()
    finally:
        pipe.stop()
        if broker.proc.poll() is None:
            broker.stop()


def test_a_failing_sink_shows_on_health_and_metrics(tmp_path):
    from fastapi.testclient import TestClient

    from inspector.web import create_app
    from tests.conftest import authorize

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "mes.cursor").write_text("0\n")
    pipe = judged_demo_line(tmp_path, 6, events={"sinks": [{"type": "webhook", "name": "mes", "url": dead,
                                                             "retry_initial_s": 0.05, "retry_max_s": 0.1}]})
    try:
        waiting = len(fails_in(pipe.store))
        deadline = time.monotonic() + 10  # the sender counts what waits each time it looks again
        while (pipe.events[0].failures < 2 or pipe.events[0].pending != waiting) and time.monotonic() < deadline:
            time.sleep(0.05)
        with TestClient(create_app(pipe.store, pipe.status)) as c:
            authorize(c, pipe.store, "viewer")
            h = c.get("/api/health").json()
            assert not h["ok"] and any(p.startswith("events to mes failing") for p in h["problems"])
            assert h["events"][0]["pending"] == waiting > 0
            assert "failing" in c.get("/health").text
            m = c.get("/metrics").text
            failures = float(next(line.split()[-1] for line in m.splitlines()
                                  if line.startswith('inspector_events_failures_total{sink="mes"}')))
            assert failures >= 1
            assert f'inspector_events_pending{{sink="mes"}} {float(waiting)}' in m
    finally:
        pipe.stop()
