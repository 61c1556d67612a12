"""Dialogs (RFC 3261 §12): the state two UAs share once an INVITE is answered.

A `Dialog` is plain state plus the rules that use it; it sends nothing.

- §12.1.1 (UAS side): route set = the request's Record-Route in order; remote
  target = the request's Contact; remote CSeq = the request's; local CSeq starts
  fresh.
- §12.1.2 (UAC side): route set = the response's Record-Route *reversed*; remote
  target = the response's Contact; local CSeq = the request's; remote CSeq empty.
- §12.2.1.1 building a request inside the dialog: Request-URI is the remote target
  and the route set becomes Route headers when the first route is a loose router
  (";lr"); with a strict router the first route is the Request-URI and the remote
  target goes last in Route. "The UAC MUST ... increment" the local CSeq for every
  new request but ACK and CANCEL.
- §12.2.2 receiving: a request whose CSeq is lower than the remote CSeq "MUST" be
  rejected with 500; target refresh requests (re-INVITE, UPDATE) replace the remote
  target with their Contact.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from sip.errors import SipParseError
from sip.headers import CSeq, Headers, NameAddr
from sip.message import Request, Response
from sip.uri import SipUri, Uri

#: Methods whose requests refresh the remote target (RFC 3261 §12.2, RFC 3311 §5.1).
TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})

MAGIC_COOKIE = "z9hG4bK"


def new_tag() -> str:
    """A fresh From/To tag: 64 random bits (RFC 3261 §19.3 asks for at least 32)."""
    return secrets.token_hex(8)


def new_branch() -> str:
    """A fresh Via branch with the RFC 3261 magic cookie (§8.1.1.7)."""
    return MAGIC_COOKIE + secrets.token_hex(10)


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


def _contact_uri(message: Request | Response) -> Uri:
    """The URI of the single Contact a dialog-creating message carries (§12.1.1/§12.1.2)."""
    values = message.headers.get_all("Contact")
    if not values:
        raise SipParseError("dialog-creating message without Contact")
    return NameAddr.parse(values[0]).uri


@dataclass(slots=True, eq=False)
class Dialog:
    """One side's view of a dialog; `local_*` is us, `remote_*` the peer."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str  # our From value (without tag) in requests we send
    remote_uri: str  # their address, our To value (without tag)
    remote_target: Uri
    route_set: tuple[str, ...] = ()
    local_seq: int = field(default_factory=lambda: secrets.randbelow(2**16) + 1)
    remote_seq: int | None = None
    state: DialogState = DialogState.EARLY
    secure: bool = False

    @property
    def id(self) -> tuple[str, str, str]:
        """(Call-ID, local tag, remote tag): the dialog ID of §12."""
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def as_uas(cls, request: Request, local_tag: str, *, confirmed: bool = False) -> Dialog:
        """The dialog a UAS creates when it answers `request` with To tag `local_tag`.

        Raises: SipParseError when the request has no usable Contact or From tag.
        """
        remote_tag = request.from_.tag
        if not remote_tag:
            raise SipParseError("dialog-creating request without From tag")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=_without_tag(request.to),
            remote_uri=_without_tag(request.from_),
            remote_target=_contact_uri(request),
            route_set=tuple(request.headers.get_all("Record-Route")),
            local_seq=secrets.randbelow(2**16) + 1,
            remote_seq=request.cseq.seq,
            state=DialogState.CONFIRMED if confirmed else DialogState.EARLY,
            secure=isinstance(request.uri, SipUri) and request.uri.scheme == "sips",
        )

    @classmethod
    def as_uac(cls, request: Request, response: Response) -> Dialog:
        """The dialog a 1xx (with To tag) or 2xx to our `request` creates.

        Raises: SipParseError when the response has no To tag or no Contact.
        """
        remote_tag = response.to.tag
        local_tag = request.from_.tag
        if not remote_tag or not local_tag:
            raise SipParseError("dialog-creating response without tags")
        routes = list(response.headers.get_all("Record-Route"))
        routes.reverse()
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=_without_tag(request.from_),
            remote_uri=_without_tag(request.to),
            remote_target=_contact_uri(response),
            route_set=tuple(routes),
            local_seq=request.cseq.seq,
            remote_seq=None,
            state=DialogState.CONFIRMED if response.status < 300 else DialogState.EARLY,
            secure=isinstance(request.uri, SipUri) and request.uri.scheme == "sips",
        )

    def confirm(self, response: Response | None = None) -> None:
        """Early -> confirmed on a 2xx; a 2xx to our INVITE refreshes the remote target."""
        self.state = DialogState.CONFIRMED
        if response is not None and response.headers.get("Contact"):
            self.remote_target = _contact_uri(response)

    def create_request(
        self,
        method: str,
        *,
        via: str,
        contact: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        cseq: int | None = None,
    ) -> Request:
        """A request inside the dialog (RFC 3261 §12.2.1.1).

        `via` is the complete Via value (the transport knows its sent-by); pass a
        fresh branch for each new transaction. The CSeq goes up by one except for
        ACK and CANCEL, which reuse `cseq` (the INVITE's number).
        """
        if method in ("ACK", "CANCEL"):
            if cseq is None:
                raise ValueError(f"{method} needs the CSeq number of its INVITE")
            seq = cseq
        else:
            self.local_seq += 1
            seq = self.local_seq
        uri, routes = self._request_uri_and_routes()
        fields: list[tuple[str, str]] = [
            ("Via", via),
            ("Max-Forwards", "70"),
            ("From", f"{self.local_uri};tag={self.local_tag}"),
            ("To", f"{self.remote_uri};tag={self.remote_tag}"),
            ("Call-ID", self.call_id),
            ("CSeq", str(CSeq(seq, method))),
        ]
        fields.extend(("Route", r) for r in routes)
        if contact is not None:
            fields.append(("Contact", contact))
        fields.extend(headers)
        return Request(method, uri, Headers(fields), body)

    def _request_uri_and_routes(self) -> tuple[Uri, list[str]]:
        if not self.route_set:
            return self.remote_target, []
        first = NameAddr.parse(self.route_set[0]).uri
        if isinstance(first, SipUri) and first.param("lr") is not None:
            return self.remote_target, list(self.route_set)
        # Strict router (RFC 2543): it becomes the Request-URI, the target goes last.
        return first, [*self.route_set[1:], f"<{self.remote_target}>"]

    def receive(self, request: Request) -> int | None:
        """Check and absorb a request received in this dialog (RFC 3261 §12.2.2).

        Returns a status to reject it with (500 for an out-of-order CSeq), or None.
        ACK and CANCEL are not checked against the remote CSeq.
        """
        if request.method in ("ACK", "CANCEL"):
            return None
        seq = request.cseq.seq
        if self.remote_seq is not None and seq <= self.remote_seq:
            # "lower than the remote sequence number ... MUST reject the request with
            # a 500". Retransmissions never get here (the transaction layer absorbs
            # them), so an equal number is a second request reusing it: out of order too.
            return 500
        self.remote_seq = seq
        if request.method in TARGET_REFRESH and request.headers.get("Contact"):
            try:
                self.remote_target = _contact_uri(request)
            except SipParseError:
                return 400
        if request.method == "BYE":
            self.state = DialogState.TERMINATED
        return None


def _without_tag(address: NameAddr) -> str:
    params = tuple((k, v) for k, v in address.params if k.lower() != "tag")
    return str(NameAddr(address.uri, address.display_name, params))
