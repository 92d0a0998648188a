"""`pylon`: Basler cameras (GigE, USB3) through pypylon, Basler's own binding, whose wheel carries the
pylon runtime (`pip install 'inspector[pylon]'`). `device_class: BaslerCamEmu` with the environment
variable PYLON_CAMEMU=N opens pylon's camera emulator, which serves the images of a folder
(`features: {ImageFilename: /path, ImageFileMode: "On"}`): the tests and the bench use it.

A camera is chosen by serial number and/or device class; with neither, the first camera pylon
finds (on GigE that means a discovery broadcast on every interface).
"""

from __future__ import annotations

import logging

import numpy as np

from inspector.capture.sources import SourceError, register
from inspector.capture.sources.genicam import CameraUnavailable, Driver, GenicamSource, Grab
from inspector.capture.sources.pixel_formats import bytes_per_pixel, name_of, to_bgr

log = logging.getLogger(__name__)


def _pylon():
    try:
        from pypylon import genicam, pylon
    except ImportError as e:
        raise SourceError(f"pypylon is not installed ({e}): `pip install 'inspector[pylon]'`") from None
    return pylon, genicam


class PylonDriver(Driver):
    # BlockID restarts at each StartGrabbing; 64-bit on USB3 and GigE Vision 2, 16-bit on older GigE
    # cameras, whose wrap then counts as a restart (no loss counted for it, never a false one)
    id_wrap = None

    def __init__(self, cfg, pylon, genicam):
        self.p, self.g, self.cfg = pylon, genicam, cfg
        tlf = pylon.TlFactory.GetInstance()
        want = pylon.DeviceInfo()
        if cfg.device_class:
            want.SetDeviceClass(cfg.device_class)
        if cfg.serial:
            want.SetSerialNumber(cfg.serial)
        try:
            found = tlf.EnumerateDevices([want])
            if not found:
                raise CameraUnavailable(f"no Basler camera{' ' + cfg.serial if cfg.serial else ''} found"
                                        + (f" of class {cfg.device_class}" if cfg.device_class else ""))
            self.cam = pylon.InstantCamera(tlf.CreateDevice(found[0]))
            self.cam.Open()
            self.nm = self.cam.GetNodeMap()
            self.cam.MaxNumBuffer.Value = cfg.buffers
        except genicam.GenericException as e:
            if getattr(self, "cam", None) is not None:
                self.close()
            raise CameraUnavailable(f"cannot open the Basler camera: {_words(e)}") from None

    def node_names(self) -> list[str]:
        return sorted(n.GetNode().GetName() for n in self.nm.GetNodes()
                      if not n.GetNode().GetName().startswith("EnumEntry_"))

    def node_kind(self, name: str) -> str | None:
        g = self.g
        if not self.nm.Contains(name):
            return None
        node = self.nm.GetNode(name)
        for kind, cls in (("enum", g.IEnumeration), ("bool", g.IBoolean), ("int", g.IInteger),
                          ("float", g.IFloat), ("string", g.IString), ("command", g.ICommand)):
            if isinstance(node, cls):
                return kind
        return "other"

    def enum_entries(self, name: str) -> list[str]:
        return list(self.nm.GetNode(name).Symbolics)

    def set(self, name: str, kind: str, value) -> None:
        cast = {"enum": str, "string": str, "int": int, "float": float, "bool": bool}.get(kind)
        if cast is None:
            raise SourceError(f"{name} is a {kind} node, which cannot be set from the config")
        try:
            self.nm.GetNode(name).Value = cast(value)
        except self.g.GenericException as e:
            self._check_removed()
            raise ValueError(_words(e)) from None

    def get_string(self, name: str) -> str:
        return str(self.nm.GetNode(name).ToString())

    def start(self) -> None:
        c = self.cfg
        if c.packet_size:
            if not self.nm.Contains("GevSCPSPacketSize"):
                raise SourceError("packet_size is for GigE cameras; this one has no GevSCPSPacketSize")
            try:
                self.nm.GetNode("GevSCPSPacketSize").Value = int(c.packet_size)
            except self.g.GenericException as e:
                raise SourceError(f"packet_size {c.packet_size}: {_words(e)}") from None
        try:
            self.cam.StartGrabbing(self.p.GrabStrategy_OneByOne)
        except self.g.GenericException as e:
            raise CameraUnavailable(f"cannot start grabbing: {_words(e)}") from None

    def grab(self, timeout_s: float) -> Grab | None:
        p = self.p
        try:
            res = self.cam.RetrieveResult(max(1, int(timeout_s * 1000)), p.TimeoutHandling_Return)
        except self.g.GenericException as e:
            self._check_removed()
            raise CameraUnavailable(f"grab failed: {_words(e)}") from None
        if res is None or not res.IsValid():
            self._check_removed()
            return None
        try:
            if not res.GrabSucceeded():
                # an incomplete frame (or the emulator's unreadable file): the frame is lost, not the camera
                log.warning("camera %s: grab failed: %s", self.cfg.serial or "pylon", res.GetErrorDescription())
                return Grab(None, "", 0, 0, int(res.BlockID), None, int(res.NumberOfSkippedImages))
            fmt, w, h = name_of(int(res.PixelType)), int(res.Width), int(res.Height)
            meta = (int(res.BlockID), int(res.TimeStamp) or None, int(res.NumberOfSkippedImages))
            try:
                # converted straight from pylon's buffer (no copy first); to_bgr returns a new array
                with res.GetArrayZeroCopy() as view:
                    bgr = to_bgr(view, fmt, w, h)
            except (ValueError, TypeError):
                # pypylon cannot shape this buffer (a format it does not map, rows padded with
                # PaddingX): the raw bytes at their stride
                stride = w * bytes_per_pixel(fmt) + int(res.PaddingX)
                bgr = to_bgr(np.frombuffer(res.GetBuffer(), np.uint8), fmt, w, h, stride)
            return Grab(None, fmt, w, h, *meta, bgr=bgr)
        finally:
            res.Release()

    def software_trigger(self) -> None:
        p = self.p
        try:
            # a trigger the camera is not ready for is lost (the first one after StartGrabbing, or one
            # during the last frame's readout): wait until it says it is ready, as Basler's samples do
            self.cam.WaitForFrameTriggerReady(int(self.cfg.timeout_s * 1000), p.TimeoutHandling_ThrowException)
            self.cam.ExecuteSoftwareTrigger()
        except self.g.GenericException as e:
            self._check_removed()
            raise CameraUnavailable(f"software trigger failed: {_words(e)}") from None

    def _check_removed(self) -> None:
        if self.gone():
            raise CameraUnavailable("the camera was removed")

    def gone(self) -> bool:
        try:
            return bool(self.cam.IsCameraDeviceRemoved())
        except self.g.GenericException:
            return True

    def close(self, dead: bool = False) -> None:
        try:
            if self.cam.IsGrabbing():
                self.cam.StopGrabbing()
            self.cam.Close()
        except self.g.GenericException:
            pass
        try:
            self.cam.DestroyDevice()
        except self.g.GenericException:
            pass


def _words(e) -> str:
    """pylon's message without the file/line trailer it appends."""
    text = str(e).strip()
    return text.split(" : ")[0] if " : " in text else text


@register("pylon")
class PylonSource(GenicamSource):
    def __init__(self, cfg, data_dir):
        self._mods = _pylon()
        who = cfg.serial or cfg.device_class or "first"
        super().__init__(cfg, f"pylon:{who}")

    def _open_driver(self) -> Driver:
        return PylonDriver(self.cfg, *self._mods)
