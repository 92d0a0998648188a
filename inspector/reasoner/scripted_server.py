"""A tiny scripted OpenAI-compatible server, for the faults a real server cannot produce on demand
(HTTP 500, slowness, non-JSON bodies, answers of a chosen shape). Loopback only."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def completion(content: str, reasoning: str | None = None) -> dict:
    msg = {"role": "assistant", "content": content}
    if reasoning is not None:
        msg["reasoning_content"] = reasoning
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "scripted",
            "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": _tokens(content, reasoning)}}


def _tokens(*texts) -> int:
    """A count a real server would report, stood in by the number of words (scripted, not measured)."""
    return sum(len(t.split()) for t in texts if t)


def tool_call(bbox, reasoning: str = "let me look closer", name: str = "image_zoom_in_tool",
              call_id: str = "call_0") -> dict:
    """FastDeploy's answer when ERNIE-4.5-VL-Thinking asks to zoom (--tool-call-parser
    ernie-45-vl-thinking): no content, the thinking apart, the call's arguments as JSON text."""
    msg = {"role": "assistant", "content": "", "reasoning_content": reasoning,
           "tool_calls": [{"id": call_id, "type": "function",
                           "function": {"name": name, "arguments": json.dumps({"bbox_2d": bbox})}}]}
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "scripted",
            "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": _tokens(reasoning) + 12}}


def text_tool_call(bbox, thinking: str = "let me look closer", name: str = "image_zoom_in_tool") -> dict:
    """Qwen3-VL's zoom call as a server without a tool parser passes it on: a <tool_call> block in
    the content, after the thinking."""
    call = json.dumps({"name": name, "arguments": {"bbox_2d": bbox, "label": "the mark"}})
    return completion(f"<think>{thinking}</think>\n<tool_call>\n{call}\n</tool_call>")


def answer(verdict: str = "ok", findings: list | None = None) -> str:
    return json.dumps({"verdict": verdict, "findings": findings or []})


class ScriptedVLM:
    """`script` is called with the request body and returns (status, body, delay_s); body may be a
    dict (sent as JSON) or bytes. Requests and connections are recorded."""

    def __init__(self, script=None):
        self.script = script or (lambda body: (200, completion(answer()), 0))
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.connections = 0
        self.replies = 0  # answers to POSTs written out whole (a client that left gets none)
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is observable

            def setup(self):
                super().setup()
                with outer._lock:
                    outer.connections += 1

            def log_message(self, *a):
                pass

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "scripted"}]})

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(n) or b"{}")
                with outer._lock:
                    outer.requests.append(body)
                    outer.headers.append(dict(self.headers))
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    status, out, delay = outer.script(body)
                    if delay:
                        time.sleep(delay)
                    if self._send(status, out):
                        with outer._lock:
                            outer.replies += 1
                finally:
                    with outer._lock:
                        outer.in_flight -= 1

            def _send(self, status, out) -> bool:
                data = out if isinstance(out, bytes) else json.dumps(out).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                    return True
                except (BrokenPipeError, ConnectionResetError):
                    return False  # the client timed out and left

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
