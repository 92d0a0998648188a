"""Machine-vision cameras described by GenICam (GigE Vision, USB3 Vision): what the `aravis` and
`pylon` sources share. A driver module supplies a `Driver` (open, the node map, set, start, grab,
trigger, close); this module does the rest the same way for both:

- the config's `features` are set by their GenICam node names, in the order given, after every one
  was checked against the camera's node map: an unknown node or enumeration value is a SourceError
  naming it and the nearest names the camera has (the camera is not touched then);
- `trigger`: free_run (TriggerMode Off), software (TriggerSource Software: each `read()` fires
  TriggerSoftware and takes that image; the line's software trigger and the PLC ask for it), or
  hardware (TriggerSource `trigger_line`, e.g. a light barrier on Line1: `read()` waits for the part);
- pixel formats to BGR (pixel_formats.py); frame ids and device timestamps on each frame, gaps in the
  frame ids counted as `lost` frames;
- a camera that goes away (no frame within `timeout_s` while it should stream, or the driver says
  the device is gone) is reconnected with LiveSource's backoff, its state in status and metrics.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass

import numpy as np

from inspector.capture.sources import SourceError
from inspector.capture.sources.live import LiveSource
from inspector.capture.sources.pixel_formats import PixelFormatError, check, to_bgr
from inspector.errors import InspectorError

log = logging.getLogger(__name__)
# Ids this far behind the newest are late or repeated frames, not a new acquisition's count.
LATE_WINDOW = 64

TRIGGER_NODES = ("TriggerSelector", "TriggerMode", "TriggerSource", "TriggerActivation")


class CameraUnavailable(InspectorError):
    """The camera cannot be reached now (not found, busy, gone): the source reconnects later (it is
    not raised out of `read()`)."""


@dataclass
class Grab:
    data: np.ndarray | None  # the buffer's bytes (uint8) or the driver's array; None: the frame failed
    pixel_format: str  # PFNC name
    width: int
    height: int
    frame_id: int | None = None
    timestamp: int | None = None  # the camera's clock, in its ticks (ns for most GigE cameras)
    skipped: int = 0  # frames the driver itself says it skipped before this one
    bgr: np.ndarray | None = None  # already converted by the driver (from a view of its buffer)
    stride: int | None = None  # bytes per row when the camera pads rows


class Driver:
    """One opened camera. Every method may raise CameraUnavailable when the link is lost."""

    id_wrap: int | None = None  # frame ids wrap after this value (GigE Vision 1.x: 65535, skipping 0)

    def node_names(self) -> list[str]: ...

    def node_kind(self, name: str) -> str | None:
        """enum, int, float, bool, string or command; None when the camera has no such node."""

    def enum_entries(self, name: str) -> list[str]: ...

    def set(self, name: str, kind: str, value) -> None: ...

    def get_string(self, name: str) -> str: ...

    def start(self) -> None: ...

    def grab(self, timeout_s: float) -> Grab | None:
        """The next frame, or None when none came within timeout_s."""

    def software_trigger(self) -> None: ...

    def gone(self) -> bool:
        """The driver knows the device is lost (heartbeat, removal)."""
        return False

    def close(self, dead: bool = False) -> None:
        """Stop and let go of the camera; `dead`: it stopped answering, so nothing is asked of it
        that would wait out its timeouts on the caller's thread."""


def _value_for(kind: str, value, name: str, camera: str):
    """The config's value as the node takes it. YAML reads Off/On/yes/no as booleans: for an
    enumeration or string node they mean its Off/On entries; a boolean node takes true/false only."""
    if kind in ("enum", "string"):
        return ("On" if value else "Off") if isinstance(value, bool) else str(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "on", "1"):
            return True
        if text in ("false", "off", "0"):
            return False
        raise SourceError(f"camera {camera}: {name} takes true or false, not {value!r}")
    return value


class GenicamSource(LiveSource):
    """A GenICam camera through a `Driver` made by `_open_driver()` (subclasses)."""

    def __init__(self, cfg, name: str):
        super().__init__(cfg, name)
        self.acquires_on_read = cfg.trigger == "software"
        self.lost = 0
        self.last_frame_id: int | None = None
        self.last_timestamp: int | None = None
        self._drv: Driver | None = None
        self._prev_id: int | None = None
        self._gone: set[int] = set()  # ids lately counted lost (a late frame may still come)
        self._connected_once = False

    # --- what a driver module supplies ---------------------------------------------------------

    def _open_driver(self) -> Driver:
        raise NotImplementedError

    # --- connecting -------------------------------------------------------------------------------

    def _settings(self, drv: Driver) -> list[tuple[str, object]]:
        c = self.cfg
        out = list(c.features.items())
        if c.trigger == "free_run":
            # every trigger the camera has off (a user set may have left AcquisitionStart or a burst on)
            if drv.node_kind("TriggerSelector") == "enum":
                for sel in drv.enum_entries("TriggerSelector"):
                    out += [("TriggerSelector", sel), ("TriggerMode", "Off")]
            else:
                out.append(("TriggerMode", "Off"))
            return out
        out.append(("TriggerSelector", "FrameStart"))
        if c.trigger == "software":
            return out + [("TriggerMode", "On"), ("TriggerSource", "Software")]
        out += [("TriggerMode", "On"), ("TriggerSource", c.trigger_line)]
        if drv.node_kind("TriggerActivation") is not None or c.trigger_activation != "RisingEdge":
            out.append(("TriggerActivation", c.trigger_activation))
        return out

    def _check_nodes(self, drv: Driver, settings) -> list[tuple[str, str, object]]:
        """Every node must exist and be settable, checked before anything is set (a typo must not
        leave the camera half configured). Enumeration values are checked when they are set: which
        entries a node offers may depend on a feature set before it."""
        names = None
        out = []
        for name, value in settings:
            kind = drv.node_kind(name)
            if kind is None:
                if name == "TriggerSelector" or (name == "TriggerMode" and value == "Off"):
                    continue  # a camera without triggers free-runs anyway
                names = names if names is not None else drv.node_names()
                near = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
                raise SourceError(f"camera {self.name}: no GenICam node {name!r}"
                                  + (f"; nearest: {', '.join(near)}" if near else "")
                                  + " (`arv-tool-0.8 features` or pylon Viewer list them)")
            if kind == "command":
                raise SourceError(f"camera {self.name}: {name} is a command, not a setting")
            out.append((name, kind, _value_for(kind, value, name, self.name)))
        return out

    def _set(self, drv: Driver, name: str, kind: str, value) -> None:
        if kind == "enum":
            entries = drv.enum_entries(name)
            if value not in entries:
                near = difflib.get_close_matches(str(value), entries, n=3, cutoff=0.3) or entries[:8]
                raise SourceError(f"camera {self.name}: {name} has no value {value!r}; it takes: {', '.join(near)}")
        try:
            drv.set(name, kind, value)
        except (CameraUnavailable, SourceError):
            raise
        except Exception as e:  # the driver's own words: out of range, not writable now
            raise SourceError(f"camera {self.name}: cannot set {name} = {value!r}: {e}") from None

    def connect(self) -> bool:
        """Open the camera and apply its settings without waiting for a frame (a hardware-triggered
        camera sends none until a part passes): what `inspector doctor` checks. False: last_error says why."""
        return self._drv is not None or self._connect()

    def _connect(self) -> bool:
        try:
            drv = self._open_driver()
        except CameraUnavailable as e:
            self._failed(str(e))
            return False
        try:
            for name, kind, value in self._check_nodes(drv, self._settings(drv)):
                self._set(drv, name, kind, value)
            if drv.node_kind("PixelFormat") is not None:
                check(drv.get_string("PixelFormat"))
            drv.start()
        except CameraUnavailable as e:
            drv.close(dead=True)  # it stopped answering while being set up
            self._failed(str(e))
            return False
        except (PixelFormatError, SourceError) as e:
            drv.close()
            if self._connected_once:  # the settings worked before: the camera is in a state, not wrong
                self._failed(str(e))
                return False
            raise SourceError(str(e) if isinstance(e, SourceError) else f"camera {self.name}: {e}") from None
        except Exception as e:  # a driver error we do not know: one line, and try again later
            drv.close()
            self._failed(f"{type(e).__name__}: {e}")
            return False
        self._drv, self._prev_id, self._connected_once = drv, None, True
        self._gone = set()
        if self.state != "connected":
            log.info("camera %s: connected%s", self.name,
                     f" after {self.reconnects} reconnect(s)" if self.reconnects else "")
        self.state, self._delay = "connected", self.cfg.reconnect.initial_s
        return True

    def _release(self) -> None:
        if self._drv is not None:
            drv, self._drv = self._drv, None
            try:
                drv.close(dead=self.state == "reconnecting")
            except Exception as e:  # a dead camera's close may fail too; it is dropped either way
                log.debug("camera %s: close: %s", self.name, e)

    # --- reading ----------------------------------------------------------------------------------

    def read(self):
        timeout = self.cfg.timeout_s
        while not self.stop_event.is_set():
            if self._drv is None and not self._connect():
                continue
            drv = self._drv
            try:
                if self.cfg.trigger == "software":
                    drv.software_trigger()
                g = drv.grab(timeout)
                if g is None and self.cfg.trigger == "hardware":
                    # no part came: normal on a stopped line, unless the device itself is gone
                    if drv.gone():
                        raise CameraUnavailable("the camera stopped answering (control link lost)")
                    continue
                if g is None:
                    raise CameraUnavailable(f"no frame within {timeout:g} s"
                                            + (" of a software trigger" if self.cfg.trigger == "software" else ""))
            except CameraUnavailable as e:
                self.errors += 1
                self._failed(str(e))
                continue
            except PixelFormatError as e:  # a frame in a format the camera should not send now
                self.errors += 1
                log.warning("camera %s: frame dropped: %s", self.name, e)
                continue
            if not self._count_lost(g):
                continue
            if g.data is None and g.bgr is None:  # it came incomplete: that frame is lost, the camera is fine
                self.errors += 1
                self.lost += 1
                continue
            try:
                img = g.bgr if g.bgr is not None else to_bgr(g.data, g.pixel_format, g.width, g.height, g.stride)
            except PixelFormatError as e:
                self.errors += 1
                log.warning("camera %s: frame %s dropped: %s", self.name, g.frame_id, e)
                continue
            self._n += 1
            self.last_frame_id, self.last_timestamp = g.frame_id, g.timestamp
            return img, f"{self.name}#{g.frame_id if g.frame_id is not None else self._n}"
        return None

    def _count_lost(self, g: Grab) -> bool:
        """Count the frames the ids say were lost before this one. False: a late or repeated frame
        (an id just behind the newest seen), dropped without counting: Aravis can close a frame
        made of a stray late packet after newer frames, which would otherwise look like a new
        acquisition and count every frame since as lost. A frame counted lost that turns up whole
        after all is read, and no longer counted lost."""
        self.lost += g.skipped
        fid, prev = g.frame_id, self._prev_id
        if fid is not None and prev is not None and prev - LATE_WINDOW <= fid <= prev:
            if (g.data is not None or g.bgr is not None) and fid in self._gone:
                self._gone.discard(fid)
                self.lost -= 1
                return True
            return False
        self._prev_id = fid
        if fid is None or prev is None:
            return True
        wrap = self._drv.id_wrap if self._drv is not None else None
        if fid > prev:
            gap = fid - prev - 1
        elif wrap and prev > wrap - 1024 and fid < 1024:  # the id wrapped (ids run 1..wrap)
            gap = (wrap - prev) + (fid - 1)
        else:  # the camera restarted its count (a new acquisition)
            gap = 0
        if gap:
            self.lost += gap
            log.debug("camera %s: %d frame(s) lost before frame %d", self.name, gap, fid)
            if fid > prev:  # remembered a while, in case one arrives late
                self._gone = {i for i in self._gone if i > fid - LATE_WINDOW}
                self._gone.update(range(max(prev + 1, fid - LATE_WINDOW), fid))
        return True

    def close(self) -> None:
        self.stop_event.set()
        self._release()
