"""A minimal SIP UAC over a real UDP socket, for tests sipp cannot express
(SHA-256 digest, nonce-count replay, byte comparison of challenges).

It builds requests as text, sends them to 127.0.0.1 and parses what comes back
with the project's own parser; it has no retransmission (loopback does not
lose datagrams) and waits with a bounded timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets

from sip.digest import Challenge, Credentials, make_credentials
from sip.message import Request, Response, parse_message


def media_address(sdp: bytes) -> tuple[str, int]:
    """Where an SDP body says to send audio: its c= address and first m=audio port."""
    host = re.search(rb"c=IN IP4 (\S+)", sdp)
    port = re.search(rb"m=audio (\d+)", sdp)
    assert host and port, f"no audio address in {sdp!r}"
    return host.group(1).decode(), int(port.group(1))


#: The RTP port named in an SDP when the test does not listen for the media: above Linux's
#: ephemeral range (32768-60999), so no socket of a test on another worker gets it.
NOWHERE_RTP = 61000


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        # Only what may be SIP (a method or "SIP/2.0" first): the kernel may give this
        # socket a port that a test on the other worker names as its RTP address in an
        # SDP (as `dial`'s default was), and the RTP sent there would come here.
        if data[:1].isalpha():
            self.queue.put_nowait(data)


class SipClient:
    """One UDP socket on 127.0.0.1 (or another loopback `host`) talking to a server port."""

    def __init__(self, server_port: int, host: str = "127.0.0.1") -> None:
        self.server_port = server_port
        self.host = host
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._inbox = _Inbox()
        self._branches = itertools.count(1)
        self.call_id = secrets.token_hex(8)
        self.from_tag = secrets.token_hex(4)
        self.cseq = 0

    async def __aenter__(self) -> SipClient:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self._inbox, local_addr=(self.host, 0), remote_addr=None
        )
        self._transport = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("sockname")[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None:
            self._transport.close()

    def register(
        self,
        user: str,
        *,
        expires: int | None = 3600,
        contact: str | None = None,
        authorization: str | None = None,
        extra: str = "",
        call_id: str | None = None,
        cseq: int | None = None,
    ) -> bytes:
        """A REGISTER for `user` as bytes (new branch, next CSeq unless given)."""
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        host = f"127.0.0.1:{self.server_port}"
        branch = f"z9hG4bK{next(self._branches)}x{secrets.token_hex(4)}"
        lines = [
            f"REGISTER sip:{host} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};rport;branch={branch}",
            "Max-Forwards: 70",
            f"From: <sip:{user}@{host}>;tag={self.from_tag}",
            f"To: <sip:{user}@{host}>",
            f"Call-ID: {call_id or self.call_id}",
            f"CSeq: {cseq} REGISTER",
        ]
        if contact is None:
            contact = f"<sip:{user}@{self.host}:{self.port}>"
        if contact:
            lines.append(f"Contact: {contact}")
        if expires is not None:
            lines.append(f"Expires: {expires}")
        if authorization:
            lines.append(f"Authorization: {authorization}")
        if extra:
            lines.append(extra)
        lines.append("Content-Length: 0")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def invite(
        self,
        user: str,
        target: str,
        *,
        authorization: str | None = None,
        cseq: int = 1,
        call_id: str | None = None,
        branch: str | None = None,
        rtp_port: int = NOWHERE_RTP,
        events: bool = False,
        offer: bool = True,
    ) -> bytes:
        """An INVITE from `user` to number `target` with a PCMU offer at `rtp_port`
        (and telephone-event 101 with `events`); without `offer`, no body at all (a
        late offer: the answer then goes in the ACK)."""
        host = f"127.0.0.1:{self.server_port}"
        branch = branch or f"z9hG4bKi{next(self._branches)}x{secrets.token_hex(4)}"
        formats = "0 101" if events else "0"
        sdp = (
            "v=0\r\no=ua 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {rtp_port} RTP/AVP {formats}\r\na=rtpmap:0 PCMU/8000\r\n"
            + ("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n" if events else "")
        ).encode()
        if not offer:
            sdp = b""
        lines = [
            f"INVITE sip:{target}@{host} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};rport;branch={branch}",
            "Max-Forwards: 70",
            f"From: <sip:{user}@{host}>;tag={self.from_tag}",
            f"To: <sip:{target}@{host}>",
            f"Call-ID: {call_id or self.call_id}",
            f"CSeq: {cseq} INVITE",
            f"Contact: <sip:{user}@127.0.0.1:{self.port}>",
            *(["Content-Type: application/sdp"] if sdp else []),
        ]
        if authorization:
            lines.append(f"Authorization: {authorization}")
        lines.append(f"Content-Length: {len(sdp)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + sdp

    @staticmethod
    def cancel_for(invite: bytes) -> bytes:
        """The CANCEL of an INVITE we sent (RFC 3261 §9.1: same branch, CSeq number)."""
        head = invite.split(b"\r\n\r\n", 1)[0].decode()
        lines = head.split("\r\n")
        keep = [
            line
            for line in lines[1:]
            if line.split(":", 1)[0] in ("Via", "From", "To", "Call-ID", "Max-Forwards")
        ]
        cseq = next(line for line in lines if line.startswith("CSeq:")).split()[1]
        start = lines[0].replace("INVITE", "CANCEL", 1)
        return (
            "\r\n".join([start, *keep, f"CSeq: {cseq} CANCEL", "Content-Length: 0"]) + "\r\n\r\n"
        ).encode()

    @staticmethod
    def ack_for(invite: bytes, response: Response) -> bytes:
        """The ACK of a non-2xx final response (§17.1.1.3: same branch, To with tag)."""
        head = invite.split(b"\r\n\r\n", 1)[0].decode()
        lines = head.split("\r\n")
        keep = [
            line
            for line in lines[1:]
            if line.split(":", 1)[0] in ("Via", "From", "Call-ID", "Max-Forwards")
        ]
        cseq = next(line for line in lines if line.startswith("CSeq:")).split()[1]
        to = response.headers.get("To")
        start = lines[0].replace("INVITE", "ACK", 1)
        return (
            "\r\n".join([start, *keep, f"To: {to}", f"CSeq: {cseq} ACK", "Content-Length: 0"])
            + "\r\n\r\n"
        ).encode()

    def ack_2xx(self, invite: bytes, response: Response, sdp: bytes = b"") -> bytes:
        """The ACK of a 2xx (RFC 3261 §13.2.2.4: a new transaction, to the Contact),
        carrying `sdp` (the answer to a 2xx's offer, after a late-offer INVITE)."""
        contact = (response.headers.get("Contact") or "").strip().strip("<>")
        head = invite.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
        keep = [
            line
            for line in head[1:]
            if line.split(":", 1)[0] in ("From", "Call-ID", "Max-Forwards")
        ]
        cseq = next(line for line in head if line.startswith("CSeq:")).split()[1]
        branch = f"z9hG4bKa{next(self._branches)}x{secrets.token_hex(4)}"
        lines = [
            f"ACK {contact} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};rport;branch={branch}",
            *keep,
            f"To: {response.headers.get('To')}",
            f"CSeq: {cseq} ACK",
            *(["Content-Type: application/sdp"] if sdp else []),
            f"Content-Length: {len(sdp)}",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + sdp

    def in_dialog(
        self,
        invite: bytes,
        ok: Response,
        method: str,
        cseq: int,
        headers: tuple[str, ...] = (),
    ) -> bytes:
        """A request `method` in the dialog the 2xx `ok` to our `invite` created."""
        ack = self.ack_2xx(invite, ok).decode()
        out = []
        for line in ack.split("\r\n\r\n")[0].split("\r\n"):
            if line.startswith("ACK "):
                line = f"{method} " + line[4:]
            elif line.startswith("CSeq:"):
                line = f"CSeq: {cseq} {method}"
            elif line.startswith("Content-Length:"):
                continue
            out.append(line)
        out += [f"Contact: <sip:ua@127.0.0.1:{self.port}>", *headers, "Content-Length: 0"]
        return ("\r\n".join(out) + "\r\n\r\n").encode()

    def bye_for(self, invite: bytes, ok: Response) -> bytes:
        """A BYE in the dialog the 2xx `ok` to our `invite` created."""
        ack = self.ack_2xx(invite, ok).decode()
        lines = ack.split("\r\n")
        cseq = int(next(line for line in lines if line.startswith("CSeq:")).split()[1]) + 1
        out = []
        for line in lines:
            if line.startswith("ACK "):
                line = "BYE " + line[4:]
            elif line.startswith("CSeq:"):
                line = f"CSeq: {cseq} BYE"
            out.append(line)
        return "\r\n".join(out).encode()

    def reinvite_for(
        self, invite: bytes, ok: Response, cseq: int, direction: str, rtp_port: int = NOWHERE_RTP
    ) -> bytes:
        """A re-INVITE in the dialog of `ok` offering PCMU with `direction` (hold/resume)."""
        ack = self.ack_2xx(invite, ok).decode()
        sdp = (
            f"v=0\r\no=ua 1 {cseq} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
            f"t=0 0\r\nm=audio {rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
            f"a={direction}\r\n"
        ).encode()
        out = []
        for line in ack.split("\r\n\r\n")[0].split("\r\n"):
            if line.startswith("ACK "):
                line = "INVITE " + line[4:]
            elif line.startswith("CSeq:"):
                line = f"CSeq: {cseq} INVITE"
            elif line.startswith("Content-Length:"):
                continue
            out.append(line)
        out += [
            f"Contact: <sip:ua@127.0.0.1:{self.port}>",
            "Content-Type: application/sdp",
            f"Content-Length: {len(sdp)}",
        ]
        return ("\r\n".join(out) + "\r\n\r\n").encode() + sdp

    def send(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.sendto(data, ("127.0.0.1", self.server_port))

    async def receive(self, timeout: float = 5.0) -> bytes | None:
        """The next datagram, or None when nothing came within `timeout`."""
        try:
            return await asyncio.wait_for(self._inbox.queue.get(), timeout)
        except TimeoutError:
            return None

    async def exchange(self, data: bytes, timeout: float = 5.0) -> Response:
        """Send a request, return its final response. Provisional responses, the
        switch's own requests (a late ACK ...) and retransmitted responses of earlier
        transactions (a 2xx of the INVITE) are skipped."""
        self.send(data)
        sent = parse_message(data)
        assert isinstance(sent, Request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            raw = await self.receive(max(0.0, deadline - loop.time()))
            assert raw is not None, "no response from the server"
            message = parse_message(raw)
            if (
                isinstance(message, Response)
                and message.status >= 200
                and message.cseq == sent.cseq
                and message.call_id == sent.call_id
            ):
                return message
            # a provisional response, or a request of the switch's (an ACK ...): not ours

    @staticmethod
    def challenge(response: Response, algorithm: str) -> Challenge:
        """The response's challenge for `algorithm`."""
        for value in response.headers.get_all("WWW-Authenticate"):
            challenge = Challenge.parse(value)
            if challenge.algorithm.upper() == algorithm.upper():
                return challenge
        raise AssertionError(
            f"no {algorithm} challenge in {response.headers.get_all('WWW-Authenticate')}"
        )

    def answer(self, challenge: Challenge, user: str, password: str, nc: int = 1) -> Credentials:
        return make_credentials(
            challenge, user, password, "REGISTER", f"sip:127.0.0.1:{self.server_port}", nc=nc
        )
