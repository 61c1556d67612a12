"""IVR menus with a real baresip as the caller, through `pbx serve`.

Each prompt is a tone of its own, so what baresip decoded (its sndfile dump) shows
which prompts it heard and in what order. baresip presses keys with `sndcode`, which
sends RFC 4733 telephone-events. A key reaches an extension (a second baresip that
answers by itself and plays a tone of its own); silence and a wrong key replay the
timeout and invalid prompts, and after the retries the menu's fallback hangs up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from ivr.prompts import PromptStore
from media.wav import write_wav
from tests.interop.baresip import Baresip
from tests.interop.peers import PbxProcess, add_users, need, pbx_cli, running_pbx, wait_for

PASSWORDS = {"1001": "Xk3-secret-pass", "1002": "Yk3-secret-pass"}
RATE = 8000
#: Hz of each prompt, and of what extension 1002 plays once it answers.
TONES = {"greeting": 500, "invalid": 900, "timeout": 1300, "ivr-goodbye": 1700, "1002": 2300}
TIMEOUT = 2.0  # seconds the menu waits for a key; room to press one after the greeting

MENU = f"""
[[menu]]
name = "main"
number = "800"
greeting = "greeting"
invalid_prompt = "invalid"
timeout_prompt = "timeout"
timeout = {TIMEOUT}
retries = 2
fallback = "hangup"
dial_by_extension = false
[menu.options]
"1" = "extension:1002"
"""


def tone(hz: int, seconds: float) -> npt.NDArray[np.int16]:
    """A sine of `hz` at a quarter of full scale."""
    t = np.arange(int(RATE * seconds)) / RATE
    return (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def heard(samples: npt.NDArray[np.int16]) -> list[str]:
    """The names (keys of TONES) of the distinct tones in `samples`, in order (100 ms
    windows; silence and windows with no clear tone are skipped)."""
    window = RATE // 10
    names: list[str] = []
    for start in range(0, len(samples) - window + 1, window):
        chunk = samples[start : start + window].astype(np.float64)
        if np.sqrt(np.mean(chunk**2)) < 500:
            continue
        spectrum = np.abs(np.fft.rfft(chunk * np.hanning(window)))
        peak = float(np.fft.rfftfreq(window, 1 / RATE)[int(np.argmax(spectrum))])
        name = min(TONES, key=lambda n: abs(TONES[n] - peak))
        if abs(TONES[name] - peak) < 40 and (not names or names[-1] != name):
            names.append(name)
    return names


def wait_to_hear(phone: Baresip, expected: list[str], timeout: float) -> None:
    """Wait until the phone's received audio (so far) starts with the tones `expected`."""
    try:
        wait_for(
            lambda: heard(phone.received_audio())[: len(expected)] == expected,
            timeout,
            f"baresip to hear {expected}",
        )
    except pytest.fail.Exception:
        pytest.fail(f"baresip heard {heard(phone.received_audio())}, expected {expected} first")


def cdrs(server: PbxProcess) -> list[dict[str, Any]]:
    """The switch's CDRs, as `pbx cdr list --format json` shows them."""
    out = pbx_cli(server.data_dir, "cdr", "list", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert isinstance(rows, list)
    return rows


def closed_cdr(server: PbxProcess) -> dict[str, Any]:
    """The only CDR, once it is closed."""
    wait_for(lambda: any(r["end"] for r in cdrs(server)), 10, "the call's CDR to be closed")
    [cdr] = cdrs(server)
    return cdr


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PbxProcess]:
    """`pbx serve` with users 1001 and 1002, the test tones as prompts, and menu 800
    imported as an operator would (`pbx ivr import`)."""
    need("baresip")
    data_dir = tmp_path / "pbx"
    data_dir.mkdir()
    add_users(data_dir, PASSWORDS)
    prompts = PromptStore(data_dir / "prompts")
    for name in ("greeting", "invalid", "timeout", "ivr-goodbye"):
        wav = tmp_path / f"{name}.wav"
        write_wav(wav, tone(TONES[name], 0.4), RATE)
        prompts.add(name, wav)
    menu = tmp_path / "menu.toml"
    menu.write_text(MENU)
    imported = pbx_cli(data_dir, "ivr", "import", str(menu))
    assert imported.returncode == 0, imported.stderr
    with running_pbx(data_dir) as pbx:
        yield pbx


def caller(server: PbxProcess, workdir: Path) -> Baresip:
    """Extension 1001 as a baresip that records what it hears."""
    return Baresip(
        workdir, user="1001", password=PASSWORDS["1001"], registrar_port=server.port,
        dump_calls=True,
    )  # fmt: skip


def test_key_reaches_an_extension(server: PbxProcess, tmp_path: Path) -> None:
    answer = tmp_path / "1002.wav"
    write_wav(answer, tone(TONES["1002"], 2.0), RATE)  # then 1002 hangs up by itself
    with (
        Baresip(
            tmp_path / "1002", user="1002", password=PASSWORDS["1002"],
            registrar_port=server.port, auto_answer=True, source_wav=answer,
        ) as callee,
        caller(server, tmp_path / "1001") as phone,
    ):  # fmt: skip
        callee.wait_for_output(r"200 OK .*\[1 binding\]", 10)
        phone.wait_for_output(r"200 OK .*\[1 binding\]", 10)
        phone.command("dial", f"sip:800@127.0.0.1:{server.port}")
        phone.wait_for_event("CALL_ESTABLISHED", 10)
        wait_to_hear(phone, ["greeting"], 10)
        phone.send_digits("1")
        established = callee.wait_for_event("CALL_ESTABLISHED", 10)
        assert established["direction"] == "incoming"
        # 1002's file ends after 2 s: it hangs up, and the switch ends the caller's leg.
        callee.wait_for_event("CALL_CLOSED", 15)
        phone.wait_for_event("CALL_CLOSED", 10)
    assert heard(phone.received_audio()) == ["greeting", "1002"]
    cdr = closed_cdr(server)
    assert (cdr["caller"], cdr["callee"], cdr["disposition"]) == ("1001", "800", "ANSWERED")
    assert cdr["hangup_cause"] == "callee hung up (via 1002)"


def test_silence_then_a_wrong_key_end_in_the_fallback(server: PbxProcess, tmp_path: Path) -> None:
    with caller(server, tmp_path / "1001") as phone:
        phone.wait_for_output(r"200 OK .*\[1 binding\]", 10)
        phone.command("dial", f"sip:800@127.0.0.1:{server.port}")
        phone.wait_for_event("CALL_ESTABLISHED", 10)
        # Silence: the greeting, the timeout prompt, the greeting again ...
        wait_to_hear(phone, ["greeting", "timeout", "greeting"], 10)
        # ... a key with no action: the invalid prompt and the greeting; silence again
        # is the third miss (retries = 2): the fallback says goodbye and hangs up.
        phone.send_digits("5")
        closed = phone.wait_for_event("CALL_CLOSED", 15)
        assert closed["direction"] == "outgoing"
    assert heard(phone.received_audio()) == [
        "greeting", "timeout", "greeting", "invalid", "greeting", "ivr-goodbye",
    ]  # fmt: skip
    cdr = closed_cdr(server)
    assert (cdr["caller"], cdr["callee"], cdr["disposition"]) == ("1001", "800", "ANSWERED")
    assert cdr["hangup_cause"] == "IVR hangup"
