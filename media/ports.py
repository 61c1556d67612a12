"""RTP/RTCP port pairs from a configured range: even RTP port, RTCP on the next one.

RFC 3550 §11: "For UDP and similar protocols, RTP SHOULD use an even destination port
number and the corresponding RTCP stream SHOULD use the next higher (odd) destination
port number". The allocator binds both sockets of a pair itself, so a port another
program holds is skipped rather than handed out.

Pairs are picked at random (`secrets`), not in order: with ports handed out one after
the other an attacker who saw one call's port could spray the next ones and race the
phones for the latch (issue 10 §4; rtpengine and Asterisk randomize too). A released pair
waits in a short quarantine (a quarter of the range, at most `QUARANTINE`) before it can
be picked again, so late packets of an ended call do not reach the next one.
"""

from __future__ import annotations

import logging
import secrets
import socket
from collections import deque
from dataclasses import dataclass

from media.errors import MediaError, PortsExhaustedError

log = logging.getLogger(__name__)

DEFAULT_MIN_PORT = 10000
DEFAULT_MAX_PORT = 20000
QUARANTINE = 64


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
        self._free: list[int] = list(range(first, max_port, 2))
        self._quarantine: deque[int] = deque()
        self._quarantine_size = min(QUARANTINE, len(self._free) // 4)
        self._used: set[int] = set()

    @property
    def in_use(self) -> int:
        """How many pairs are allocated now."""
        return len(self._used)

    @property
    def available(self) -> int:
        """How many pairs could still be handed out (ports held by others count as free)."""
        return len(self._free) + len(self._quarantine)

    def allocate(self) -> PortPair:
        """Bind and return the next free pair.

        Raises:
            PortsExhaustedError: every pair is in use or cannot be bound.
        """
        free = self._free
        if not free:
            free.extend(self._quarantine)  # nothing else left: reuse early rather than fail
            self._quarantine.clear()
        busy: list[int] = []
        try:
            while free:
                i = secrets.randbelow(len(free))
                free[i], free[-1] = free[-1], free[i]
                port = free.pop()
                try:
                    pair = self._bind(port)
                except PortsExhaustedError:
                    free.append(port)
                    raise
                if pair is None:
                    busy.append(port)  # held by another program now; maybe not later
                    continue
                self._used.add(port)
                return pair
        finally:
            free.extend(busy)
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
            self._quarantine.append(pair.rtp_port)
            while len(self._quarantine) > self._quarantine_size:
                self._free.append(self._quarantine.popleft())

    def _bind(self, port: int) -> PortPair | None:
        """Both sockets of a pair bound, or None when the port is taken.

        Raises:
            PortsExhaustedError: no file descriptor left for a socket (EMFILE, ENFILE):
                the call fails cleanly (503) instead of with a traceback.
        """
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            rtp = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as exc:
            raise PortsExhaustedError(f"no socket for RTP: {exc.strerror or exc}") from exc
        try:
            rtcp = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as exc:
            rtp.close()
            raise PortsExhaustedError(f"no socket for RTCP: {exc.strerror or exc}") from exc
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
