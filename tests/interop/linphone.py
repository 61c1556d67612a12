"""Driving Linphone (Debian linphone-cli 5.1.65) headless in interop tests.

Facts checked on these machines, beyond ../shared/peers/linphone.md:

- `linphonec` reads its commands from stdin when stdin is a pipe, so each phone is
  its own child process with its own pipes: no `linphonecsh`, whose one socket per
  user (/tmp/linphonec-UID) would let two phones, or two tests running in parallel
  (pytest-xdist), drive each other's process.
- readline echoes each command as `linphonec> COMMAND`; when a state line is printed
  between the prompt and the echo, the prompt ends that line and COMMAND stands alone.
  Without a terminal readline assumes 80 columns and scrolls longer lines (a long
  `play /tmp/...wav` comes back as `<...` fragments): COLUMNS=4096 in its environment.
- Its stdout is block-buffered into a pipe: it runs under `stdbuf -oL` so the state
  lines arrive as they happen: `Call N with URI connected.`, `Receiving new incoming
  call from URI, assigned id N`, `Call N with URI is now paused.`, `Resuming call N
  with URI.`, `Call N with URI ended (No error).` (or `(IO error)` after the no-RTP
  timeout). There is no registration line on stdout in this build: `status
  register` answers `registered, identity=URI duration=N` once registered
  (`registered=-1` while the first REGISTER is in progress, `registered=0` never tried).
- It rewrites the `-c` config file on exit (adds every default), so the file is a
  scratch copy under the test's directory, as is HOME (database, zid cache, history).
- `play FILE` loops the WAV for the whole call (a 2 s 8 kHz mono S16 file was heard
  for 3 s and more); `record FILE` writes what it hears at the call's codec rate
  (8 kHz mono for G.711) with the WAV header left as 44 zero bytes until the call
  ends. Both need `soundcard use files` first.
- By default it offers opus, speex, G.722 and more; the config here disables them so
  every call is G.711 (what baresip's g711 module speaks; the relay does not
  transcode).
- `pause` sends a re-INVITE with a=sendonly (the switch answers a=recvonly);
  `resume` a=sendrecv.
- With no RTP for `nortp_timeout` (30 s) it logs "Media connectivity with URI is lost,
  call is going to be terminated" and sends a BYE without a Reason header; stdout
  says `ended (IO error)` 32 s after the call was connected.
- `quit` un-registers and exits within a second or two.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt
import pytest

from media.wav import WavError, parse_wav, resample, to_int16
from tests.interop.baresip import _Waiter
from tests.interop.peers import free_port
from tests.tools import need

#: Codecs Linphone offers by default that the tests switch off: a call through the
#: switch's relay then speaks G.711 with every other phone (baresip loads g711 only).
_DISABLED_CODECS = (
    ("opus", 48000, 2),
    ("speex", 16000, 1),
    ("speex", 8000, 1),
    ("GSM", 8000, 1),
    ("G722", 8000, 1),
    ("speex", 32000, 1),
    ("iLBC", 8000, 1),
    ("BV16", 8000, 1),
    ("SILK", 16000, 1),
    ("SILK", 8000, 1),
)

CONNECTED = r"Call \d+ with .* connected"
ENDED = r"Call \d+ with .* (ended \(|error)"
INCOMING = r"Receiving new incoming call"


class Linphone:
    """One `linphonec` phone on 127.0.0.1 with its own HOME and config under `workdir`.

    Its stdout lines are collected in `lines`; commands go to its stdin. With
    `play_wav` it sends that file (looped) in every call, with `record_wav` it writes
    what it hears there; `auto_answer` answers incoming calls at once.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        user: str,
        password: str,
        registrar_port: int,
        auto_answer: bool = False,
        play_wav: Path | None = None,
        record_wav: Path | None = None,
        dtmf: str = "rfc4733",
        nortp_timeout: int = 30,
    ) -> None:
        if dtmf not in ("rfc4733", "info"):
            raise ValueError(f"dtmf must be 'rfc4733' or 'info', not {dtmf!r}")
        self.workdir = workdir
        self.user = user
        self.registrar_port = registrar_port
        self.auto_answer = auto_answer
        self.play_wav = play_wav
        self.record_wav = record_wav
        self.sip_port = free_port()
        self.rtp_port = free_port(2)  # RTP and RTCP
        self.home = workdir / "home"
        self.config = workdir / "linphonerc"
        self.log_path = workdir / "linphone.log"
        self.lines = _Waiter()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._write_config(password, dtmf, nortp_timeout)

    def _write_config(self, password: str, dtmf: str, nortp_timeout: int) -> None:
        # Without a writable database folder the core never leaves start-up.
        (self.home / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        registrar = f"127.0.0.1:{self.registrar_port}"
        sections = [
            "[sip]",
            f"sip_port={self.sip_port}",
            "sip_tcp_port=0",
            "sip_tls_port=0",
            "default_proxy=0",
            "register_only_when_network_is_up=0",
            "register_only_when_upnp_is_ok=0",
            "guess_hostname=0",
            f"use_rfc2833={int(dtmf == 'rfc4733')}",
            f"use_info={int(dtmf == 'info')}",
            "[rtp]",
            "bind_address=127.0.0.1",
            f"audio_rtp_port={self.rtp_port}",
            f"nortp_timeout={nortp_timeout}",
            "[video]",
            "enabled=0",
            "capture=0",
            "display=0",
            "[proxy_0]",
            f"reg_proxy=<sip:{registrar};transport=udp>",
            f"reg_identity=sip:{self.user}@{registrar}",
            "reg_expires=600",
            "reg_sendregister=1",
            "[auth_info_0]",
            f"username={self.user}",
            f"passwd={password}",
            "realm=aiopbx",
        ]
        for index, (mime, rate, channels) in enumerate(_DISABLED_CODECS):
            sections += [
                f"[audio_codec_{index}]",
                f"mime={mime}",
                f"rate={rate}",
                f"channels={channels}",
                "enabled=0",
            ]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text("\n".join(sections) + "\n")

    def __enter__(self) -> Linphone:
        try:
            self.start()
        except BaseException:
            self.stop()  # a phone that failed to come up is not left running
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start linphonec, set up its sound files and auto-answer, wait until registered."""
        binary = need("linphonec")
        stdbuf = shutil.which("stdbuf")
        prefix = [stdbuf, "-oL", "-eL"] if stdbuf else []
        self._proc = subprocess.Popen(
            [*prefix, binary, "-c", str(self.config), "-d", "6", "-l", str(self.log_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={
                "HOME": str(self.home),
                "PATH": "/usr/bin:/bin",
                "LANG": "C.UTF-8",
                # readline scrolls lines wider than the terminal (80 without one).
                "COLUMNS": "4096",
            },
            cwd=self.workdir,
        )
        self._reader = threading.Thread(target=self._read_output, name=f"linphone-{self.user}")
        self._reader.daemon = True
        self._reader.start()
        self.command("soundcard use files", r"Using wav files")
        if self.play_wav is not None:
            self.command(f"play {self.play_wav}")
        if self.record_wav is not None:
            self.command(f"record {self.record_wav}")
        if self.auto_answer:
            self.command("autoanswer enable", r"Auto answer enabled")
        self.wait_registered(20)

    def registered(self) -> bool:
        """Whether `status register` says the account is registered now."""
        start = self.mark()
        self.command("status register")
        self.wait_for_output(r"^(registered|unregistered)", 10, start)
        return any(line.startswith("registered, identity=") for line in self.lines.items[start:])

    def wait_registered(self, timeout: float) -> None:
        """Poll `status register` (every 0.2 s) until registered; fail after `timeout` s."""
        deadline = time.monotonic() + timeout
        while not self.registered():
            if time.monotonic() > deadline:
                pytest.fail(f"linphonec did not register within {timeout} s:\n{self.output}")
            time.sleep(0.2)

    def _read_output(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\r\n"))
        self.lines.close()

    @property
    def output(self) -> str:
        return "\n".join(self.lines.items)

    def mark(self) -> int:
        """The index of the next output line (to wait for something after this point)."""
        return len(self.lines.items)

    def command(self, text: str, reply: str | None = None, timeout: float = 10) -> None:
        """Type one command line; wait until linphonec has read it (its echo) and, with
        `reply`, printed a line matching that pattern."""
        if self._proc is None or self._proc.stdin is None:
            raise RuntimeError("linphonec is not running")
        start = self.mark()
        self._proc.stdin.write(text.encode() + b"\n")
        self._proc.stdin.flush()
        # The echo is `linphonec> TEXT`, or TEXT alone when a state line came between.
        self.wait_for_output(f"^(linphonec> )?{re.escape(text)}$", timeout, start)
        if reply is not None:
            self.wait_for_output(reply, timeout, start)

    def wait_for_output(self, pattern: str, timeout: float, start: int = 0) -> re.Match[str]:
        """The first output line from index `start` on matching `pattern`; fails the test
        after `timeout` seconds (or as soon as linphonec has exited without printing it)."""
        regex = re.compile(pattern)
        _, found = self.lines.wait(regex.search, start, timeout)
        if found is None:
            pytest.fail(f"linphonec printed no line matching {pattern!r}:\n{self.output[-3000:]}")
        return found  # type: ignore[no-any-return]

    def count_output(self, pattern: str) -> int:
        regex = re.compile(pattern)
        return sum(1 for line in self.lines.items if regex.search(line))

    def received_audio(self, rate: int = 8000) -> npt.NDArray[np.int16]:
        """What the phone has recorded so far (`record_wav`) as mono samples at `rate`.

        linphonec writes the WAV header only when the recording ends (44 zero bytes
        before): until then the data is read as raw 16-bit mono at 8 kHz, the rate
        of the G.711 calls these phones are limited to."""
        if self.record_wav is None or not self.record_wav.exists():
            return np.zeros(0, np.int16)
        data = self.record_wav.read_bytes()
        if data[:4] == b"RIFF":
            try:
                audio = parse_wav(data)
            except WavError:
                return np.zeros(0, np.int16)
            return to_int16(resample(audio.samples.mean(axis=1), audio.rate, rate))
        raw = np.frombuffer(data[44 : 44 + (len(data) - 44) // 2 * 2], "<i2")
        return to_int16(resample(raw / 32768.0, 8000, rate))

    def dial(self, number: str, timeout: float = 20) -> None:
        """Call `number` at the registrar and wait until the call is connected."""
        start = self.mark()
        self.command(f"call sip:{number}@127.0.0.1:{self.registrar_port}")
        self.wait_for_output(CONNECTED, timeout, start)

    def send_digits(self, digits: str) -> None:
        """Press each key in the current call (RFC 4733 or SIP INFO, as configured).
        linphonec sleeps ~1 s in its main loop after each one."""
        for digit in digits:
            self.command(digit)

    def hold(self) -> None:
        """Put the current call on hold (a re-INVITE with a=sendonly)."""
        start = self.mark()
        self.command("pause")
        self.wait_for_output(r"Call \d+ with .* is now paused", 15, start)

    def resume(self) -> None:
        start = self.mark()
        self.command("resume")
        self.wait_for_output(r"Resuming call \d+ with", 15, start)

    def hang_up(self, timeout: float = 15) -> None:
        """End the current call and wait until linphonec says it ended."""
        start = self.mark()
        self.command("terminate")
        self.wait_for_output(ENDED, timeout, start)

    def stop(self) -> None:
        """`quit` (it un-registers), then SIGTERM and SIGKILL if it does not exit."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None and proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.write(b"quit\n")
                    proc.stdin.flush()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if proc.poll() is not None:
                    break
                proc.send_signal(sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
            proc.wait(5)
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        if self._reader is not None:
            self._reader.join(5)
            self._reader = None
