"""Exceptions of the media package.

`media/` sits below `pbx/` and may not import it, so it has its own root, `MediaError`;
the B2BUA turns these into SIP answers (an `SdpError` in an offer is a 488 Not Acceptable
Here, an exhausted port range a 503).
"""

from __future__ import annotations


class MediaError(Exception):
    """Root of every error raised by the `media` package."""


class SdpError(MediaError):
    """A session description could not be parsed or negotiated.

    `reason` is a one-line explanation suitable for a log line or a Warning header.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PortsExhaustedError(MediaError):
    """Every RTP/RTCP port pair of the configured range is in use (or cannot be bound)."""
