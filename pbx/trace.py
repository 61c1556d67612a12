"""`pbx serve --sip-trace`: every SIP message in and out, in the log, secrets masked.

The endpoint calls `SipTracer` (its `on_trace` hook) with the raw bytes; the
tracer writes one log record per message on the `pbx.trace` logger: a header
line (direction, peer, size) and the message text. Digest credentials are
masked before anything is written: the `response=` and `cnonce=` values of
Authorization and Proxy-Authorization (a response hash is what an offline
password guesser needs), so a trace can be pasted into an issue.
"""

from __future__ import annotations

import logging
import re

from sip.peer import Peer

log = logging.getLogger(__name__)

MASK = "***"

_CREDENTIALS = re.compile(r"^((?:proxy-)?authorization[ \t]*:.*)$", re.IGNORECASE | re.MULTILINE)
_SECRET_PARAM = re.compile(r'(\b(?:response|cnonce)[ \t]*=[ \t]*)("[^"]*"|[^,\s]*)', re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """`text` with the response= and cnonce= values of credential headers masked."""

    def mask_line(line: re.Match[str]) -> str:
        return _SECRET_PARAM.sub(
            lambda m: m.group(1) + (f'"{MASK}"' if m.group(2).startswith('"') else MASK),
            line.group(1),
        )

    return _CREDENTIALS.sub(mask_line, text)


class SipTracer:
    """The endpoint's trace hook: logs each message (masked) at INFO on `pbx.trace`."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self._log = logger

    def __call__(self, direction: str, data: bytes, peer: Peer) -> None:
        if not self._log.isEnabledFor(logging.INFO):
            return
        arrow = "<<< from" if direction == "in" else ">>> to"
        text = mask_secrets(data.decode("utf-8", "replace")).replace("\r\n", "\n").rstrip("\n")
        self._log.info("%s %s (%d bytes)\n%s\n", arrow, peer, len(data), text)
