"""The safetensors format, read and written with numpy alone: an 8-byte little-endian header
length, a JSON header naming each tensor's dtype, shape and byte range, then the data. Our own
because the `safetensors` package's numpy API cannot read BF16, which the real checkpoints use,
and the inspector does not otherwise need it."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from inspector.errors import InspectorError

DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64, "I32": np.int32}
MAX_HEADER = 100 * 1024 * 1024


class SafetensorsError(InspectorError):
    pass


def read_header(path: Path) -> tuple[dict, int]:
    """(the tensors' entries, where the data begins)."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise SafetensorsError(f"{path}: not a safetensors file (shorter than its header length)")
        n = struct.unpack("<Q", raw)[0]
        if n > MAX_HEADER:
            raise SafetensorsError(f"{path}: not a safetensors file (header of {n} bytes)")
        try:
            header = json.loads(f.read(n))
        except ValueError as e:
            raise SafetensorsError(f"{path}: unreadable safetensors header: {e}") from None
    header.pop("__metadata__", None)
    return header, 8 + n


def open_lazy(path: Path) -> dict[str, "LazyTensor"]:
    """Every tensor of the file, read only when asked for (a 28B checkpoint does not fit in memory)."""
    header, start = read_header(path)
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, e in header.items():
        if DTYPES.get(e.get("dtype")) is None:
            raise SafetensorsError(f"{path}: tensor {name} has dtype {e.get('dtype')!r}, not one of {sorted(DTYPES)}")
        a, b = e["data_offsets"]
        out[name] = LazyTensor(mm, start + a, start + b, e["dtype"], tuple(e["shape"]))
    return out


class LazyTensor:
    def __init__(self, mm: np.memmap, a: int, b: int, dtype: str, shape: tuple[int, ...]):
        self._mm, self._a, self._b, self.dtype, self.shape = mm, a, b, dtype, shape

    def load(self) -> np.ndarray:
        """A float32 array for BF16 (the top half of a float32) and F16, else the stored type."""
        arr = self._mm[self._a:self._b].view(DTYPES[self.dtype]).reshape(self.shape)
        if self.dtype == "BF16":
            return (arr.astype(np.uint32) << 16).view(np.float32)
        if self.dtype == "F16":
            return arr.astype(np.float32)
        return arr


def load(path: Path) -> dict[str, np.ndarray]:
    """Every tensor as a float32 (BF16 and F16 widened) or integer array."""
    return {name: t.load() for name, t in open_lazy(path).items()}


def save(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Float32 tensors (what the tests' tiny checkpoints need), in name order."""
    header: dict = {"__metadata__": metadata or {"format": "pt"}}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name], dtype=np.float32)
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
        blobs.append(arr)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data then starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for arr in blobs:
            f.write(arr.tobytes())
