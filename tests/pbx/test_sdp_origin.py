"""SdpOrigin: one o= per dialog leg, its version raised on each change (RFC 3264 §8)."""

from __future__ import annotations

from media.sdp import SdpOrigin

OFFER = b"v=0\r\no=ua 7 7 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"


def _origin(sdp: bytes) -> list[str]:
    return next(x for x in sdp.decode().splitlines() if x.startswith("o=")).split()


def test_version_rises_only_when_the_description_changes() -> None:
    leg = SdpOrigin("127.0.0.1")
    first = _origin(leg.stamp(OFFER))
    again = _origin(leg.stamp(OFFER))
    changed = _origin(leg.stamp(OFFER.replace(b"127.0.0.1\r\nt", b"127.0.0.2\r\nt")))
    back = _origin(leg.stamp(OFFER))
    assert first == again
    assert first[0] == "o=aiopbx" and first[3:] == ["IN", "IP4", "127.0.0.1"]
    assert {o[1] for o in (first, changed, back)} == {first[1]}  # one session id
    assert [int(o[2]) for o in (first, changed, back)] == [int(first[2]) + i for i in range(3)]


def test_other_origins_are_replaced_and_lines_kept() -> None:
    leg = SdpOrigin("::1")
    out = leg.stamp(OFFER.replace(b"o=ua 7 7", b"o=someone 99 12"))
    assert _origin(out)[3:] == ["IN", "IP6", "::1"]
    assert out.count(b"\r\n") == OFFER.count(b"\r\n")
    assert leg.stamp(b"") == b""
