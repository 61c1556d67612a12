"""Voicemail with real baresip phones, through `pbx serve`.

1001 (a baresip) calls 1002 (a baresip that rings, nobody answers); the call goes to
1002's mailbox and 1001's audio file (a tone) is left as the message. Then 1002 dials
`*97`, presses its PIN and keys with RFC 4733 (`sndcode`), hears the message and
deletes it. Prompts are tones, one frequency each, so what 1002 heard (its sndfile
dump) shows which prompts played in which order.

The message light is tested with a sipp subscriber (`test_voicemail.py`), not with
baresip's `mwi` module: baresip 1.0 subscribes from a REGISTER_OK event handler that
removes itself while it runs, and on loaded machines that sometimes loops, logging
"mwi: subscribing" without end and flooding the switch with SUBSCRIBEs (seen in CI
runs). Run by hand (`Baresip(..., mwi=True)`), it showed 0/0, 1/0, 0/1, 0/0 as here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ivr.prompts import DEFAULT_PROMPTS, PromptStore
from media.wav import write_wav
from tests.interop.baresip import Baresip
from tests.interop.ear import sine, tones_in
from tests.interop.peers import PbxProcess, add_users, need, pbx_cli, running_pbx, wait_for

PASSWORDS = {"1001": "Xk3-secret-pass", "1002": "Yk3-secret-pass"}
PIN = "4711"
TONES = {
    "vm-unavailable": 500,
    "vm-beep": 1000,
    "vm-saved": 700,
    "vm-pin": 1300,
    "vm-main-menu": 1700,
    "vm-message-menu": 1900,
    "vm-deleted": 2600,
    "vm-no-more": 2900,
    "ivr-goodbye": 3200,
    "message": 2300,  # what 1001 says
}
REGISTERED = r"200 OK .*\[1 binding\]"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PbxProcess]:
    """`pbx serve` with 1001 and 1002; 1002's unanswered calls go to its mailbox,
    whose PIN is set, all as an operator would with `pbx`."""
    need("baresip")
    data_dir = tmp_path / "pbx"
    data_dir.mkdir()
    add_users(data_dir, PASSWORDS)
    prompts = PromptStore(data_dir / "prompts")
    quiet = tmp_path / "quiet.wav"
    write_wav(quiet, np.zeros(400, np.int16), 8000)
    for name in DEFAULT_PROMPTS:
        wav = quiet
        if name in TONES:
            wav = tmp_path / f"{name}.wav"
            write_wav(wav, sine(TONES[name], 0.5), 8000)
        prompts.add(name, wav)
    for args in (
        ("user", "forward", "1002", "--no-answer", "voicemail", "--after", "1"),
        ("vm", "pin", "1002", "--pin", PIN),
    ):
        done = pbx_cli(data_dir, *args)
        assert done.returncode == 0, done.stderr
    with running_pbx(data_dir) as pbx:
        yield pbx


def hears(phone: Baresip, *names: str, timeout: float = 15) -> None:
    """Wait until the tones `phone` heard in its current call end with `names`."""
    try:
        wait_for(
            lambda: tones_in(phone.received_audio(), TONES)[-len(names) :] == list(names),
            timeout,
            f"baresip to hear {names}",
        )
    except pytest.fail.Exception:
        pytest.fail(f"baresip heard {tones_in(phone.received_audio(), TONES)}, not {names}")


def messages(server: PbxProcess) -> list[str]:
    out = pbx_cli(server.data_dir, "vm", "list", "1002")
    assert out.returncode == 0, out.stderr
    return [line for line in out.stdout.splitlines()[1:] if line]


def cdrs(server: PbxProcess) -> list[dict[str, Any]]:
    out = pbx_cli(server.data_dir, "cdr", "list", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert isinstance(rows, list)
    return rows


def test_message_left_then_played_and_deleted(server: PbxProcess, tmp_path: Path) -> None:
    said = tmp_path / "said.wav"
    # Greeting and beep take ~1 s of it; the call ends with the file (baresip hangs up).
    write_wav(said, sine(TONES["message"], 3.0), 8000)
    with (
        Baresip(
            tmp_path / "1002", user="1002", password=PASSWORDS["1002"],
            registrar_port=server.port, dump_calls=True,
        ) as owner,
        Baresip(
            tmp_path / "1001", user="1001", password=PASSWORDS["1001"],
            registrar_port=server.port, source_wav=said,
        ) as caller,
    ):  # fmt: skip
        owner.wait_for_output(REGISTERED, 10)
        caller.wait_for_output(REGISTERED, 10)

        # 1002 rings, nobody answers: the mailbox takes 1001's message.
        caller.command("dial", f"sip:1002@127.0.0.1:{server.port}")
        owner.wait_for_event("CALL_INCOMING", 15)
        caller.wait_for_event("CALL_ESTABLISHED", 15)
        caller.wait_for_event("CALL_CLOSED", 20)
        wait_for(lambda: len(messages(server)) == 1, 10, "the message in pbx vm list")
        assert messages(server)[0].split()[1:4] == ["1002", "new", "1001"]

        # 1002 opens its mailbox, hears the message, deletes it.
        owner.command("dial", f"sip:*97@127.0.0.1:{server.port}")
        owner.wait_for_event("CALL_ESTABLISHED", 15)
        hears(owner, "vm-pin")
        owner.send_digits(PIN + "#")
        hears(owner, "vm-main-menu")
        owner.send_digits("1")
        hears(owner, "message", "vm-message-menu", timeout=20)
        assert messages(server)[0].split()[2] == "old"  # heard: filed as old
        owner.send_digits("7")
        hears(owner, "vm-deleted", "vm-no-more", "vm-main-menu")
        assert messages(server) == []
        owner.send_digits("#")
        owner.wait_for_event("CALL_CLOSED", 15)
    wait_for(lambda: all(r["end"] for r in cdrs(server)), 10, "both CDRs to be closed")
    left, opened = sorted(cdrs(server), key=lambda r: r["start"])
    assert (left["caller"], left["callee"], left["disposition"]) == ("1001", "1002", "ANSWERED")
    assert left["hangup_cause"] == "voicemail left for 1002"
    assert (opened["callee"], opened["hangup_cause"]) == ("*97", "voicemail 1002: menu")
