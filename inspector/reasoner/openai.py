"""`openai` backend: any OpenAI-compatible /v1/chat/completions server that takes images.

llama.cpp's llama-server (--mmproj), `python -m llama_cpp.server`, vLLM and FastDeploy all speak
this; they differ in the `response_format` dialect they accept (see config.SERVER_DIALECTS) and in
where thinking text goes (inline <think> tags, or a separate `reasoning_content` field; both are
kept). One pooled HTTP client reuses connections; `workers` bounds the requests in flight.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import httpx

from inspector.config import OpenAIReasonerConfig
from inspector.util.redact import redact_url
from inspector.reasoner import Reasoner, ReasonerConfigError, ReasonerUnavailable, Reply, ToolCall, completion_tokens, register

log = logging.getLogger(__name__)


@register("openai")
class OpenAIReasoner(Reasoner):
    backend = "openai"
    supports_tools = True

    def __init__(self, cfg: OpenAIReasonerConfig, data_dir: Path | None = None):
        super().__init__(cfg)
        try:
            key = cfg.key()
        except ValueError as e:
            raise ReasonerConfigError(str(e)) from None
        self._url = cfg.base_url.rstrip("/")
        self.base_url = redact_url(self._url)  # as shown in messages and the status: no credentials
        self.model_id = cfg.model or self.base_url
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(
            base_url=self._url, headers=headers, verify=cfg.verify_tls,
            timeout=httpx.Timeout(cfg.timeout_s, connect=cfg.connect_timeout_s),
            limits=httpx.Limits(max_connections=cfg.workers, max_keepalive_connections=cfg.workers))
        self._slots = threading.BoundedSemaphore(cfg.workers)
        self.grammar_zoom = cfg.dialect == "gbnf"  # llama.cpp's servers: a zoom request is a grammar answer

    def request_body(self, messages: list[dict], schema: dict, gbnf: str, tools: list[dict] | None = None) -> dict:
        cfg = self.cfg
        body = {**self.profile.request_extras, **cfg.extra_body,
                "messages": messages, "max_tokens": cfg.max_tokens,
                "temperature": cfg.temperature, "seed": cfg.seed, "stream": False}
        if cfg.model:
            body["model"] = cfg.model
        if tools:
            # While the zoom is offered the answer is not constrained: a JSON-schema grammar would
            # forbid the tool call itself (FastDeploy and vLLM enforce response_format by guided
            # decoding). The answer is validated as always, with its repair.
            body["tools"] = tools
            return body
        if cfg.dialect == "gbnf":
            body["grammar"] = gbnf
        elif cfg.dialect == "json_object_schema":
            body["response_format"] = {"type": "json_object", "schema": schema}
        elif cfg.dialect == "json_schema":
            # No "strict": OpenAI's strict mode refuses keywords we rely on elsewhere (maxItems,
            # maxLength); vLLM and FastDeploy enforce the schema by grammar either way.
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "inspection_answer", "schema": schema}}
        return body

    def _call(self, messages: list[dict], schema: dict, gbnf: str, tools: list[dict] | None = None) -> Reply:
        body = self.request_body(messages, schema, gbnf, tools)
        with self._slots:
            try:
                r = self.client.post("/chat/completions", json=body)
            except httpx.TimeoutException:
                raise ReasonerUnavailable(
                    f"VLM server {self.base_url} did not answer within {self.cfg.timeout_s:g} s "
                    f"(reasoner.timeout_s)") from None
            except httpx.TransportError as e:
                raise ReasonerUnavailable(f"cannot reach the VLM server {self.base_url}: "
                                          f"{type(e).__name__}: {e}") from None
        if r.status_code != 200:
            raise ReasonerUnavailable(f"VLM server {self.base_url} answered HTTP {r.status_code}: "
                                      f"{_excerpt(r.text)}{self._hint(r)}")
        try:
            out = r.json()
            msg = out["choices"][0]["message"]
            content = msg.get("content") or ""
            thinking = msg.get("reasoning_content") or msg.get("reasoning") or ""
            if not isinstance(content, str) or not isinstance(thinking, str):
                raise TypeError("content is not text")
            calls = tuple(ToolCall(str(c.get("id") or f"call_{i}"), str(c["function"]["name"]),
                                   c["function"].get("arguments") if isinstance(c["function"].get("arguments"), str)
                                   else json.dumps(c["function"].get("arguments")))
                          for i, c in enumerate(msg.get("tool_calls") or []))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise ReasonerUnavailable(f"VLM server {self.base_url} did not send an OpenAI chat "
                                      f"completion: {_excerpt(r.text)}") from None
        return Reply(content, thinking, calls, completion_tokens(out))

    def _hint(self, r: httpx.Response) -> str:
        text = r.text.lower()
        if r.status_code in (401, 403):
            return " (check reasoner.api_key / api_key_env)"
        if r.status_code == 404:
            return " (check reasoner.base_url, which usually ends in /v1, and reasoner.model)"
        if "response_format" in text or "json_schema" in text or "grammar" in text:
            return (f" (the server refused response_format dialect {self.cfg.dialect!r}: set "
                    f"reasoner.server to the server's kind, or reasoner.response_format)")
        return ""

    def probe(self) -> str | None:
        """None when the server lists its models; otherwise what is wrong (for start-up logs)."""
        try:
            r = self.client.get("/models", timeout=self.cfg.connect_timeout_s)
        except httpx.HTTPError as e:
            return f"cannot reach the VLM server {self.base_url}: {type(e).__name__}: {e}"
        if r.status_code != 200:
            return f"VLM server {self.base_url}/models answered HTTP {r.status_code}{self._hint(r)}"
        return None

    def close(self) -> None:
        self.client.close()


def _excerpt(text: str, n: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + "..."
