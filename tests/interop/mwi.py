"""A real MWI subscriber for tests: sipp watching one mailbox on 127.0.0.1.

sipp runs `tests/data/sipp/mwi_subscribe.xml`: it SUBSCRIBEs to `message-summary`
for the user's own box, answers the 401 digest challenge, answers every NOTIFY
with 200 and stays subscribed until told to stop, then unsubscribes (Expires: 0)
and answers the final NOTIFY. What sipp received is read back from its message
trace (the exact bytes, parsed with the project's parser), so a test sees each
NOTIFY as the phone saw it.

Use it from an async test (the switch may run in the same event loop; nothing
here blocks it)::

    async with mwi_subscriber("1001", PASSWORD, server.sip_port, tmp_path / "mwi") as phone:
        # entering waits for the first NOTIFY (the box as it is now)
        await phone.wait_for(new=1, old=0)      # light on: "Messages-Waiting: yes",
                                                # "Voice-Message: 1/0"
        ...                                      # delete the message
        await phone.wait_for(new=0)             # light off again
    # leaving unsubscribes; `phone.exit_code` is 0 when sipp saw the final NOTIFY

API:

- `mwi_subscriber(user, password, server_port, workdir, *, expires=3600,
  lifetime=300, first_timeout=15)`: async context manager. Starts sipp, waits
  (bounded by `first_timeout`) for the first NOTIFY, yields the `MwiSubscriber`,
  and on the way out unsubscribes (`stop()`), killing sipp if it does not finish.
- `MwiSubscriber.wait_for(*, new=None, old=None, waiting=None, state=None,
  timeout=15.0) -> Notify`: the next NOTIFY, after the one the previous
  `wait_for` returned, whose body has these values (None: any) and whose
  Subscription-State starts with `state`. NOTIFYs in between are skipped, so a
  sequence up/down/up over half a minute is followed in order. Fails the test
  (pytest.fail, with sipp's trace tail) on timeout or when sipp has exited.
- `MwiSubscriber.initial`: the NOTIFY that came with the subscription.
- `MwiSubscriber.notifies() -> list[Notify]`: every NOTIFY received so far;
  `received()`: every message (the 401 and 200 to the SUBSCRIBEs too).
- `MwiSubscriber.latest() -> Notify | None`: the last one.
- `await MwiSubscriber.stop(timeout=15.0) -> int`: unsubscribe and wait for sipp
  to exit; returns (and keeps in `exit_code`) its exit status, 0 when the
  unsubscription and its final NOTIFY went through.
- `Notify`: `summary` (`pbx.mwi.MessageSummary`: waiting, new, old, account),
  `state` (Subscription-State), `request` (the parsed `sip.message.Request`),
  `raw` (the bytes as received).

Blocking twins for sync tests whose switch runs in another process:
`launch()`, `wait_for_blocking(...)`, `stop_blocking(timeout)`.

How "stop" works: the scenario waits for NOTIFYs with an optional OPTIONS beside
them; the helper sends sipp one OPTIONS carrying the dialog's Call-ID (fixed with
-cid_str), which sends the scenario to its unsubscribe branch.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pbx.mwi import MessageSummary
from sip.errors import SipParseError
from sip.message import Request, Response, parse_message
from tests.interop.peers import DATA, free_port, need

SCENARIO = DATA / "sipp" / "mwi_subscribe.xml"

_RECEIVED = re.compile(rb"\n(?:UDP|TCP) message received \[(\d+)\] bytes :\n\n")
_POLL = 0.05  # how often the trace is read while waiting (the bound is the timeout)


@dataclass(frozen=True)
class Notify:
    """One NOTIFY as the subscriber received it."""

    raw: bytes
    request: Request
    summary: MessageSummary

    @property
    def state(self) -> str:
        return self.request.headers.get("Subscription-State") or ""

    def matches(
        self,
        new: int | None = None,
        old: int | None = None,
        waiting: bool | None = None,
        state: str | None = None,
    ) -> bool:
        s = self.summary
        return (
            (new is None or s.new == new)
            and (old is None or s.old == old)
            and (waiting is None or s.waiting == waiting)
            and (state is None or self.state.startswith(state))
        )


class MwiSubscriber:
    """sipp subscribed to `user`'s mailbox at 127.0.0.1:`server_port`."""

    def __init__(
        self,
        user: str,
        password: str,
        server_port: int,
        workdir: Path,
        *,
        expires: int = 3600,
        lifetime: int = 300,
    ) -> None:
        self.user = user
        self.password = password
        self.server_port = server_port
        self.workdir = workdir
        self.expires = expires
        self.lifetime = lifetime
        self.port = 0
        self.call_id = f"mwi-{secrets.token_hex(6)}-1@127.0.0.1"
        self.trace = workdir / "mwi_messages.log"
        self.exit_code: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._cursor = 0  # NOTIFYs before this index were passed by wait_for
        #: The NOTIFY that came at once with the subscription (set by `mwi_subscriber`).
        self.initial: Notify | None = None

    # -- starting and stopping ------------------------------------------------------

    def launch(self) -> None:
        """Start sipp (it subscribes at once); does not wait for anything."""
        sipp = need("sipp")
        self.workdir.mkdir(parents=True, exist_ok=True)
        users = self.workdir / "mwi_users.csv"
        auth = f"[authentication username={self.user} password={self.password}]"
        users.write_text(f"SEQUENTIAL\n{self.user};{auth}\n")
        self.port = free_port()
        cid_prefix = self.call_id.split("-1@", 1)[0]
        args = [
            sipp, f"127.0.0.1:{self.server_port}", "-sf", str(SCENARIO),
            "-i", "127.0.0.1", "-p", str(self.port), "-t", "u1", "-m", "1",
            "-inf", str(users), "-key", "expires", str(self.expires),
            # The digest-uri must be the Request-URI (RFC 7616 §3.4.6).
            "-auth_uri", f"{self.user}@127.0.0.1:{self.server_port}",
            "-cid_str", f"{cid_prefix}-%u@%s",
            "-timeout", f"{self.lifetime}s", "-timeout_error", "-nostdin",
            "-trace_msg", "-message_file", str(self.trace),
            "-trace_err", "-error_file", str(self.workdir / "mwi_errors.log"),
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            args, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def _poke(self) -> None:
        """Send the OPTIONS that sends the scenario to its unsubscribe branch."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            here = sock.getsockname()[1]
            message = (
                f"OPTIONS sip:{self.user}@127.0.0.1:{self.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{here};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:test@127.0.0.1:{here}>;tag={secrets.token_hex(4)}\r\n"
                f"To: <sip:{self.user}@127.0.0.1:{self.port}>\r\n"
                f"Call-ID: {self.call_id}\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            sock.sendto(message.encode(), ("127.0.0.1", self.port))

    async def stop(self, timeout: float = 15.0) -> int:
        """Unsubscribe and wait (bounded) for sipp to finish; returns its exit status."""
        if self._proc is None:
            return self.exit_code if self.exit_code is not None else -1
        if self._proc.poll() is None:
            self._poke()
            deadline = time.monotonic() + timeout
            while self._proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(_POLL)
        return self._reap()

    def stop_blocking(self, timeout: float = 15.0) -> int:
        """`stop` for a switch in another process."""
        if self._proc is None:
            return self.exit_code if self.exit_code is not None else -1
        if self._proc.poll() is None:
            self._poke()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout)
        return self._reap()

    def kill(self) -> None:
        """End sipp at once (no unsubscription)."""
        self._reap()

    def _reap(self) -> int:
        proc = self._proc
        assert proc is not None
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        self.exit_code = proc.returncode
        return proc.returncode

    # -- what was received -------------------------------------------------------

    def received(self) -> list[Request | Response]:
        """Every complete message sipp received so far (responses too), in order."""
        return [message for _, message in self._received()]

    def _received(self) -> list[tuple[bytes, Request | Response]]:
        try:
            data = self.trace.read_bytes()
        except FileNotFoundError:
            return []
        found: list[tuple[bytes, Request | Response]] = []
        for match in _RECEIVED.finditer(data):
            size = int(match.group(1))
            raw = data[match.end() : match.end() + size]
            if len(raw) < size:
                break  # still being written
            try:
                found.append((raw, parse_message(raw)))
            except SipParseError as exc:
                pytest.fail(f"subscriber got an unreadable message ({exc.reason}):\n{raw!r}")
        return found

    def notifies(self) -> list[Notify]:
        """Every complete NOTIFY received so far, in order."""
        found: list[Notify] = []
        for raw, message in self._received():
            if isinstance(message, Request) and message.method == "NOTIFY":
                try:
                    summary = MessageSummary.parse(message.body)
                except SipParseError as exc:
                    pytest.fail(f"NOTIFY with a bad body ({exc.reason}):\n{bytes(message)!r}")
                found.append(Notify(raw, message, summary))
        return found

    def latest(self) -> Notify | None:
        found = self.notifies()
        return found[-1] if found else None

    def _find(
        self, new: int | None, old: int | None, waiting: bool | None, state: str | None
    ) -> Notify | None:
        found = self.notifies()
        for index in range(self._cursor, len(found)):
            if found[index].matches(new, old, waiting, state):
                self._cursor = index + 1
                return found[index]
        return None

    def _give_up(self, timeout: float, wanted: str) -> None:
        tail = ""
        with contextlib.suppress(FileNotFoundError):
            tail = self.trace.read_bytes()[-4000:].decode(errors="replace")
        exited = self._proc is not None and self._proc.poll() is not None
        why = "sipp exited" if exited else f"timed out after {timeout:.0f} s"
        pytest.fail(f"MWI subscriber {self.user}: {why} waiting for a NOTIFY {wanted}\n{tail}")

    async def wait_for(
        self,
        *,
        new: int | None = None,
        old: int | None = None,
        waiting: bool | None = None,
        state: str | None = None,
        timeout: float = 15.0,
    ) -> Notify:
        """The next NOTIFY with these counts (see the module docstring); bounded."""
        deadline = time.monotonic() + timeout
        while True:
            found = self._find(new, old, waiting, state)
            if found is not None:
                return found
            if time.monotonic() > deadline or (self._proc and self._proc.poll() is not None):
                self._give_up(timeout, _wanted(new, old, waiting, state))
            await asyncio.sleep(_POLL)

    def wait_for_blocking(
        self,
        *,
        new: int | None = None,
        old: int | None = None,
        waiting: bool | None = None,
        state: str | None = None,
        timeout: float = 15.0,
    ) -> Notify:
        """`wait_for` for a switch in another process."""
        deadline = time.monotonic() + timeout
        while True:
            found = self._find(new, old, waiting, state)
            if found is not None:
                return found
            if time.monotonic() > deadline or (self._proc and self._proc.poll() is not None):
                self._give_up(timeout, _wanted(new, old, waiting, state))
            time.sleep(_POLL)


def _wanted(new: int | None, old: int | None, waiting: bool | None, state: str | None) -> str:
    parts = []
    if waiting is not None:
        parts.append(f"Messages-Waiting: {'yes' if waiting else 'no'}")
    if new is not None or old is not None:
        parts.append(f"Voice-Message: {'*' if new is None else new}/{'*' if old is None else old}")
    if state is not None:
        parts.append(f"Subscription-State: {state}…")
    return ", ".join(parts) or "(any)"


@contextlib.asynccontextmanager
async def mwi_subscriber(
    user: str,
    password: str,
    server_port: int,
    workdir: Path,
    *,
    expires: int = 3600,
    lifetime: int = 300,
    first_timeout: float = 15.0,
) -> AsyncIterator[MwiSubscriber]:
    """A subscribed sipp MWI phone (see the module docstring); unsubscribes on exit."""
    phone = MwiSubscriber(user, password, server_port, workdir, expires=expires, lifetime=lifetime)
    phone.launch()
    try:
        phone.initial = await phone.wait_for(state="active", timeout=first_timeout)
        yield phone
    finally:
        await phone.stop()
