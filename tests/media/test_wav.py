"""WAV reading (PCM, float, G.711, extensible, cut-off files), errors, resampling."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from media.g711 import alaw_encode, ulaw_encode
from media.wav import WavError, load_mono, parse_wav, read_wav, resample, wav_bytes, write_wav


def riff(fmt: bytes, data: bytes, extra: bytes = b"") -> bytes:
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def fmt(tag: int, channels: int, rate: int, bits: int) -> bytes:
    block = channels * bits // 8
    return struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)


def test_pcm16_round_trip(tmp_path: Path) -> None:
    x = np.array([[0, -1], [32767, -32768], [100, 200]], dtype=np.int16)
    write_wav(tmp_path / "a.wav", x, 16000)
    audio = read_wav(tmp_path / "a.wav")
    assert (audio.rate, audio.channels) == (16000, 2)
    assert (np.round(audio.samples * 32768).astype(int) == x).all()


@pytest.mark.parametrize(
    ("tag", "bits", "data", "expected"),
    [
        (1, 8, bytes([128, 255, 0]), [0.0, 127 / 128, -1.0]),
        (1, 24, b"\x00\x00\x40" + b"\xff\xff\xff", [0.5, -1 / 2**23]),
        (1, 32, struct.pack("<ii", 1 << 30, -(1 << 31)), [0.5, -1.0]),
        (3, 32, struct.pack("<ff", 0.25, -2.0), [0.25, -1.0]),  # floats clipped
        (3, 64, struct.pack("<d", -0.5), [-0.5]),
        (7, 8, ulaw_encode([0, 32124]).tobytes(), [0.0, 32124 / 32768]),
        (6, 8, alaw_encode([-32768]).tobytes(), [-32256 / 32768]),
    ],
)
def test_encodings(tag: int, bits: int, data: bytes, expected: list[float]) -> None:
    audio = parse_wav(riff(fmt(tag, 1, 8000, bits), data))
    assert audio.samples[:, 0].tolist() == pytest.approx(expected)


def test_extensible_and_odd_chunks() -> None:
    ext = fmt(0xFFFE, 1, 8000, 16) + struct.pack("<HHI", 22, 16, 4) + struct.pack("<H", 1)
    ext += b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"  # KSDATAFORMAT_SUBTYPE_PCM
    odd = b"LIST" + struct.pack("<I", 3) + b"abc" + b"\x00"  # odd size: padded
    audio = parse_wav(riff(ext, struct.pack("<h", 16384), extra=odd))
    assert audio.samples.tolist() == [[0.5]]


def test_data_cut_short_reads_whole_frames() -> None:
    data = riff(fmt(1, 2, 8000, 16), struct.pack("<4h", 1, 2, 3, 4))
    data = data[:-2] + b""  # last frame incomplete
    data = data[:40] + struct.pack("<I", 0xFFFFFFFF) + data[44:]  # streamed header
    audio = parse_wav(data)
    assert audio.samples.shape == (1, 2)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not a RIFF/WAVE file"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "not a RIFF/WAVE file"),
        (b"RIFF\x04\x00\x00\x00WAVE", "no fmt chunk"),
        (riff(fmt(1, 1, 8000, 16), b"")[:36], "no data chunk"),
        (riff(fmt(2, 1, 8000, 4), b"\x00"), "bad sample size (4 bits, block 0)"),
        (
            riff(fmt(2, 1, 8000, 16), b"\x00\x00"),
            "unsupported WAV encoding (format 0x0002, 16 bits)",
        ),
        (riff(fmt(1, 0, 8000, 16), b""), "bad channel count 0"),
        (riff(fmt(1, 1, 0, 16), b""), "sample rate 0 Hz is outside 8000..192000"),
    ],
)
def test_errors(data: bytes, reason: str) -> None:
    with pytest.raises(WavError) as info:
        parse_wav(data)
    assert info.value.reason == reason


def test_missing_file_is_a_wav_error(tmp_path: Path) -> None:
    with pytest.raises(WavError, match="No such file"):
        read_wav(tmp_path / "nope.wav")


def test_resample_down_keeps_band_and_removes_alias() -> None:
    t = np.arange(32000) / 16000
    y = resample(np.sin(2 * np.pi * 1000 * t) + np.sin(2 * np.pi * 5000 * t), 16000, 8000)
    assert y.size == 16000
    want = np.sin(2 * np.pi * 1000 * np.arange(y.size) / 8000)
    assert np.abs(y - want)[200:-200].max() < 1e-3  # 5 kHz would alias to 3 kHz: gone


@pytest.mark.parametrize(("src", "dst"), [(44100, 8000), (8000, 22050), (11025, 8000)])
def test_resample_lengths_and_tone(src: int, dst: int) -> None:
    x = np.sin(2 * np.pi * 440 * np.arange(src) / src)
    y = resample(x, src, dst)
    assert y.size == -(-src * dst // src)
    want = np.sin(2 * np.pi * 440 * np.arange(y.size) / dst)
    assert np.abs(y - want)[100:-100].max() < 2e-3


def test_load_mono_mixes_and_resamples(tmp_path: Path) -> None:
    t = np.arange(16000) / 16000
    left = np.round(16000 * np.sin(2 * np.pi * 500 * t)).astype(np.int16)
    path = tmp_path / "s.wav"
    path.write_bytes(wav_bytes(np.stack([left, left // 2], axis=1), 16000))
    y = load_mono(path)
    assert y.dtype == np.int16 and y.size == 8000
    want = 12000 * np.sin(2 * np.pi * 500 * np.arange(8000) / 8000)
    assert np.abs(y - want)[100:-100].max() < 30


def test_hostile_rate_refused_before_any_work(tmp_path: Path) -> None:
    """Issue 10: a 4 KB file declaring 1 Hz (about 67 minutes to upsample 8000 times)
    used to cost 21 s and 709 MB; now it is refused from its header."""
    path = tmp_path / "one-hertz.wav"
    path.write_bytes(riff(fmt(1, 1, 1, 8), bytes(4000)))
    with pytest.raises(WavError, match=r"sample rate 1 Hz is outside 8000\.\.192000"):
        load_mono(path)
    path.write_bytes(riff(fmt(1, 1, 400_000, 16), bytes(4000)))
    with pytest.raises(WavError, match="sample rate 400000 Hz"):
        read_wav(path)


def test_duration_capped_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    write_wav(path, np.zeros(8000 * 3, np.int16), 8000)
    with pytest.raises(WavError, match="audio lasts 3 s, more than 2 s"):
        load_mono(path, max_seconds=2)
    assert len(load_mono(path, max_seconds=3)) == 8000 * 3
    with pytest.raises(WavError, match="more than 2 s"):
        parse_wav(path.read_bytes(), max_seconds=2)


def test_load_mono_in_blocks_matches_whole_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocked decoding (here 1,000 frames a block) gives the very samples a whole-file
    decode and resample gives."""
    rng = np.random.default_rng(7)
    stereo = rng.integers(-20000, 20000, size=(10_007, 2)).astype(np.int16)
    path = tmp_path / "stereo.wav"
    write_wav(path, stereo, 11025)
    whole = read_wav(path)
    expected = resample(whole.samples.mean(axis=1), 11025, 8000)
    monkeypatch.setattr("media.wav._BLOCK_FRAMES", 1000)
    got = load_mono(path)
    assert np.array_equal(got, np.clip(np.round(expected * 32768.0), -32768, 32767))
