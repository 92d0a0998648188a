"""A real RTSP server on loopback for the rtsp source's tests: GStreamer's RTSP server (Debian's
gir1.2-gst-rtsp-server-1.0; live555's media server is in no Debian 12 component) serving an H.264
clip made by ffmpeg (libx264), looped for ever at 25 fps.

    python tests/rtsp_server.py PORT CLIP.h264      # rtsp://127.0.0.1:PORT/cam
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

FPS = 25


def available() -> bool:
    if shutil.which("ffmpeg") is None:
        return False
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import Gst, GstRtspServer
    except (ImportError, ValueError):
        return False
    Gst.init(None)
    return all(Gst.ElementFactory.find(e) for e in ("multifilesrc", "h264parse", "rtph264pay")) and \
        hasattr(GstRtspServer, "RTSPServer")


def make_clip(path: Path, seconds: int = 4) -> Path:
    """An Annex-B H.264 stream (a key frame every second), as a camera sends."""
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc=size=320x240:rate={FPS}", "-t", str(seconds), "-c:v", "libx264", "-preset",
                    "veryfast", "-tune", "zerolatency", "-g", str(FPS), "-bf", "0", "-pix_fmt", "yuv420p",
                    "-f", "h264", str(path)], check=True, timeout=120)
    return path


class RtspServer:
    def __init__(self, clip: Path, port: int):
        self.clip, self.port = clip, port
        self.proc: subprocess.Popen | None = None
        self.url = f"rtsp://127.0.0.1:{port}/cam"

    def start(self) -> RtspServer:
        self.proc = subprocess.Popen([sys.executable, __file__, str(self.port), str(self.clip)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()  # "serving ..." once the port is bound
        if "serving" not in line:
            self.kill()
            raise RuntimeError(f"the RTSP server did not start on port {self.port}")
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def main(port: str, clip: str) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f'( multifilesrc location="{Path(clip).resolve()}" loop=true '
                       f'caps="video/x-h264,stream-format=byte-stream,framerate={FPS}/1" '
                       "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot bind 127.0.0.1:{port}")
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print(f"serving rtsp://127.0.0.1:{port}/cam", flush=True)
    loop.run()


if __name__ == "__main__":
    main(*sys.argv[1:3])
