"""One server per data directory: an exclusive lock held for the server's life.

Two `pbx serve` on the same data directory would share one database and fight
over `control.json` (the second overwrites it, the first deletes it on exit and
`pbx status` loses both). The server therefore takes `flock(LOCK_EX | LOCK_NB)`
on `serve.lock` in the data directory before it opens anything, writes its PID
into it, and keeps the descriptor open until it stops. The kernel drops the lock
when the process dies, even by kill -9, so a stale lock file never blocks a
restart; a stale `control.json` is recognised by its dead PID (`pid_alive`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from pbx.errors import PbxError

LOCK_NAME = "serve.lock"


class AlreadyRunningError(PbxError):
    """Another server holds the data directory."""


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists (signal 0 checks without sending)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OverflowError:
        return False
    return True


class DataDirLock:
    """The exclusive lock on a data directory (`acquire`, then `release` at stop)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or fail at once.

        Raises:
            AlreadyRunningError: another server holds it (its PID in the message).
            PbxError: the lock file cannot be created.
        """
        if self._fd is not None:
            return
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise PbxError(f"cannot create {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            who = f" (PID {holder})" if holder.isdigit() else ""
            raise AlreadyRunningError(
                f"another pbx server{who} is already serving {self.path.parent};"
                " stop it first or use another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (the file stays: removing it would race a starting server)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the last descriptor releases the flock
        self._fd = None

    def probe(self) -> None:
        """Fail now if another server holds the lock, without keeping it.

        Raises: AlreadyRunningError (see `acquire`).
        """
        self.acquire()
        self.release()
