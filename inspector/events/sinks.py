"""Where events go. A sink sends one event and returns, or raises SinkError; the sender retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import ssl
import threading
from collections.abc import Callable

import httpx

from inspector.errors import InspectorError
from inspector.config import MqttSinkConfig, WebhookSinkConfig
from inspector.util.registry import Registry
from inspector.util.secrets_source import secret


class SinkError(InspectorError):
    pass


class WebhookSink:
    def __init__(self, cfg: WebhookSinkConfig):
        self.cfg = cfg
        self.secret = secret(cfg.secret_env, "events sink secret_env").encode() if cfg.secret_env else None
        self.client = httpx.Client(timeout=cfg.timeout_s, verify=cfg.verify_tls)

    def send(self, event: dict) -> None:
        body = json.dumps(event, separators=(",", ":")).encode()
        headers = {**self.cfg.headers, "Content-Type": "application/json",
                   "X-Inspector-Event": event["event"], "Idempotency-Key": event["uid"] or str(event["id"])}
        if self.secret is not None:
            headers["X-Inspector-Signature"] = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        try:
            r = self.client.post(self.cfg.url, content=body, headers=headers)
        except httpx.HTTPError as e:
            raise SinkError(f"{type(e).__name__}: {e or 'no answer'}") from None
        if not 200 <= r.status_code < 300:
            raise SinkError(f"HTTP {r.status_code}: {r.text[:200]}")

    def close(self) -> None:
        self.client.close()


class MqttSink:
    """One connection kept open (paho's network thread); reconnected by the next send after a drop."""

    def __init__(self, cfg: MqttSinkConfig, name: str):
        import paho.mqtt.client as mqtt

        self.cfg, self._mqtt = cfg, mqtt
        self.password = secret(cfg.password_env, "events sink password_env") if cfg.password_env else None
        self.client_id = cfg.client_id or f"inspector-{name}-{socket.gethostname()}"[:64]
        self.client = None
        self._connected = threading.Event()
        self._refused = ""

    def _connect(self):
        mqtt = self._mqtt
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv311)
        if self.cfg.username:
            c.username_pw_set(self.cfg.username, self.password)
        if self.cfg.tls:
            c.tls_set(ca_certs=str(self.cfg.ca_file) if self.cfg.ca_file else None,
                      cert_reqs=ssl.CERT_REQUIRED)

        def on_connect(client, userdata, flags, reason, props):
            if reason.is_failure:
                self._refused = str(reason)
            else:
                self._connected.set()

        c.on_connect = on_connect
        c.on_disconnect = lambda *a: self._connected.clear()
        self._connected.clear()
        self._refused = ""
        try:
            c.connect(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        except (OSError, ValueError) as e:
            raise SinkError(f"cannot reach MQTT broker {self.cfg.host}:{self.cfg.port}: {e}") from None
        c.loop_start()
        if not self._connected.wait(self.cfg.timeout_s):
            c.disconnect()
            c.loop_stop()
            why = f"refused: {self._refused}" if self._refused else f"no CONNACK in {self.cfg.timeout_s} s"
            raise SinkError(f"MQTT broker {self.cfg.host}:{self.cfg.port} {why}")
        self.client = c

    def send(self, event: dict) -> None:
        if self.client is None or not self._connected.is_set():
            self.close()
            self._connect()
        topic = self.cfg.topic.format(camera=event["camera"], product=event["product"], verdict=event["verdict"])
        info = self.client.publish(topic, json.dumps(event, separators=(",", ":")), qos=self.cfg.qos,
                                   retain=self.cfg.retain)
        if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
            raise SinkError(f"MQTT publish to {topic}: {self._mqtt.error_string(info.rc)}")
        try:
            info.wait_for_publish(self.cfg.timeout_s)
        except (RuntimeError, ValueError) as e:
            raise SinkError(f"MQTT publish to {topic}: {e}") from None
        if not info.is_published():  # QoS 1/2: the broker has not acknowledged it
            raise SinkError(f"MQTT publish to {topic}: not acknowledged in {self.cfg.timeout_s} s")

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None


SINKS: Registry[Callable[..., object]] = Registry("event sink", SinkError)


@SINKS.register("webhook")
def _webhook(cfg: WebhookSinkConfig, name: str) -> WebhookSink:
    return WebhookSink(cfg)


@SINKS.register("mqtt")
def _mqtt(cfg: MqttSinkConfig, name: str) -> MqttSink:
    return MqttSink(cfg, name)


def build_sink(cfg, name: str):
    return SINKS.get(cfg.type)(cfg, name)
