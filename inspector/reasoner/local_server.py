"""Start `python -m llama_cpp.server` on a loopback port with a GGUF + mmproj pair.

Used by `inspector bench reasoner` and the tests to exercise the `openai` backend against a real
OpenAI-compatible server (llama-cpp-python's), never a mock.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from inspector.errors import InspectorError


class ServerError(InspectorError, RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalLlamaServer:
    def __init__(self, model: Path, mmproj: Path, *, n_ctx: int = 4096, port: int | None = None,
                 log_path: Path | None = None, startup_s: float = 60.0):
        self.model, self.mmproj, self.n_ctx = model, mmproj, n_ctx
        self.port = port or free_port()
        self.log_path = log_path
        self.startup_s = startup_s
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LocalLlamaServer:
        try:
            import llama_cpp.server  # noqa: F401
        except ImportError as e:
            raise ServerError(f"llama-cpp-python's server is not installed ({e}); install "
                              f"'llama-cpp-python[server]'") from None
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model),
               "--clip_model_path", str(self.mmproj), "--chat_format", "mtmd",
               "--n_ctx", str(self.n_ctx), "--host", "127.0.0.1", "--port", str(self.port),
               "--verbose", "False"]
        out = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"llama_cpp.server exited with {self.proc.returncode} at start"
                                  + (f"; see {self.log_path}" if self.log_path else ""))
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise ServerError(f"llama_cpp.server did not answer on port {self.port} "
                          f"within {self.startup_s:g} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> LocalLlamaServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
