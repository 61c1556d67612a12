"""Exceptions of the SIP library.

`sip/` sits below `pbx/` and may not import it, so the SIP library has its own root,
`SipError`; `pbx.errors.PbxError` is the root of everything above it.
"""

from __future__ import annotations


class SipError(Exception):
    """Root of every error raised by the `sip` package."""


class SipParseError(SipError):
    """A message or header could not be parsed.

    `status` is the response code a server answers a bad request with
    (400 unless the RFC names another, e.g. 505 for a bad SIP version,
    416 for an unsupported URI scheme); `reason` is a one-line explanation
    suitable for a reason phrase.
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class TransportError(SipError):
    """A message could not be sent (ICMP error, connection refused or reset)."""
