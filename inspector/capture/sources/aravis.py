"""`aravis`: any GigE Vision or USB3 Vision camera through Aravis (vendor-neutral, open source), from
Python through GObject introspection. Needs Debian's `gir1.2-aravis-0.8` and PyGObject
(`pip install 'inspector[aravis]'`; README, "Industrial cameras").

A camera is named by its IP address, opened directly (no discovery broadcast on the plant network),
or by its Aravis device id (`Vendor-Model-Serial`, from `arv-tool-0.8`), which Aravis finds by
discovery. GigE Vision frame ids are 16-bit and skip 0, so they wrap at 65535.
"""

from __future__ import annotations

import logging
import threading
import time
import xml.etree.ElementTree as ET

import numpy as np

from inspector.capture.sources import SourceError, register
from inspector.capture.sources.genicam import CameraUnavailable, Driver, GenicamSource, Grab
from inspector.capture.sources.pixel_formats import name_of

log = logging.getLogger(__name__)


def _aravis():
    try:
        import gi

        gi.require_version("Aravis", "0.8")
        from gi.repository import Aravis, GLib
    except (ImportError, ValueError) as e:
        raise SourceError(f"Aravis is not available to Python ({e}): install Debian's gir1.2-aravis-0.8 and "
                          "`pip install 'inspector[aravis]'` (PyGObject)") from None
    return Aravis, GLib


class AravisDriver(Driver):
    def __init__(self, cfg, Aravis, GLib):
        self.A, self.GLib, self.cfg = Aravis, GLib, cfg
        self._lost = threading.Event()
        try:
            self.cam = Aravis.Camera.new(cfg.camera)
        except GLib.Error as e:
            raise CameraUnavailable(f"cannot open camera {cfg.camera}: {e.message}") from None
        self.dev = self.cam.get_device()
        self.gc = self.dev.get_genicam()
        # Aravis calls this from its heartbeat thread when the camera stops answering.
        self.dev.connect("control-lost", lambda *_: self._lost.set())
        self.is_gige = bool(self.cam.is_gv_device())
        self.id_wrap = 65535 if self.is_gige else None
        self.stream = None

    def _guard(self, fn, *args):
        """A feature's own error (a value out of range, an entry the node lacks) is a ValueError the
        config can be blamed for; any other Aravis error (timeout, access denied: another program or
        a dead process still holds the camera, a transfer failure) means the camera cannot be used
        now, and the source reconnects."""
        try:
            return fn(*args)
        except self.GLib.Error as e:
            if e.domain == "arv-gc-error-quark" and not self._lost.is_set():
                raise ValueError(e.message) from None
            raise CameraUnavailable(f"camera {self.cfg.camera}: {e.message}") from None

    def node_names(self) -> list[str]:
        xml, _ = self.dev.get_genicam_xml()
        try:
            root = ET.fromstring(xml.encode() if isinstance(xml, str) else xml)
        except ET.ParseError:
            return []
        return sorted({el.get("Name") for el in root.iter() if el.get("Name") and not el.tag.endswith("EnumEntry")})

    def node_kind(self, name: str) -> str | None:
        A = self.A
        node = self.gc.get_node(name)
        if node is None:
            return None
        for kind, cls in (("enum", A.GcEnumeration), ("bool", A.GcBoolean), ("int", A.GcInteger),
                          ("float", A.GcFloat), ("string", A.GcString), ("command", A.GcCommand)):
            if isinstance(node, cls):
                return kind
        return "other"

    def enum_entries(self, name: str) -> list[str]:
        return list(self._guard(self.cam.dup_available_enumerations_as_strings, name) or [])

    def set(self, name: str, kind: str, value) -> None:
        d = self.dev
        setter = {"enum": (d.set_string_feature_value, str), "string": (d.set_string_feature_value, str),
                  "int": (d.set_integer_feature_value, int), "float": (d.set_float_feature_value, float),
                  "bool": (d.set_boolean_feature_value, bool)}.get(kind)
        if setter is None:
            raise SourceError(f"{name} is a {kind} node, which cannot be set from the config")
        self._guard(setter[0], name, setter[1](value))

    def get_string(self, name: str) -> str:
        return self._guard(self.dev.get_string_feature_value, name)

    def start(self) -> None:
        A, c = self.A, self.cfg
        if self.is_gige and c.packet_size:
            self._guard(self.cam.gv_set_packet_size, int(c.packet_size))
        self.stream = self._guard(self.cam.create_stream, None, None)
        if self.is_gige:
            self.stream.set_property("packet-resend", A.GvStreamPacketResend.ALWAYS if c.packet_resend
                                     else A.GvStreamPacketResend.NEVER)
        payload = self._guard(self.cam.get_payload)
        for _ in range(c.buffers):
            self.stream.push_buffer(A.Buffer.new_allocate(payload))
        self._guard(self.cam.start_acquisition)

    def grab(self, timeout_s: float) -> Grab | None:
        A = self.A
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            buf = self.stream.timeout_pop_buffer(max(1, int(left * 1e6))) if left > 0 else None
            if buf is None:
                if self._lost.is_set():
                    raise CameraUnavailable(f"camera {self.cfg.camera}: control link lost")
                return None
            try:
                status = buf.get_status()
                if status != A.BufferStatus.SUCCESS:
                    # a frame that did not arrive whole: lost (the camera is fine, and a triggered
                    # camera sends nothing else for this trigger)
                    log.debug("camera %s: buffer %s", self.cfg.camera, status.value_nick)
                    return Grab(None, "", 0, 0, buf.get_frame_id(), None)
                data = np.frombuffer(buf.get_data(), np.uint8)  # a copy: the buffer goes back to the stream
                w = buf.get_image_width()
                fmt = name_of(buf.get_image_pixel_format())
                return Grab(data, fmt, w, buf.get_image_height(), buf.get_frame_id(), buf.get_timestamp(),
                            stride=_stride(buf, w, fmt))
            finally:
                self.stream.push_buffer(buf)

    def software_trigger(self) -> None:
        self._guard(self.cam.software_trigger)

    def gone(self) -> bool:
        return self._lost.is_set()

    def close(self, dead: bool = False) -> None:
        if dead or self._lost.is_set():
            # Every GVCP command of a dead camera's teardown (stop acquisition, close the stream
            # channel, release control) waits out its retries: 12 s in all, measured on Aravis'
            # simulator. The last references go in a thread of their own, so that neither the
            # reconnect loop nor the line waits for that.
            refs = [self.stream, self.gc, self.dev, self.cam]
            self.stream = self.gc = self.dev = self.cam = None
            threading.Thread(target=refs.clear, name="camera-teardown", daemon=True).start()
            return
        try:
            if self.stream is not None:
                self.cam.stop_acquisition()
        except self.GLib.Error:
            pass
        self.stream = None
        self.gc = self.dev = self.cam = None


def _stride(buf, width: int, fmt: str) -> int | None:
    """Bytes per row when the camera pads its rows (Aravis' x padding); None: rows are packed."""
    from inspector.capture.sources.pixel_formats import bytes_per_pixel

    try:
        pad = int(buf.get_image_padding()[0])
    except (AttributeError, TypeError, IndexError):
        return None
    return width * bytes_per_pixel(fmt) + pad if pad else None


@register("aravis")
class AravisSource(GenicamSource):
    def __init__(self, cfg, data_dir):
        self._mods = _aravis()  # a missing binding is a config error at start, not a reconnect loop
        super().__init__(cfg, f"aravis:{cfg.camera}")

    def _open_driver(self) -> Driver:
        return AravisDriver(self.cfg, *self._mods)
