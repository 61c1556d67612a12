"""SDP parsing, round trips, RFC 3264 answers and relay rewriting, on softphone offers."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media.errors import SdpError
from media.sdp import (
    AudioStream,
    Codec,
    Connection,
    SessionDescription,
    answer,
    audio_stream,
    g711_offer,
    rewrite,
    with_direction,
    with_g711_fallback,
)


def crlf(text: str) -> bytes:
    return "".join(line.strip() + "\r\n" for line in text.strip().splitlines()).encode()


# baresip 3.x (G.722 first, opus in a second payload, SSRC and label attributes)
BARESIP = crlf("""
v=0
o=- 1740413307 1740413307 IN IP4 192.168.1.20
s=-
c=IN IP4 192.168.1.20
t=0 0
a=tool:baresip 3.10.1
m=audio 10342 RTP/AVP 9 96 0 8 101
b=AS:80
a=rtpmap:9 G722/8000
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=rtcp-rsize
a=ssrc:2730611711 cname:4b1f3c72-0e1d-4d93-a36b-7b0f0ad3a8c1
a=ptime:20
""")

# Linphone 5 (opus first, telephone-event at three clock rates, a=rtcp, a video stream)
LINPHONE = crlf("""
v=0
o=1001 3360 2510 IN IP4 192.168.1.31
s=Talk
c=IN IP4 192.168.1.31
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
a=record:off
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 SILK/16000
a=rtpmap:98 speex/16000
a=fmtp:98 vbr=on
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp:7079
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
m=video 9078 RTP/AVP 96
a=rtpmap:96 VP8/90000
a=rtcp:9079
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:96 nack pli
""")

# Zoiper 5 (static types without rtpmap, rtcp-mux, fmtp with spaces)
ZOIPER = crlf("""
v=0
o=Z 0 28463813 IN IP4 192.168.1.45
s=Z
c=IN IP4 192.168.1.45
t=0 0
m=audio 52412 RTP/AVP 106 9 98 101 0 8 3
a=rtpmap:106 opus/48000/2
a=fmtp:106 sprop-maxcapturerate=16000; minptime=20; useinbandfec=1
a=rtpmap:98 telephone-event/48000
a=fmtp:98 0-16
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
a=rtcp-mux
""")

# MicroSIP 3.21 / pjsip (c= at media level only, session b=, a=rtcp with address, X- attribute)
MICROSIP = crlf("""
v=0
o=- 3893474523 3893474523 IN IP4 192.168.1.50
s=pjmedia
b=AS:84
t=0 0
a=X-nat:0
m=audio 4000 RTP/AVP 8 0 101
c=IN IP4 192.168.1.50
b=AS:64000
b=TIAS:64000
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtcp:4001 IN IP4 192.168.1.50
a=ssrc:1946395410 cname:5d6a2c0f2a1e4b33
a=sendrecv
""")

HEAD = b"v=0\r\no=x\r\ns=-\r\n"

SAMPLES = {"baresip": BARESIP, "linphone": LINPHONE, "zoiper": ZOIPER, "microsip": MICROSIP}


@pytest.mark.parametrize("name", SAMPLES)
def test_round_trip_is_byte_exact(name: str) -> None:
    data = SAMPLES[name]
    assert bytes(SessionDescription.parse(data)) == data


def test_lf_line_ends_parse_and_serialize_with_crlf() -> None:
    sdp = SessionDescription.parse(ZOIPER.replace(b"\r\n", b"\n"))
    assert bytes(sdp) == ZOIPER


def test_fields_of_baresip_offer() -> None:
    sdp = SessionDescription.parse(BARESIP)
    assert sdp.origin == "- 1740413307 1740413307 IN IP4 192.168.1.20"
    assert sdp.connection == Connection("192.168.1.20")
    assert sdp.attribute("tool") == "baresip 3.10.1"
    audio = sdp.audio()
    assert (audio.media, audio.port, audio.proto) == ("audio", 10342, "RTP/AVP")
    assert audio.formats == ("9", "96", "0", "8", "101")
    assert audio.ptime == 20
    assert audio.direction == "sendrecv"
    assert audio.codecs == (
        Codec(9, "G722", 8000),
        Codec(96, "opus", 48000, 2, "stereo=1;sprop-stereo=1"),
        Codec(0, "PCMU", 8000),
        Codec(8, "PCMA", 8000),
        Codec(101, "telephone-event", 8000, None, "0-15"),
    )


def test_static_payload_types_without_rtpmap_are_named() -> None:
    codecs = SessionDescription.parse(ZOIPER).audio().codecs
    assert [(c.payload_type, c.name) for c in codecs] == [
        (106, "opus"), (9, "G722"), (98, "telephone-event"), (101, "telephone-event"),
        (0, "PCMU"), (8, "PCMA"), (3, "GSM"),
    ]  # fmt: skip


def test_audio_stream_of_microsip_uses_media_level_c_and_rtcp_attribute() -> None:
    stream = audio_stream(SessionDescription.parse(MICROSIP))
    assert stream == AudioStream(
        "192.168.1.50", 4000, 4001, Codec(8, "PCMA", 8000), 101, "sendrecv"
    )
    assert not stream.on_hold


def test_audio_stream_rtcp_defaults_to_port_plus_one() -> None:
    assert audio_stream(SessionDescription.parse(BARESIP)).rtcp_port == 10343
    assert audio_stream(SessionDescription.parse(LINPHONE)).rtcp_port == 7079


@pytest.mark.parametrize(
    ("name", "preferences", "formats", "rtpmaps"),
    [
        ("baresip", ("PCMU", "PCMA", "G722", "opus", "telephone-event"), ("0", "101"),
         ["rtpmap:0 PCMU/8000", "rtpmap:101 telephone-event/8000", "fmtp:101 0-15"]),
        ("baresip", ("opus", "PCMU", "telephone-event"), ("96",),
         ["rtpmap:96 opus/48000/2", "fmtp:96 stereo=1;sprop-stereo=1"]),
        ("baresip", ("G722", "telephone-event"), ("9", "101"),
         ["rtpmap:9 G722/8000", "rtpmap:101 telephone-event/8000", "fmtp:101 0-15"]),
        ("baresip", ("PCMA",), ("8",), ["rtpmap:8 PCMA/8000"]),
        ("linphone", ("PCMU", "PCMA", "telephone-event"), ("0", "100"),
         ["rtpmap:100 telephone-event/8000"]),
        ("linphone", ("opus", "telephone-event"), ("96", "101"),
         ["rtpmap:96 opus/48000/2", "fmtp:96 useinbandfec=1", "rtpmap:101 telephone-event/48000"]),
        ("zoiper", ("PCMA", "PCMU", "telephone-event"), ("8", "101"),
         ["rtpmap:101 telephone-event/8000", "fmtp:101 0-16"]),
        ("microsip", ("PCMU", "PCMA", "telephone-event"), ("0", "101"),
         ["rtpmap:0 PCMU/8000", "rtpmap:101 telephone-event/8000", "fmtp:101 0-16"]),
    ],
)  # fmt: skip
def test_answer_picks_our_best_common_codec_with_offerer_numbers(
    name: str, preferences: tuple[str, ...], formats: tuple[str, ...], rtpmaps: list[str]
) -> None:
    offer = SessionDescription.parse(SAMPLES[name])
    result = answer(offer, "10.0.0.1", 12000, preferences=preferences)
    audio = result.media[0]
    assert audio.formats == formats
    assert audio.port == 12000
    assert result.connection == Connection("10.0.0.1")
    assert [v for t, v in audio.lines if t == "a" and v.startswith(("rtpmap", "fmtp"))] == rtpmaps
    assert audio.direction == "sendrecv"
    again = SessionDescription.parse(bytes(result))  # the answer itself round-trips
    assert again == result


def test_answer_keeps_ptime_and_refuses_other_streams_with_port_zero() -> None:
    offer = SessionDescription.parse(LINPHONE)
    result = answer(offer, "10.0.0.1", 12000)
    assert [(m.media, m.port, m.formats) for m in result.media] == [
        ("audio", 12000, ("0", "100")),
        ("video", 0, ("96",)),
    ]
    assert answer(SessionDescription.parse(BARESIP), "h", 2).media[0].ptime == 20
    text = bytes(result).decode()
    assert text.startswith("v=0\r\no=aiopbx 0 0 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 10.0.0.1\r\n")
    assert "m=video 0 RTP/AVP 96\r\n" in text


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ("sendrecv", "sendrecv"),
        ("sendonly", "recvonly"),
        ("recvonly", "sendonly"),
        ("inactive", "inactive"),
    ],
)
def test_answer_direction_per_rfc3264(offered: str, answered: str) -> None:
    offer = with_direction(SessionDescription.parse(MICROSIP), offered)
    assert answer(offer, "10.0.0.1", 12000).media[0].direction == answered


def test_session_level_direction_is_answered() -> None:
    offer = SessionDescription.parse(ZOIPER.replace(b"a=sendrecv\r\n", b""))
    offer = SessionDescription.parse(bytes(offer).replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n"))
    assert offer.direction_of(offer.audio()) == "sendonly"
    assert answer(offer, "10.0.0.1", 12000).media[0].direction == "recvonly"


def test_answer_direction_override_for_our_own_hold() -> None:
    offer = SessionDescription.parse(BARESIP)
    assert answer(offer, "h", 2, direction="sendonly").media[0].direction == "sendonly"


def test_no_common_codec_is_an_sdp_error() -> None:
    offer = SessionDescription.parse(LINPHONE)
    with pytest.raises(SdpError) as info:
        answer(offer, "10.0.0.1", 12000, preferences=("G722", "telephone-event"))
    assert info.value.reason == (
        "no codec in common: offer has opus SILK speex PCMU PCMA G729 telephone-event"
        " telephone-event telephone-event, we accept G722 telephone-event"
    )


def test_rewrite_session_level_c_and_rtcp_attribute() -> None:
    sdp = rewrite(SessionDescription.parse(LINPHONE), "10.0.0.1", 30000)
    text = bytes(sdp).decode()
    assert "c=IN IP4 10.0.0.1\r\n" in text
    assert "192.168.1.31" not in text.split("\r\n", 2)[2]  # only o= keeps the phone's address
    assert "m=audio 30000 RTP/AVP 96 97 98 0 8 18 101 99 100\r\n" in text
    assert "a=rtcp:30001 IN IP4 10.0.0.1\r\n" in text
    assert "m=video 0 RTP/AVP 96\r\n" in text
    assert sdp.origin == "1001 3360 2510 IN IP4 192.168.1.31"
    # everything else is kept, in order
    original = SessionDescription.parse(LINPHONE)
    assert sdp.lines == original.lines
    assert [line for line in sdp.audio().lines if "rtcp:" not in line[1]] == [
        line for line in original.audio().lines if "rtcp:" not in line[1]
    ]


def test_rewrite_media_level_c_drops_rtcp_mux_and_keeps_the_rest() -> None:
    sdp = rewrite(SessionDescription.parse(MICROSIP), "10.0.0.1", 30000)
    assert bytes(sdp) == MICROSIP.replace(b"m=audio 4000", b"m=audio 30000").replace(
        b"a=rtcp:4001 IN IP4 192.168.1.50", b"a=rtcp:30001 IN IP4 10.0.0.1"
    ).replace(b"c=IN IP4 192.168.1.50", b"c=IN IP4 10.0.0.1")
    zoiper = rewrite(SessionDescription.parse(ZOIPER), "10.0.0.1", 30000)
    assert b"rtcp-mux" not in bytes(zoiper)
    stream = audio_stream(zoiper)
    assert (stream.host, stream.port, stream.rtcp_port) == ("10.0.0.1", 30000, 30001)


def test_rewrite_with_our_origin() -> None:
    sdp = rewrite(
        SessionDescription.parse(ZOIPER), "10.0.0.1", 30000, origin="aiopbx 7 2 IN IP4 10.0.0.1"
    )
    assert bytes(sdp).startswith(
        b"v=0\r\no=aiopbx 7 2 IN IP4 10.0.0.1\r\ns=Z\r\nc=IN IP4 10.0.0.1\r\n"
    )


def test_rewrite_adds_c_when_absent_and_handles_ipv6() -> None:
    bare = SessionDescription("- 1 1 IN IP4 x", media=(
        SessionDescription.parse(BARESIP).audio(),
    ))  # fmt: skip
    bare = SessionDescription.parse(bytes(bare).replace(b"c=IN IP4 192.168.1.20\r\n", b""))
    assert bare.connection is None
    sdp = rewrite(bare, "2001:db8::1", 30000)
    assert sdp.audio().connection == Connection("2001:db8::1", "IP6")


def test_hold_detection() -> None:
    hold = with_direction(SessionDescription.parse(BARESIP), "inactive")
    assert audio_stream(hold).on_hold
    old_style = SessionDescription.parse(
        BARESIP.replace(b"IN IP4 192.168.1.20\r\nt", b"IN IP4 0.0.0.0\r\nt")
    )
    assert audio_stream(old_style).on_hold
    assert not audio_stream(with_direction(SessionDescription.parse(BARESIP), "sendonly")).on_hold


def test_g711_fallback_added_for_transcoding() -> None:
    pcmu_only = SessionDescription.parse(
        MICROSIP.replace(b"RTP/AVP 8 0 101", b"RTP/AVP 0 101").replace(
            b"a=rtpmap:8 PCMA/8000\r\n", b""
        )
    )
    offer = with_g711_fallback(pcmu_only)
    assert offer.audio().formats == ("0", "8", "101")
    assert [c.name for c in offer.audio().codecs] == ["PCMU", "PCMA", "telephone-event"]
    both = SessionDescription.parse(MICROSIP)
    assert with_g711_fallback(both) is both


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"o=- 1 1 IN IP4 h\r\ns=-\r\n", "SDP has no v= line"),
        (b"v=0\r\ns=-\r\n", "SDP has no o= line"),
        (b"v=1\r\no=- 1 1 IN IP4 h\r\ns=-\r\n", "SDP version '1' is not 0"),
        (b"v=0\r\nhello\r\n", "SDP line 2 'hello' is not 'x=value'"),
        (HEAD + b"c=IN IP4\r\n", "bad c= line 'IN IP4': expected 'IN IP4|IP6 address'"),
        (HEAD + b"m=audio\r\n", "bad m= line 'audio': expected 'media port proto formats'"),
        (HEAD + b"m=audio x RTP/AVP 0\r\n",
         "bad m= line 'audio x RTP/AVP 0': port 'x' is not a number"),
        (HEAD + b"m=audio 70000 RTP/AVP 0\r\n",
         "bad m= line 'audio 70000 RTP/AVP 0': port 70000 is outside 0..65535"),
        (b"v=0\r\no=\xff\r\ns=-\r\n", "SDP is not UTF-8"),
    ],
)  # fmt: skip
def test_parse_errors(data: bytes, reason: str) -> None:
    with pytest.raises(SdpError) as info:
        SessionDescription.parse(data)
    assert info.value.reason == reason


def test_semantic_errors() -> None:
    no_audio = SessionDescription.parse(b"v=0\r\no=x\r\ns=-\r\nm=video 5000 RTP/AVP 96\r\n")
    with pytest.raises(SdpError, match="SDP has no active audio stream"):
        answer(no_audio, "h", 2)
    with pytest.raises(SdpError, match="no c= line"):
        audio_stream(SessionDescription.parse(b"v=0\r\no=x\r\ns=-\r\nm=audio 5000 RTP/AVP 0\r\n"))
    bad_map = b"v=0\r\no=x\r\ns=-\r\nc=IN IP6 ::1\r\nm=audio 5 RTP/AVP 96\r\na=rtpmap:96 opus/x\r\n"
    with pytest.raises(SdpError, match="a=rtpmap:96 clock rate 'x' is not a number"):
        audio_stream(SessionDescription.parse(bad_map))
    with pytest.raises(SdpError, match="unknown direction 'hold'"):
        with_direction(SessionDescription.parse(BARESIP), "hold")


def test_g711_offer_names_both_laws_and_events() -> None:
    for host, family in (("127.0.0.1", "IP4"), ("::1", "IP6")):
        offer = SessionDescription.parse(g711_offer(host, 20000))
        assert [c.name for c in offer.audio().codecs] == ["PCMU", "PCMA", "telephone-event"]
        stream = audio_stream(offer)
        assert (stream.host, stream.port, stream.telephone_event) == (host, 20000, 101)
        assert f"c=IN {family} {host}" in g711_offer(host, 20000).decode()


# -- hostile input (issue 10 §3, §9, §10) ------------------------------------------------

GOOD = crlf("""
v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 4000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=ptime:20
a=sendrecv
""")


def mutate(old: bytes, new: bytes) -> bytes:
    assert old in GOOD
    return GOOD.replace(old, new)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (mutate(b"c=IN IP4 127.0.0.1", b"c=IN IP4 media.example.com"),
         "c= address 'media.example.com' is not an IP4 address literal"),
        (mutate(b"c=IN IP4 127.0.0.1", b"c=IN IP4 ::1"),
         "c= address '::1' is not an IP4 address literal"),
        (mutate(b"c=IN IP4 127.0.0.1", b"c=IN IP6 127.0.0.1"),
         "c= address '127.0.0.1' is not an IP6 address literal"),
        (mutate(b"c=IN IP4 127.0.0.1", b"c=IN IP4 224.2.1.1/127"),
         "c= address '224.2.1.1/127' is not an IP4 address literal"),
        (mutate(b"m=audio 4000", b"m=audio 65536"),
         "bad m= line 'audio 65536 RTP/AVP 0 101': port 65536 is outside 0..65535"),
        (mutate(b"m=audio 4000", b"m=audio " + b"9" * 5000),
         "bad m= line '" + "audio " + "9" * 54 + "': port '99999999999999999999' is not a number"),
        (mutate(b"m=audio 4000", b"m=audio \xc2\xb2"),
         "bad m= line 'audio \u00b2 RTP/AVP 0 101': port '\u00b2' is not a number"),
    ],
)  # fmt: skip
def test_hostile_parse_errors(data: bytes, reason: str) -> None:
    with pytest.raises(SdpError) as info:
        SessionDescription.parse(data)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (mutate(b"a=sendrecv", b"a=rtcp:99999"), "a=rtcp port 99999 is outside 1..65535"),
        (mutate(b"a=sendrecv", b"a=rtcp:0"), "a=rtcp port 0 is outside 1..65535"),
        (mutate(b"m=audio 4000", b"m=audio 65535"),
         "m= port 65535 leaves no RTCP port (port + 1 > 65535)"),
        (mutate(b"PCMU/8000", b"PCMU/" + b"8" * 5000),
         "a=rtpmap:0 clock rate '88888888888888888888' is not a number"),
        (mutate(b"PCMU/8000", b"PCMU/0"), "a=rtpmap:0 clock rate 0 is outside 1..192000"),
        (mutate(b"PCMU/8000", b"PCMU/8000/\xc2\xb2"),
         "a=rtpmap:0 channels '\u00b2' is not a number"),
        (mutate(b" 0 101", b" 0 101 300"), "payload type 300 is outside 0..127"),
    ],
)  # fmt: skip
def test_hostile_stream_errors(data: bytes, reason: str) -> None:
    with pytest.raises(SdpError) as info:
        audio_stream(SessionDescription.parse(data))
    assert info.value.reason == reason


@pytest.mark.parametrize("ptime", [b"1e400", b"inf", b"nan", b"-20", b"9" * 5000, b"\xc2\xb2", b""])
def test_hostile_ptime_is_ignored(ptime: bytes) -> None:
    offer = SessionDescription.parse(mutate(b"a=ptime:20", b"a=ptime:" + ptime))
    assert offer.audio().ptime is None
    assert "a=ptime" not in str(answer(offer, "127.0.0.1", 5000))


def test_fractional_ptime_is_whole_milliseconds() -> None:
    assert SessionDescription.parse(mutate(b"a=ptime:20", b"a=ptime:20.5")).audio().ptime == 20


def test_ipv6_literal_accepted() -> None:
    sdp = SessionDescription.parse(mutate(b"c=IN IP4 127.0.0.1", b"c=IN IP6 ::1"))
    assert audio_stream(sdp).host == "::1"


def test_oversized_bodies_refused() -> None:
    with pytest.raises(SdpError, match="more than 2000 lines"):
        SessionDescription.parse(GOOD + b"a=x\r\n" * 2000)
    with pytest.raises(SdpError, match="longer than 65536 octets"):
        SessionDescription.parse(GOOD + b"a=" + b"x" * 70000 + b"\r\n")


_LINES = GOOD.split(b"\r\n")[:-1]
_PIECES = st.sampled_from(
    [b"1e400", b"9" * 400, b"\xc2\xb2", b"-1", b"0", b"65535", b"65536", b"99999", b"host.name",
     b"::1", b"IN IP6", b"IN IP4", b"/", b":", b" ", b"", b"=", b"\r\n", b"\xff", b"nan", b"127",
     b"a=rtcp:", b"a=ptime:", b"a=rtpmap:0 ", b"m=audio ", b"c=IN IP4 ", b"PCMU/", b"\x00"]
)  # fmt: skip


@st.composite
def mutated_sdp(draw: st.DrawFn) -> bytes:
    """GOOD with a few lines' values replaced, cut or extended by hostile pieces."""
    lines = list(_LINES)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        cut = draw(st.integers(0, len(line)))
        tail = draw(st.one_of(_PIECES, st.binary(max_size=12)))
        keep = draw(st.booleans())
        lines[i] = line[:cut] + tail + (line[cut:] if keep else b"")
    if draw(st.booleans()):
        lines.append(draw(_PIECES) + draw(_PIECES))
    return b"\r\n".join(lines) + b"\r\n"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated_sdp(), st.binary(max_size=300)))
def test_fuzz_raises_only_sdp_error(data: bytes) -> None:
    """parse, audio_stream and answer raise SdpError and nothing else, whatever the bytes."""
    try:
        offer = SessionDescription.parse(data)
        stream = audio_stream(offer)
        reply = answer(offer, "127.0.0.1", 5000)
        audio_stream(SessionDescription.parse(bytes(reply)))
        rewrite(offer, "127.0.0.1", 5000)
    except SdpError:
        return
    assert 0 < stream.port <= 65535 and 0 < stream.rtcp_port <= 65535
