"""What a folder source has inspected, kept across restarts: `<data_dir>/inspected/<camera>.jsonl`.

A file is known by its identity (name, size, modification time): a new file under an old name is
a new part. A line `{"file", "size", "mtime_ns", "uid"}` is appended when a frame is handed on to
be judged, before its verdict exists. At the next start a line counts only if that inspection
reached the database or the VLM spool; so a crash at any moment neither inspects a part twice nor
loses one (a frame that never got its verdict is read again). The file is then rewritten with the
lines that count, for files still in the folder."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from inspector.util import durable

log = logging.getLogger(__name__)

Identity = tuple[str, int, int]  # (name, size, mtime_ns)


def identity(path: Path) -> Identity | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return path.name, st.st_size, st.st_mtime_ns


class Inspected:
    def __init__(self, path: Path, judged: Callable[[str], bool], present: Iterable[Identity],
                 fsync: bool = False):
        """`judged(uid)`: that inspection is stored or spooled. `present`: the identities of the
        files in the folder now; lines of files that are gone are dropped."""
        self.path, self.fsync = Path(path), fsync
        durable.makedirs(self.path.parent, sync=fsync)
        present = set(present)
        self.done: set[Identity] = set()
        for rec in self._records():
            ident = (rec["file"], rec["size"], rec["mtime_ns"])
            if ident in present and ("uid" not in rec or judged(rec["uid"])):
                self.done.add(ident)
        self._rewrite()
        self._f = open(self.path, "a", encoding="utf-8")

    def __contains__(self, ident: Identity | None) -> bool:
        return ident in self.done

    def taken(self, ident: Identity, uid: str) -> None:
        """The file went on to be judged as inspection `uid`."""
        name, size, mtime_ns = ident
        self._f.write(json.dumps({"file": name, "size": size, "mtime_ns": mtime_ns, "uid": uid}) + "\n")
        self._f.flush()  # in the page cache: survives a kill -9 of the process
        if self.fsync:  # store.synchronous: full: survives a power cut too
            os.fsync(self._f.fileno())
        self.done.add(ident)

    def close(self) -> None:
        self._f.close()

    def _records(self) -> list[dict]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for n, line in enumerate(lines, 1):
            try:
                rec = json.loads(line)
                str(rec["file"]), int(rec["size"]), int(rec["mtime_ns"])
                out.append(rec)
            except (ValueError, KeyError, TypeError):
                # The last line of a crash can be half written; its file is simply read again.
                log.warning("%s line %d is not a record; ignored", self.path, n)
        return out

    def _rewrite(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for name, size, mtime_ns in sorted(self.done):
                f.write(json.dumps({"file": name, "size": size, "mtime_ns": mtime_ns}) + "\n")
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        tmp.replace(self.path)
        if self.fsync:
            durable.fsync_dir(self.path.parent)
