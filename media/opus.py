"""Opus (RFC 6716) at the telephone's own rate: 8 kHz mono in and out, through libopus.

The browser phone's gateway talks Opus with the browser and G.711 with the switch. Going
through 48 kHz stereo (what aiortc's codec wrappers do) made every frame pay a
resampler both ways and an encoder working on twelve times the samples, for audio that
is 8 kHz mono on the switch's side anyway. libopus itself takes and gives any of 8, 12,
16, 24 or 48 kHz (RFC 6716 §2: the decoder may output at a lower rate than coded; its
CELT layer then leaves out the bands above the output's Nyquist frequency before it
synthesises, so nothing aliases): so the encoder is fed the switch's 8 kHz frames (it
codes them as narrowband SILK), and the decoder gives 8 kHz frames, whatever bandwidth
the browser coded.

libopus is called through ctypes: the system's `libopus.so.0` when there is one, else
the copy PyAV's wheel carries (PyAV comes with aiortc). `OpusUnavailable` when neither
loads: the caller then keeps to aiortc's own codec path.

Every call is on the thread of its caller; one `OpusEncoder` or `OpusDecoder` is one
stream's state and is not shared between threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import logging
import os
import weakref

import numpy as np
import numpy.typing as npt

from media.errors import MediaError

__all__ = [
    "COMPLEXITY",
    "RATE",
    "OpusDecoder",
    "OpusEncoder",
    "OpusUnavailable",
    "available",
]

log = logging.getLogger(__name__)

RATE = 8000
"""Samples a second, both ways (the switch's rate)."""
COMPLEXITY = 5
"""libopus's encoder complexity, 0 (cheapest) to 10: the middle of the scale. On this
project's 2-core test machine a 20 ms 8 kHz frame costs about 130 us at 10, 75 at 5 and
35 at 1 (benchmarks/webrtc.py prints it); narrowband speech loses little below 10."""
BITRATE = 24_000
"""Bits a second the encoder aims at: more than narrowband SILK needs for clean speech."""
#: Largest frame a packet may decode to: 120 ms (RFC 6716 §3.2.5) at 8 kHz.
_MAX_SAMPLES = 120 * RATE // 1000
#: Largest Opus packet accepted from a peer (RFC 6716 §3.4 R2: at most 1275 bytes a
#: frame, up to 48 frames: a real packet of 20 ms is a few hundred bytes at most).
MAX_PACKET = 1500
_MAX_OUT = 1500

_APPLICATION_VOIP = 2048
_SET_BITRATE = 4002
_SET_COMPLEXITY = 4010
_SET_SIGNAL = 4024
_SIGNAL_VOICE = 3001


class OpusUnavailable(MediaError):
    """libopus could not be loaded (neither the system's nor PyAV's copy)."""


class OpusCodecError(MediaError):
    """libopus refused a packet or a setting; the message is libopus's own."""


def _candidates() -> list[str]:
    found = ctypes.util.find_library("opus")
    names = [found] if found else []
    try:
        import av  # PyAV's manylinux wheel carries its own libopus beside its modules
    except ImportError:
        return names
    libs = os.path.join(os.path.dirname(os.path.dirname(av.__file__)), "av.libs")
    return names + sorted(glob.glob(os.path.join(libs, "libopus*.so*")))


def _load() -> ctypes.CDLL | None:
    for name in _candidates():
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        p, i, i32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int32
        lib.opus_encoder_create.restype = p
        lib.opus_encoder_create.argtypes = [i32, i, i, ctypes.POINTER(i)]
        lib.opus_decoder_create.restype = p
        lib.opus_decoder_create.argtypes = [i32, i, ctypes.POINTER(i)]
        lib.opus_encode.restype = i32
        lib.opus_encode.argtypes = [p, p, i, p, i32]
        lib.opus_decode.restype = i
        lib.opus_decode.argtypes = [p, ctypes.c_char_p, i32, p, i, i]
        lib.opus_encoder_destroy.argtypes = [p]
        lib.opus_decoder_destroy.argtypes = [p]
        lib.opus_encoder_ctl.restype = i
        lib.opus_strerror.restype = ctypes.c_char_p
        lib.opus_strerror.argtypes = [i]
        lib.opus_get_version_string.restype = ctypes.c_char_p
        log.debug("Opus: %s from %s", lib.opus_get_version_string().decode(), name)
        return lib
    return None


_LIB: ctypes.CDLL | None = None
_LOADED = False


def _lib() -> ctypes.CDLL:
    global _LIB, _LOADED
    if not _LOADED:
        _LIB, _LOADED = _load(), True
    if _LIB is None:
        raise OpusUnavailable("libopus not found (install libopus0, or PyAV's wheel)")
    return _LIB


def available() -> bool:
    """Whether libopus loads."""
    try:
        _lib()
    except OpusUnavailable:
        return False
    return True


def _error(lib: ctypes.CDLL, code: int) -> OpusCodecError:
    return OpusCodecError(f"libopus: {lib.opus_strerror(code).decode()}")


class OpusEncoder:
    """One stream's encoder: 8 kHz mono frames in, one Opus packet out per frame.

    Raises (constructor): OpusUnavailable without libopus.
    """

    def __init__(self, complexity: int = COMPLEXITY, bitrate: int = BITRATE) -> None:
        lib = self._lib = _lib()
        error = ctypes.c_int()
        state = lib.opus_encoder_create(RATE, 1, _APPLICATION_VOIP, ctypes.byref(error))
        if not state:
            raise _error(lib, error.value)
        self._state = ctypes.c_void_p(state)
        self._done = weakref.finalize(self, lib.opus_encoder_destroy, self._state)
        for request, value in (
            (_SET_COMPLEXITY, complexity),
            (_SET_BITRATE, bitrate),
            (_SET_SIGNAL, _SIGNAL_VOICE),
        ):
            code = lib.opus_encoder_ctl(self._state, request, ctypes.c_int32(value))
            if code < 0:
                self.close()
                raise _error(lib, code)
        self._out = ctypes.create_string_buffer(_MAX_OUT)
        # The frame is copied into one buffer whose address is taken once (numpy's
        # `.ctypes` costs more than the copy of 160 samples).
        self._pcm = np.zeros(_MAX_SAMPLES // 2, np.int16)
        self._pcm_at = self._pcm.ctypes.data

    def encode(self, samples: npt.NDArray[np.int16]) -> bytes:
        """The packet of one frame (2.5 to 60 ms of 8 kHz int16: 20 ms is 160 samples).

        Raises: OpusCodecError for a frame length Opus has no mode for.
        """
        count = len(samples)
        if count > len(self._pcm):
            raise OpusCodecError(f"a frame of {count} samples is longer than 60 ms")
        self._pcm[:count] = samples
        lib = self._lib
        size = lib.opus_encode(self._state, self._pcm_at, count, self._out, _MAX_OUT)
        if size < 0:
            raise _error(lib, size)
        return self._out.raw[:size]

    def close(self) -> None:
        """Free the encoder's state (also done when it is collected)."""
        self._done()


class OpusDecoder:
    """One stream's decoder: Opus packets in (any bandwidth, mono or stereo), 8 kHz mono out.

    Raises (constructor): OpusUnavailable without libopus.
    """

    def __init__(self) -> None:
        lib = self._lib = _lib()
        error = ctypes.c_int()
        state = lib.opus_decoder_create(RATE, 1, ctypes.byref(error))
        if not state:
            raise _error(lib, error.value)
        self._state = ctypes.c_void_p(state)
        self._done = weakref.finalize(self, lib.opus_decoder_destroy, self._state)
        self._pcm = np.zeros(_MAX_SAMPLES, np.int16)
        self._pcm_at = self._pcm.ctypes.data

    def decode(self, packet: bytes) -> npt.NDArray[np.int16]:
        """The 8 kHz samples of `packet` (a fresh array: 160 for 20 ms).

        Raises: OpusCodecError for a packet libopus cannot decode (or over `MAX_PACKET`).
        """
        if not packet or len(packet) > MAX_PACKET:
            raise OpusCodecError(f"Opus packet of {len(packet)} bytes")
        lib = self._lib
        count = lib.opus_decode(self._state, packet, len(packet), self._pcm_at, _MAX_SAMPLES, 0)
        if count < 0:
            raise _error(lib, count)
        return self._pcm[:count].copy()

    def close(self) -> None:
        """Free the decoder's state (also done when it is collected)."""
        self._done()
