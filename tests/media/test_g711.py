"""G.711 μ-law and A-law: known code points, exhaustive round trips, quantization error."""

from __future__ import annotations

import numpy as np
import pytest

from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

ALL16 = np.arange(-32768, 32768)


@pytest.mark.parametrize(
    ("sample", "code"),
    [(0, 0xFF), (-1, 0x7F), (32767, 0x80), (-32768, 0x00), (1000, 0xCE), (-1000, 0x4E)],
)
def test_ulaw_known_codes(sample: int, code: int) -> None:
    assert ulaw_encode([sample]).tolist() == [code]


@pytest.mark.parametrize(
    ("sample", "code"),
    [(0, 0xD5), (-1, 0x55), (32767, 0xAA), (-32768, 0x2A), (1000, 0xFA), (-1000, 0x7A)],
)
def test_alaw_known_codes(sample: int, code: int) -> None:
    assert alaw_encode([sample]).tolist() == [code]


def test_decode_extremes_and_zero() -> None:
    assert ulaw_decode(bytes([0x00, 0x80, 0xFF, 0x7F])).tolist() == [-32124, 32124, 0, 0]
    assert alaw_decode(bytes([0x2A, 0xAA, 0xD5, 0x55])).tolist() == [-32256, 32256, 8, -8]


def test_every_code_survives_decode_then_encode() -> None:
    codes = np.arange(256)
    back = ulaw_encode(ulaw_decode(codes))
    assert np.flatnonzero(back != codes).tolist() == [0x7F]  # -0 re-encodes as +0
    assert ulaw_encode(ulaw_decode([0x7F])).tolist() == [0xFF]
    assert (alaw_encode(alaw_decode(codes)) == codes).all()


@pytest.mark.parametrize(
    ("encode", "decode", "worst"),
    [(ulaw_encode, ulaw_decode, 0.034), (alaw_encode, alaw_decode, 1 / 32)],
)
def test_quantization_error_is_half_a_step(encode, decode, worst) -> None:  # type: ignore[no-untyped-def]
    y = decode(encode(ALL16)).astype(np.int64)
    assert (np.diff(y) >= 0).all()  # monotonic
    big = np.abs(ALL16) >= 1024  # logarithmic range: relative error bounded
    rel = np.abs(y - ALL16)[big] / np.abs(ALL16)[big]
    assert rel.max() <= worst + 1e-9
    assert np.abs(y - ALL16)[~big].max() <= 32  # half of the largest step below 1024


def test_bytes_and_arrays_decode_alike() -> None:
    codes = np.arange(256, dtype=np.uint8)
    assert (ulaw_decode(codes.tobytes()) == ulaw_decode(codes)).all()
    assert (alaw_decode(bytearray(codes.tobytes())) == alaw_decode(codes)).all()


def test_int16_arrays_encode_as_every_other_input() -> None:
    """int16 arrays take a shortcut (the table read by the sample's bits): the same codes
    as the widened, clipped path, for every 16-bit sample, also from a strided view."""
    every = np.arange(-32768, 32768, dtype=np.int32)
    for encode in (ulaw_encode, alaw_encode):
        wide = encode(every)
        assert np.array_equal(encode(every.astype(np.int16)), wide)
        assert np.array_equal(encode(every.astype(np.int16)[::3]), wide[::3])
        assert np.array_equal(encode(list(every[:5])), wide[:5])
