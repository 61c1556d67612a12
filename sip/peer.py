"""The far end of a SIP hop: transport name, host and port.

Transactions, the transport and the endpoint all need to say "where this message came
from / goes to" the same way; RFC 3261 §18 makes the transport's reliability decide which
timers run (§17: Timers A, E, G only over unreliable transports; D, I, J, K are zero over
reliable ones), so `reliable` lives here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Peer:
    """A remote address with its transport ("UDP", "TCP", "TLS", ...; upper case)."""

    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        """True for a connection-oriented transport (anything but UDP)."""
        return self.transport != "UDP"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{self.transport.lower()}:{host}:{self.port}"
