"""sip.digest: published vectors, parse/str round trips, errors."""

from __future__ import annotations

import pytest

from sip.digest import (
    ALGORITHMS,
    Challenge,
    Credentials,
    canonical_algorithm,
    ha1,
    make_credentials,
    response_digest,
    verify,
)
from sip.errors import SipParseError

# RFC 7616 §3.9.1 (HTTP, but the arithmetic is the one SIP uses). Per erratum 4495 the
# password is "Circle of Life" with a lower-case "of".
RFC7616_REALM = "http-auth@example.org"
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_MD5 = "8ca523f5e9506fed4657c9700eebdbec"
RFC7616_SHA256 = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"

# draft-smith-sipping-auth-examples-01 (SIP worked examples): bob / zanzibar / biloxi.com.
SMITH_NONCE = "dcd98b7102dd2f0e8b11d0f600bfb0c093"
SMITH_URI = "sip:bob@biloxi.com"
SMITH_HA1 = "12af60467a33e8518da5c68bbff12b11"
SMITH_BODY = (
    b"v=0\r\n"
    b"o=bob 2890844526 2890844526 IN IP4 media.biloxi.com\r\n"
    b"s=\r\n"
    b"c=IN IP4 media.biloxi.com\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"m=video 51372 RTP/AVP 31\r\n"
    b"a=rtpmap:31 H261/90000\r\n"
    b"m=video 53000 RTP/AVP 32\r\n"
    b"a=rtpmap:32 MPV/90000\r\n"
)


def rfc7616_credentials(algorithm: str, response: str) -> Credentials:
    return Credentials(
        username="Mufasa",
        realm=RFC7616_REALM,
        nonce=RFC7616_NONCE,
        uri="/dir/index.html",
        response=response,
        algorithm=algorithm,
        qop="auth",
        nc="00000001",
        cnonce=RFC7616_CNONCE,
        opaque=RFC7616_OPAQUE,
    )


@pytest.mark.parametrize(
    ("algorithm", "expected"), [("MD5", RFC7616_MD5), ("SHA-256", RFC7616_SHA256)]
)
def test_rfc7616_example_verifies(algorithm: str, expected: str) -> None:
    key = ha1("Mufasa", RFC7616_REALM, "Circle of Life", algorithm)
    assert verify(rfc7616_credentials(algorithm, expected), key, "GET")
    assert not verify(rfc7616_credentials(algorithm, expected), key, "POST")
    wrong = ha1("Mufasa", RFC7616_REALM, "Circle Of Life", algorithm)
    assert not verify(rfc7616_credentials(algorithm, expected), wrong, "GET")


@pytest.mark.parametrize(
    ("algorithm", "expected"), [("MD5", RFC7616_MD5), ("SHA-256", RFC7616_SHA256)]
)
def test_rfc7616_example_client_side(algorithm: str, expected: str) -> None:
    challenge = Challenge(
        realm=RFC7616_REALM, nonce=RFC7616_NONCE, algorithm=algorithm, opaque=RFC7616_OPAQUE
    )
    creds = make_credentials(
        challenge, "Mufasa", "Circle of Life", "GET", "/dir/index.html", cnonce=RFC7616_CNONCE
    )
    assert creds == rfc7616_credentials(algorithm, expected)


def test_rfc7616_authorization_header_parses() -> None:
    # The SHA-256 Authorization header of RFC 7616 §3.9.1, folded as printed there.
    text = (
        'Digest username="Mufasa",\r\n'
        '       realm="http-auth@example.org",\r\n'
        '       uri="/dir/index.html",\r\n'
        "       algorithm=SHA-256,\r\n"
        '       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",\r\n'
        "       nc=00000001,\r\n"
        '       cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",\r\n'
        "       qop=auth,\r\n"
        '       response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",\r\n'
        '       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    assert Credentials.parse(text) == rfc7616_credentials("SHA-256", RFC7616_SHA256)


def test_smith_ha1() -> None:
    assert ha1("bob", "biloxi.com", "zanzibar") == SMITH_HA1
    assert ha1("bob", "biloxi.com", "zanzibar", "md5-sess") == SMITH_HA1


@pytest.mark.parametrize(
    ("algorithm", "qop", "body", "expected"),
    [
        # §3.1: neither algorithm nor qop (RFC 2069 compatible).
        ("MD5", None, b"", "bf57e4e0d0bffc0fbaedce64d59add5e"),
        # §3.2 / §3.3: qop=auth.
        ("MD5", "auth", b"", "89eb0059246c02b2f6ee02c7961d5ea3"),
        # §3.4: MD5-sess, qop=auth.
        ("MD5-sess", "auth", b"", "e4e4ea61d186d07a92c9e1f6919902e9"),
        # §3.5 / §3.6: qop=auth-int over the SDP body (values from the digest-generation
        # subsections; the header examples in the draft carry a copy-paste error).
        ("MD5", "auth-int", SMITH_BODY, "41f1bde42dcddbee8ae7d65fd3474dc0"),
        ("MD5-sess", "auth-int", SMITH_BODY, "10e4c79b16d21d51995ab98083d134d8"),
    ],
)
def test_smith_sip_examples(algorithm: str, qop: str | None, body: bytes, expected: str) -> None:
    nc = "00000001" if qop else None
    cnonce = "0a4f113b" if qop else None
    got = response_digest(
        algorithm,
        SMITH_HA1,
        SMITH_NONCE,
        "INVITE",
        SMITH_URI,
        qop=qop,
        nc=nc,
        cnonce=cnonce,
        body=body,
    )
    assert got == expected
    creds = Credentials(
        username="bob",
        realm="biloxi.com",
        nonce=SMITH_NONCE,
        uri=SMITH_URI,
        response=expected.upper(),  # hex case of the peer's response does not matter
        algorithm=algorithm,
        qop=qop,
        nc=nc,
        cnonce=cnonce,
    )
    assert verify(creds, SMITH_HA1, "INVITE", body)
    assert not verify(creds, SMITH_HA1, "REGISTER", body)
    if qop == "auth-int":
        assert not verify(creds, SMITH_HA1, "INVITE", body + b"a=sendonly\r\n")


def test_smith_no_qop_client_side_sends_no_nc_or_cnonce() -> None:
    challenge = Challenge.parse(
        'Digest realm="biloxi.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert challenge.qop == ()
    creds = make_credentials(challenge, "bob", "zanzibar", "INVITE", SMITH_URI, cnonce="x")
    assert (creds.qop, creds.nc, creds.cnonce) == (None, None, None)
    assert creds.response == "bf57e4e0d0bffc0fbaedce64d59add5e"
    assert str(creds) == (
        'Digest username="bob", realm="biloxi.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'uri="sip:bob@biloxi.com", response="bf57e4e0d0bffc0fbaedce64d59add5e", algorithm=MD5, '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_make_credentials_then_verify_every_algorithm(algorithm: str) -> None:
    challenge = Challenge(realm="pbx", nonce="n0nce", algorithm=algorithm)
    creds = make_credentials(challenge, "alice", "s3cret", "REGISTER", "sip:pbx", nc=7)
    assert creds.nc == "00000007"
    assert creds.algorithm == algorithm
    assert verify(creds, ha1("alice", "pbx", "s3cret", algorithm), "REGISTER")
    assert not verify(creds, ha1("alice", "pbx", "s3cret!", algorithm), "REGISTER")


def test_sha256_sess_matches_hand_computation() -> None:
    import hashlib

    def h(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    base = h("alice:pbx:pw")
    sess = h(f"{base}:N:C")
    expected = h(f"{sess}:N:0000000a:C:auth:{h('INVITE:sip:bob@pbx')}")
    got = response_digest(
        "sha-256-SESS", base, "N", "INVITE", "sip:bob@pbx", qop="auth", nc="0000000a", cnonce="C"
    )
    assert got == expected


def test_verify_rejects_unknown_algorithm_and_qop() -> None:
    creds = make_credentials(Challenge(realm="r", nonce="n"), "u", "p", "REGISTER", "sip:r")
    key = ha1("u", "r", "p")
    assert verify(creds, key, "REGISTER")
    assert verify(creds, key.upper(), "REGISTER")
    from dataclasses import replace

    assert not verify(replace(creds, algorithm="SHA-512-256"), key, "REGISTER")
    assert not verify(replace(creds, qop="auth-conf"), key, "REGISTER")
    assert not verify(replace(creds, response="é" * 32), key, "REGISTER")
    sess = make_credentials(
        Challenge(realm="r", nonce="n", algorithm="MD5-sess", qop=()), "u", "p", "X", "sip:r"
    )
    assert sess.cnonce is not None and verify(sess, key, "X")
    assert not verify(replace(sess, cnonce=None), key, "X")


def test_make_credentials_errors() -> None:
    with pytest.raises(ValueError, match="unsupported digest algorithm"):
        make_credentials(
            Challenge(realm="r", nonce="n", algorithm="SHA-512-256"), "u", "p", "M", "u"
        )
    with pytest.raises(ValueError, match="no supported qop"):
        make_credentials(Challenge(realm="r", nonce="n", qop=("auth-conf",)), "u", "p", "M", "u")
    with pytest.raises(ValueError, match="nonce-count"):
        make_credentials(Challenge(realm="r", nonce="n"), "u", "p", "M", "u", nc=0)
    with pytest.raises(ValueError, match="unsupported digest algorithm"):
        ha1("u", "r", "p", "SHA-1")


def test_canonical_algorithm() -> None:
    assert canonical_algorithm("sha-256") == "SHA-256"
    assert canonical_algorithm("Md5-Sess") == "MD5-sess"
    assert canonical_algorithm("SHA-512-256") is None


# ---- Challenge parse / str ----


def test_challenge_str_fixed_order() -> None:
    challenge = Challenge(realm="aiopbx", nonce="abc", algorithm="SHA-256")
    assert str(challenge) == 'Digest realm="aiopbx", nonce="abc", algorithm=SHA-256, qop="auth"'
    full = Challenge(
        realm='a "q" \\ realm', nonce="n", qop=("auth", "auth-int"), opaque="o", stale=True
    )
    assert str(full) == (
        'Digest realm="a \\"q\\" \\\\ realm", nonce="n", algorithm=MD5, '
        'qop="auth,auth-int", opaque="o", stale=true'
    )
    assert (
        str(Challenge(realm="r", nonce="n", qop=())) == 'Digest realm="r", nonce="n", algorithm=MD5'
    )


@pytest.mark.parametrize(
    "challenge",
    [
        Challenge(realm="aiopbx", nonce="abc", algorithm="SHA-256"),
        Challenge(realm='we"ird\\', nonce="n=,x", qop=("auth", "auth-int"), opaque="", stale=True),
        Challenge(realm="r", nonce="n", qop=()),
    ],
)
def test_challenge_round_trip(challenge: Challenge) -> None:
    assert Challenge.parse(str(challenge)) == challenge
    assert str(Challenge.parse(str(challenge))) == str(challenge)


def test_challenge_parse_rfc3261_example() -> None:
    # RFC 3261 §20.44, plus an unknown parameter and odd case and spacing.
    challenge = Challenge.parse(
        'DIGEST Realm="atlanta.com" ,  domain="sip:boxesbybob.com", qop="auth, auth-int",'
        ' nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5, foo=bar'
    )
    assert challenge == Challenge(
        realm="atlanta.com",
        nonce="f84f1cec41e6cbe5aea9c8e88d359",
        algorithm="MD5",
        qop=("auth", "auth-int"),
        opaque="",
        stale=False,
    )


def test_challenge_parse_defaults() -> None:
    challenge = Challenge.parse('Digest realm="r", nonce="n", stale=TRUE')
    assert challenge == Challenge(realm="r", nonce="n", algorithm="MD5", qop=(), stale=True)


# ---- Credentials parse / str ----


def test_credentials_str_quoting() -> None:
    creds = rfc7616_credentials("SHA-256", RFC7616_SHA256)
    assert str(creds) == (
        'Digest username="Mufasa", realm="http-auth@example.org", '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", uri="/dir/index.html", '
        f'response="{RFC7616_SHA256}", algorithm=SHA-256, qop=auth, nc=00000001, '
        'cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )


@pytest.mark.parametrize(
    "creds",
    [
        rfc7616_credentials("MD5", RFC7616_MD5),
        Credentials(
            username='a"b\\c', realm="r", nonce="n", uri="sip:x@y;transport=tcp", response="0"
        ),
        Credentials(
            username="u",
            realm="r",
            nonce="n",
            uri="sip:r",
            response="f",
            algorithm="MD5-sess",
            cnonce="c",
        ),
    ],
)
def test_credentials_round_trip(creds: Credentials) -> None:
    assert Credentials.parse(str(creds)) == creds
    assert str(Credentials.parse(str(creds))) == str(creds)


def test_credentials_lenient_quoting_is_read() -> None:
    # Some clients quote qop, nc and algorithm; the values are the same.
    creds = Credentials.parse(
        'Digest username="u",realm="r",nonce="n",uri="sip:r",response="ab",'
        'algorithm="SHA-256",qop="auth",nc="0000000A",cnonce="c"'
    )
    assert (creds.algorithm, creds.qop, creds.nc, creds.cnonce) == (
        "SHA-256",
        "auth",
        "0000000A",
        "c",
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Basic dXNlcjpwYXNz", "auth-scheme 'Basic' is not Digest"),
        ("", "no auth-scheme"),
        ("Digest", "missing parameter 'username'"),
        ('Digest realm="r", nonce="n", uri="u", response="x"', "missing parameter 'username'"),
        ('Digest username="u", realm="r", nonce="n", uri="u"', "missing parameter 'response'"),
        (
            'Digest username="u", username="v", realm="r", nonce="n", uri="u", response="x"',
            "parameter 'username' given twice",
        ),
        (
            'Digest username="u", USERNAME="v", realm="r", nonce="n", uri="u", response="x"',
            "parameter 'username' given twice",
        ),
        ('Digest username="u, realm="r"', "bad auth-param"),
        ('Digest username="' + "x" * 60_000, "bad auth-param"),
        ("Digest " + "x" * 60_000, "bad auth-param"),
        ("Digest username=u v, realm=r", "bad auth-param"),
        ('Digest username="u" realm="r"', "bad auth-param"),
        ('Digest =x, username="u"', "bad auth-param"),
        (
            'Digest username="u", realm="r", nonce="n", uri="u", response="x", qop=auth, nc=1',
            "missing parameter 'cnonce'",
        ),
        (
            'Digest username="u", realm="r", nonce="n", uri="u", response="x", qop=auth, '
            'cnonce="c"',
            "missing parameter 'nc'",
        ),
        (
            'Digest username="u", realm="r", nonce="n", uri="u", response="x", qop=auth, '
            'nc=xyz, cnonce="c"',
            "nonce-count 'xyz' is not hexadecimal",
        ),
    ],
)
def test_credentials_parse_errors(text: str, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        Credentials.parse(text)
    assert reason in info.value.reason
    assert info.value.status == 400


@pytest.mark.parametrize(
    "text",
    [
        'Basic realm="r"',
        'Digest nonce="n"',
        'Digest realm="r"',
        'Digest realm="r", realm="s", nonce="n"',
    ],
)
def test_challenge_parse_errors(text: str) -> None:
    with pytest.raises(SipParseError):
        Challenge.parse(text)


def test_empty_list_elements_are_tolerated() -> None:
    creds = Credentials.parse('Digest ,username="u",, realm="r", nonce="n", uri="u", response="x",')
    assert creds.username == "u"
