"""`pbx amd classify` through typer's CliRunner: a good file, a stereo 16 kHz one, a corrupt one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from cli.app import app
from media.wav import resample, to_int16, write_wav

runner = CliRunner()
RATE = 8000


def greeting_with_beep() -> np.ndarray:
    """3 s of a voiced sound, 0.5 s pause, a 1 kHz beep of 0.5 s, 1 s of quiet (8 kHz)."""
    rng = np.random.default_rng(3)
    t = np.arange(3 * RATE) / RATE
    voice = sum(np.sin(2 * np.pi * k * 130 * t) / k for k in range(3, 26))
    voice = 6000 * voice / np.abs(voice).max() * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    beep = 8000 * np.sin(2 * np.pi * 1000 * np.arange(RATE // 2) / RATE)
    x = np.concatenate([np.zeros(2400), voice, np.zeros(4000), beep, np.zeros(RATE)])
    return x + 30 * rng.standard_normal(x.size)


def test_classify_good_stereo_and_corrupt(tmp_path: Path) -> None:
    x = greeting_with_beep()
    good = tmp_path / "good.wav"
    write_wav(good, to_int16(x / 32768), RATE)
    wide = to_int16(resample(x / 32768, RATE, 16000))
    stereo = tmp_path / "stereo16k.wav"
    write_wav(stereo, np.stack([wide, (wide // 2).astype(np.int16)], axis=1), 16000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")

    result = runner.invoke(app, ["amd", "classify", str(good), str(corrupt), str(stereo)])

    assert result.exit_code == 1
    assert result.stderr == f"pbx: error: {corrupt}: no fmt chunk\n"
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    # voice 300..3300 ms (3 s: a person could say that much, so it waits); the beep
    # starts at 3800 and is one 200 ms later; it ends at 300+3000+500+500
    expected = {"result": "MACHINE", "decision_ms": 4000, "beep_ms": 4300}
    assert lines == [{"file": str(good), **expected}, {"file": str(stereo), **expected}]


def test_missing_file_and_usage(tmp_path: Path) -> None:
    missing = tmp_path / "missing.wav"
    result = runner.invoke(app, ["amd", "classify", str(missing)])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"pbx: error: {missing}: No such file or directory\n"
    usage = runner.invoke(app, ["amd", "classify"])
    assert usage.exit_code == 2
    assert usage.stderr.startswith("pbx: error: Missing argument")
