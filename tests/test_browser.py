"""The dashboard in a real browser (Debian's chromium via Playwright) while the demo line runs.

wait_for_function predicates are functions ("() => ..."), never expression strings: Playwright
evaluates those with eval(), which the dashboard's CSP forbids."""

import re
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from inspector.reasoner.local_server import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian's chromium is not installed (./bootstrap.sh test installs it)")
PASSWORD = "line-3-operator"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]



def start_line(tmp_path, web=None, **extra):
    port = free_port()
    cfg = {"data_dir": str(tmp_path / "data"), "web": {"port": port, **(web or {})},
           "cameras": [{"id": "cam1", "source": {"type": "demo", "parts": 10, "seed": 7, "fps": 1.0,
                                                 "loop": True, "codes": True}}],
           # each demo part carries a QR code with its id, left of the tile
           "products": [{"name": "demo-tile", "part_code": {"type": "qr", "region": [0, 150, 96, 300]}}],
           **extra}
    p = tmp_path / "line.yaml"
    p.write_text(yaml.safe_dump(cfg))
    r = subprocess.run([sys.executable, "-m", "inspector", "users", "add", "anna", "--role", "operator",
                        "--password-stdin", "--config", str(p)], input=PASSWORD + "\n", capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    proc = subprocess.Popen([sys.executable, "-m", "inspector", "run", "--config", str(p)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(proc.stderr.read())
            time.sleep(0.1)
    return base, proc


def log_in(page, base: str, user: str = "anna", password: str = PASSWORD) -> None:
    """The way an operator starts a shift: any page sends them to the login form first."""
    page.goto(base + "/")
    page.wait_for_url(re.compile(r"/login\?next=/$"))
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
    assert page.inner_text("#who") == f"{user} (operator)"


@pytest.fixture
def line(tmp_path):
    base, proc = start_line(tmp_path, web={"timezone": "Asia/Kolkata"})  # +05:30: no clock shows that by chance
    yield base
    proc.terminate()
    proc.wait(15)


def test_feed_updates_live_and_detail_shows_boxes(line, artifacts):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(line + "/login")
        page.fill("input[name=username]", "anna")
        page.fill("input[name=password]", "wrong password")
        page.click("button[type=submit]")
        assert "wrong user name or password" in page.inner_text(".err")
        log_in(page, line)
        assert "No VLM configured" in page.inner_text("#mode-banner")
        first = page.locator("#feed-body tr").count()
        # the page is never reloaded: new verdicts must arrive by themselves
        page.wait_for_function(f"() => document.querySelectorAll('#feed-body tr').length >= {first + 3}",
                               timeout=20000)
        # the counters follow within the same poll
        page.wait_for_function(f"() => +document.getElementById('c-total').textContent >= {first + 3}",
                               timeout=5000)
        page.wait_for_selector("#feed-body tr.v-fail", timeout=20000)
        # a row that came live shows its time on the plant's clock, as the server renders it
        fresh = page.locator("#feed-body tr.fresh").first
        shown = fresh.locator("td").nth(6).inner_text()
        api = page.evaluate(f"fetch('/api/inspections/{fresh.get_attribute('data-id')}').then(r => r.json())")
        local = datetime.fromisoformat(api["captured_at"]) + timedelta(hours=5, minutes=30)
        assert shown == local.strftime("%H:%M:%S")
        # ... and what the line was told beside the verdict (detector only: the verdict decides)
        told = fresh.locator("td").nth(2).inner_text()
        assert told == ("OK" if "v-pass" in fresh.get_attribute("class") else "NG")
        assert "time (asia/kolkata)" in page.inner_text("#feed thead").lower()
        assert page.inner_text(".cam[data-cam=cam1]").startswith("cam1 [demo-tile]: ")  # the recipe now
        # search by part id: the code read off the part is in the row, and the filter finds it
        part = fresh.locator("td").nth(5).inner_text().split()[0]
        assert re.fullmatch(r"DEMO-7-000(0[1-9]|10)", part), part
        page.screenshot(path=str(artifacts / "feed.png"))
        page.fill("#filters input[name=part_id]", part)
        page.click("#filters button[type=submit]")
        page.wait_for_url(re.compile(rf"part_id={part}"))
        cells = page.locator("#feed-body tr td:nth-child(6)").all_inner_texts()
        assert cells and all(c.split()[0] == part for c in cells)
        page.goto(line + "/")
        # the header's camera badge is live too: its frame count grows without a reload
        badge = lambda: int(re.search(r"(\d+) frames", page.inner_text(".cam[data-cam=cam1]")).group(1))  # noqa: E731
        before = badge()
        page.wait_for_function(f"() => +/(\\d+) frames/.exec(document.querySelector('.cam[data-cam=cam1]')"
                               f".textContent)[1] > {before}", timeout=10000)
        # the live page: the camera's MJPEG stream plays, and its tile follows the verdicts
        page.click("header nav a[href='/live']")
        page.wait_for_function("() => { const i = document.querySelector('#live-cam1 img');"
                               " return i && i.naturalWidth === 640; }", timeout=10000)
        page.wait_for_function("() => /^(pass|fail|review)$/.test(document.querySelector('#live-cam1').className"
                               ".replace('cam-live last-', ''))", timeout=20000)
        assert re.fullmatch(r"\d+\.\d fps · \d+ inspected · \d+ dropped",
                            page.inner_text("#live-cam1 .nums"))
        page.screenshot(path=str(artifacts / "live.png"))
        page.go_back()
        page.wait_for_selector("#feed-body tr.v-fail", timeout=20000)
        page.locator("#feed-body tr.v-fail a.pill").first.click()
        page.wait_for_selector(".frame svg rect.box-det")
        assert re.search(r"FAIL", page.inner_text("h1"))
        img_ok = page.evaluate("() => { const i = document.querySelector('.frame img');"
                               " return i.complete && i.naturalWidth === 640; }")
        assert img_ok, "the frame image must load"
        n_boxes = page.locator(".frame svg rect.box-det").count()
        n_rows = page.locator("table.list").first.locator("tr").count() - 1
        assert n_boxes == n_rows >= 1
        box = page.locator(".frame svg rect.box-det").first.bounding_box()
        frame = page.locator(".frame img").bounding_box()
        assert box["width"] > 2 and frame["x"] <= box["x"] <= frame["x"] + frame["width"]
        assert re.match(r"NG\s+by the verdict \(fail\)", page.inner_text("#line-decision"))
        assert "agrees with the final verdict" in page.inner_text("#line-decision")
        page.screenshot(path=str(artifacts / "detail.png"))
        # the operator overrules the machine: a pass, with a note, by keyboard shortcut
        page.fill("form.review input[name=note]", "glare on the edge, not a chip")
        page.locator("h1").click()  # out of the field, so the key is a shortcut
        page.keyboard.press("p")
        page.wait_for_selector("#review-history")
        row = page.locator("#review-history tr").nth(1).inner_text()
        assert "anna" in row and "fail" in row and "pass" in row and "glare on the edge" in row
        assert page.inner_text("#in-force") == "PASS"
        page.screenshot(path=str(artifacts / "detail-reviewed.png"))
        # ... and the stats count it: the operators kept none of the one verdict they reviewed
        page.click("header nav a[href='/stats']")
        page.wait_for_selector("svg.chart rect")
        assert "(0/1)" in page.inner_text(".tile.t-pass")
        assert page.locator("#per-source tr").count() == 2  # cam1 / demo-tile
        # the line rejected the part the operator cleared: one false reject, no escape
        assert (page.inner_text("#s-false-rejects"), page.inner_text("#s-escapes")) == ("1", "0")
        page.screenshot(path=str(artifacts / "stats.png"), full_page=True)
        browser.close()


def test_operator_sees_the_vlm_go_down_and_come_back(tmp_path, artifacts):
    """A VLM that fails: a live warning on the feed, without reloading; gone once it answers."""
    from playwright.sync_api import sync_playwright

    from tests.scripted_vlm import ScriptedVLM, answer, completion

    state = {"down": True}

    def script(body):
        if state["down"]:
            return 502, {"error": "bad gateway"}, 0
        return 200, completion(answer("ok")), 0

    with ScriptedVLM(script) as vlm:
        base, proc = start_line(tmp_path, reasoner={
            "type": "openai", "base_url": vlm.base_url, "server": "llama_cpp_python",
            "breaker_failures": 2, "breaker_cooldown_s": 1.0})
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                log_in(page, base)
                banner = page.locator("#vlm-banner")
                banner.wait_for(state="visible", timeout=30000)
                text = banner.inner_text()
                assert "VLM unavailable" in text and "HTTP 502" in text, text
                page.wait_for_selector("#feed-body tr.v-review", timeout=20000)
                page.screenshot(path=str(artifacts / "feed-vlm-down.png"))
                state["down"] = False
                banner.wait_for(state="hidden", timeout=30000)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(15)


def test_the_detail_page_shows_what_the_model_zoomed_into(tmp_path, artifacts):
    """ERNIE-style zoom through a FastDeploy-shaped server: on the detail page the region is boxed
    on the frame, and the round's panel shows the region itself (a view of the stored frame) with
    the model's thinking, within the CSP."""
    from playwright.sync_api import sync_playwright

    from tests.scripted_vlm import ScriptedVLM, answer, completion
    from inspector.reasoner.scripted_server import tool_call

    found = {"type": "scratch", "severity": "major", "confidence": 0.9, "box": [300, 300, 700, 700],
             "reason": "a line across the glaze"}

    def script(body):
        if body.get("tools"):
            return 200, tool_call([250, 250, 750, 750], reasoning="the edge looks rough; closer"), 0
        return 200, completion(answer("defect", [found])), 0

    with ScriptedVLM(script) as vlm:
        base, proc = start_line(tmp_path, reasoner={
            "type": "openai", "base_url": vlm.base_url, "server": "fastdeploy", "profile": "ernie-4.5-vl",
            "max_zoom_rounds": 1})
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                violations = []
                page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text
                        else None)
                log_in(page, base)
                page.wait_for_selector("#feed-body tr.v-fail", timeout=30000)
                page.locator("#feed-body tr.v-fail a.pill").first.click()
                page.wait_for_selector(".frame svg rect.box-zoom")
                frame = page.locator(".frame img").bounding_box()
                zoom = page.locator(".frame svg rect.box-zoom").first.bounding_box()
                assert frame["x"] <= zoom["x"] and zoom["x"] + zoom["width"] <= frame["x"] + frame["width"] + 1
                view = page.locator("svg.zoom-view").first
                assert view.is_visible() and view.bounding_box()["width"] > 100
                panel = page.locator("ol.zooms li").first.inner_text()
                assert "Zoom 1" in panel and "asked [250, 250, 750, 750]" in panel
                assert "the edge looks rough; closer" in panel
                view.scroll_into_view_if_needed()
                page.screenshot(path=str(artifacts / "detail-zoom.png"), full_page=True)
                assert not violations, violations
                browser.close()
        finally:
            proc.terminate()
            proc.wait(15)


def test_the_separate_dashboard_shows_the_line_come_and_go_without_a_reload(tmp_path, artifacts):
    """inspector-web.service's dashboard in a browser: a red banner while its line is down, gone
    when the line starts (live, over the event stream), the live picture through the line's
    socket, and the banner back when the line stops."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    cfg = tmp_path / "line.yaml"
    cfg.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / "data"), "web": {"port": port},
        "cameras": [{"id": "cam1", "source": {"type": "demo", "parts": 10, "seed": 7, "fps": 2.0, "loop": True}}]}))
    r = subprocess.run([sys.executable, "-m", "inspector", "users", "add", "anna", "--role", "operator",
                        "--password-stdin", "--config", str(cfg)], input=PASSWORD + "\n", capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    web = subprocess.Popen([sys.executable, "-m", "inspector", "web", "--config", str(cfg)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    line = None
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            log_in(page, base)
            banner = page.locator("#line-banner")
            assert banner.is_visible() and "The line is not running" in banner.inner_text()
            assert "stopped" in page.inner_text(".cam[data-cam=cam1]")
            line = subprocess.Popen([sys.executable, "-m", "inspector", "run", "--config", str(cfg), "--no-web"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            page.wait_for_selector("#line-banner", state="hidden", timeout=60000)
            page.wait_for_function("() => /running/.test(document.querySelector('.cam[data-cam=cam1]').textContent)",
                                   timeout=30000)
            page.goto(base + "/live")
            page.wait_for_function("() => { const i = document.querySelector('figure.cam-live img');"
                                   " return i && i.naturalWidth > 100; }", timeout=30000)
            # the counts come through the socket and keep moving without a reload
            page.wait_for_function("() => +(/(\\d+) frames/.exec(document.querySelector('.cam[data-cam=cam1]')"
                                   ".textContent) || [0, 0])[1] >= 4", timeout=30000)
            page.screenshot(path=str(artifacts / "web-service-live.png"))
            line.terminate()
            line.wait(30)
            page.wait_for_selector("#line-banner", state="visible", timeout=30000)
            assert "no answer on" in page.inner_text("#line-banner")
            browser.close()
    finally:
        for p in (line, web):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(30)


def test_every_page_and_the_api_docs_keep_to_the_content_security_policy(line, artifacts):
    """The server's CSP allows no inline script or style and nothing from another site: the
    browser reports no violation on any page, asks no other host for anything, and /docs draws
    the API from the Swagger UI files this box serves (a plant network is often offline)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.add_init_script("window.__csp = []; document.addEventListener('securitypolicyviolation', "
                             "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")
        errors, elsewhere = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(f"{m.text} {m.location.get('url')}")
                if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico") else None)
        page.on("request", lambda r: None if r.url.startswith((line, "data:")) else elsewhere.append(r.url))
        log_in(page, line)
        page.wait_for_selector("#feed-body tr.v-fail", timeout=30000)
        detail = page.locator("#feed-body tr.v-fail a.pill").first.get_attribute("href")
        for path in ("/", detail, "/live", "/review", "/stats", "/health", "/password", "/docs"):
            page.goto(line + path)
            if path == "/docs":
                page.wait_for_selector(".opblock", timeout=30000)
                assert page.locator(".opblock").count() > 10 and "/api/stats" in page.inner_text("#swagger-ui")
                page.screenshot(path=str(artifacts / "api-docs.png"))
            else:
                page.wait_for_load_state("load")
                page.wait_for_timeout(500)  # the pages' scripts run and draw
            assert page.evaluate("window.__csp") == [], path
        assert errors == [] and elsewhere == [], (errors, elsewhere)
        browser.close()
