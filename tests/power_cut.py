"""Power loss, for real enough to test against: a filesystem that forgets what was never synced.

`fs`: a FUSE filesystem over a plain directory (LOWER). Programs on the mount read and write LOWER
as usual, while the filesystem keeps, on the side, what a disk would still hold after the power
went out: a file's contents as of its last fsync/fdatasync, a directory's entries (creations,
renames, removals) as of its last fsync. That is POSIX's promise and no more, the model that crash
consistency checkers (ALICE, LazyFS) hold programs to: ext4 often keeps more, no disk promises it.
When CONTROL/freeze appears, every later operation fails with EIO (the machine has stopped), the
spool's sidecars as programs saw them are written to CONTROL/volatile-spool.json, and CONTROL/frozen
answers. After the unmount, LOWER is rewritten to hold only what was synced: the disk as the next
boot finds it. Everything in LOWER when it was mounted counts as synced.

`line`: boots COMMAND on the mount again and again. Boot K mounts the filesystem (its control
folder CONTROL/boot-K), starts COMMAND and writes CONTROL/up-K. When the test writes CONTROL/cut-K,
it freezes the filesystem, kills COMMAND's process group with SIGKILL, unmounts, lets LOWER be
rewritten and writes CONTROL/down-K; it boots again when CONTROL/power-on-K appears. When COMMAND
ends by itself, it unmounts cleanly and its exit status is ours; on SIGTERM it kills COMMAND and
the filesystem and leaves. Run it inside a private mount namespace (`unshare -rm`), which FUSE
mounts are allowed in.

usage: power_cut.py fs LOWER MOUNT CONTROL
       power_cut.py line LOWER MOUNT CONTROL -- COMMAND...
"""

from __future__ import annotations

import errno
import functools
import itertools
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

_KINDS = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFSOCK: "socket", stat.S_IFIFO: "fifo"}


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks, off = [], 0
    while off < size:
        b = os.pread(fd, min(1 << 20, size - off), off)
        if not b:
            break
        chunks.append(b)
        off += len(b)
    return b"".join(chunks)


class Disk:
    """What survives a power cut: file contents and directory entries, by inode.

    An inode is known by a number of our own, not st_ino: LOWER reuses a freed inode number for
    the next new file, while the disk may still hold the old file under a name never unsynced."""

    def __init__(self, lower: Path):
        self.lower = lower
        self.contents: dict[int, bytes] = {}
        self.entries: dict[int, dict[str, tuple[int, str, int]]] = {}  # dir id -> name -> (id, kind, mode)
        self._ids: dict[int, int] = {}  # st_ino -> our id, while the inode lives in LOWER
        self._next = itertools.count()
        self.root = self.id_of(os.stat(lower).st_ino)
        for d, _dirs, _files in os.walk(lower):
            self.sync_dir(Path(d))
            for name, (_id, kind, _mode) in self.entries[self.id_of(os.stat(d).st_ino)].items():
                if kind == "file":
                    fd = os.open(Path(d) / name, os.O_RDONLY)
                    try:
                        self.sync_file(fd)
                    finally:
                        os.close(fd)

    def id_of(self, ino: int) -> int:
        if ino not in self._ids:
            self._ids[ino] = next(self._next)
        return self._ids[ino]

    def gone(self, st: os.stat_result) -> None:
        """The inode behind `st` lost its last name in LOWER: its number may be reused."""
        if stat.S_ISDIR(st.st_mode) or st.st_nlink <= 1:
            self._ids.pop(st.st_ino, None)

    def sync_file(self, fd: int) -> None:
        # The program's handle may be write-only; this one reads the same inode, linked or not.
        rfd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY)
        try:
            self.contents[self.id_of(os.fstat(rfd).st_ino)] = _read_all(rfd)
        finally:
            os.close(rfd)

    def sync_dir(self, path: Path) -> None:
        listing = {}
        for e in os.scandir(path):
            st = e.stat(follow_symlinks=False)
            kind = _KINDS.get(stat.S_IFMT(st.st_mode))
            if kind is not None:
                listing[e.name] = (self.id_of(st.st_ino), kind, stat.S_IMODE(st.st_mode))
        self.entries[self.id_of(os.stat(path).st_ino)] = listing

    def write_back(self) -> None:
        """Make LOWER what the disk holds: the synced entries with their synced contents."""
        for child in list(self.lower.iterdir()):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

        def build(dir_id: int, at: Path) -> None:
            for name, (id_, kind, mode) in self.entries.get(dir_id, {}).items():
                p = at / name
                if kind == "dir":
                    p.mkdir(mode)
                    build(id_, p)
                elif kind == "file":
                    # An entry whose contents were never synced: the inode is there, its data is not.
                    p.write_bytes(self.contents.get(id_, b""))
                    p.chmod(mode)
                else:
                    os.mknod(p, mode | (stat.S_IFSOCK if kind == "socket" else stat.S_IFIFO))
        build(self.root, self.lower)


def run_fs(lower: Path, mount: Path, control: Path) -> int:
    from mfusepy import FUSE, FuseOSError, Operations

    disk = Disk(lower)
    lock = threading.RLock()
    frozen = threading.Event()

    def op(fn):
        # One operation at a time, so that the freeze falls between two of them, never inside one.
        @functools.wraps(fn)  # mfusepy reads the signature (create with or without flags)
        def wrapped(self, path, *args):
            with lock:
                if frozen.is_set():
                    raise FuseOSError(errno.EIO)
                try:
                    return fn(self, path, *args)
                except OSError as e:
                    raise FuseOSError(e.errno or errno.EIO) from e
        return wrapped

    def full(path: str) -> str:
        return str(lower) + path

    class Forgetful(Operations):
        use_ns = True  # times in nanoseconds, as os.stat gives them

        @op
        def access(self, path, amode):
            if not os.access(full(path), amode):
                raise FuseOSError(errno.EACCES)
            return 0

        @op
        def getattr(self, path, fh=None):
            st = os.fstat(fh) if fh is not None else os.lstat(full(path))
            # Ownership is not modelled: all is ours. (LOWER's group may have no id in a user
            # namespace, and the kernel refuses writes into a folder whose owner has none.)
            return {k: getattr(st, k) for k in ("st_mode", "st_nlink", "st_size", "st_ino")} \
                | {"st_uid": os.getuid(), "st_gid": os.getgid(),
                   "st_atime": st.st_atime_ns, "st_mtime": st.st_mtime_ns, "st_ctime": st.st_ctime_ns}

        @op
        def chmod(self, path, mode):
            os.chmod(full(path), mode)
            return 0

        @op
        def chown(self, path, uid, gid):
            return 0  # see getattr

        @op
        def utimens(self, path, times=None):
            os.utime(full(path), ns=times)
            return 0

        @op
        def truncate(self, path, length, fh=None):
            if fh is not None:
                os.ftruncate(fh, length)
            else:
                os.truncate(full(path), length)
            return 0

        @op
        def create(self, path, mode, flags):
            return os.open(full(path), flags | os.O_CREAT, mode)

        @op
        def open(self, path, flags):
            return os.open(full(path), flags)

        @op
        def read(self, path, size, offset, fh):
            return os.pread(fh, size, offset)

        @op
        def write(self, path, data, offset, fh):
            return os.pwrite(fh, data, offset)

        @op
        def flush(self, path, fh):
            return 0

        def release(self, path, fh):
            os.close(fh)  # also after the freeze: the dead program's handles go away
            return 0

        @op
        def fsync(self, path, datasync, fh):
            disk.sync_file(fh)
            return 0

        @op
        def fsyncdir(self, path, datasync, fh):
            disk.sync_dir(Path(full(path)))
            return 0

        @op
        def opendir(self, path):
            if not os.path.isdir(full(path)):
                raise FuseOSError(errno.ENOTDIR)
            return 0

        @op
        def readdir(self, path, fh):
            return [".", ".."] + os.listdir(full(path))

        @op
        def mkdir(self, path, mode):
            os.mkdir(full(path), mode)
            return 0

        @op
        def rmdir(self, path):
            return self._remove(path, os.rmdir)

        @op
        def mknod(self, path, mode, dev):
            os.mknod(full(path), mode, dev)
            return 0

        @op
        def unlink(self, path):
            return self._remove(path, os.unlink)

        def _remove(self, path, remove):
            st = os.lstat(full(path))
            remove(full(path))
            disk.gone(st)
            return 0

        @op
        def rename(self, old, new):
            try:
                replaced = os.lstat(full(new))
            except FileNotFoundError:
                replaced = None
            os.rename(full(old), full(new))
            if replaced is not None and replaced.st_ino != os.lstat(full(new)).st_ino:
                disk.gone(replaced)
            return 0

        @op
        def statfs(self, path):
            sv = os.statvfs(full(path))
            return {k: getattr(sv, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                                                "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}

    def watch() -> None:
        while not (control / "freeze").exists():
            time.sleep(0.005)
        with lock:
            frozen.set()
            spool = lower / "vlm-spool"
            seen = sorted(p.name for p in spool.glob("*.json")) if spool.is_dir() else []
            (control / "volatile-spool.json").write_text(json.dumps(seen))
        (control / "frozen").write_text("")

    threading.Thread(target=watch, daemon=True).start()
    FUSE(Forgetful(), str(mount), foreground=True)
    if frozen.is_set():
        disk.write_back()
    return 0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def run_line(lower: Path, mount: Path, control: Path, command: list[str]) -> int:
    running: dict[str, subprocess.Popen] = {}

    def stop(_sig, _frame):  # the test gave up: leave no program or mount behind
        child = running.get("child")
        if child is not None and child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
        if running.get("fs") is not None:
            running["fs"].kill()
        os._exit(143)
    signal.signal(signal.SIGTERM, stop)

    for boot in range(1000):
        ctl = control / f"boot-{boot}"
        ctl.mkdir()
        fs = running["fs"] = subprocess.Popen([sys.executable, __file__, "fs", str(lower), str(mount), str(ctl)])
        deadline = time.monotonic() + 30
        while not os.path.ismount(mount):
            if fs.poll() is not None or time.monotonic() > deadline:
                print(f"power_cut: the filesystem did not mount (exit {fs.poll()})", file=sys.stderr)
                fs.kill()
                return 70
            time.sleep(0.01)
        child = running["child"] = subprocess.Popen(command, start_new_session=True)
        (control / f"up-{boot}").write_text(str(child.pid))
        while child.poll() is None and not (control / f"cut-{boot}").exists():
            time.sleep(0.005)
        cut = child.poll() is None
        if cut:
            (ctl / "freeze").write_text("")
            while not (ctl / "frozen").exists():
                time.sleep(0.002)
            os.killpg(child.pid, signal.SIGKILL)  # the power is out for the whole machine
        child.wait()
        while cut and _group_alive(child.pid):
            time.sleep(0.01)
        subprocess.run(["umount", str(mount)], check=True)
        fs.wait(60)
        if not cut:
            return child.returncode
        (control / f"down-{boot}").write_text("")
        while not (control / f"power-on-{boot}").exists():  # the test looks at the disk meanwhile
            time.sleep(0.01)
    return 70


def main() -> int:
    mode = sys.argv[1]
    if mode == "fs":
        lower, mount, control = (Path(a) for a in sys.argv[2:5])
        return run_fs(lower, mount, control)
    sep = sys.argv.index("--")
    lower, mount, control = (Path(a) for a in sys.argv[2:sep])
    return run_line(lower, mount, control, sys.argv[sep + 1:])


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
