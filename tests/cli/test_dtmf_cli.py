"""`pbx dtmf detect` through typer's CliRunner: a generated file, stereo 16 kHz, a corrupt one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from cli.app import app
from media.dtmf_tones import DtmfGenerator
from media.wav import resample, to_int16, write_wav

runner = CliRunner()


def test_detect_digits_and_verbose(tmp_path: Path) -> None:
    wav = tmp_path / "d.wav"
    audio = np.concatenate([np.zeros(800, np.int16), DtmfGenerator(80, 120).generate("159#")])
    write_wav(wav, audio, 8000)
    result = runner.invoke(app, ["dtmf", "detect", str(wav)])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "159#\n", "")
    verbose = runner.invoke(app, ["dtmf", "detect", "--verbose", str(wav)])
    assert verbose.exit_code == 0
    assert verbose.stdout.splitlines() == [
        "1 start_ms=100 duration_ms=80",
        "5 start_ms=300 duration_ms=80",
        "9 start_ms=500 duration_ms=80",
        "# start_ms=700 duration_ms=80",
    ]


def test_stereo_16khz(tmp_path: Path) -> None:
    x = DtmfGenerator(60, 80).generate("0*D7").astype(float) / 32768
    wide = to_int16(resample(x, 8000, 16000))
    wav = tmp_path / "stereo.wav"
    write_wav(wav, np.stack([wide, np.zeros_like(wide)], axis=1), 16000)
    result = runner.invoke(app, ["dtmf", "detect", str(wav)])
    assert (result.exit_code, result.stdout) == (0, "0*D7\n")


def test_corrupt_and_missing_files(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    result = runner.invoke(app, ["dtmf", "detect", str(corrupt)])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"pbx: error: {corrupt}: no fmt chunk\n"
    missing = tmp_path / "missing.wav"
    result = runner.invoke(app, ["dtmf", "detect", str(missing)])
    assert (result.exit_code, result.stderr) == (
        1,
        f"pbx: error: {missing}: No such file or directory\n",
    )
