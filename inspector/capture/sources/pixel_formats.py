"""GenICam pixel formats (PFNC names, as cameras and both drivers report them) to the line's BGR uint8.

Deeper-than-8-bit formats are scaled down by their bit depth, not by the image's range, so a dark
part stays dark. Bayer mosaics are demosaiced by OpenCV, whose pattern names count from the second
row and column: a GenICam BayerRG sensor is OpenCV's BayerBG. Packed formats (Mono12Packed,
Mono10p, ...) are not unpacked here: the driver's own converter or an unpacked PixelFormat on the
camera is the way, and `check` says so when the camera is opened rather than on the first frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from inspector.errors import InspectorError


class PixelFormatError(InspectorError):
    pass


_BAYER_CV = {"RG": cv2.COLOR_BayerBG2BGR, "GR": cv2.COLOR_BayerGB2BGR,
             "GB": cv2.COLOR_BayerGR2BGR, "BG": cv2.COLOR_BayerRG2BGR}
# name -> (layout, channels, bits): layout mono, bayer pattern, rgb or bgr
LAYOUT: dict[str, tuple[str, int, int]] = {f"Mono{b}": ("mono", 1, b) for b in (8, 10, 12, 14, 16)}
LAYOUT |= {f"Bayer{p}{b}": (p, 1, b) for p in _BAYER_CV for b in (8, 10, 12, 16)}
LAYOUT |= {"RGB8": ("rgb", 3, 8), "RGB8Packed": ("rgb", 3, 8), "BGR8": ("bgr", 3, 8), "BGR8Packed": ("bgr", 3, 8),
           "RGBa8": ("rgb", 4, 8), "BGRa8": ("bgr", 4, 8), "BGRA8Packed": ("bgr", 4, 8)}
SUPPORTED = tuple(LAYOUT)

# PFNC codes (GigE Vision / USB3 Vision), for drivers that report a number
PFNC = {0x01080001: "Mono8", 0x01100003: "Mono10", 0x01100005: "Mono12", 0x01100025: "Mono14",
        0x01100007: "Mono16", 0x01080008: "BayerGR8", 0x01080009: "BayerRG8", 0x0108000A: "BayerGB8",
        0x0108000B: "BayerBG8", 0x0110000C: "BayerGR10", 0x0110000D: "BayerRG10", 0x0110000E: "BayerGB10",
        0x0110000F: "BayerBG10", 0x01100010: "BayerGR12", 0x01100011: "BayerRG12", 0x01100012: "BayerGB12",
        0x01100013: "BayerBG12", 0x0110002E: "BayerGR16", 0x0110002F: "BayerRG16", 0x01100030: "BayerGB16",
        0x01100031: "BayerBG16", 0x02180014: "RGB8", 0x02180015: "BGR8", 0x02200016: "RGBa8",
        0x02200017: "BGRa8"}


def name_of(code: int) -> str:
    return PFNC.get(code, f"0x{code:08X}")


def check(pixel_format: str) -> None:
    """Refuses a format this module cannot convert, naming the ones it can."""
    if pixel_format not in LAYOUT:
        raise PixelFormatError(f"pixel format {pixel_format} cannot be converted to BGR here; set the camera's "
                               f"PixelFormat to one of: {', '.join(_offered())}")


def _offered() -> list[str]:
    return ["Mono8", "Mono10", "Mono12", "Mono16", "BayerRG8", "BayerGR8", "BayerGB8", "BayerBG8",
            "BayerRG12", "RGB8", "BGR8"]


def bytes_per_pixel(pixel_format: str) -> int:
    check(pixel_format)
    _, channels, bits = LAYOUT[pixel_format]
    return channels * (1 if bits == 8 else 2)


def to_bgr(raw: np.ndarray, pixel_format: str, width: int, height: int, stride: int | None = None) -> np.ndarray:
    """`raw`: the buffer's bytes as uint8 (or already shaped by the driver); `stride`: bytes per row
    when the camera pads its rows. Returns HxWx3 uint8."""
    check(pixel_format)
    layout, channels, bits = LAYOUT[pixel_format]
    dtype = np.dtype(np.uint8) if bits == 8 else np.dtype("<u2")
    flat = np.ascontiguousarray(raw).view(np.uint8).reshape(-1)
    row = width * channels * dtype.itemsize
    stride = stride or row
    need = stride * (height - 1) + row
    if flat.size < need or stride < row:
        raise PixelFormatError(f"a {pixel_format} frame of {width}x{height} needs {need} bytes, the buffer has "
                               f"{flat.size} (a packed format, or a wrong PixelFormat?)")
    rows = np.lib.stride_tricks.as_strided(flat, (height, row), (stride, 1)) if stride != row else \
        flat[:need].reshape(height, row)
    shape = (height, width, channels) if channels > 1 else (height, width)
    img = np.ascontiguousarray(rows).view(dtype).reshape(shape)
    if bits > 8:  # the deeper formats keep their values in the low bits of 16 (a stray high bit clips)
        img = np.minimum(img >> (bits - 8), 255).astype(np.uint8)
    if layout == "mono":
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if layout in _BAYER_CV:
        return cv2.cvtColor(img, _BAYER_CV[layout])
    if layout == "rgb":
        return cv2.cvtColor(img, cv2.COLOR_RGBA2BGR if channels == 4 else cv2.COLOR_RGB2BGR)
    # always a new array: a driver may hand a view of its own buffer, which it reuses
    return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR) if channels == 4 else img.copy()
