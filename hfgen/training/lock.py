"""An exclusive lock on an output folder, so that two runs never write one folder (mixed weights and arguments).

The lock is the file ``OUTPUT_DIR/.hfgen.lock`` created with ``O_CREAT | O_EXCL`` (atomic on local and NFSv3+ file
systems), holding ``PID HOSTNAME``. A folder the lock created is removed again on release when nothing else was
written into it (a run refused by validation leaves no trace). A lock whose process is gone (same host, PID not
running) is stale: it is taken over with a warning. A lock held by a process on another host cannot be checked and
is respected.
"""

from __future__ import annotations

import os
import socket
import sys

from hfgen.errors import ConfigurationError, FolderInUseError
from hfgen.output_folder.layout import LOCK


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


class OutputFolderLock:
    """Context manager holding ``folder``'s lock.

    Raises:
        FolderInUseError: another live hfgen process holds it (its PID and host named).
    """

    def __init__(self, folder: str):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, LOCK)
        self.held = False
        self.created_folder = False

    def acquire(self) -> None:
        if os.path.exists(self.folder) and not os.path.isdir(self.folder):
            raise ConfigurationError(f"--output_dir {self.folder} is a file, not a folder; choose another folder")
        self.created_folder = not os.path.exists(self.folder)
        os.makedirs(self.folder, exist_ok=True)
        me = f"{os.getpid()} {socket.gethostname()}"
        for _ in range(3):  # a stale lock removed by a concurrent run is retried, not an error
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    with open(self.path) as handle:
                        pid_text, _, host = handle.read().strip().partition(" ")
                    pid = int(pid_text)
                except (OSError, ValueError):
                    pid, host = None, ""  # unreadable or half-written: stale
                if pid is not None and host and host != socket.gethostname():
                    raise FolderInUseError(
                        f"{self.folder} is in use by hfgen process {pid} on {host}; wait for it to finish, choose "
                        f"another --output_dir, or delete {self.path} if that run is gone"
                    ) from None
                if pid is not None and pid != os.getpid() and _running(pid):
                    raise FolderInUseError(
                        f"{self.folder} is in use by another hfgen run (PID {pid}); wait for it to finish or choose "
                        "another --output_dir"
                    ) from None
                print(f"hfgen: warning: taking over the stale lock of {self.folder} (PID {pid} is not running)",
                      file=sys.stderr)  # fmt: skip
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(me + "\n")
            self.held = True
            return
        raise FolderInUseError(f"could not take the lock {self.path}; another run keeps taking it")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            with open(self.path) as handle:
                mine = handle.read().strip().split(" ")[0] == str(os.getpid())
            if mine:
                os.remove(self.path)
        except OSError:
            pass
        if self.created_folder:  # a run refused before it wrote anything leaves no folder behind
            try:
                os.rmdir(self.folder)  # only succeeds when empty
            except OSError:
                pass

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
        return False


__all__ = ["OutputFolderLock"]
