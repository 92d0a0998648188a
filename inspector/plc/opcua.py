"""OPC UA for the PLC, modelled on OPC 40100-1 (OPC UA for Machine Vision), served by asyncua.

The inspector is the server, as the companion spec prescribes. Each camera is a VisionSystem:

    Objects/<camera>                          VisionSystemType
      VisionStateMachine/CurrentState         Preoperational | Halted | Error | Operational
      VisionStateMachine/AutomaticModeStateMachine/CurrentState
                                              Ready | SingleExecution | ContinuousExecution
      .../AutomaticModeStateMachine/StartSingleJob(MeasId, PartId, RecipeId, ProductId) -> (JobId, Error)
      .../AutomaticModeStateMachine/StartContinuous(MeasId, PartId, RecipeId, ProductId) -> (JobId, Error)
      .../AutomaticModeStateMachine/Stop() -> (Error)
      RecipeManagement/PrepareRecipe(ExternalId) -> (InternalId, IsCompleted, Error)
      RecipeManagement/PreparedRecipe
      ResultManagement/GetResultById(ResultId, Timeout) -> (ResultState, IsPartial, JobId, MeasId,
                                    PartId, ExternalRecipeId, LineDecision, DefectCodes, FinalVerdict,
                                    CreationTime, Error)
      ResultManagement/LastResult/...         the newest result as variables, for PLCs without events
      SystemState, DiagnosticMessage, Overruns, Jobs

ResultReady events (ResultReadyEventType, emitted by the camera's object) carry the line decision
as soon as it is made (IsPartial true and ResultState 2 "Processing" while the VLM still works on
the part) and, for those, a second event with the same ResultId when the final verdict is stored
(IsPartial false, ResultState 1 "Completed"): the line decision in it never changes.

Security: Basic256Sha256 with Sign and/or SignAndEncrypt; client certificates must be in the
trust folder (refused ones are kept in rejected/); users are the dashboard's accounts: operators
and admins may call methods, viewers (and anonymous clients, when allowed at all) only read and
subscribe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path

from inspector.capture.part_codes import PART_ID
from inspector.messages import LineAnswer, LineDecision, Verdict, VerdictKind
from inspector.plc import pki
from inspector.plc.jobs import JobBusy, JobDesk, JobRefused, PlcError, defect_code, result_code
from inspector.plc.loop_thread import LoopThread
from inspector.plc.vision_state import E10, ERROR, OPERATIONAL, READY, VisionState, line_state

log = logging.getLogger(__name__)

NAMESPACE = "urn:inspector:machine-vision"
TICK_S = 0.05
KEEP_RESULTS = 4096  # results GetResultById can still find
MAX_ID = 64  # MeasId, JobId, RecipeId, ProductId: characters
MAX_CLIENTS = 16  # TCP connections at once: a line has a PLC or two, a commissioning laptop, SCADA
MAX_MESSAGE = 4 * 1024 * 1024  # bytes; asyncua's default is 100 MB
# ResultState (OPC 40100-1 ResultStateDataType): 1 Completed, 2 Processing, 4 Failed
COMPLETED, PROCESSING, FAILED = 1, 2, 4
# Error outputs: 0 OK; < 0 ours, as the spec asks of application-specific errors
E_OK, E_UNKNOWN_RESULT, E_NO_RESULT_YET = 0, -1, -2

EVENT_FIELDS = [  # (name, variant type name, array): ResultReadyEventType's properties
    ("ResultId", "String", False), ("IsPartial", "Boolean", False), ("ResultState", "Int32", False),
    ("MeasId", "String", False), ("PartId", "String", False), ("ExternalRecipeId", "String", False),
    ("ProductId", "String", False), ("JobId", "String", False), ("CreationTime", "DateTime", False),
    ("LineDecision", "String", False), ("ResultCode", "UInt16", False), ("Basis", "String", False),
    ("OnTime", "Boolean", False), ("ElapsedMs", "Double", False), ("DefectCodes", "UInt16", True),
    ("FinalVerdict", "String", False),
]


class _Result(dict):
    """One part's result, as events, GetResultById and LastResult show it."""


class VisionSystem:
    """One camera's VisionSystem object: its job desk, state and results."""

    def __init__(self, server: "OpcUaServer", camera: str, desk: JobDesk, defects: list[str]):
        self.server, self.camera, self.desk, self.defects = server, camera, desk, defects
        self.results: OrderedDict[str, _Result] = OrderedDict()
        self.continuous: str | None = None  # the continuous job's id while one runs
        self.state: VisionState | None = None
        self.nodes: dict[str, object] = {}
        self.events = None  # the ResultReady event generator
        self.errors = 0
        self.last_error = ""

    def status(self):
        from inspector.line.status import PlcLinkStatus

        st = self.server.state_of(self)  # now, not as of the last tick of the address space
        return PlcLinkStatus(kind="opcua", listen=self.server.endpoint, camera=self.camera,
                             ready=st is not None and st.main == OPERATIONAL, clients=self.server.sessions(),
                             triggers=self.desk.jobs, overruns=self.desk.overruns, errors=self.errors,
                             error_code=0, queued_results=0, state=st.name if st else None,
                             message=(st.message if st and st.message else self.last_error),
                             last_trigger_wall=self.desk.last_trigger_wall, no_image=self.desk.timeouts)


class OpcUaServer(LoopThread):
    thread_name = "plc-opcua"

    def __init__(self, cfg, pipe, accounts, pki_dir: Path, products: dict[str, list[str]]):
        self.cfg = cfg  # OpcUaConfig
        self.pipe = pipe
        self.accounts = accounts
        self.pki_dir = pki_dir
        self.application_uri = cfg.application_uri or pki.default_application_uri()
        self.endpoint = f"opc.tcp://{cfg.host}:{cfg.port}"
        cams = cfg.cameras or [c.id for c in pipe.cfg.cameras]
        self.systems: dict[str, VisionSystem] = {}
        for cam in cams:
            desk = JobDesk("opcua", cam, pipe.trigger, pipe.cancel_trigger, cfg.acquire_timeout_ms / 1000)
            product = pipe.cameras[cam].product
            self.systems[cam] = VisionSystem(self, cam, desk, products.get(product, []))
        self.products = products
        super().__init__()
        self._stopping = False
        self._server = None
        self._queue: asyncio.Queue | None = None
        self._tasks: set = set()

    # --- the line's side (other threads) --------------------------------------------------------

    def captured(self, camera: str, uid: str, part_id, job_id) -> None:
        vs = self.systems.get(camera)
        if vs is not None:
            vs.desk.captured(camera, uid, part_id, job_id)

    def decision(self, d: LineDecision) -> None:
        if d.camera_id in self.systems:
            self._post(("decision", d))

    def final(self, _inspection_id, uid: str, verdict: Verdict) -> None:
        if verdict.frame.camera_id in self.systems:
            self._post(("final", uid, verdict))

    def _post(self, item) -> None:
        loop, q = self._loop, self._queue
        if loop is not None and q is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(q.put_nowait, item)
            except RuntimeError:  # the loop closed between the check and the call: stopping
                pass

    # --- life -----------------------------------------------------------------------------------

    def describe(self) -> str:
        return f"OPC UA server on {self.endpoint}"

    def start(self, timeout: float = 30.0) -> None:
        self._start_thread(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Error first (subscribed PLCs see the inspector leave), then the server closes."""
        self._stopping = True
        self._stop_thread(timeout)

    def links(self) -> list[VisionSystem]:
        return list(self.systems.values())

    def sessions(self) -> int:
        """Connected clients (TCP connections, authenticated or on their way)."""
        srv = self._server
        bserver = getattr(srv, "bserver", None)
        return len(bserver.clients) if bserver is not None else 0

    async def _serve(self) -> None:
        self._queue = asyncio.Queue()
        quiet = _DropOpenError()
        logging.getLogger("asyncua.server.server").addFilter(quiet)  # we say it in one line below
        try:
            server = await self._build()
            await server.start()
        except OSError as e:
            self._refused(f"OPC UA server cannot listen on {self.cfg.host}:{self.cfg.port}: {e}")
            return
        finally:
            logging.getLogger("asyncua.server.server").removeFilter(quiet)
        self._server = server
        if self.cfg.port == 0 and server.bserver is not None:
            self.endpoint = f"opc.tcp://{self.cfg.host}:{server.bserver.port}"
        for vs in self.systems.values():
            await self._tick(vs)
        self._serving()
        consumer = asyncio.create_task(self._consume())
        try:
            while not self._stop.is_set():
                for vs in self.systems.values():
                    await self._tick(vs)
                try:
                    await asyncio.wait_for(self._stop.wait(), TICK_S)
                except asyncio.TimeoutError:
                    pass
            for vs in self.systems.values():
                await self._tick(vs)  # Error: "the inspector is stopping"
            await asyncio.sleep(0.3)  # one publishing cycle, so subscribers hear it
        finally:
            consumer.cancel()
            await server.stop()

    async def _build(self):
        from asyncua import Server, ua
        from asyncua.crypto.truststore import TrustStore
        from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions

        try:
            pki.ensure_server_certificate(self.pki_dir, self.application_uri)
        except OSError as e:  # not the port's fault: say where
            raise PlcError(f"OPC UA certificates in {self.pki_dir}: {e.strerror or e}") from None
        # A certificate made earlier (at install) names the URI clients already trust.
        self.application_uri = pki.certificate_uri(self.pki_dir) or self.application_uri
        paths = pki.layout(self.pki_dir)
        users = _Users(self.accounts, self.cfg.anonymous)
        server = Server(user_manager=users)
        await server.init()
        # Bounded for a network that is not ours to trust: a PLC's calls and events are small.
        from asyncua.common.connection import TransportLimits

        server.limits = TransportLimits(max_recv_buffer=65535, max_send_buffer=65535, max_chunk_count=64,
                                        max_message_size=MAX_MESSAGE)
        server.iserver.max_connections = MAX_CLIENTS
        server.iserver.max_pending_activation_seconds = 10.0
        server.set_endpoint(f"opc.tcp://{self.cfg.host}:{self.cfg.port}")
        server.set_server_name("inspector")
        await server.set_application_uri(self.application_uri)
        try:
            await server.load_certificate(str(paths["cert"]))
            await server.load_private_key(str(paths["key"]))
        except (OSError, ValueError) as e:
            raise PlcError(f"OPC UA server certificate in {paths['cert'].parent} is unusable: {e}") from None
        modes = {"SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                 "Sign": ua.SecurityPolicyType.Basic256Sha256_Sign, "None": ua.SecurityPolicyType.NoSecurity}
        server.set_security_policy([modes[m] for m in self.cfg.security], permission_ruleset=_Rules(users))
        tokens = [ua.UserNameIdentityToken] + ([ua.AnonymousIdentityToken] if self.cfg.anonymous else [])
        server.set_identity_tokens(tokens)
        store = TrustStore([paths["trusted"]], [])
        validator = CertificateValidator(CertificateValidatorOptions.TRUSTED_VALIDATION
                                         | CertificateValidatorOptions.PEER_CLIENT, store)
        pki_dir = self.pki_dir

        async def validate(cert, app):
            await store.load_trust()  # an administrator may have moved a certificate in
            try:
                await validator.validate(cert, app)
            except Exception:
                from cryptography.hazmat.primitives.serialization import Encoding

                pki.keep_rejected(pki_dir, cert.public_bytes(Encoding.DER))
                log.warning("OPC UA client %s refused: certificate not trusted (kept in %s)",
                            getattr(app, "ApplicationUri", "?"), paths["rejected"])
                raise

        server.set_certificate_validator(validate)
        idx = await server.register_namespace(NAMESPACE)
        self.idx = idx
        etype = await server.create_custom_event_type(
            idx, "ResultReadyEventType", ua.ObjectIds.BaseEventType,
            [(n, getattr(ua.VariantType, t)) for n, t, _ in EVENT_FIELDS])
        vtype = await server.nodes.base_object_type.add_object_type(idx, "VisionSystemType")
        for cam, vs in self.systems.items():
            await self._add_system(server, idx, vtype, vs)
            vs.events = await server.get_event_generator(etype, vs.nodes["object"])
        return server

    async def _add_system(self, server, idx, vtype, vs: VisionSystem) -> None:
        from asyncua import ua

        cam = vs.camera
        nid = lambda path: ua.NodeId(f"{cam}.{path}" if path else cam, idx)  # noqa: E731
        obj = await server.nodes.objects.add_object(nid(""), ua.QualifiedName(cam, idx), vtype.nodeid)
        vs.nodes["object"] = obj
        sm = await obj.add_object(nid("VisionStateMachine"), ua.QualifiedName("VisionStateMachine", idx))
        vs.nodes["state"] = await sm.add_variable(nid("VisionStateMachine.CurrentState"),
                                                  ua.QualifiedName("CurrentState", idx), ua.LocalizedText(""))
        auto = await sm.add_object(nid("VisionStateMachine.AutomaticModeStateMachine"),
                                   ua.QualifiedName("AutomaticModeStateMachine", idx))
        vs.nodes["auto"] = await auto.add_variable(nid("VisionStateMachine.AutomaticModeStateMachine.CurrentState"),
                                                   ua.QualifiedName("CurrentState", idx), ua.LocalizedText(""))
        S, B, I32, U16, DT = (ua.VariantType.String, ua.VariantType.Boolean, ua.VariantType.Int32,
                              ua.VariantType.UInt16, ua.VariantType.DateTime)
        start_in = [_arg("MeasId", S), _arg("PartId", S), _arg("RecipeId", S), _arg("ProductId", S)]
        job_out = [_arg("JobId", S), _arg("Error", I32)]
        base = "VisionStateMachine.AutomaticModeStateMachine."
        await auto.add_method(nid(base + "StartSingleJob"), ua.QualifiedName("StartSingleJob", idx),
                              self._method(vs, self._start_single, [S, S, S, S]), start_in, job_out)
        await auto.add_method(nid(base + "StartContinuous"), ua.QualifiedName("StartContinuous", idx),
                              self._method(vs, self._start_continuous, [S, S, S, S]), start_in, job_out)
        await auto.add_method(nid(base + "Stop"), ua.QualifiedName("Stop", idx),
                              self._method(vs, self._stop_job, []), [], [_arg("Error", I32)])
        rm = await obj.add_object(nid("RecipeManagement"), ua.QualifiedName("RecipeManagement", idx))
        await rm.add_method(nid("RecipeManagement.PrepareRecipe"), ua.QualifiedName("PrepareRecipe", idx),
                            self._method(vs, self._prepare_recipe, [S]), [_arg("ExternalId", S)],
                            [_arg("InternalId", S), _arg("IsCompleted", B), _arg("Error", I32)])
        vs.nodes["recipe"] = await rm.add_variable(nid("RecipeManagement.PreparedRecipe"),
                                                   ua.QualifiedName("PreparedRecipe", idx), "")
        res = await obj.add_object(nid("ResultManagement"), ua.QualifiedName("ResultManagement", idx))
        await res.add_method(nid("ResultManagement.GetResultById"), ua.QualifiedName("GetResultById", idx),
                             self._method(vs, self._get_result, [S, I32]),
                             [_arg("ResultId", S), _arg("Timeout", I32)],
                             [_arg("ResultState", I32), _arg("IsPartial", B), _arg("JobId", S), _arg("MeasId", S),
                              _arg("PartId", S), _arg("ExternalRecipeId", S), _arg("LineDecision", S),
                              _arg("DefectCodes", U16, array=True), _arg("FinalVerdict", S),
                              _arg("CreationTime", DT), _arg("Error", I32)])
        last = await res.add_object(nid("ResultManagement.LastResult"), ua.QualifiedName("LastResult", idx))
        for name, t, array in EVENT_FIELDS + [("Counter", "UInt32", False)]:
            vt = getattr(ua.VariantType, t)
            init = [] if array else (datetime.now(timezone.utc) if t == "DateTime" else ua.get_default_value(vt))
            vs.nodes["last." + name] = await last.add_variable(
                nid(f"ResultManagement.LastResult.{name}"), ua.QualifiedName(name, idx), ua.Variant(init, vt))
        for name, init, vt in (("SystemState", "SBY", S), ("DiagnosticMessage", "", S),
                               ("Overruns", 0, ua.VariantType.UInt32), ("Jobs", 0, ua.VariantType.UInt32)):
            vs.nodes[name] = await obj.add_variable(nid(name), ua.QualifiedName(name, idx), ua.Variant(init, vt))

    # --- methods (on the server's loop) ---------------------------------------------------------

    def _method(self, vs: VisionSystem, fn, types: list):
        """Checks the arguments' count and types (asyncua does not) and answers status codes, never
        an exception: a PLC's malformed call is told what is wrong and the line goes on."""
        from asyncua import ua

        def malformed(why: str) -> None:
            vs.errors += 1
            vs.last_error = f"{fn.__name__.strip('_')}: {why}"
            log.warning("OPC UA call on %s refused: %s", vs.camera, vs.last_error)

        async def call(parent, *args):
            if len(args) != len(types):
                malformed(f"{len(args)} arguments where {len(types)} are expected")
                return ua.StatusCode(ua.StatusCodes.BadArgumentsMissing if len(args) < len(types)
                                     else ua.StatusCodes.BadTooManyArguments)
            bad = [i for i, (a, t) in enumerate(zip(args, types))
                   if not isinstance(a, ua.Variant) or (a.VariantType != t and not (a.Value is None and t == ua.VariantType.String))]
            if bad:
                malformed(f"argument(s) {', '.join(str(i + 1) for i in bad)} of the wrong type")
                res = ua.CallMethodResult()
                res.StatusCode = ua.StatusCode(ua.StatusCodes.BadTypeMismatch)
                res.InputArgumentResults = [ua.StatusCode(ua.StatusCodes.BadTypeMismatch if i in bad else
                                                          ua.StatusCodes.Good) for i in range(len(args))]
                return res
            try:
                out = await fn(vs, *[a.Value if a.Value is not None else "" for a in args])
            except _Refused as e:
                malformed(e.why)
                return ua.StatusCode(e.code)
            except Exception:
                log.exception("OPC UA method on %s failed", vs.camera)
                return ua.StatusCode(ua.StatusCodes.BadInternalError)
            return [ua.Variant(v, t) for v, t in out]

        return call

    def _check_ids(self, **ids: str) -> None:
        from asyncua import ua

        for name, value in ids.items():
            if len(value) > MAX_ID or (name == "PartId" and value and not PART_ID.match(value)) or \
                    any(ord(ch) < 32 for ch in value):
                raise _Refused(ua.StatusCodes.BadInvalidArgument, f"{name} {value[:80]!r} is not a valid id "
                                                                  f"(at most {MAX_ID} printable characters)")

    def _product(self, recipe: str, product: str) -> str | None:
        """The product a job's RecipeId / ProductId name (every recipe is always prepared)."""
        from asyncua import ua

        names = []
        for which in (recipe, product):
            if which:
                try:
                    names.append(self.pipe.cfg.recipe(int(which) if which.isdigit() else which).name)
                except KeyError:
                    raise _Refused(ua.StatusCodes.BadInvalidArgument, f"no recipe {which!r}") from None
        if len(set(names)) > 1:
            raise _Refused(ua.StatusCodes.BadInvalidArgument, f"RecipeId {recipe!r} and ProductId {product!r} "
                                                              "name different products")
        return names[0] if names else None

    def _check_state(self, vs: VisionSystem, *allowed: str) -> None:
        from asyncua import ua

        st = vs.state
        if st is None or st.name not in allowed:
            name = st.name if st else "Preoperational"
            raise _Refused(ua.StatusCodes.BadInvalidState, f"the vision system is {name}"
                                                            + (f": {st.message}" if st and st.message else ""))

    async def _start_single(self, vs: VisionSystem, meas: str, part: str, recipe: str, product: str):
        from asyncua import ua

        self._check_ids(MeasId=meas, PartId=part, RecipeId=recipe, ProductId=product)
        self._check_state(vs, READY, "SingleExecution")  # the desk counts a trigger while acquiring
        chosen = self._product(recipe, product)
        try:
            job = vs.desk.start(part or None, meas, recipe, product=chosen)
        except JobBusy as e:
            raise _Refused(ua.StatusCodes.BadInvalidState, f"overrun: {e}") from None
        except JobRefused as e:
            raise _Refused(ua.StatusCodes.BadResourceUnavailable, str(e)) from None
        # The state variables follow once the answer is out: the PLC waits for the JobId, not them.
        self._later(self._tick(vs))
        return [(job.job_id, ua.VariantType.String), (E_OK, ua.VariantType.Int32)]

    async def _start_continuous(self, vs: VisionSystem, meas: str, part: str, recipe: str, product: str):
        from asyncua import ua

        self._check_ids(MeasId=meas, PartId=part, RecipeId=recipe, ProductId=product)
        self._check_state(vs, READY)
        chosen = self._product(recipe, product)
        if chosen is not None:
            self.pipe.change_recipe(vs.camera, chosen, "plc:opcua")
        vs.continuous = f"opcua-continuous-{int(time.time() * 1000):x}"
        self.pipe.triggers[vs.camera].mode = "continuous"
        await self._tick(vs)
        return [(vs.continuous, ua.VariantType.String), (E_OK, ua.VariantType.Int32)]

    async def _stop_job(self, vs: VisionSystem):
        from asyncua import ua

        if vs.continuous is not None:
            cam = next(c for c in self.pipe.cfg.cameras if c.id == vs.camera)
            self.pipe.triggers[vs.camera].mode = cam.trigger.mode
            vs.continuous = None
        await self._tick(vs)
        return [(E_OK, ua.VariantType.Int32)]

    async def _prepare_recipe(self, vs: VisionSystem, external: str):
        from asyncua import ua

        self._check_ids(RecipeId=external)
        self._check_state(vs, READY, "SingleExecution")
        try:
            _, to = self.pipe.change_recipe(vs.camera, int(external) if external.isdigit() else external,
                                            "plc:opcua")
        except Exception as e:  # RecipeError: unknown; the camera keeps its recipe
            raise _Refused(ua.StatusCodes.BadInvalidArgument, str(e)) from None
        vs.defects = self.products.get(to, [])
        await vs.nodes["recipe"].write_value(to)
        return [(to, ua.VariantType.String), (True, ua.VariantType.Boolean), (E_OK, ua.VariantType.Int32)]

    async def _get_result(self, vs: VisionSystem, result_id: str, timeout_ms: int):
        from asyncua import ua

        r = vs.results.get(result_id)
        known_job = result_id in vs.desk.by_id
        if r is None and timeout_ms > 0 and known_job:  # the job runs: wait for its line decision
            end = time.monotonic() + min(timeout_ms, 10_000) / 1000
            while r is None and time.monotonic() < end:
                await asyncio.sleep(0.01)
                r = vs.results.get(result_id)
        if r is None:
            code = E_NO_RESULT_YET if known_job else E_UNKNOWN_RESULT
            r = _Result(ResultState=0, IsPartial=False, JobId="", MeasId="", PartId="", ExternalRecipeId="",
                        LineDecision="", DefectCodes=[], FinalVerdict="",
                        CreationTime=datetime.now(timezone.utc))
        else:
            code = E_OK
        S, B, I32, U16 = (ua.VariantType.String, ua.VariantType.Boolean, ua.VariantType.Int32, ua.VariantType.UInt16)
        return [(r["ResultState"], I32), (r["IsPartial"], B), (r["JobId"], S), (r["MeasId"], S), (r["PartId"], S),
                (r["ExternalRecipeId"], S), (r["LineDecision"], S), (list(r["DefectCodes"]), U16),
                (r["FinalVerdict"], S), (r["CreationTime"], ua.VariantType.DateTime), (code, I32)]

    # --- state and results (on the server's loop) -----------------------------------------------

    def state_of(self, vs: VisionSystem) -> VisionState:
        return line_state(self.pipe, vs.camera, acquiring=vs.desk.acquiring is not None,
                          continuous=vs.continuous is not None, stopping=self._stopping)

    def _later(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._tasks.discard)

    async def _tick(self, vs: VisionSystem) -> None:
        late = vs.desk.expire()
        if late is not None:
            log.error("OPC UA job %s (part %s): no image within %.1f s; answered NG", late.job_id, late.part_id,
                      vs.desk.acquire_timeout_s)
            vs.errors += 1
            vs.last_error = f"job {late.job_id}: no image in time"
            await self._publish(vs, _Result(
                ResultId=late.job_id, IsPartial=False, ResultState=FAILED, MeasId=late.meas_id,
                PartId=late.part_id or "", ExternalRecipeId=late.recipe, ProductId="", JobId=late.job_id,
                CreationTime=datetime.now(timezone.utc), LineDecision="NG", ResultCode=result_code(LineAnswer.ng),
                Basis="no_image", OnTime=False, ElapsedMs=(time.monotonic() - late.started_mono) * 1000,
                DefectCodes=[], FinalVerdict=""))
        st = self.state_of(vs)
        if st != vs.state:
            vs.state = st
            await vs.nodes["state"].write_value(_text(st.main))
            await vs.nodes["auto"].write_value(_text(st.automatic or ""))
            await vs.nodes["SystemState"].write_value(E10[st.name])
            await vs.nodes["DiagnosticMessage"].write_value(st.message)
            if st.main == ERROR and not self._stopping:
                log.warning("OPC UA vision system %s: Error: %s", vs.camera, st.message)
        # A changeover by Modbus, the dashboard or the API shows here too, not only PrepareRecipe's.
        await _write_if_changed(vs.nodes["recipe"], self.pipe.cameras[vs.camera].product, "String")
        await _write_if_changed(vs.nodes["Overruns"], vs.desk.overruns, "UInt32")
        await _write_if_changed(vs.nodes["Jobs"], vs.desk.jobs, "UInt32")

    async def _consume(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if item[0] == "decision":
                    await self._on_decision(item[1])
                else:
                    await self._on_final(item[1], item[2])
            except Exception:
                log.exception("OPC UA result not published")

    async def _on_decision(self, d: LineDecision) -> None:
        vs = self.systems[d.camera_id]
        job = vs.desk.decided(d)
        final = d.basis == "verdict"  # the verdict decided: nothing more will come for the line
        verdict = d.verdict_kind or ""
        # A single job's result is known by its JobId (the PLC has it from StartSingleJob);
        # other inspections (continuous, part-presence, other triggers) by their uid.
        r = _Result(ResultId=job.job_id if job else d.uid, IsPartial=not final and d.basis != "error",
                    ResultState=FAILED if d.basis == "error" else COMPLETED if final else PROCESSING,
                    MeasId=job.meas_id if job else "", PartId=d.part_id or "",
                    ExternalRecipeId=job.recipe if job else "", ProductId=d.product,
                    JobId=job.job_id if job else (vs.continuous or ""),
                    CreationTime=datetime.fromtimestamp(d.decided_wall, timezone.utc),
                    LineDecision="OK" if d.answer is LineAnswer.ok else "NG", ResultCode=result_code(d.answer),
                    Basis=d.basis, OnTime=bool(d.on_time), ElapsedMs=float(d.elapsed_ms),
                    DefectCodes=sorted({defect_code(self.products.get(d.product, vs.defects), t) for t in d.defects}),
                    FinalVerdict=verdict if final else "")
        await self._publish(vs, r)

    async def _on_final(self, uid: str, verdict: Verdict) -> None:
        vs = self.systems[verdict.frame.camera_id]
        job = vs.desk.job_of(uid)
        r = vs.results.get(job.job_id if job else uid)
        if r is None or not r["IsPartial"]:
            return  # decided by its verdict (already complete), or too old to remember
        defects = self.products.get(verdict.frame.product, vs.defects)
        r = _Result(r, IsPartial=False, ResultState=COMPLETED,
                    FinalVerdict={VerdictKind.passed: "pass", VerdictKind.fail: "fail",
                                  VerdictKind.review: "review"}[verdict.kind],
                    DefectCodes=sorted({defect_code(defects, f.defect_type) for f in verdict.findings}))
        await self._publish(vs, r)

    async def _publish(self, vs: VisionSystem, r: _Result) -> None:
        from asyncua import ua

        vs.results[r["ResultId"]] = r
        vs.results.move_to_end(r["ResultId"])
        while len(vs.results) > KEEP_RESULTS:
            vs.results.popitem(last=False)
        ev = vs.events.event
        for name, t, array in EVENT_FIELDS:
            setattr(ev, name, ua.Variant(list(r[name]) if array else r[name], getattr(ua.VariantType, t)))
        await vs.events.trigger(message=f"{r['LineDecision']} part {r['PartId'] or '-'}"
                                        + ("" if r["IsPartial"] else f" final {r['FinalVerdict'] or '-'}"))
        counter = vs.nodes["last.Counter"]
        for name, t, array in EVENT_FIELDS:
            await vs.nodes["last." + name].write_value(
                ua.Variant(list(r[name]) if array else r[name], getattr(ua.VariantType, t)))
        await counter.write_value(ua.Variant((await counter.read_value()) + 1, ua.VariantType.UInt32))


class _DropOpenError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().endswith("error starting server")


class _Refused(PlcError):
    """A method call refused with an OPC UA status code (never leaves the server)."""

    def __init__(self, code, why: str):
        super().__init__(why)
        self.code, self.why = code, why


def _arg(name: str, vt, array: bool = False):
    from asyncua import ua

    a = ua.Argument()
    a.Name = name
    a.DataType = ua.NodeId(vt.value)
    a.ValueRank = 1 if array else -1
    a.ArrayDimensions = [0] if array else []
    return a


def _text(s: str):
    from asyncua import ua

    return ua.LocalizedText(s)


async def _write_if_changed(node, value, vt: str) -> None:
    from asyncua import ua

    if await node.read_value() != value:
        await node.write_value(ua.Variant(value, getattr(ua.VariantType, vt)))


class _Users:
    """The dashboard's accounts as OPC UA users (asyncua's user manager interface)."""

    def __init__(self, accounts, anonymous: bool):
        self.accounts, self.anonymous = accounts, anonymous
        self.roles: dict[str, str] = {}

    def get_user(self, iserver, username=None, password=None, certificate=None):
        from asyncua.crypto.permission_rules import User, UserRole

        if username is None:
            return User(role=UserRole.Anonymous) if self.anonymous else None
        try:
            role = self.accounts.check_password(username, password or "", "opcua")
        except Exception as e:  # wrong password, rate limited
            log.warning("OPC UA login of %r refused: %s", username[:64], e)
            return None
        self.roles[username] = role
        return User(role=UserRole.User, name=username)


class _Rules:
    """Reading, browsing and subscribing for every authenticated session; calling methods (which
    trigger parts and change recipes) for operators and admins only; the address space itself is
    never changed from the network."""

    def __init__(self, users: _Users):
        from asyncua import ua
        from asyncua.crypto.permission_rules import USER_TYPES

        self.users = users
        self.read = {ua.NodeId(t) for t in USER_TYPES} - {ua.NodeId(ua.ObjectIds.CallRequest_Encoding_DefaultBinary),
                                                          ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary)}
        self.call = ua.NodeId(ua.ObjectIds.CallRequest_Encoding_DefaultBinary)

    def check_validity(self, user, action_type_id, body) -> bool:
        from asyncua.crypto.permission_rules import UserRole

        if action_type_id in self.read:
            return True
        if action_type_id == self.call and user is not None and user.role is UserRole.User:
            return self.users.roles.get(user.name) in ("operator", "admin")
        return False
