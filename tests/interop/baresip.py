"""Driving baresip (Debian baresip-core 1.0.0 on libre 1.1.0) headless in interop tests.

What was learned getting it to register (checked on these machines):

- "reg: ...: Register: Function not implemented" is not a config problem. baresip does
  send its REGISTER (strace: one `sendto` to the registrar) and gets our 401. libre 1.1.0's
  `sip_auth_authenticate()` (re src/sip/auth.c, `auth_handler`) walks *every*
  WWW-Authenticate / Proxy-Authenticate header and aborts the whole challenge with ENOSYS
  as soon as one names an algorithm other than MD5. Offering two challenges
  (MD5 and SHA-256, RFC 8760) makes libre 1.1.0 give up in either order and never send
  credentials; that is why `pbx serve` offers MD5 alone unless told `--digest`.
  Missing modules (contact, stun, ice, uuid), `sip_transports`, `dns_server`
  or the unreachable resolver in /etc/resolv.conf play no part: the registrar is an IP
  address, so no DNS query is made. Newer re (with SHA-256) still fails on any other
  algorithm such as SHA-512-256.
- Against a server offering MD5 only, the same config registers at once
  (`1001@127.0.0.1: {0/UDP/v4} 200 OK () [1 binding]`).
- Config that works: `sip_listen 127.0.0.1:PORT` (it also opens TLS on PORT+1, so keep
  phones 2 ports apart), `net_interface 127.0.0.1`, modules g711 + aufile (+ sndfile with
  `snd_path DIR` to dump each call's decoded and encoded audio), `module_app account.so`
  and `menu.so`. Run as `baresip -4 -f CONFDIR`. The aufile source (8 kHz mono S16 WAV)
  hangs the call up when the file ends; for an endless tone use ausine, which makes only
  48 kHz stereo: without `ausrc_srate 48000` + `ausrc_channels 2` the answering side fails
  ("start_source failed ... Operation not supported") and the call never establishes.
- Account line: `<sip:USER@127.0.0.1:PORT;transport=udp>;auth_pass=SECRET;regint=N`
  and `;answermode=auto` to answer calls by itself. The contact it registers is
  `<sip:USER-0x...@127.0.0.1:SIP_PORT>`; its User-Agent is `baresip v1.0.0 (...)`.
- Remote control: `module_app ctrl_tcp.so` + `ctrl_tcp_listen 127.0.0.1:PORT`. Frames are
  netstrings (`LEN:JSON,`). A command is `{"command": "dial", "params": "sip:...",
  "token": "1"}` (menu's command names, no slash); the answer is `{"response": true,
  "ok": ..., "data": "...", "token": "1"}`; events (`{"event": true, "type":
  "REGISTER_OK", ...}`, CALL_ESTABLISHED, CALL_CLOSED ...) arrive unasked.
- It writes its log to stdout with ANSI colour codes, unbuffered; SIGTERM unregisters
  and exits, a second SIGTERM skips the unregistration (needed when the server is gone).
- DTMF: menu's `sndcode DIGITS` (ctrl_tcp `{"command": "sndcode", "params": "12#", ...}`)
  sends each key as RFC 4733 telephone-events on the call's RTP stream (payload type
  101, offered by default as `telephone-event/8000` with `fmtp 0-15`): a marked first
  packet, 160-sample duration steps up to 1440, three end packets, each key on its own
  timestamp; it logs `audio: send DTMF digit: '1'` per key and `... digit end: '#'` for
  the release after the last. The command exists only once a call has been up (before,
  "command not found"); after the call it still answers ok without sending anything.
- sndfile's dumps are written as the call goes, with the data chunk's size left 0 until
  the call ends. Only received packets are written (no silence while the peer sends
  nothing), and the jitter buffer holds the last ~100 ms of a burst until more arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from media.wav import WavError, parse_wav, resample, to_int16
from tests.interop.peers import free_port, need, wait_for

MODULE_PATH = Path("/usr/lib/baresip/modules")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CHALLENGE = re.compile(rb"^(www|proxy)-authenticate\s*:", re.IGNORECASE)
_ALGORITHM = re.compile(rb"algorithm\s*=\s*\"?([A-Za-z0-9-]+)", re.IGNORECASE)
DTMF_KEYS = frozenset("0123456789*#ABCD")


class _Waiter:
    """Items appended by a reader thread, and bounded waits for one that matches."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.closed = False
        self._cond = threading.Condition()

    def append(self, item: Any) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def close(self) -> None:
        """No more items will come (the process or connection is gone)."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def wait(self, match: Callable[[Any], Any], start: int, timeout: float) -> tuple[int, Any]:
        """(index, match result) of the first item from `start` on that matches, or (-1, None)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index in range(start, len(self.items)):
                    found = match(self.items[index])
                    if found:
                        return index, found
                start = len(self.items)
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return -1, None
                self._cond.wait(left)


class Baresip:
    """One baresip phone on 127.0.0.1 with a generated CONFDIR under `workdir`.

    Its stdout (colour codes stripped) is collected line by line in `lines`; with
    `control=True` the ctrl_tcp connection collects events in `events` and takes commands.

    Without `source_wav` it sends ausine's endless sine at `tone_hz` (10 to 20000 Hz, the
    range ausine accepts), so phones in one call can be told apart by their tones.

    `mwi=True` loads baresip's mwi module (it subscribes to its message summary and
    reports MWI_NOTIFY events); baresip 1.0's module can loop after REGISTER_OK on a
    loaded machine, so no CI test relies on it.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        user: str,
        password: str,
        registrar_port: int,
        regint: int = 60,
        auto_answer: bool = False,
        source_wav: Path | None = None,
        tone_hz: int = 440,
        record_wav: Path | None = None,
        dump_calls: bool = False,
        control: bool = True,
        mwi: bool = False,
    ) -> None:
        self.workdir = workdir
        self.user = user
        self.sip_port = free_port(2)  # sip_listen also opens TLS on port + 1
        self.ctrl_port = free_port() if control else None
        self.lines = _Waiter()
        self.events = _Waiter()
        self._responses = _Waiter()
        self._tokens = itertools.count(1)
        if not 10 <= tone_hz <= 20000:
            raise ValueError(f"ausine makes 10 to 20000 Hz, not {tone_hz}")
        self.tone_hz = tone_hz
        self._proc: subprocess.Popen[bytes] | None = None
        self._ctrl: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._write_config(
            password, registrar_port, regint, auto_answer, source_wav, record_wav, dump_calls, mwi
        )

    def _write_config(
        self,
        password: str,
        registrar_port: int,
        regint: int,
        auto_answer: bool,
        source_wav: Path | None,
        record_wav: Path | None,
        dump_calls: bool,
        mwi: bool,
    ) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        modules = ["g711.so", "aufile.so"]
        if source_wav is None:
            modules.append("ausine.so")
        if dump_calls:
            modules.append("sndfile.so")
        player = record_wav or self.workdir / "played.wav"
        config = [
            f"sip_listen 127.0.0.1:{self.sip_port}",
            "net_interface 127.0.0.1",
            f"module_path {MODULE_PATH}",
            *(f"module {name}" for name in modules),
            f"audio_source {f'aufile,{source_wav}' if source_wav else f'ausine,{self.tone_hz}'}",
            f"audio_player aufile,{player}",
            "module_app account.so",
            "module_app menu.so",
            *(["module_app mwi.so"] if mwi else []),
        ]
        if source_wav is None:
            config += ["ausrc_srate 48000", "ausrc_channels 2"]  # all ausine can make
        if dump_calls:
            config.append(f"snd_path {self.workdir}")
        if self.ctrl_port is not None:
            config += ["module_app ctrl_tcp.so", f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}"]
        (self.workdir / "config").write_text("\n".join(config) + "\n")
        account = (
            f"<sip:{self.user}@127.0.0.1:{registrar_port};transport=udp>"
            f";auth_pass={password};regint={regint}"
        )
        if auto_answer:
            account += ";answermode=auto"
        (self.workdir / "accounts").write_text(account + "\n")
        (self.workdir / "contacts").write_text("")

    def __enter__(self) -> Baresip:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Baresip:
        """Started in a thread: a switch on this event loop stays free to answer it."""
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Stopped in a thread too: baresip unregisters as it stops, and a switch on this
        # loop could not answer that while the loop waited (5 s, then a second SIGTERM).
        await asyncio.to_thread(self.stop)

    def wait_registered(self, timeout: float = 15) -> None:
        """Wait until baresip logs its registration's 200 OK (the REGISTER_OK event may
        come before the ctrl_tcp link is up, and be missed)."""
        self.wait_for_output(r"200 OK .*\[1 binding\]", timeout)

    def start(self) -> None:
        """Start baresip and wait until it is ready (and its control port answers)."""
        binary = need("baresip")
        self._proc = subprocess.Popen(
            [binary, "-4", "-f", str(self.workdir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._spawn(self._read_output)
        self.wait_for_output(r"baresip is ready\.", 10)
        if self.ctrl_port is not None:
            wait_for(self._connect_ctrl, 10, "baresip's ctrl_tcp port")
            self._spawn(self._read_ctrl)

    def _spawn(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=f"baresip-{self.user}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _read_output(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            self.lines.append(_ANSI.sub("", raw.decode(errors="replace")).rstrip("\r\n"))
        self.lines.close()

    def _connect_ctrl(self) -> bool:
        try:
            self._ctrl = socket.create_connection(("127.0.0.1", self.ctrl_port or 0), timeout=1)
        except OSError:
            return False
        self._ctrl.settimeout(None)
        return True

    def _read_ctrl(self) -> None:
        sock = self._ctrl  # stop() clears the attribute while this thread may still read
        assert sock is not None
        buffer = b""
        while chunk := _recv(sock):
            buffer += chunk
            while (colon := buffer.find(b":")) > 0:
                end = colon + 1 + int(buffer[:colon])
                if len(buffer) <= end:  # wait for the rest and the closing ","
                    break
                message = json.loads(buffer[colon + 1 : end])
                buffer = buffer[end + 1 :]
                (self._responses if message.get("response") else self.events).append(message)
        self._responses.close()
        self.events.close()

    @property
    def output(self) -> str:
        return "\n".join(self.lines.items)

    def wait_for_output(self, pattern: str, timeout: float, start: int = 0) -> re.Match[str]:
        """The first output line from index `start` on matching `pattern`; fails the test
        after `timeout` seconds (or as soon as baresip has exited without printing it)."""
        regex = re.compile(pattern)
        _, found = self.lines.wait(regex.search, start, timeout)
        if found is None:
            pytest.fail(f"baresip printed no line matching {pattern!r}:\n{self.output[-3000:]}")
        return found  # type: ignore[no-any-return]

    def count_output(self, pattern: str) -> int:
        regex = re.compile(pattern)
        return sum(1 for line in self.lines.items if regex.search(line))

    def command(self, name: str, params: str = "", timeout: float = 5) -> dict[str, Any]:
        """Run a menu command (`dial`, `hangup`, `reginfo`, ...) over ctrl_tcp; its response."""
        if self._ctrl is None:
            raise RuntimeError("this phone was started without control=True")
        token = str(next(self._tokens))
        payload = json.dumps(
            {"command": name.lstrip("/"), "params": params, "token": token}
        ).encode()
        self._ctrl.sendall(b"%d:%s," % (len(payload), payload))
        _, found = self._responses.wait(
            lambda m: m if m.get("token") == token else None, 0, timeout
        )
        if found is None:
            pytest.fail(f"no ctrl_tcp response to {name!r} within {timeout} s")
        return found  # type: ignore[no-any-return]

    def wait_for_event(self, kind: str, timeout: float, start: int = 0) -> dict[str, Any]:
        """The first ctrl_tcp event of type `kind` (e.g. "CALL_ESTABLISHED") from `start`."""
        _, found = self.events.wait(lambda e: e if e.get("type") == kind else None, start, timeout)
        if found is None:
            seen = [e.get("type") for e in self.events.items]
            pytest.fail(f"no {kind} event from baresip within {timeout} s; saw {seen}")
        return found  # type: ignore[no-any-return]

    def send_digits(self, digits: str, timeout: float = 5) -> None:
        """Press `digits` in the current call: RFC 4733 telephone-events (menu's `sndcode`).

        Returns once baresip has logged every key and the release; the packets of each
        key then go out over ~0.2 s. Fails the test if it is not in a call.
        """
        if not digits or not set(digits) <= DTMF_KEYS:
            raise ValueError(f"not DTMF keys: {digits!r}")
        start = len(self.lines.items)
        answer = self.command("sndcode", digits, timeout)
        if not answer.get("ok"):
            pytest.fail(f"baresip refused sndcode {digits!r}: {answer.get('data')!r}")
        logged = [f"digit: '{d}'" for d in digits] + [f"digit end: '{digits[-1]}'"]
        for text in logged:
            regex = re.compile(re.escape(f"send DTMF {text}"))
            index, _ = self.lines.wait(regex.search, start, timeout)
            if index < 0:
                pytest.fail(f"baresip did not send DTMF {digits!r}:\n{self.output[-3000:]}")
            start = index + 1

    def received_audio(self, rate: int = 8000) -> npt.NDArray[np.int16]:
        """What the phone has decoded so far in its latest call (sndfile's `-dec.wav`
        dump, which needs `dump_calls=True`), as mono samples at `rate`; empty before
        the dump has a header. A dump still being written declares a data size of 0:
        that is read as "up to the end of the file"."""
        dumps = sorted(self.workdir.glob("dump-*-dec.wav"))
        if not dumps:
            return np.zeros(0, np.int16)
        data = bytearray(dumps[-1].read_bytes())
        at = data.find(b"data", 12)
        if at > 0 and len(data) >= at + 8 and data[at + 4 : at + 8] == bytes(4):
            data[at + 4 : at + 8] = b"\xff\xff\xff\xff"
        try:
            audio = parse_wav(bytes(data))
        except WavError:
            return np.zeros(0, np.int16)  # not even a whole header yet
        return to_int16(resample(audio.samples.mean(axis=1), audio.rate, rate))

    def stop(self) -> None:
        """SIGTERM (it unregisters), a second SIGTERM if that hangs, SIGKILL as the last resort."""
        if self._ctrl is not None:
            with contextlib.suppress(OSError):
                self._ctrl.shutdown(socket.SHUT_RDWR)
            self._ctrl.close()
            self._ctrl = None
        proc, self._proc = self._proc, None
        if proc is not None:
            for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
                if proc.poll() is not None:
                    break
                proc.send_signal(sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
            proc.wait(5)
        for thread in self._threads:
            thread.join(5)
        self._threads.clear()


@contextlib.asynccontextmanager
async def registered(phones: Sequence[Baresip], timeout: float = 15) -> AsyncIterator[None]:
    """Start `phones` and wait until each has registered (by its log line: the
    REGISTER_OK event can come before the ctrl_tcp link is up); stop them all on the
    way out. Both run in threads, so that a switch on this event loop can answer their
    REGISTERs (and the unregistration as they stop)."""
    async with contextlib.AsyncExitStack() as stack:
        for phone in phones:
            stack.push_async_callback(asyncio.to_thread, phone.stop)
            await asyncio.to_thread(phone.start)
        for phone in phones:
            await asyncio.to_thread(phone.wait_registered, timeout)
        yield


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""
