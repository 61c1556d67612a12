"""WAV files: read any common RIFF/WAVE file, convert it to 8 kHz mono, write 16-bit PCM.

`parse_wav` reads the chunks itself rather than through the `wave` module, which
(in Python 3.11) knows neither float samples nor G.711 nor WAVE_FORMAT_EXTENSIBLE.
Accepted: PCM 8 (unsigned), 16, 24 and 32 bit; IEEE float 32 and 64 bit; A-law
and μ-law; any of these inside WAVE_FORMAT_EXTENSIBLE; any number of channels and
any rate. A data chunk whose declared size runs past the end of the file (a
recording cut short, or a streamed header with size 0xFFFFFFFF) is read up to
the last whole frame.

Untrusted files (issue 10): the sample rate must lie in `MIN_RATE`..`MAX_RATE` and the
audio may last at most `max_seconds` (checked from the header and the data size, before
anything is decoded or resampled), so a 4 KB file declaring 1 Hz (70 minutes of audio
to upsample 8000 times) is refused at once instead of costing GBs. Decoding to mono and
resampling then work in blocks, so memory stays a few bytes per output sample.

`resample` is a windowed-sinc band-limited interpolator written here so the
package needs nothing beyond numpy: each output sample is the input convolved
with a low-pass kernel (cut off below the lower of the two Nyquist frequencies,
Blackman window) centred on its exact position in input time.
"""

from __future__ import annotations

import math
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from media.g711 import alaw_decode, ulaw_decode

__all__ = [
    "WavAudio",
    "WavError",
    "load_mono",
    "parse_wav",
    "read_wav",
    "resample",
    "to_int16",
    "wav_bytes",
    "write_wav",
]

FloatArray = npt.NDArray[np.float64]

_PCM = 0x0001
_FLOAT = 0x0003
_ALAW = 0x0006
_ULAW = 0x0007
_EXTENSIBLE = 0xFFFE
_MAX_CHANNELS = 64
MIN_RATE = 8000
MAX_RATE = 192000
DEFAULT_MAX_SECONDS = 1800.0
"""Longest audio `load_mono` accepts by default (half an hour)."""
_BLOCK_FRAMES = 1 << 18  # frames decoded at a time by load_mono


class WavError(Exception):
    """A file that is not a WAV file this module can read; `reason` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class WavAudio:
    """Decoded audio: `samples` has shape (frames, channels), floats in [-1, 1]."""

    rate: int
    samples: FloatArray

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return float(self.samples.shape[0]) / self.rate


def _chunks(data: bytes) -> dict[bytes, bytes]:
    """The first chunk of each id in a RIFF/WAVE body. Raises: WavError."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError("not a RIFF/WAVE file")
    chunks: dict[bytes, bytes] = {}
    pos = 12
    while pos + 8 <= len(data):
        cid = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = data[pos + 8 : pos + 8 + size]  # may be short: cut-off file
        chunks.setdefault(cid, body)
        if cid == b"data" and pos + 8 + size > len(data):
            break
        pos += 8 + size + (size & 1)  # chunks are padded to an even length
    return chunks


def _decode(fmt_tag: int, bits: int, block: int, channels: int, body: bytes) -> FloatArray:
    """Interleaved frames -> (frames, channels) floats. Raises: WavError."""
    frames = len(body) // block
    body = body[: frames * block]
    if fmt_tag == _PCM and bits == 8:
        x = (np.frombuffer(body, np.uint8).astype(np.float64) - 128.0) / 128.0
    elif fmt_tag == _PCM and bits == 16:
        x = np.frombuffer(body, "<i2").astype(np.float64) / 32768.0
    elif fmt_tag == _PCM and bits == 24:
        raw = np.frombuffer(body, np.uint8).reshape(-1, 3).astype(np.int32)
        value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        value = np.where(value >= 1 << 23, value - (1 << 24), value)
        x = value.astype(np.float64) / float(1 << 23)
    elif fmt_tag == _PCM and bits == 32:
        x = np.frombuffer(body, "<i4").astype(np.float64) / float(1 << 31)
    elif fmt_tag == _FLOAT and bits in (32, 64):
        x = np.frombuffer(body, "<f4" if bits == 32 else "<f8").astype(np.float64)
        x = np.clip(np.nan_to_num(x), -1.0, 1.0)
    elif fmt_tag in (_ALAW, _ULAW) and bits == 8:
        decode = alaw_decode if fmt_tag == _ALAW else ulaw_decode
        x = decode(body).astype(np.float64) / 32768.0
    else:
        raise WavError(f"unsupported WAV encoding (format 0x{fmt_tag:04x}, {bits} bits)")
    if block != channels * (bits // 8):
        raise WavError(f"inconsistent WAV header (block {block} for {channels}×{bits} bits)")
    return x.reshape(frames, channels)


@dataclass(frozen=True, slots=True)
class _Header:
    fmt_tag: int
    channels: int
    rate: int
    block: int
    bits: int
    body: memoryview  # the data chunk, cut to whole frames

    @property
    def frames(self) -> int:
        return len(self.body) // self.block


def _header(data: bytes, max_seconds: float | None) -> _Header:
    """The format and the data of a WAV file, checked before any decoding. Raises: WavError."""
    chunks = _chunks(data)
    fmt = chunks.get(b"fmt ")
    if fmt is None or len(fmt) < 16:
        raise WavError("no fmt chunk")
    if b"data" not in chunks:
        raise WavError("no data chunk")
    fmt_tag, channels, rate, _, block, bits = struct.unpack_from("<HHIIHH", fmt)
    if fmt_tag == _EXTENSIBLE:
        if len(fmt) < 40:
            raise WavError("truncated WAVE_FORMAT_EXTENSIBLE header")
        (fmt_tag,) = struct.unpack_from("<H", fmt, 24)  # first two bytes of the subformat GUID
    if not 1 <= channels <= _MAX_CHANNELS:
        raise WavError(f"bad channel count {channels}")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise WavError(f"sample rate {rate} Hz is outside {MIN_RATE}..{MAX_RATE}")
    if bits == 0 or bits % 8 or block == 0:
        raise WavError(f"bad sample size ({bits} bits, block {block})")
    body = memoryview(chunks[b"data"])
    header = _Header(fmt_tag, channels, rate, block, bits, body[: len(body) // block * block])
    if max_seconds is not None and header.frames > max_seconds * rate:
        raise WavError(f"audio lasts {header.frames / rate:.0f} s, more than {max_seconds:g} s")
    return header


def parse_wav(data: bytes, *, max_seconds: float | None = None) -> WavAudio:
    """Decode the bytes of a WAV file.

    Raises:
        WavError: not RIFF/WAVE, no fmt or data chunk, an encoding not listed above,
            a header that contradicts itself, a sample rate outside MIN_RATE..MAX_RATE,
            or more than `max_seconds` of audio.
    """
    h = _header(data, max_seconds)
    return WavAudio(h.rate, _decode(h.fmt_tag, h.bits, h.block, h.channels, bytes(h.body)))


def _read(path: Path | str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise WavError(exc.strerror or str(exc)) from exc


def read_wav(path: Path | str, *, max_seconds: float | None = None) -> WavAudio:
    """Read and decode a WAV file. Raises: WavError (OS errors become one too)."""
    return parse_wav(_read(path), max_seconds=max_seconds)


def _kernel(tau: FloatArray, cutoff: float, half: float) -> FloatArray:
    """Low-pass kernel: sinc at `cutoff` (cycles per input sample), Blackman window."""
    u = np.clip(tau / half, -1.0, 1.0)
    window = 0.42 + 0.5 * np.cos(np.pi * u) + 0.08 * np.cos(2.0 * np.pi * u)
    out: FloatArray = 2.0 * cutoff * np.sinc(2.0 * cutoff * tau) * window
    return out


def resample(
    x: npt.ArrayLike, src_rate: int, dst_rate: int, *, zeros: int = 16, rolloff: float = 0.92
) -> FloatArray:
    """Band-limited resampling of a 1-D signal from `src_rate` to `dst_rate`.

    The output has ceil(len * dst / src) samples; output n sits at input time
    n * src / dst. `zeros` sets the kernel length (zero crossings each side at the
    lower rate), `rolloff` the cutoff as a fraction of the lower Nyquist frequency.
    """
    signal = np.asarray(x, dtype=np.float64)
    if src_rate == dst_rate or signal.size == 0:
        return signal.copy()
    g = math.gcd(src_rate, dst_rate)
    up, down = dst_rate // g, src_rate // g
    n_out = -(-signal.size * up // down)
    scale = min(1.0, dst_rate / src_rate)
    cutoff = 0.5 * scale * rolloff
    half = zeros / scale
    width = math.ceil(half)
    taps = np.arange(-width + 1, width + 1)  # input offsets from floor(t)
    padded = np.concatenate([np.zeros(width), signal, np.zeros(width + 1)])
    table = None
    if up <= 4096:  # one kernel row per phase, computed once
        frac = np.arange(up, dtype=np.float64) / up
        table = _kernel(taps[None, :] - frac[:, None], cutoff, half)
    out = np.empty(n_out)
    step = max(1, 262_144 // taps.size)
    for lo in range(0, n_out, step):  # positions made per block: no whole-output index
        n = np.arange(lo, min(lo + step, n_out), dtype=np.int64)
        b, p = (n * down) // up, (n * down) % up
        if table is not None:
            weights = table[p]
        else:
            weights = _kernel(taps[None, :] - (p / up)[:, None], cutoff, half)
        out[lo : lo + step] = np.sum(padded[b[:, None] + taps[None, :] + width] * weights, axis=1)
    return out


def to_int16(x: npt.ArrayLike) -> npt.NDArray[np.int16]:
    """Floats in [-1, 1] to 16-bit samples, rounded and clipped."""
    scaled = np.round(np.asarray(x, dtype=np.float64) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def load_mono(
    path: Path | str, rate: int = 8000, *, max_seconds: float | None = DEFAULT_MAX_SECONDS
) -> npt.NDArray[np.int16]:
    """Read any WAV file as mono 16-bit samples at `rate` (channels averaged).

    The rate and the length are checked before decoding; decoding runs in blocks of
    frames, so only the mono signal and the output are ever held whole.

    Raises:
        WavError: the file cannot be read or decoded, its rate is outside
            MIN_RATE..MAX_RATE, or it lasts longer than `max_seconds`.
    """
    h = _header(_read(path), max_seconds)
    mono = np.empty(h.frames)
    step = _BLOCK_FRAMES * h.block
    for start in range(0, len(h.body), step):
        chunk = bytes(h.body[start : start + step])
        frames = _decode(h.fmt_tag, h.bits, h.block, h.channels, chunk)
        first = start // h.block
        mono[first : first + len(frames)] = frames.mean(axis=1)
    return to_int16(resample(mono, h.rate, rate))


def wav_bytes(samples: npt.ArrayLike, rate: int) -> bytes:
    """A 16-bit PCM WAV file; `samples` is int16 of shape (frames,) or (frames, channels)."""
    x = np.asarray(samples, dtype=np.int16)
    if x.ndim == 1:
        x = x[:, None]
    channels = x.shape[1]
    body = x.astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", _PCM, channels, rate, rate * 2 * channels, 2 * channels, 16)
    header = b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(body)) + b"WAVE"
    return (
        header
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(body))
        + body
    )


def write_wav(path: Path | str, samples: npt.ArrayLike, rate: int) -> None:
    """Write a 16-bit PCM WAV file (see `wav_bytes`)."""
    Path(path).write_bytes(wav_bytes(samples, rate))


def write_wav_durably(path: Path | str, samples: npt.ArrayLike, rate: int) -> None:
    """Write a WAV file so that a crash (even power loss) leaves the old file or the whole
    new one: a temporary file in the same directory, fsynced, renamed over `path`, and
    the directory fsynced. Creates missing directories.

    Raises: OSError.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(wav_bytes(samples, rate))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
