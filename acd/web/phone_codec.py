"""A browser phone's payloads between the browser's codec and the switch's G.711 law.

The gateway (acd.web.phone_webrtc) sits between a browser talking Opus, PCMU or PCMA and
the switch talking PCMU or PCMA, 20 ms a packet. It works on encoded payloads only:

- G.711 on both sides: the payload as it came when the laws agree, else one table lookup
  a byte (`media.g711_tables`); nothing decoded, nothing resampled.
- Opus: decoded straight to 8 kHz mono and encoded from 8 kHz mono by libopus
  (`media.opus`): no 48 kHz stereo in between, no resampler.

No I/O and no clock: `FromBrowser.feed` takes each payload the browser sent and gives the
switch's 20 ms payloads; `ToBrowser.packet` takes one slot's switch payload (or None: a
gap, or the switch has not answered yet) and gives the browser's.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from media.errors import MediaError
from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from media.g711_tables import ALAW_TO_ULAW, ULAW_TO_ALAW
from media.opus import OpusDecoder, OpusEncoder

__all__ = ["CODECS", "FRAME", "FromBrowser", "ToBrowser", "codec_of"]

log = logging.getLogger(__name__)

FRAME = 160
"""Samples (and G.711 bytes) in 20 ms at 8 kHz."""
CODECS = ("opus", "pcmu", "pcma")
"""Browser codecs handled here; anything else goes through aiortc's own decoder."""

_DECODE = {"pcmu": ulaw_decode, "pcma": alaw_decode}
_ENCODE = {"pcmu": ulaw_encode, "pcma": alaw_encode}
_TRANSLATE = {("pcmu", "pcma"): ULAW_TO_ALAW, ("pcma", "pcmu"): ALAW_TO_ULAW}
_SILENCE = {"pcmu": b"\xff" * FRAME, "pcma": b"\xd5" * FRAME}
#: 8 kHz samples waiting for a whole frame (a browser frame is 20 ms: 160 at most wait).
_MAX_PENDING = 8 * FRAME


def codec_of(mime_type: str) -> str | None:
    """'opus', 'pcmu' or 'pcma' for an RTP MIME type ("audio/PCMU"), else None."""
    name = mime_type.lower().removeprefix("audio/")
    return name if name in CODECS else None


def _law(switch: str) -> str:
    if switch not in _ENCODE:
        raise MediaError(f"the switch's codec {switch!r} is not G.711")
    return switch


class FromBrowser:
    """The browser's payloads in `codec` to the switch's 20 ms G.711 payloads.

    Raises (constructor): MediaError for a codec not in `CODECS`; OpusUnavailable for
    Opus without libopus.
    """

    def __init__(self, codec: str) -> None:
        if codec not in CODECS:
            raise MediaError(f"browser codec {codec!r} not handled here")
        self.codec = codec
        self._decoder = OpusDecoder() if codec == "opus" else None
        self._pending = np.zeros(0, np.int16)
        self._pending_bytes = b""
        self.bad = 0
        """Payloads that could not be decoded (dropped)."""

    def feed(self, payload: bytes, switch: str) -> list[bytes]:
        """The switch's payloads (each 160 bytes in `switch`'s law) for one browser payload.

        Raises: MediaError when `switch` is not "pcmu" or "pcma".
        """
        law = _law(switch)
        if self._decoder is None:  # G.711 from the browser: bytes stay bytes
            if self.codec != law:
                payload = payload.translate(_TRANSLATE[self.codec, law])
            data = self._pending_bytes + payload if self._pending_bytes else payload
            if len(data) == FRAME:
                return [data]
            cut = len(data) - len(data) % FRAME
            self._pending_bytes = data[cut:][-_MAX_PENDING:]
            return [data[i : i + FRAME] for i in range(0, cut, FRAME)]
        try:
            samples = self._decoder.decode(payload)
        except MediaError as exc:
            self.bad += 1
            log.debug("browser Opus dropped: %s", exc)
            return []
        if len(self._pending):
            samples = np.concatenate([self._pending, samples])
        cut = len(samples) - len(samples) % FRAME
        self._pending = samples[cut:][-_MAX_PENDING:]
        if cut == 0:
            return []
        codes = _ENCODE[law](samples[:cut]).tobytes()
        return [codes[i : i + FRAME] for i in range(0, cut, FRAME)]

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()


class ToBrowser:
    """The switch's 20 ms G.711 payloads to the browser's payloads in `codec`.

    Raises (constructor): MediaError for a codec not in `CODECS`; OpusUnavailable for
    Opus without libopus.
    """

    def __init__(self, codec: str) -> None:
        if codec not in CODECS:
            raise MediaError(f"browser codec {codec!r} not handled here")
        self.codec = codec
        self._encoder = OpusEncoder() if codec == "opus" else None
        self._quiet = np.zeros(FRAME, np.int16)

    def packet(self, payload: bytes | None, switch: str | None) -> bytes:
        """The browser's payload for one slot: `payload` (the switch's, in its law
        `switch`) or, for None, silence."""
        if self._encoder is None:
            if payload is None or switch is None:
                return _SILENCE[self.codec]
            if switch == self.codec:
                return payload  # the same law: as it came
            return payload.translate(_TRANSLATE[_law(switch), self.codec])
        if payload is None or switch is None:
            samples: npt.NDArray[np.int16] = self._quiet
        else:
            samples = _DECODE[_law(switch)](payload)
        return self._encoder.encode(samples)

    def close(self) -> None:
        if self._encoder is not None:
            self._encoder.close()
