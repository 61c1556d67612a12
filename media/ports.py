"""RTP/RTCP port pairs from a configured range: even RTP port, RTCP on the next one.

RFC 3550 §11: "For UDP and similar protocols, RTP SHOULD use an even destination port
number and the corresponding RTCP stream SHOULD use the next higher (odd) destination
port number". The allocator binds both sockets of a pair itself, so a port another
program holds is skipped rather than handed out, and hands ports out round-robin so a
just-released pair is reused last (late packets of an ended call do not reach the next).
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from dataclasses import dataclass

from media.errors import MediaError, PortsExhaustedError

log = logging.getLogger(__name__)

DEFAULT_MIN_PORT = 10000
DEFAULT_MAX_PORT = 20000


@dataclass(frozen=True, slots=True)
class PortPair:
    """Two bound, non-blocking UDP sockets: RTP on an even port, RTCP on the next."""

    host: str
    rtp_port: int
    rtp: socket.socket
    rtcp: socket.socket

    @property
    def rtcp_port(self) -> int:
        return self.rtp_port + 1


class PortAllocator:
    """Hands out `PortPair`s from `min_port`..`max_port` on `host` (like Asterisk's rtp.conf).

    Raises:
        MediaError: from the constructor when the range holds no even/odd pair.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        min_port: int = DEFAULT_MIN_PORT,
        max_port: int = DEFAULT_MAX_PORT,
    ) -> None:
        first = min_port + (min_port & 1)
        if not 0 < first < max_port <= 65535:
            raise MediaError(f"RTP port range {min_port}-{max_port} holds no even/odd pair")
        self.host = host
        self.min_port = min_port
        self.max_port = max_port
        self._free: deque[int] = deque(range(first, max_port, 2))
        self._used: set[int] = set()

    @property
    def in_use(self) -> int:
        """How many pairs are allocated now."""
        return len(self._used)

    @property
    def available(self) -> int:
        """How many pairs could still be handed out (ports held by others count as free)."""
        return len(self._free)

    def allocate(self) -> PortPair:
        """Bind and return the next free pair.

        Raises:
            PortsExhaustedError: every pair is in use or cannot be bound.
        """
        for _ in range(len(self._free)):
            port = self._free.popleft()
            pair = self._bind(port)
            if pair is None:
                self._free.append(port)  # held by another program now; maybe not later
                continue
            self._used.add(port)
            return pair
        raise PortsExhaustedError(
            f"no free RTP port pair in {self.min_port}-{self.max_port} on {self.host}"
            f" ({len(self._used)} pairs in use)"
        )

    def release(self, pair: PortPair) -> None:
        """Close both sockets and return the ports to the range (a second call is a no-op)."""
        pair.rtp.close()
        pair.rtcp.close()
        if pair.rtp_port in self._used:
            self._used.remove(pair.rtp_port)
            self._free.append(pair.rtp_port)

    def _bind(self, port: int) -> PortPair | None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        rtp = socket.socket(family, socket.SOCK_DGRAM)
        rtcp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            rtp.bind((self.host, port))
            rtcp.bind((self.host, port + 1))
        except OSError as exc:
            log.debug("RTP port pair %s/%s on %s unavailable: %s", port, port + 1, self.host, exc)
            rtp.close()
            rtcp.close()
            return None
        rtp.setblocking(False)
        rtcp.setblocking(False)
        return PortPair(self.host, port, rtp, rtcp)
