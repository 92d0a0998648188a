"""The dashboard's server: in the line's process (`inspector run`) or as a service of its own
(`inspector web`), with the first admin made at the first start and its watchdog heartbeat."""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time

from inspector.line.status import LineStatus
from inspector.service.errors import StartError


def check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise StartError(f"cannot serve the dashboard on {host}:{port}: {e.strerror} "
                             f"(another inspector running? choose another with --port or web.port)") from e


def start_web(cfg, store, status, trigger, live, recipe=None):
    """The dashboard in a thread: in the line's process (`inspector run`) or on its own
    (`inspector web`)."""
    import uvicorn

    from inspector.store.stats import PlantTime
    from inspector.web import create_app
    from inspector.web.accounts import Accounts

    accounts = Accounts(store.engine)
    if not accounts.has_users():
        # First start: one admin with a random password, shown once here (never stored in clear).
        import secrets

        password = secrets.token_urlsafe(12)
        # It lands in a console or a journal others may read: good for one login, which must replace it.
        accounts.add_user("admin", password, "admin", must_change=True)
        print(f"inspector: no dashboard users yet; made user 'admin' with password {password} "
              f"(shown once, and good for one login: the dashboard then asks for a new one; or set "
              f"it with `inspector users passwd admin`; add people with "
              f"`inspector users add NAME --role operator`)", file=sys.stderr)
    app = create_app(store, status, trigger, live=live, recipe=recipe, plant=PlantTime.from_config(cfg.web),
                     secure_cookies=cfg.web.secure_cookies)
    from inspector.util.threaded_server import start_in_thread

    # X-Forwarded-For is believed only from the configured proxies (uvicorn's default believes
    # 127.0.0.1, so any local client could pose as any address and dodge the login limit).
    server = start_in_thread(uvicorn.Config(app, host=cfg.web.host, port=cfg.web.port, log_level="warning",
                                            access_log=False, proxy_headers=bool(cfg.web.trusted_proxies),
                                            forwarded_allow_ips=cfg.web.trusted_proxies), "web")
    if server is None:
        raise StartError(f"the dashboard did not start on {cfg.web.host}:{cfg.web.port}")
    return server


def serve_dashboard(cfg) -> int:
    """The dashboard and API as a service of its own (inspector-web.service): the database for
    the history, the line's socket for its status, live pictures and triggers. Returns when
    SIGTERM or Ctrl-C stops it."""
    from inspector.store import Store, StoreError
    from inspector.line.line_link import LineLink, PlantView

    check_port(cfg.web.host, cfg.web.port)
    try:
        store = Store(cfg.database_url, cfg.data_dir, cfg.store)
    except (StoreError, ValueError, OSError) as e:
        raise StartError(f"cannot start: {e}") from e
    if cfg.web.plant_wide:
        plant = PlantView(store)
        link = None
        status, trigger, live, recipe = plant.status, None, None, None
    else:
        link = LineLink(cfg, cfg.line_socket)
        status, trigger, live, recipe = link.status, link.trigger, link.live, link.change_recipe
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    from inspector.service.heap import freeze_startup_heap
    from inspector.service.notify import ServiceNotifier

    server = start_web(cfg, store, status, trigger, live, recipe)
    up = status().line
    from inspector.util.redact import redact_url

    print(f"inspector: dashboard at http://{cfg.web.host}:{cfg.web.port} over {redact_url(cfg.database_url)}; "
          + ("plant-wide, no line on this box" if link is None else "line running" if up.up
             else f"line not running yet ({up.error})"), file=sys.stderr)
    freeze_startup_heap()
    notifier = ServiceNotifier()
    notifier.ready(f"serving on {cfg.web.host}:{cfg.web.port}")
    probe = SelfProbe(cfg.web.host, cfg.web.port)
    notifier.start(probe.stalled_for, lambda: web_status_line(status()), stopping, what="web server")
    try:
        while not stopping.is_set():
            stopping.wait(0.5)
    except KeyboardInterrupt:
        pass
    notifier.stopping("stopping")
    server.should_exit = True
    if link is not None:
        link.close()
    return 0


def web_status_line(st: LineStatus) -> str:
    if st.reasoner_mode == "plant":
        return f"serving; plant-wide, {len(st.cameras)} camera(s)"
    if not st.line.up:
        return f"serving; {st.line.error}"
    return (f"serving; line running, {len(st.cameras)} camera(s), {st.verdict_count('pass')} pass, "
            f"{st.verdict_count('fail')} fail, {st.verdict_count('review')} review")


class SelfProbe:
    """Seconds since the web server last answered its own /healthz: the watchdog's heartbeat for
    a process whose work is answering requests."""

    def __init__(self, host: str, port: int):
        import httpx

        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(host, host)
        self.url = f"http://{host}:{port}/healthz"
        self._client = httpx.Client(timeout=5.0)
        self._ok = time.monotonic()

    def stalled_for(self) -> float:
        try:
            if self._client.get(self.url).status_code == 200:
                self._ok = time.monotonic()
        except Exception:
            pass
        return time.monotonic() - self._ok
