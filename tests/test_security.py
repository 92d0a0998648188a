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
    r = run_cli("users", "add", "mia", "--role", "admin", "--password-stdin", *base, input="short\n")
    assert r.returncode == 2 and "at least 8 characters" in r.stderr
    assert run_cli("users", "add", "mia", "--role", "admin", "--password-stdin", *base,
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
