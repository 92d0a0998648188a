"""A real HTTP multipart-MJPEG camera on loopback that a test can kill and restart on the same port."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = "frame"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MjpegCamera:
    def __init__(self, port: int | None = None, fps: float = 25.0, size=(320, 240)):
        self.port = port or free_port()
        self.fps, self.size = fps, size
        self.frames_sent = 0
        self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def _jpeg(self, n: int) -> bytes:
        img = np.full((self.size[1], self.size[0], 3), 90, np.uint8)
        cv2.putText(img, str(n), (20, 120), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        return cv2.imencode(".jpg", img)[1].tobytes()

    def start(self) -> "MjpegCamera":
        cam = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                try:
                    while cam._server is not None:
                        data = cam._jpeg(cam.frames_sent)
                        self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                         f"Content-Length: {len(data)}\r\n\r\n".encode() + data + b"\r\n")
                        cam.frames_sent += 1
                        time.sleep(1 / cam.fps)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def kill(self) -> None:
        """Like a camera losing power: the listener closes and open streams are cut."""
        srv, self._server = self._server, None
        if srv is not None:
            srv.shutdown()
            srv.server_close()
