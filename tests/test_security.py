"""Who may do what on the dashboard and API: logins, roles, tokens, CSRF, the login rate limit,
redirects and paths that must not escape - against the real app and a real SQLite file."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from inspector.web import create_app
from inspector.web.accounts import Accounts, hash_password, verify_password
from tests.conftest import judged_demo_line, run_cli

PASSWORDS = {"vera": "viewer-pass-1", "otto": "operator-pass-1"}


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    pipe = judged_demo_line(tmp_path_factory.mktemp("sec"), 6)
    acc = Accounts(pipe.store.engine)
    acc.add_user("vera", PASSWORDS["vera"], "viewer")
    acc.add_user("otto", PASSWORDS["otto"], "operator")
    yield pipe, acc
    pipe.stop()


@pytest.fixture
def client(line):
    pipe, _ = line
    with TestClient(create_app(pipe.store, pipe.status, pipe.trigger), follow_redirects=False) as c:
        yield c


def _login(c, user: str) -> str:
    r = c.post("/login", data={"username": user, "password": PASSWORDS[user], "next": "/"})
    assert r.status_code == 303, r.text
    page = c.get("/").text
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)


def _an_inspection(c) -> int:
    return c.get("/api/verdicts", params={"limit": 1}).json()[0]["id"]


@pytest.mark.parametrize("path,code", [("/", 303), ("/inspections/1", 303), ("/docs", 303), ("/api/verdicts", 401),
                                       ("/api/status", 401), ("/metrics", 401), ("/openapi.json", 401),
                                       ("/inspections/1/frame.jpg", 303)])
def test_anonymous_requests_see_only_the_login_page(client, path, code):
    r = client.get(path, headers={"accept": "text/html"} if code == 303 else {})
    assert r.status_code == code
    if code == 303:
        assert r.headers["location"].startswith("/login?next=")
    else:
        assert "log in first" in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"
    assert client.get("/login").status_code == 200
    assert client.get("/static/style.css").status_code == 200 and client.get("/healthz").status_code == 200
    assert client.post("/api/inspections/1/reviews", json={"verdict": "pass"}).status_code == 401


def test_a_session_is_an_httponly_samesite_cookie_and_logout_ends_it(client):
    r = client.post("/login", data={"username": "vera", "password": PASSWORDS["vera"], "next": "/api/me"})
    assert r.status_code == 303 and r.headers["location"] == "/api/me"
    cookie = r.headers["set-cookie"]
    assert "inspector_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert client.get("/api/me").json() == {"name": "vera", "role": "viewer", "via": "session"}
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert client.get("/api/me").status_code == 401


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example"])
def test_login_never_redirects_off_site(client, target):
    r = client.post("/login", data={"username": "vera", "password": PASSWORDS["vera"], "next": target})
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_a_viewer_cannot_review_or_trigger(client):
    csrf = _login(client, "vera")
    iid = _an_inspection(client)
    r = client.post(f"/api/inspections/{iid}/reviews", json={"verdict": "pass"}, headers={"x-csrf-token": csrf})
    assert r.status_code == 403 and "needs the operator role; vera is a viewer" in r.json()["detail"]
    assert client.post("/api/cameras/cam1/trigger", headers={"x-csrf-token": csrf}).status_code == 403
    assert 'action="/inspections/' not in client.get(f"/inspections/{iid}").text  # no review form shown


def test_an_operator_reviews_with_the_csrf_token_only(client, line):
    csrf = _login(client, "otto")
    iid = _an_inspection(client)
    r = client.post(f"/api/inspections/{iid}/reviews", json={"verdict": "fail", "note": "x"})
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    r = client.post(f"/api/inspections/{iid}/reviews", json={"verdict": "fail"}, headers={"x-csrf-token": "forged"})
    assert r.status_code == 403
    r = client.post(f"/inspections/{iid}/review", data={"verdict": "pass", "note": "n", "csrf_token": "forged"})
    assert r.status_code == 403
    assert line[0].store.inspection(iid)["reviews"] == []  # nothing got through
    r = client.post(f"/api/inspections/{iid}/reviews", json={"verdict": "fail", "defect_type": "chip",
                                                               "note": "edge"}, headers={"x-csrf-token": csrf})
    assert r.status_code == 201
    assert (r.json()["reviewer"], r.json()["to"], r.json()["defect_type"]) == ("otto", "fail", "chip")
    r = client.post(f"/inspections/{iid}/review", data={"verdict": "pass", "note": "on second look",
                                                         "csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == f"/inspections/{iid}#reviews"
    d = line[0].store.inspection(iid)
    assert [(x["reviewer"], x["to"]) for x in d["reviews"]] == [("otto", "fail"), ("otto", "pass")]
    assert d["verdict_in_force"] == "pass"


def test_machine_tokens_need_no_csrf_and_carry_their_role(client, line):
    _, acc = line
    plc = acc.add_token("plc-line3", "operator")
    grafana = acc.add_token("grafana", "viewer")
    r = client.post("/api/cameras/cam1/trigger", headers={"authorization": f"Bearer {plc}"})
    assert r.status_code == 202
    assert client.get("/metrics", headers={"authorization": f"Bearer {grafana}"}).status_code == 200
    r = client.post("/api/cameras/cam1/trigger", headers={"authorization": f"Bearer {grafana}"})
    assert r.status_code == 403
    acc.revoke_token("plc-line3")
    r = client.post("/api/cameras/cam1/trigger", headers={"authorization": f"Bearer {plc}"})
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert client.get("/api/me", headers={"authorization": "Bearer insp_guess"}).status_code == 401


def test_logins_are_rate_limited_per_client_and_name(line):
    pipe, _ = line
    with TestClient(create_app(pipe.store, pipe.status), follow_redirects=False) as c:
        for _ in range(5):
            r = c.post("/login", data={"username": "otto", "password": "guess-guess"})
            assert r.status_code == 401 and "wrong user name or password" in r.text
        r = c.post("/login", data={"username": "otto", "password": PASSWORDS["otto"]})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 200  # even the right one waits
        assert "too many failed logins" in r.text
        assert c.post("/login", data={"username": "vera", "password": PASSWORDS["vera"]}).status_code == 303


def test_image_routes_cannot_leave_the_data_directory(client, line):
    pipe, _ = line
    _login(client, "vera")
    iid = client.get("/api/verdicts", params={"verdict": "pass", "limit": 1}).json()[0]["id"]  # no frame kept
    with pipe.store.engine.begin() as c:  # a tampered database
        c.execute(text("INSERT INTO images (inspection_id, kind, path, bytes, created_at) "
                       "VALUES (:i, 'frame', '../../../../etc/passwd', 1, '2026-01-01')"), {"i": iid})
    r = client.get(f"/inspections/{iid}/frame.jpg")
    assert r.status_code == 404 and b"root:" not in r.content
    assert pipe.store.image_file(iid, "frame") is None


def test_passwords_are_stored_as_slow_salted_hashes(line):
    h1, h2 = hash_password("correct horse"), hash_password("correct horse")
    assert h1 != h2 and h1.startswith("scrypt$16384$8$1$") and "correct" not in h1
    assert verify_password("correct horse", h1) and not verify_password("correct hors", h1)
    assert not verify_password("x", "garbage")
    pipe, _ = line
    with pipe.store.engine.connect() as c:
        stored = c.execute(text("SELECT password_hash FROM users WHERE username = 'vera'")).scalar()
    assert PASSWORDS["vera"] not in stored and verify_password(PASSWORDS["vera"], stored)


def test_the_users_and_tokens_commands(tmp_path):
    cfg = tmp_path / "line.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'data'}\n")
    base = ["--config", str(cfg)]
    r = run_cli("users", "add", "mia", "--role", "operator", "--password-stdin", *base, input="short\n")
    assert r.returncode == 2 and "at least 8 characters" in r.stderr
    assert run_cli("users", "add", "mia", "--role", "operator", "--password-stdin", *base,
                   input="a-long-password\n").returncode == 0
    r = run_cli("users", "add", "mia", "--password-stdin", *base, input="another-password\n")
    assert r.returncode == 2 and "exists already" in r.stderr
    assert run_cli("users", "role", "mia", "--role", "viewer", *base).returncode == 0
    assert re.search(r"^mia\s+viewer", run_cli("users", "list", *base).stdout, re.M)
    assert run_cli("users", "passwd", "mia", "--password-stdin", *base, input="a-newer-password\n").returncode == 0
    r = run_cli("tokens", "add", "scraper", "--role", "viewer", *base)
    assert r.returncode == 0 and r.stdout.strip().startswith("insp_") and "shown only now" in r.stderr
    assert "scraper" in run_cli("tokens", "list", *base).stdout
    assert run_cli("tokens", "revoke", "scraper", *base).returncode == 0
    r = run_cli("users", "remove", "nobody", *base)
    assert r.returncode == 2 and "no user 'nobody'" in r.stderr
    assert run_cli("users", "remove", "mia", *base).returncode == 0
    assert "mia" not in run_cli("users", "list", *base).stdout


def test_the_review_queue_empties_as_the_operator_decides(client, line):
    pipe, _ = line
    csrf = _login(client, "otto")
    queue = client.get("/api/review-queue").json()
    unreviewed = [r["id"] for r in client.get("/api/verdicts").json()
                  if r["verdict"] in ("fail", "review") and not pipe.store.inspection(r["id"])["reviews"]]
    assert [r["id"] for r in queue] == unreviewed and queue, "the demo line has unreviewed fails"
    page = client.get("/review").text
    assert re.findall(r'<tr class="row v-\w+(?: selected)?" data-id="(\d+)"', page) == [str(i) for i in unreviewed]
    first = unreviewed[0]
    r = client.post(f"/inspections/{first}/review", data={"verdict": "pass", "csrf_token": csrf, "back": "/review"})
    assert r.status_code == 303 and r.headers["location"] == "/review"
    assert first not in [x["id"] for x in client.get("/api/review-queue").json()]
    if len(unreviewed) > 1:
        r = client.post(f"/inspections/{unreviewed[1]}/review",
                        data={"verdict": "fail", "csrf_token": csrf, "back": "//evil.example/"})
        assert r.headers["location"] == "/"


def _serve(tmp_path, web: dict | None = None):
    """`inspector web` on a fresh data directory (its first start makes the admin); returns the
    process, its base URL and what it printed so far."""
    import subprocess
    import sys
    import time

    import httpx
    import yaml

    from inspector.reasoner.local_server import free_port

    port = free_port()
    cfg = tmp_path / "web.yaml"
    cfg.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "web": {"port": port, **(web or {})}}))
    proc = subprocess.Popen([sys.executable, "-m", "inspector", "web", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    lines = []
    for _ in range(600):
        if proc.poll() is not None:
            pytest.fail(proc.stderr.read())
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    while not any("dashboard at" in line for line in lines):  # printed once it serves
        lines.append(proc.stderr.readline())
    return proc, base, "".join(lines), cfg


def _stop(proc):
    proc.terminate()
    proc.wait(30)


def test_the_printed_admin_password_must_be_replaced_at_first_login(tmp_path):
    """The first start prints the admin's password to a console or journal others may read: it
    gets that one login, whose session can do nothing but choose a new password."""
    import httpx

    proc, base, printed, cfg = _serve(tmp_path)
    try:
        password = re.search(r"made user 'admin' with password (\S+)", printed).group(1)
        assert "good for one login" in printed
        assert re.search(r"^admin\s+admin .*must choose a new password", run_cli(
            "users", "list", "--config", str(cfg)).stdout, re.M)
        with httpx.Client(base_url=base) as c:
            r = c.post("/login", data={"username": "admin", "password": password, "next": "/stats"})
            assert r.status_code == 303
            for path in ("/", "/stats", "/health", "/inspections/1"):
                r = c.get(path, headers={"accept": "text/html"})
                assert r.status_code == 303 and r.headers["location"] == "/password", path
            for path in ("/api/verdicts", "/api/me", "/metrics", "/openapi.json"):
                r = c.get(path)
                assert r.status_code == 403 and "choose a new password first" in r.json()["detail"], path
            form = c.get("/password").text
            assert "shown on the console" in form
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
            r = c.post("/api/cameras/cam1/trigger", headers={"x-csrf-token": csrf})
            assert r.status_code == 403
            r = c.post("/password", data={"current": password, "new": "same-as-before", "again": "different!",
                                          "csrf_token": csrf})
            assert r.status_code == 422 and "the two new passwords differ" in r.text
            r = c.post("/password", data={"current": "wrong-password", "new": "my-own-password",
                                          "again": "my-own-password", "csrf_token": csrf})
            assert r.status_code == 422 and "the current password is wrong" in r.text
            r = c.post("/password", data={"current": password, "new": password, "again": password,
                                          "csrf_token": csrf})
            assert r.status_code == 422 and "must differ" in r.text
            r = c.post("/password", data={"current": password, "new": "my-own-password",
                                          "again": "my-own-password", "csrf_token": csrf})
            assert r.status_code == 303 and r.headers["location"] == "/"
            assert c.get("/api/me").json() == {"name": "admin", "role": "admin", "via": "session"}
            assert c.get("/").status_code == 200
        with httpx.Client(base_url=base) as c:  # the printed one is spent, the new one works
            assert c.post("/login", data={"username": "admin", "password": password}).status_code == 401
            assert c.post("/login", data={"username": "admin", "password": "my-own-password"}).status_code == 303
            assert c.get("/api/verdicts").status_code == 200
        assert "must choose" not in run_cli("users", "list", "--config", str(cfg)).stdout
    finally:
        _stop(proc)


def test_users_of_their_own_choice_and_tokens_are_not_held_at_the_password_page(client, line):
    _, acc = line
    _login(client, "vera")
    assert client.get("/", headers={"accept": "text/html"}).status_code == 200
    assert "Change password" in client.get("/password").text
    token = acc.add_token("scraper-pw", "viewer")
    r = client.get("/password", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 403 and "API token has no password" in r.json()["detail"]


def test_the_last_admin_cannot_be_removed_or_demoted(tmp_path):
    cfg = tmp_path / "line.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'data'}\n")
    base = ["--config", str(cfg)]
    assert run_cli("users", "add", "mia", "--role", "admin", "--password-stdin", *base,
                   input="a-long-password\n").returncode == 0
    for args in (("role", "mia", "--role", "operator"), ("remove", "mia")):
        r = run_cli("users", *args, *base)
        assert r.returncode == 2 and "mia is the last admin: make another user admin first" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert re.search(r"^mia\s+admin", run_cli("users", "list", *base).stdout, re.M)
    assert run_cli("users", "add", "noah", "--role", "operator", "--password-stdin", *base,
                   input="another-password\n").returncode == 0
    assert run_cli("users", "remove", "noah", *base).returncode == 0  # others go as before
    assert run_cli("users", "add", "noah", "--role", "admin", "--password-stdin", *base,
                   input="another-password\n").returncode == 0
    assert run_cli("users", "role", "mia", "--role", "viewer", *base).returncode == 0  # noah is admin now
    r = run_cli("users", "remove", "noah", *base)
    assert r.returncode == 2 and "noah is the last admin" in r.stderr


@pytest.mark.parametrize("trusted", [False, True])
def test_x_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path, trusted):
    """Rotating X-Forwarded-For dodged the login limit (uvicorn believed it from 127.0.0.1 by
    default). Untrusted, the header is ignored: five misses from this address, whatever it
    claims, and even the right password waits. Behind a configured proxy, each forwarded client
    has its own count."""
    import httpx

    proc, base, printed, cfg = _serve(tmp_path, {"trusted_proxies": ["127.0.0.1"]} if trusted else None)
    try:
        password = re.search(r"made user 'admin' with password (\S+)", printed).group(1)
        with httpx.Client(base_url=base) as c:
            for i in range(5):
                r = c.post("/login", data={"username": "admin", "password": "guess-guess"},
                           headers={"x-forwarded-for": f"10.9.8.{i}"})
                assert r.status_code == 401
            r = c.post("/login", data={"username": "admin", "password": password},
                       headers={"x-forwarded-for": "10.9.8.200"})
            assert r.status_code == (303 if trusted else 429)
            if trusted:
                for _ in range(5):
                    c.post("/login", data={"username": "admin", "password": "guess-guess"},
                           headers={"x-forwarded-for": "10.9.8.7"})
                r = c.post("/login", data={"username": "admin", "password": password},
                           headers={"x-forwarded-for": "10.9.8.7"})
                assert r.status_code == 429
    finally:
        _stop(proc)


@pytest.mark.parametrize("bad", ["10.0.0.1/24", "proxy.example", "*"])
def test_trusted_proxies_are_addresses_or_networks(bad):
    from inspector.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="trusted_proxies.*is not an IP address or network"):
        parse_config({"web": {"trusted_proxies": [bad]}})
    assert parse_config({"web": {"trusted_proxies": ["10.0.0.5", "10.1.0.0/16", "::1"]}}).web.trusted_proxies


@pytest.mark.parametrize("body", [{"verdict": "pass", "note": "\ud800"}, {"verdict": "pass", "defect_type": "\udfff"},
                                  {"verdict": "fail", "note": "a\u0000b"}])
def test_a_review_the_database_cannot_store_is_a_422(client, line, body):
    import json

    csrf = _login(client, "otto")
    iid = _an_inspection(client)
    before = line[0].store.inspection(iid)["reviews"]
    raw = json.dumps(body)  # \ud800 stays an escape, as a hostile client sends it
    r = client.post(f"/api/inspections/{iid}/reviews", content=raw,
                    headers={"x-csrf-token": csrf, "content-type": "application/json"})
    field = "note" if "note" in body else "defect_type"
    assert r.status_code == 422 and field in json.dumps(r.json()["detail"]), r.text  # names what was wrong
    assert line[0].store.inspection(iid)["reviews"] == before
