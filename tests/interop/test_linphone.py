"""Linphone (linphonec) as a real phone through `pbx serve`, with baresip on the other side.

Every party sends a tone of its own (Linphone plays a WAV with `soundcard use files`,
baresip an aufile source) and records what it hears (Linphone's `record`, baresip's
sndfile dump), so which party was heard, and in what order, is read back from audio.
Prompts and music on hold are tones too.

What these tests ask of the switch (issue 9, §8 and acceptance 5): audio both ways in
both directions; a call parked in a quiet IVR menu, or leaving a long voicemail
message, keeps receiving RTP (Linphone hangs up after 30 s without any); and a held
baresip hears the music and then the other side again after the resume.
"""

from __future__ import annotations

import json
import re
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from ivr.prompts import DEFAULT_PROMPTS, PromptStore
from media.wav import load_mono, write_wav
from tests.interop.baresip import Baresip
from tests.interop.ear import peak_hz, sine, tones_in
from tests.interop.linphone import CONNECTED, ENDED, INCOMING, Linphone
from tests.interop.peers import PbxProcess, add_users, pbx_cli, running_pbx, wait_for
from tests.tools import need

pytestmark = pytest.mark.interop

PASSWORDS = {"1001": "Xk3-secret-pass", "1002": "Yk3-secret-pass"}
RATE = 8000
#: Hz of what each party sends, of the prompts and of the music on hold.
TONES = {
    "linphone": 600,
    "baresip": 1400,
    "moh": 1000,
    "greeting": 2000,
    "vm-unavailable": 2300,
    "vm-beep": 2600,
}
Ears = Callable[[], npt.NDArray[np.int16]]
REGISTERED = r"200 OK .*\[1 binding\]"
IVR_WAIT = 45.0  # seconds in the silent menu: past Linphone's 30 s no-RTP timeout
MESSAGE = 40.0  # seconds of voicemail message Linphone leaves
ENDED_RE = re.compile(ENDED)

MENU = """
[[menu]]
name = "quiet"
number = "800"
greeting = "greeting"
timeout = 120.0
retries = 0
fallback = "hangup"
dial_by_extension = false
[menu.options]
"1" = "hangup"
"""


def heard(samples: npt.NDArray[np.int16]) -> list[str]:
    """The names (keys of TONES) of the distinct tones in `samples`, in turn."""
    return tones_in(samples, TONES)


def seconds_of(samples: npt.NDArray[np.int16], name: str) -> float:
    """How long the tone `name` is heard in `samples` (100 ms windows, as `heard`)."""
    window = RATE // 10
    hz = TONES[name]
    count = 0
    for start in range(0, len(samples) - window + 1, window):
        chunk = samples[start : start + window].astype(np.float64)
        if (
            np.sqrt(np.mean(chunk**2)) >= 500
            and abs(peak_hz(samples[start : start + window]) - hz) < 30
        ):
            count += 1
    return count / 10


def talk_both_ways(linphone_ears: Ears, baresip_ears: Ears) -> None:
    """Wait until each side has heard the other's tone for three seconds (Linphone's
    two-second file looped, baresip's file)."""
    for what, get, name in (
        ("baresip", baresip_ears, "linphone"),
        ("Linphone", linphone_ears, "baresip"),
    ):

        def enough(get: Ears = get, name: str = name) -> bool:
            return seconds_of(get(), name) >= 3.0

        try:
            wait_for(enough, 20, f"{what} to hear {name} for 3 s")
        except pytest.fail.Exception:
            pytest.fail(f"{what} heard {seconds_of(get(), name)} s of {name}: {heard(get())}")


def cdrs(server: PbxProcess) -> list[dict[str, Any]]:
    out = pbx_cli(server.data_dir, "cdr", "list", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert isinstance(rows, list)
    return rows


def closed_cdr(server: PbxProcess) -> dict[str, Any]:
    """The only CDR, once it is closed."""
    wait_for(lambda: any(r["end"] for r in cdrs(server)), 15, "the call's CDR to be closed")
    [cdr] = cdrs(server)
    return cdr


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PbxProcess]:
    """`pbx serve` with 1001 and 1002, tone prompts (everything else a short silence),
    menu 800 (a short greeting, then a quiet two-minute wait for a key), a tone as the
    music on hold, and 1002's unanswered calls going to its mailbox after 1 s."""
    need("linphonec")
    need("baresip")
    data_dir = tmp_path / "pbx"
    data_dir.mkdir()
    add_users(data_dir, PASSWORDS)
    prompts = PromptStore(data_dir / "prompts")
    quiet = tmp_path / "quiet.wav"
    write_wav(quiet, np.zeros(400, np.int16), RATE)
    for name in (*DEFAULT_PROMPTS, "greeting"):
        wav = quiet
        if name in TONES:
            wav = tmp_path / f"{name}.wav"
            write_wav(wav, sine(TONES[name], 0.5), RATE)
        prompts.add(name, wav)
    (data_dir / "moh").mkdir()
    write_wav(data_dir / "moh" / "tone.wav", sine(TONES["moh"], 2.0), RATE)
    menu = tmp_path / "menu.toml"
    menu.write_text(MENU)
    for args in (
        ("ivr", "import", str(menu)),
        ("user", "forward", "1002", "--no-answer", "voicemail", "--after", "1"),
    ):
        done = pbx_cli(data_dir, *args)
        assert done.returncode == 0, done.stderr
    with running_pbx(data_dir) as pbx:
        yield pbx


def linphone(server: PbxProcess, workdir: Path, **kwargs: Any) -> Linphone:
    """Extension 1001 as Linphone, sending its tone and recording what it hears."""
    tone = workdir.parent / "linphone-tone.wav"
    write_wav(tone, sine(TONES["linphone"], 2.0), RATE)  # Linphone loops it
    return Linphone(
        workdir, user="1001", password=PASSWORDS["1001"], registrar_port=server.port,
        play_wav=tone, record_wav=workdir / "heard.wav", **kwargs,
    )  # fmt: skip


def baresip(server: PbxProcess, workdir: Path, **kwargs: Any) -> Baresip:
    """Extension 1002 as baresip, sending its tone (for a minute) and dumping what it hears."""
    tone = workdir.parent / "baresip-tone.wav"
    write_wav(tone, sine(TONES["baresip"], 60.0), RATE)
    return Baresip(
        workdir, user="1002", password=PASSWORDS["1002"], registrar_port=server.port,
        source_wav=tone, dump_calls=True, **kwargs,
    )  # fmt: skip


def wait_to_hear(what: str, get: Ears, expected: list[str], timeout: float = 15) -> None:
    """Wait until the tones in `get()` end with `expected`."""
    try:
        wait_for(lambda: heard(get())[-len(expected) :] == expected, timeout, f"{what} to hear")
    except pytest.fail.Exception:
        pytest.fail(f"{what} heard {heard(get())}, expected it to end with {expected}")


def test_linphone_calls_baresip_with_audio_both_ways(server: PbxProcess, tmp_path: Path) -> None:
    with (
        baresip(server, tmp_path / "1002", auto_answer=True) as callee,
        linphone(server, tmp_path / "1001") as phone,
    ):
        callee.wait_for_output(REGISTERED, 10)
        phone.dial("1002")
        callee.wait_for_event("CALL_ESTABLISHED", 10)
        talk_both_ways(phone.received_audio, callee.received_audio)
        phone.hang_up()
        callee.wait_for_event("CALL_CLOSED", 10)
    assert heard(callee.received_audio()) == ["linphone"]
    assert heard(phone.received_audio()) == ["baresip"]
    cdr = closed_cdr(server)
    assert (cdr["caller"], cdr["callee"], cdr["disposition"]) == ("1001", "1002", "ANSWERED")
    assert cdr["hangup_cause"] == "caller hung up"


def test_baresip_calls_linphone_with_audio_both_ways(server: PbxProcess, tmp_path: Path) -> None:
    with (
        linphone(server, tmp_path / "1001", auto_answer=True) as callee,
        baresip(server, tmp_path / "1002") as caller,
    ):
        caller.wait_for_output(REGISTERED, 10)
        start = callee.mark()
        caller.command("dial", f"sip:1001@127.0.0.1:{server.port}")
        callee.wait_for_output(INCOMING, 15, start)
        callee.wait_for_output(CONNECTED, 15, start)
        caller.wait_for_event("CALL_ESTABLISHED", 10)
        talk_both_ways(callee.received_audio, caller.received_audio)
        caller.command("hangup")
        caller.wait_for_event("CALL_CLOSED", 10)
        callee.wait_for_output(ENDED, 10, start)
    assert heard(caller.received_audio()) == ["linphone"]
    assert heard(callee.received_audio()) == ["baresip"]
    cdr = closed_cdr(server)
    assert (cdr["caller"], cdr["callee"], cdr["disposition"]) == ("1002", "1001", "ANSWERED")
    assert cdr["hangup_cause"] == "caller hung up"


@pytest.mark.parametrize("dtmf", ["rfc4733", "info"])
def test_linphone_key_in_an_ivr_menu(server: PbxProcess, tmp_path: Path, dtmf: str) -> None:
    """Linphone presses "1" (RFC 4733 telephone-event or SIP INFO) after the greeting:
    the menu's action hangs up."""
    with linphone(server, tmp_path / "1001", dtmf=dtmf) as phone:
        start = phone.mark()
        phone.dial("800")
        wait_to_hear("Linphone", phone.received_audio, ["greeting"])
        phone.send_digits("1")
        phone.wait_for_output(ENDED, 15, start)
    cdr = closed_cdr(server)
    assert (cdr["caller"], cdr["callee"], cdr["disposition"]) == ("1001", "800", "ANSWERED")
    assert cdr["hangup_cause"] == "IVR hangup"


def test_linphone_stays_in_a_quiet_ivr_menu(server: PbxProcess, tmp_path: Path) -> None:
    """The menu says its greeting, then waits two minutes for a key in silence: the
    switch must keep Linphone's RTP timer fed (it hangs up after 30 s with none)."""
    with linphone(server, tmp_path / "1001") as phone:
        start = phone.mark()
        phone.dial("800")
        connected = time.monotonic()
        wait_to_hear("Linphone", phone.received_audio, ["greeting"])
        index, _ = phone.lines.wait(ENDED_RE.search, start, IVR_WAIT)
        assert index < 0, (
            f"the call dropped in the quiet menu {time.monotonic() - connected:.1f} s after "
            f"it was connected:\n{phone.output[-2000:]}"
        )
        phone.send_digits("1")  # "1" = hangup: the menu still listens after 45 s
        phone.wait_for_output(ENDED, 15, start)
    cdr = closed_cdr(server)
    assert (cdr["caller"], cdr["callee"], cdr["disposition"]) == ("1001", "800", "ANSWERED")
    assert cdr["hangup_cause"] == "IVR hangup"
    assert cdr["billsec"] >= IVR_WAIT


def test_linphone_leaves_a_forty_second_voicemail(server: PbxProcess, tmp_path: Path) -> None:
    """1002 (baresip) rings and nobody answers; Linphone talks for 40 s after the beep
    and hangs up. The whole message is stored."""
    with (
        baresip(server, tmp_path / "1002") as owner,
        linphone(server, tmp_path / "1001") as phone,
    ):
        owner.wait_for_output(REGISTERED, 10)
        start = phone.mark()
        phone.dial("1002", timeout=30)
        connected = time.monotonic()
        wait_to_hear("Linphone", phone.received_audio, ["vm-unavailable", "vm-beep"])
        # Linphone's tone (looped) is the message; the switch records until the hangup.
        index, _ = phone.lines.wait(ENDED_RE.search, start, MESSAGE)
        assert index < 0, (
            f"the call dropped while leaving the message {time.monotonic() - connected:.1f} s "
            f"after it was connected:\n{phone.output[-2000:]}"
        )
        phone.hang_up()

    def stored() -> list[list[str]]:
        out = pbx_cli(server.data_dir, "vm", "list", "1002")
        assert out.returncode == 0, out.stderr
        return [line.split() for line in out.stdout.splitlines()[1:] if line.strip()]

    wait_for(lambda: len(stored()) == 1, 15, "the message in pbx vm list")
    [row] = stored()
    assert row[1:4] == ["1002", "new", "1001"]
    assert MESSAGE - 2 <= float(row[-1]) <= MESSAGE + 3
    [path] = (server.data_dir / "voicemail").rglob("*.wav")
    with wave.open(str(path)) as wav:
        seconds = wav.getnframes() / wav.getframerate()
    assert seconds >= MESSAGE - 2
    assert heard(load_mono(path, RATE)) == ["linphone"]


def test_held_baresip_hears_music_then_linphone_again(server: PbxProcess, tmp_path: Path) -> None:
    """Linphone calls baresip, holds (baresip hears the music on hold) and resumes
    (baresip hears Linphone again).

    Two things baresip 1.0 needs (both seen here): one stream per leg (a new SSRC with
    an older timestamp is dropped: "SSRC changed", "discard old frame"), and, while
    the switch plays the music itself, no a=sendonly offer crossing to it: once
    re-INVITEd to recvonly, baresip 1.0 decodes nothing more for the rest of the call,
    resume or not."""
    with (
        baresip(server, tmp_path / "1002", auto_answer=True) as callee,
        linphone(server, tmp_path / "1001") as phone,
    ):
        callee.wait_for_output(REGISTERED, 10)
        phone.dial("1002")
        callee.wait_for_event("CALL_ESTABLISHED", 10)
        wait_to_hear("baresip", callee.received_audio, ["linphone"])
        phone.hold()
        wait_to_hear("baresip", callee.received_audio, ["linphone", "moh"])
        phone.resume()
        wait_to_hear("baresip", callee.received_audio, ["linphone", "moh", "linphone"])
        phone.hang_up()
        callee.wait_for_event("CALL_CLOSED", 10)
    assert heard(callee.received_audio()) == ["linphone", "moh", "linphone"]
