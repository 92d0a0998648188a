"""OPC UA for the PLC (issue 26): the real asyncua client against the inspector's real asyncua server
on loopback, over Basic256Sha256, driving a real line."""

import asyncio
import threading

import pytest
from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from inspector.config import parse_config
from inspector.demo.line import ROI
from inspector.line.pipeline import Pipeline
from inspector.plc import pki, start_plc
from inspector.plc.opcua import NAMESPACE
from inspector.reasoner.local_server import free_port
from inspector.web.accounts import Accounts
from tests.conftest import wait_for

AM = "cam1.VisionStateMachine.AutomaticModeStateMachine"
PASSWORD = "line-7-password"


class Plc:
    """Certificates and accounts of the PLC side, made the way a commissioning engineer would."""

    def __init__(self, tmp_path, pki_dir):
        self.dir = tmp_path / "plc"
        self.cert, self.key = self.dir / "plc.der", self.dir / "plc.pem"
        pki.make_client_certificate(self.cert, self.key, "urn:test:plc")
        (pki_dir / "trusted").mkdir(parents=True, exist_ok=True)
        (pki_dir / "trusted" / "plc.der").write_bytes(self.cert.read_bytes())

    async def client(self, url, user="plc1", password=PASSWORD, mode=ua.MessageSecurityMode.SignAndEncrypt,
                     cert=None, key=None) -> Client:
        c = Client(url, timeout=10)
        c.application_uri = "urn:test:plc"
        if mode is not None:
            await c.set_security(SecurityPolicyBasic256Sha256, str(cert or self.cert), str(key or self.key), mode=mode)
        if user:
            c.set_user(user)
            c.set_password(password)
        return c


@pytest.fixture
def ua_line(tmp_path, demo_line):
    port = free_port()
    cfg = parse_config({
        "data_dir": str(tmp_path / "data"), "web": {"enabled": False},
        "products": [{"name": "demo-tile", "recipe": 1},
                     {"name": "other", "recipe": 2}],
        "cameras": [{"id": "cam1", "trigger": {"mode": "software"}, "roi": list(ROI),
                     "source": {"type": "folder", "path": str(demo_line.frames_dir), "loop": True, "fps": 20}}],
        "plc": {"opcua": {"enabled": True, "port": port, "application_uri": "urn:test:inspector"}}})
    pipe = Pipeline(cfg)
    accounts = Accounts(pipe.store.engine)
    accounts.add_user("plc1", PASSWORD, "operator")
    accounts.add_user("watch1", PASSWORD, "viewer")
    pipe.start()
    plc = Plc(tmp_path, cfg.data_dir / "opcua")
    servers = start_plc(cfg, pipe)
    yield pipe, plc, f"opc.tcp://127.0.0.1:{port}", servers[0]
    for s in servers:
        s.stop()
    pipe.stop()


def run(coro):
    return asyncio.run(coro)


async def _node(c, path):
    idx = await c.get_namespace_index(NAMESPACE)
    return c.get_node(ua.NodeId(path, idx)), idx


async def _call(c, obj_path, method, *args):
    obj, idx = await _node(c, obj_path)
    return await obj.call_method(ua.NodeId(f"{obj_path}.{method}", idx), *args)


class Events:
    def __init__(self):
        self.got = []

    def event_notification(self, ev):
        self.got.append({k: (v.Value if isinstance(v, ua.Variant) else v)
                         for k, v in ev.get_event_props_as_fields_dict().items()})


async def _subscribe(c, handler):
    obj, idx = await _node(c, "cam1")
    etype = await c.nodes.root.get_child(["0:Types", "0:EventTypes", "0:BaseEventType", f"{idx}:ResultReadyEventType"])
    sub = await c.create_subscription(20, handler)
    await sub.subscribe_events(obj, etype)
    return sub


def test_the_plc_runs_jobs_and_gets_the_line_decisions(ua_line):
    pipe, plc, url, server = ua_line

    async def scenario():
        async with await plc.client(url) as c:
            state, _ = await _node(c, "cam1.VisionStateMachine.CurrentState")
            auto, _ = await _node(c, AM + ".CurrentState")
            assert (await state.read_value()).Text == "Operational" and (await auto.read_value()).Text == "Ready"
            events = Events()
            await _subscribe(c, events)
            jobs = {}
            for part in ("SN-1", "SN-2", "SN-3", "SN-4"):
                job_id, err = await _call(c, AM, "StartSingleJob", "meas-1", part, "", "")
                assert err == 0 and job_id not in jobs
                jobs[job_id] = part
                # the next job may start as soon as this one's image is taken
                for _ in range(200):
                    if (await auto.read_value()).Text == "Ready":
                        break
                    await asyncio.sleep(0.01)
            for _ in range(500):
                if len({e["ResultId"] for e in events.got if not e["IsPartial"]}) == len(jobs):
                    break
                await asyncio.sleep(0.02)
            # Exactly one complete result per job, known by its JobId, for the part it named.
            done = [e for e in events.got if not e["IsPartial"]]
            assert sorted(e["JobId"] for e in done) == sorted(jobs)
            for e in done:
                assert e["ResultId"] == e["JobId"] and e["PartId"] == jobs[e["JobId"]] and e["MeasId"] == "meas-1"
                assert e["LineDecision"] in ("OK", "NG") and e["ResultCode"] == (1 if e["LineDecision"] == "OK" else 2)
                assert e["ResultState"] == 1 and e["FinalVerdict"] in ("pass", "fail", "review")
            # GetResultById answers the same, and LastResult shows the newest.
            some = done[0]
            out = await _call(c, "cam1.ResultManagement", "GetResultById", some["JobId"], ua.Variant(0, ua.VariantType.Int32))
            assert (out[0], out[1], out[2], out[4], out[6], out[-1]) == (1, False, some["JobId"], some["PartId"],
                                                                        some["LineDecision"], 0)
            missing = await _call(c, "cam1.ResultManagement", "GetResultById", "nope", ua.Variant(0, ua.VariantType.Int32))
            assert missing[-1] == -1 and missing[0] == 0
            last, _ = await _node(c, "cam1.ResultManagement.LastResult.ResultId")
            assert await last.read_value() == events.got[-1]["ResultId"]
            return done

    done = run(scenario())
    rows = {r["part_id"]: r for r in pipe.store.feed(limit=20)}
    for e in done:  # what the PLC heard is what the line decided and stored for that part
        assert rows[e["PartId"]]["line"] == e["LineDecision"].lower()
    link = next(p for p in pipe.status().plc if p.kind == "opcua")
    assert (link.camera, link.state, link.triggers, link.overruns) == ("cam1", "Ready", 4, 0)

    # A changeover made elsewhere (the dashboard, the API, Modbus) shows in PreparedRecipe too.
    pipe.change_recipe("cam1", 2, "test")

    async def prepared():
        async with await plc.client(url) as c:
            node, _ = await _node(c, "cam1.RecipeManagement.PreparedRecipe")
            for _ in range(100):
                if await node.read_value() == "other":
                    break
                await asyncio.sleep(0.02)
            return await node.read_value()

    assert run(prepared()) == "other"
    pipe.change_recipe("cam1", 1, "test")
    assert link.last_trigger_wall is not None and link.ready
    # The link's state where people and monitoring look: health, its page, metrics, STATUS=.
    from fastapi.testclient import TestClient

    from inspector.service.notify import status_line
    from inspector.web import create_app
    from tests.conftest import authorize

    assert wait_for(lambda: pipe.status().plc[0].clients == 0, 10)  # the PLC's close is seen by the server
    assert "PLC opcua 0 client(s), 4 trigger(s)" in status_line(pipe.status())
    with TestClient(create_app(pipe.store, pipe.status)) as web:
        authorize(web, pipe.store)
        h = web.get("/api/health").json()
        assert [(p["kind"], p["state"], p["triggers"]) for p in h["plc"]] == [("opcua", "Ready", 4)]
        page = web.get("/health").text
        assert 'id="plc"' in page and "opcua opc.tcp://" in page and "Ready" in page
        metrics = web.get("/metrics").text
        assert 'inspector_plc_ready{camera="cam1",link="opcua"} 1.0' in metrics
        assert 'inspector_plc_triggers_total{camera="cam1",link="opcua"} 4.0' in metrics


def test_overruns_recipes_and_malformed_calls_get_status_codes_and_the_line_goes_on(ua_line):
    pipe, plc, url, server = ua_line
    hold = threading.Event()
    # Fault injection: hold the camera thread right after it took the image, before the link hears
    # of it, so that the job is deterministically still acquiring.
    pipe.on_capture.insert(0, lambda *a: hold.wait(10))

    async def scenario():
        async with await plc.client(url) as c:
            job, err = await _call(c, AM, "StartSingleJob", "", "A-1", "", "")
            with pytest.raises(ua.UaStatusCodeError) as e:
                await _call(c, AM, "StartSingleJob", "", "A-2", "", "")
            assert e.value.code == ua.StatusCodes.BadInvalidState
            overruns, _ = await _node(c, "cam1.Overruns")
            for _ in range(100):
                if await overruns.read_value() == 1:
                    break
                await asyncio.sleep(0.02)
            assert await overruns.read_value() == 1
            hold.set()
            # Malformed calls: each a status code; nothing is triggered.
            bad = [((), ua.StatusCodes.BadArgumentsMissing),
                   (("", "P", "", "", "extra"), ua.StatusCodes.BadTooManyArguments),
                   (("", ua.Variant(5, ua.VariantType.Int32), "", ""), ua.StatusCodes.BadTypeMismatch),
                   (("", "bad id with spaces\n", "", ""), ua.StatusCodes.BadInvalidArgument),
                   (("", "x" * 65, "", ""), ua.StatusCodes.BadInvalidArgument),
                   (("", "P-9", "77", ""), ua.StatusCodes.BadInvalidArgument),
                   (("", "P-9", "1", "other"), ua.StatusCodes.BadInvalidArgument)]
            for args, code in bad:
                with pytest.raises(ua.UaStatusCodeError) as e:
                    await _call(c, AM, "StartSingleJob", *args)
                assert e.value.code == code, args
            with pytest.raises(ua.UaStatusCodeError) as e:
                await _call(c, "cam1.RecipeManagement", "PrepareRecipe", "42")
            assert e.value.code == ua.StatusCodes.BadInvalidArgument
            # The inspector's variables are not the PLC's to write.
            state, _ = await _node(c, "cam1.SystemState")
            with pytest.raises(ua.UaStatusCodeError):
                await state.write_value("PRD")
            # Changeover by recipe number; then a job naming a recipe for its part only.
            internal, completed, err = await _call(c, "cam1.RecipeManagement", "PrepareRecipe", "2")
            assert (internal, completed, err) == ("other", True, 0)
            prepared, _ = await _node(c, "cam1.RecipeManagement.PreparedRecipe")
            assert await prepared.read_value() == "other"
            auto, _ = await _node(c, AM + ".CurrentState")
            for _ in range(200):
                if (await auto.read_value()).Text == "Ready":
                    break
                await asyncio.sleep(0.01)
            job2, err = await _call(c, AM, "StartSingleJob", "", "A-3", "1", "")
            out = await _call(c, "cam1.ResultManagement", "GetResultById", job2, ua.Variant(20000, ua.VariantType.Int32))
            assert out[-1] == 0 and out[4] == "A-3" and out[5] == "1"
            return job

    run(scenario())
    assert pipe.status().cameras[0].product == "other"
    assert pipe.store.recipe_changes()[0]["by"] == "plc:opcua"
    assert wait_for(lambda: {"A-1", "A-3"} <= {r["part_id"] for r in pipe.store.feed(limit=20)}, 20)
    rows = {r["part_id"]: r for r in pipe.store.feed(limit=20)}
    assert "A-2" not in rows and rows["A-3"]["product"] == "demo-tile"  # the job's recipe, not the camera's
    link = next(p for p in pipe.status().plc if p.kind == "opcua")
    assert (link.overruns, link.errors, link.state) == (1, 9, "Ready")


def test_only_trusted_clients_with_an_account_get_in(ua_line, tmp_path):
    pipe, plc, url, server = ua_line
    stranger_cert, stranger_key = tmp_path / "s.der", tmp_path / "s.pem"
    pki.make_client_certificate(stranger_cert, stranger_key, "urn:test:plc")
    rejected = pipe.cfg.data_dir / "opcua" / "rejected"

    async def connect(**kw):
        c = await plc.client(url, **kw)
        try:
            await c.connect()
        except Exception as e:  # the server's refusal, as the client sees it
            return e
        try:
            return await (await _node(c, "cam1.SystemState"))[0].read_value()
        finally:
            await c.disconnect()

    async def scenario():
        # An untrusted certificate: refused, and kept for an administrator to look at.
        assert isinstance(await connect(cert=stranger_cert, key=stranger_key), Exception)
        assert len(list(rejected.iterdir())) == 1
        # No user, a wrong password: refused. No security at all: not offered.
        assert isinstance(await connect(user=None), Exception)
        assert isinstance(await connect(password="wrong-password"), Exception)
        assert isinstance(await connect(mode=None), Exception)
        endpoints = await Client(url).connect_and_get_server_endpoints()
        assert {(e.SecurityPolicyUri.rsplit("#", 1)[-1], e.SecurityMode) for e in endpoints} == {
            ("Basic256Sha256", ua.MessageSecurityMode.SignAndEncrypt), ("Basic256Sha256", ua.MessageSecurityMode.Sign)}
        assert all(t.TokenType != ua.UserTokenType.Anonymous for e in endpoints for t in e.UserIdentityTokens)
        # Sign only works too, with the right certificate and account.
        assert await connect(mode=ua.MessageSecurityMode.Sign) == "SBY"
        # Trusting the stranger is moving its certificate to trusted/.
        cert = next(rejected.iterdir())
        cert.rename(pipe.cfg.data_dir / "opcua" / "trusted" / cert.name)
        assert await connect(cert=stranger_cert, key=stranger_key) == "SBY"
        # A viewer reads and subscribes but may not trigger.
        async with await plc.client(url, user="watch1") as c:
            assert await (await _node(c, "cam1.SystemState"))[0].read_value() == "SBY"
            with pytest.raises(ua.UaStatusCodeError) as e:
                await _call(c, AM, "StartSingleJob", "", "V-1", "", "")
            assert e.value.code == ua.StatusCodes.BadUserAccessDenied

    run(scenario())
    assert pipe.status().plc[0].triggers == 0


def test_the_server_certificate_is_made_once_and_kept(tmp_path):
    d = tmp_path / "pki"
    assert pki.ensure_server_certificate(d, "urn:box:inspector")
    der = (d / "own" / "cert.der").read_bytes()
    assert (d / "own" / "key.pem").stat().st_mode & 0o077 == 0
    assert not pki.ensure_server_certificate(d, "urn:other:inspector")  # clients trust this one
    assert (d / "own" / "cert.der").read_bytes() == der
    assert pki.certificate_uri(d) == "urn:box:inspector"
    summary = pki.certificate_summary(d)
    assert summary["present"] and summary["expires_in_days"] > 365 and summary["thumbprint"] == pki.thumbprint(der)


def test_a_camera_that_is_gone_is_error_and_refuses_jobs(tmp_path, demo_line):
    """A replay that runs out stands for a camera that is gone: Error with its reason; StartSingleJob
    is refused with BadInvalidState, not left waiting."""
    port = free_port()
    cfg = parse_config({
        "data_dir": str(tmp_path / "data"), "web": {"enabled": False},
        "cameras": [{"id": "cam1", "trigger": {"mode": "continuous"}, "roi": list(ROI),
                     "source": {"type": "folder", "path": str(demo_line.frames_dir), "fps": 50}}],
        "plc": {"opcua": {"enabled": True, "port": port}}})
    pipe = Pipeline(cfg)
    Accounts(pipe.store.engine).add_user("plc1", PASSWORD, "operator")
    pipe.start()
    plc = Plc(tmp_path, cfg.data_dir / "opcua")
    servers = start_plc(cfg, pipe)
    url = f"opc.tcp://127.0.0.1:{port}"
    try:
        assert pipe.done.wait(60)

        async def scenario():
            async with await plc.client(url) as c:
                state, _ = await _node(c, "cam1.VisionStateMachine.CurrentState")
                for _ in range(100):
                    if (await state.read_value()).Text == "Error":
                        break
                    await asyncio.sleep(0.05)
                assert (await state.read_value()).Text == "Error"
                msg, _ = await _node(c, "cam1.DiagnosticMessage")
                assert "no more frames" in await msg.read_value()
                assert await (await _node(c, "cam1.SystemState"))[0].read_value() == "UDT"
                with pytest.raises(ua.UaStatusCodeError) as e:
                    await _call(c, AM, "StartSingleJob", "", "Z-1", "", "")
                assert e.value.code == ua.StatusCodes.BadInvalidState

        run(scenario())
        h = pipe.status().plc[0]
        assert h.state == "Error" and not h.ready and "no more frames" in h.message
    finally:
        for s in servers:
            s.stop()
        pipe.stop()


@pytest.mark.parametrize("link, says", [("opcua", "OPC UA server cannot listen"),
                                         ("modbus", "Modbus TCP server cannot listen")])
def test_inspector_run_says_in_one_line_when_a_plc_port_is_taken(tmp_path, link, says):
    import socket

    import yaml

    from tests.conftest import run_cli

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    cfg = tmp_path / "line.yaml"
    cfg.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "web": {"enabled": False},
                                   "cameras": [{"id": "cam1", "source": {"type": "demo", "parts": 2}}],
                                   "plc": {link: {"enabled": True, "port": port}}}))
    try:
        p = run_cli("run", "--config", str(cfg), timeout=120)
    finally:
        s.close()
    assert p.returncode == 2, p.stderr
    assert f"cannot start: {says} on 127.0.0.1:{port}" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_a_user_who_must_change_the_password_cannot_log_in_over_opcua_yet(tmp_path):
    from inspector.store import Store
    from inspector.web.accounts import AccountError

    store = Store(f"sqlite:///{tmp_path / 'a.db'}", tmp_path)
    accounts = Accounts(store.engine)
    accounts.add_user("plc2", PASSWORD, "operator", must_change=True)
    with pytest.raises(AccountError, match="first be changed on the dashboard"):
        accounts.check_password("plc2", PASSWORD, "opcua")
    with pytest.raises(AccountError, match="wrong user name or password"):
        accounts.check_password("plc2", "not-the-password", "opcua")
    store.close()


def test_the_readme_documents_the_address_space_the_server_serves(ua_line):
    """The README's tables are the PLC programmer's reference: every node and event field they name
    is served, and every one served is named."""
    import re
    from pathlib import Path

    from inspector.plc.opcua import EVENT_FIELDS

    pipe, plc, url, server = ua_line
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("### OPC UA server (OPC 40100-1)"):readme.index("### Modbus TCP server")]
    documented = set()
    for row in section.splitlines():
        if row.startswith("| `<camera>"):
            for path in re.findall(r"`(<camera>[^`]*)`", row.split("|")[1]):
                if path.endswith(".<field>"):
                    documented |= {path.replace("<field>", f) for f, _, _ in EVENT_FIELDS} | {
                        path.replace("<field>", "Counter")}
                else:
                    documented.add(path)
    fields = set()
    for row in section[section.index("**ResultReadyEventType**"):].splitlines():
        if row.startswith("| ") and not row.startswith(("| field", "| ---")):
            fields |= {f.strip() for f in row.split("|")[1].split(",")}
    assert fields == {f for f, _, _ in EVENT_FIELDS}

    async def served():
        async with await plc.client(url) as c:
            obj, idx = await _node(c, "cam1")
            out, todo = {"<camera>"}, [obj]
            while todo:
                for child in await todo.pop().get_children():
                    if child.nodeid.NamespaceIndex == idx and isinstance(child.nodeid.Identifier, str):
                        out.add("<camera>" + child.nodeid.Identifier[len("cam1"):])
                        todo.append(child)
            return out

    assert run(served()) == documented


def test_connections_beyond_the_cap_are_closed_at_once(ua_line):
    import socket

    from inspector.plc.opcua import MAX_CLIENTS

    pipe, plc, url, server = ua_line
    port = int(url.rsplit(":", 1)[1])
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(MAX_CLIENTS)]
    try:
        assert wait_for(lambda: server.sessions() == MAX_CLIENTS, 10)
        extra = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            assert extra.recv(16) == b""  # closed by the server, not left to park
        except ConnectionResetError:
            pass
        finally:
            extra.close()
        socks[0].settimeout(0.3)
        with pytest.raises(socket.timeout):  # those within the cap stay open (until their 10 s to log in)
            socks[0].recv(16)
    finally:
        for s in socks:
            s.close()
    assert wait_for(lambda: server.sessions() == 0, 10)


def test_a_certificate_folder_it_cannot_write_is_one_line(tmp_path, demo_line):
    import os

    from inspector.plc import PlcError

    if os.geteuid() == 0:
        # root writes anywhere: a file where the folder should be stands for a read-only one
        (tmp_path / "pki").write_text("not a folder")
    else:
        (tmp_path / "pki").mkdir(mode=0o500)
    cfg = parse_config({
        "data_dir": str(tmp_path / "data"), "web": {"enabled": False},
        "cameras": [{"id": "cam1", "source": {"type": "folder", "path": str(demo_line.frames_dir)}}],
        "plc": {"opcua": {"enabled": True, "port": free_port(), "pki_dir": str(tmp_path / "pki")}}})
    pipe = Pipeline(cfg)
    try:
        with pytest.raises(PlcError, match=f"OPC UA certificates in {tmp_path / 'pki'}"):
            start_plc(cfg, pipe)
    finally:
        pipe.stop()
