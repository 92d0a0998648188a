"""A part's identity read from a code printed on it or on its carrier: QR or 1D barcode, with
OpenCV's own detectors, inside a region of the frame when the product names one (cheaper, and
no other code on the fixture is taken for the part's).

What a code says is untrusted input: only printable ASCII without spaces, at most 64 characters,
is taken as a part id; anything else counts as unreadable rather than reaching the database, a
log line or the PLC as it is.
"""

from __future__ import annotations

import re

import cv2
import numpy as np

PART_ID = re.compile(r"^[\x21-\x7e]{1,64}$")


def clean_part_id(text: str | None) -> str | None:
    """A part id as the inspector keeps it, or None for anything it will not take."""
    if text is None:
        return None
    text = text.strip()
    return text if PART_ID.match(text) else None


class PartCodeReader:
    def __init__(self, kind: str, region: tuple[int, int, int, int] | None = None):
        self.kind = kind  # qr / barcode / any
        self.region = region
        # The ArUco-based QR detector: it finds codes the classic one misses on a busy frame.
        self._qr = cv2.QRCodeDetectorAruco() if kind in ("qr", "any") else None
        self._bar = cv2.barcode.BarcodeDetector() if kind in ("barcode", "any") else None
        self.read_count = 0
        self.unreadable = 0  # no code found, or one whose text is not a part id

    def read(self, image: np.ndarray) -> str | None:
        img = image
        if self.region is not None:
            x1, y1, x2, y2 = self.region
            img = image[max(0, y1):max(0, y2), max(0, x1):max(0, x2)]
        if img.size == 0:
            self.unreadable += 1
            return None
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
        found = None
        if self._qr is not None:
            try:
                found = clean_part_id(self._qr.detectAndDecode(gray)[0] or None)
            except cv2.error:
                found = None
        if found is None and self._bar is not None:
            try:
                ok, texts, _, _ = self._bar.detectAndDecodeWithType(gray)
            except cv2.error:
                ok, texts = False, ()
            if ok:
                found = next((t for t in map(clean_part_id, texts) if t), None)
        if found is None:
            self.unreadable += 1
        else:
            self.read_count += 1
        return found
