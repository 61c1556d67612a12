"""Two real baresip phones call each other through `pbx serve`, with real audio.

1001 plays a known tone sequence (aufile); 1002 auto-answers and dumps what it
decodes (sndfile). The sequence must come out the other end in order, through
the switch's RTP relay; the call ends when 1001's file ends (its hangup reaches
1002 through the switch) and leaves one ANSWERED CDR whose billable time matches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from media.wav import load_mono, write_wav
from tests.interop.baresip import Baresip
from tests.interop.peers import PbxProcess, add_users, need, pbx_cli, running_pbx, wait_for

PASSWORDS = {"1001": "Xk3-secret-pass", "1002": "Yk3-secret-pass"}
RATE = 8000
TONES = (440, 1000, 620, 1500, 800, 1200)  # Hz, 0.4 s each
TONE_SECONDS = 0.4
ESTABLISHED = r"Call established"


def tone_sequence() -> np.ndarray:
    """int16 samples: 0.3 s silence, the tones, 0.3 s silence."""
    t = np.arange(int(RATE * TONE_SECONDS)) / RATE
    parts = [10000 * np.sin(2 * np.pi * f * t) for f in TONES]
    silence = np.zeros(int(RATE * 0.3))
    return np.concatenate([silence, *parts, silence]).astype(np.int16)


def dominant_tones(samples: np.ndarray) -> list[int]:
    """The sequence of distinct tones (as the nearest of TONES) heard in `samples`."""
    window = int(RATE * 0.1)
    heard: list[int] = []
    for start in range(0, len(samples) - window, window):
        chunk = samples[start : start + window].astype(np.float64)
        if np.sqrt(np.mean(chunk**2)) < 300:  # silence
            continue
        spectrum = np.abs(np.fft.rfft(chunk * np.hanning(window)))
        peak = float(np.fft.rfftfreq(window, 1 / RATE)[int(np.argmax(spectrum))])
        nearest = min(TONES, key=lambda f: abs(f - peak))
        if abs(nearest - peak) < 40 and (not heard or heard[-1] != nearest):
            heard.append(nearest)
    return heard


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PbxProcess]:
    need("baresip")
    data_dir = tmp_path / "pbx"
    data_dir.mkdir()
    add_users(data_dir, PASSWORDS)
    with running_pbx(data_dir) as pbx:
        yield pbx


def test_tone_sequence_crosses_the_switch(server: PbxProcess, tmp_path: Path) -> None:
    source = tmp_path / "tones.wav"
    write_wav(source, tone_sequence(), RATE)
    with (
        Baresip(
            tmp_path / "callee",
            user="1002",
            password=PASSWORDS["1002"],
            registrar_port=server.port,
            auto_answer=True,
            dump_calls=True,
            control=False,
        ) as callee,
        Baresip(
            tmp_path / "caller",
            user="1001",
            password=PASSWORDS["1001"],
            registrar_port=server.port,
            source_wav=source,
        ) as caller,
    ):
        callee.wait_for_output(r"200 OK .*\[1 binding\]", 10)
        caller.wait_for_output(r"200 OK .*\[1 binding\]", 10)
        caller.command("dial", f"sip:1002@127.0.0.1:{server.port}")
        callee.wait_for_output(ESTABLISHED, 15)
        # The caller's file ends after ~3 s; its BYE must end the callee's leg too.
        caller.wait_for_output(r"terminated", 20)
        callee.wait_for_output(r"terminated", 10)

    dumps = sorted((tmp_path / "callee").glob("dump-*-dec.wav"))
    assert dumps, "baresip wrote no decoded dump"
    heard = dominant_tones(load_mono(dumps[0], RATE))
    assert heard == list(TONES)

    def cdr_closed() -> bool:
        out = pbx_cli(server.data_dir, "cdr", "list", "--format", "json")
        return out.returncode == 0 and any(r["end"] for r in json.loads(out.stdout))

    wait_for(cdr_closed, 10, "the call's CDR to be closed")
    [cdr] = json.loads(pbx_cli(server.data_dir, "cdr", "list", "--format", "json").stdout)
    assert (cdr["caller"], cdr["callee"], cdr["disposition"]) == ("1001", "1002", "ANSWERED")
    length = len(tone_sequence()) / RATE
    assert length - 1.0 <= cdr["billsec"] <= length + 2.0
    assert re.search("hung up", cdr["hangup_cause"])
