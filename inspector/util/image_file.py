"""The one way user images are read: the folders a line replays, `detect`, `eval`, `reason` and
both calibrations. A file is refused, with a one-line reason naming it, before it is decoded when
its header claims more pixels than `limits.max_image_pixels`: a few MB of PNG can claim 60000x60000
pixels (a decompression bomb), which OpenCV would try to allocate or fail on with an exception.

The header is read by Pillow (it parses headers without decoding; it is not used to decode), from
the same bytes OpenCV then decodes, so the file cannot change in between. OpenCV's own ceiling
(OPENCV_IO_MAX_IMAGE_PIXELS, set in inspector/__init__.py) is the second line, for a header the
two libraries read differently."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from inspector.errors import InspectorError
from inspector import MAX_IMAGE_PIXELS, opencv_limit

# Not Pillow's own bomb check: our limit is checked on the size it reads, and Pillow never
# decodes here (its check would refuse some sizes the config allows and warn about others).
Image.MAX_IMAGE_PIXELS = None

FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP")  # what OpenCV decodes and the folders replay
# Compressed or not, an image within the limit fits in this many bytes a pixel (16-bit RGBA
# TIFF), plus room for metadata (EXIF, ICC profiles, thumbnails).
BYTES_PER_PIXEL = 8
METADATA_BYTES = 16 << 20


class ImageError(InspectorError, ValueError):
    """A file that was not decoded; the message names the file and why."""


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The file's bytes; refuses what is not a regular file (a directory, a FIFO that would block,
    a symlink loop) or is empty or larger than `max_bytes`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise ImageError(f"{path}: cannot open: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise ImageError(f"{path}: {kind}, not an image")
        if st.st_size == 0:
            raise ImageError(f"{path}: not a readable image (empty file)")
        if st.st_size > max_bytes:
            raise ImageError(f"{path}: {st.st_size} bytes, more than an image within "
                             f"limits.max_image_pixels can take; not read")
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise ImageError(f"{path}: cannot read: {e.strerror}") from None
    if len(data) > max_bytes:  # it grew while we read
        raise ImageError(f"{path}: more than {max_bytes} bytes; not read")
    return data


def header_size(data: bytes, path: Path) -> tuple[int, int]:
    """(width, height) from the header, without decoding the pixels."""
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as im:
            w, h = im.size
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not a readable image (not {', '.join(FORMATS)}, or its header is "
                         f"damaged)") from None
    except Exception as e:  # Pillow's parsers raise what they meet on a hostile header
        raise ImageError(f"{path}: not a readable image (its header is damaged: {type(e).__name__})") from None
    if w <= 0 or h <= 0:
        raise ImageError(f"{path}: not a readable image (header says {w}x{h} pixels)")
    return w, h


def read_image(path, max_pixels: int, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode an image file (BGR, or grey with IMREAD_GRAYSCALE, as cv2.imread would); ImageError
    names the file and the reason for anything not decoded."""
    path = Path(path)
    data = read_bytes(path, max_pixels * BYTES_PER_PIXEL + METADATA_BYTES)
    w, h = header_size(data, path)
    if w * h > max_pixels:
        raise ImageError(f"{path}: the header says {w}x{h} = {w * h} pixels, more than "
                         f"limits.max_image_pixels ({max_pixels}); refused without decoding "
                         f"(a decompression bomb, or raise the limit)")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as e:
        why = (f"more pixels than OPENCV_IO_MAX_IMAGE_PIXELS ({opencv_limit()})"
               if "MAX_IMAGE_PIXELS" in str(e) else "OpenCV could not decode it")
        raise ImageError(f"{path}: not a readable image ({why})") from None
    if img is None or img.size == 0:
        raise ImageError(f"{path}: not a readable image (corrupt or truncated)")
    if img.shape[0] * img.shape[1] > max_pixels:  # a header Pillow read one way and OpenCV another
        raise ImageError(f"{path}: decoded to {img.shape[1]}x{img.shape[0]} pixels, more than its header "
                         f"said and than limits.max_image_pixels ({max_pixels}); refused")
    return img


def image_size(path, max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding it."""
    path = Path(path)
    return header_size(read_bytes(path, (max_pixels or MAX_IMAGE_PIXELS) * BYTES_PER_PIXEL + METADATA_BYTES), path)
