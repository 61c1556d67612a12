"""pbx.auth: nonces, ban list and the Authenticator, on a fake clock."""

from __future__ import annotations

import logging
import re
from dataclasses import replace

import pytest

from pbx.auth import Authenticator, AuthOutcome, AuthResult, NonceCheck, NonceManager
from pbx.bans import BanList, BanPolicy, FailureLog
from sip.digest import Challenge, Credentials, ha1, make_credentials
from sip.message import Request, parse_message

REALM = "aiopbx.test"
SECRET = b"0123456789abcdef0123456789abcdef"
PASSWORDS = {"alice": "wonderland", "bob": "builder"}
USERS = {
    name: (ha1(name, REALM, pw, "MD5"), ha1(name, REALM, pw, "SHA-256"))
    for name, pw in PASSWORDS.items()
}
IP = "192.0.2.10"
T0 = 1_000_000.0


class Lookup:
    """The user table, recording who was asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, username: str) -> tuple[str, str] | None:
        self.asked.append(username)
        return USERS.get(username)


def make_auth(
    *,
    lifetime: float = 300.0,
    policy: BanPolicy | None = None,
    trusted: tuple[str, ...] = (),
    algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
    lookup: Lookup | None = None,
    failure_log: FailureLog | None = None,
) -> Authenticator:
    return Authenticator(
        REALM,
        lookup or Lookup(),
        NonceManager(SECRET, lifetime),
        BanList(policy or BanPolicy(), trusted),
        algorithms,
        failure_log,
    )


def request(
    method: str = "REGISTER",
    *,
    uri: str = "sip:aiopbx.test",
    from_user: str = "alice",
    to_user: str | None = None,
    auth: str | Credentials | None = None,
    header: str = "Authorization",
    body: bytes = b"",
    extra: str = "",
) -> Request:
    """A request built the way the transport will: by parsing raw bytes."""
    to_user = to_user if to_user is not None else from_user
    lines = [
        f"{method} {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds",
        "Max-Forwards: 70",
        f"From: <sip:{from_user}@aiopbx.test>;tag=1928301774",
        f"To: <sip:{to_user}@aiopbx.test>",
        "Call-ID: a84b4c76e66710@192.0.2.10",
        f"CSeq: 1 {method}",
        "Contact: <sip:alice@192.0.2.10:5060>",
    ]
    if auth is not None:
        lines.append(f"{header}: {auth}")
    if extra:
        lines.append(extra)
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    assert isinstance(message, Request)
    return message


def challenges_of(outcome: AuthOutcome) -> list[Challenge]:
    return [Challenge.parse(value) for value in outcome.challenges]


def answer(
    outcome: AuthOutcome,
    user: str = "alice",
    password: str | None = None,
    *,
    algorithm: str = "SHA-256",
    method: str = "REGISTER",
    uri: str = "sip:aiopbx.test",
    nc: int = 1,
    body: bytes = b"",
) -> Credentials:
    """The client's credentials for the challenge of `outcome` with this algorithm."""
    (challenge,) = [c for c in challenges_of(outcome) if c.algorithm == algorithm]
    password = password if password is not None else PASSWORDS.get(user, "guess")
    return make_credentials(challenge, user, password, method, uri, nc=nc, body=body)


def shape(outcome: AuthOutcome) -> AuthOutcome:
    """The outcome with its nonces blanked, to compare challenges between requests."""
    values = tuple(re.sub(r'nonce="[^"]*"', 'nonce="X"', v) for v in outcome.challenges)
    return replace(outcome, challenges=values)


# ---- NonceManager ----


def test_nonce_is_url_safe_and_unique() -> None:
    nonces = NonceManager(SECRET, 300)
    made = {nonces.new(T0) for _ in range(1000)}
    assert len(made) == 1000
    for nonce in made:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", nonce)


def test_nonce_valid_then_stale_after_lifetime() -> None:
    nonces = NonceManager(SECRET, 300)
    nonce = nonces.new(T0)
    assert nonces.verify(nonce, T0) is NonceCheck.VALID
    assert nonces.verify(nonce, T0 + 300) is NonceCheck.VALID
    assert nonces.verify(nonce, T0 + 300.001) is NonceCheck.STALE
    assert nonces.check(nonce, 1, T0 + 301) is NonceCheck.STALE
    # From the future (clock stepped back): genuine, so stale rather than invalid.
    assert nonces.verify(nonce, T0 - 10) is NonceCheck.STALE


def test_nonce_forged_or_garbled_is_invalid() -> None:
    nonces = NonceManager(SECRET, 300)
    nonce = nonces.new(T0)
    other = NonceManager(b"another secret of 32 bytes......", 300).new(T0)
    flipped = nonce[:10] + ("A" if nonce[10] != "A" else "B") + nonce[11:]
    for bad in (other, flipped, nonce[:-1], nonce + "A", "", "not a nonce", nonce[:42] + "!"):
        assert nonces.verify(bad, T0) is NonceCheck.INVALID, bad
        assert nonces.check(bad, 1, T0) is NonceCheck.INVALID, bad
    assert len(nonces) == 0


def test_nonce_count_must_increase() -> None:
    nonces = NonceManager(SECRET, 300)
    nonce = nonces.new(T0)
    assert nonces.check(nonce, 1, T0) is NonceCheck.VALID
    assert nonces.check(nonce, 1, T0 + 1) is NonceCheck.REPLAY
    assert nonces.check(nonce, 3, T0 + 2) is NonceCheck.VALID
    assert nonces.check(nonce, 2, T0 + 3) is NonceCheck.REPLAY
    assert nonces.check(nonce, 4, T0 + 4) is NonceCheck.VALID
    assert nonces.check(nonces.new(T0), 0, T0) is NonceCheck.REPLAY


def test_nonce_without_qop_is_single_use() -> None:
    nonces = NonceManager(SECRET, 300)
    nonce = nonces.new(T0)
    assert nonces.check(nonce, None, T0) is NonceCheck.VALID
    assert nonces.check(nonce, None, T0 + 1) is NonceCheck.REPLAY
    assert nonces.check(nonce, 0xFFFFFFFF, T0 + 1) is NonceCheck.REPLAY
    counted = nonces.new(T0)
    assert nonces.check(counted, 1, T0) is NonceCheck.VALID
    assert nonces.check(counted, None, T0) is NonceCheck.REPLAY


def test_verify_records_nothing() -> None:
    nonces = NonceManager(SECRET, 300)
    nonce = nonces.new(T0)
    for _ in range(3):
        assert nonces.verify(nonce, T0) is NonceCheck.VALID
    assert len(nonces) == 0
    assert nonces.check(nonce, 1, T0) is NonceCheck.VALID
    assert len(nonces) == 1


def test_nonce_table_is_pruned_as_nonces_expire() -> None:
    nonces = NonceManager(SECRET, 10)
    for i in range(50):
        assert nonces.check(nonces.new(T0 + i), 1, T0 + i) is NonceCheck.VALID
        assert len(nonces) <= 11
    assert len(nonces) == 11  # those created in the last 10 s (inclusive)


def test_nonce_table_cap_never_reopens_a_replay() -> None:
    nonces = NonceManager(SECRET, 300, max_tracked=3)
    made = [nonces.new(T0 + i) for i in range(6)]
    unused_old = nonces.new(T0)  # issued early, answered late
    for i, nonce in enumerate(made):
        assert nonces.check(nonce, 1, T0 + 10 + i) is NonceCheck.VALID
        assert len(nonces) <= 3
    assert len(nonces) == 3
    # Forgotten nonces cannot be replayed: they are now stale (the client retries fresh).
    assert nonces.check(made[0], 1, T0 + 20) is NonceCheck.STALE
    assert nonces.check(made[0], 2, T0 + 20) is NonceCheck.STALE
    assert nonces.check(unused_old, 1, T0 + 20) is NonceCheck.STALE
    # Remembered ones still track their count; newer ones are fine.
    assert nonces.check(made[5], 1, T0 + 20) is NonceCheck.REPLAY
    assert nonces.check(made[5], 2, T0 + 20) is NonceCheck.VALID
    assert nonces.check(nonces.new(T0 + 20), 1, T0 + 20) is NonceCheck.VALID


def test_forged_flood_costs_no_memory() -> None:
    nonces = NonceManager(SECRET, 300)
    genuine = nonces.new(T0)
    for i in range(20_000):
        forged = f"{i:043d}"
        assert nonces.check(forged, 1, T0) is NonceCheck.INVALID
    for _ in range(1000):
        nonces.new(T0)  # issuing is stateless
    assert len(nonces) == 0
    assert nonces.check(genuine, 1, T0) is NonceCheck.VALID


def test_nonce_manager_arguments() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        NonceManager(b"short", 300)
    with pytest.raises(ValueError, match="lifetime"):
        NonceManager(SECRET, 0)


# ---- Authenticator ----

POLICY = BanPolicy(
    user_failures=3, user_window=600, refuse_seconds=300, scan_users=5, scan_window=60
)


def test_no_credentials_gets_challenges_sha256_first() -> None:
    auth = make_auth()
    out = auth.authenticate(request(), IP, T0)
    assert out.result is AuthResult.CHALLENGE
    assert (out.status, out.reason, out.stale) == (401, "Unauthorized", False)
    sha, md5 = challenges_of(out)
    assert (sha.algorithm, md5.algorithm) == ("SHA-256", "MD5")
    assert sha == Challenge(realm=REALM, nonce=sha.nonce, algorithm="SHA-256", qop=("auth",))
    assert md5.nonce == sha.nonce
    assert [name for name, _ in out.headers] == ["WWW-Authenticate", "WWW-Authenticate"]
    assert (
        out.challenges[0]
        == f'Digest realm="{REALM}", nonce="{sha.nonce}", algorithm=SHA-256, qop="auth"'
    )
    assert len(auth.bans) == 0  # not a failure


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_success(algorithm: str) -> None:
    auth = make_auth()
    first = auth.authenticate(request(), IP, T0)
    creds = answer(first, algorithm=algorithm)
    out = auth.authenticate(request(auth=creds), IP, T0 + 1)
    assert out == AuthOutcome(AuthResult.OK, username="alice")
    assert (out.status, out.headers) == (None, ())


def test_success_lower_case_algorithm_and_invite_from() -> None:
    auth = make_auth()
    first = auth.authenticate(request("INVITE", uri="sip:bob@aiopbx.test"), IP, T0)
    creds = answer(first, method="INVITE", uri="sip:bob@aiopbx.test", algorithm="MD5")
    creds = replace(creds, algorithm="md5")
    req = request("INVITE", uri="sip:bob@aiopbx.test", from_user="alice", to_user="bob", auth=creds)
    assert auth.authenticate(req, IP, T0).result is AuthResult.OK


@pytest.mark.parametrize("algorithm", ["SHA-256-sess", "MD5-sess"])
def test_sess_algorithms_when_offered(algorithm: str) -> None:
    auth = make_auth(algorithms=("SHA-256-sess", "MD5-sess"))
    first = auth.authenticate(request(), IP, T0)
    creds = answer(first, algorithm=algorithm)
    assert auth.authenticate(request(auth=creds), IP, T0).result is AuthResult.OK
    # Not offered -> not accepted: treated as no usable credentials, not as a failure.
    plain = make_auth()
    out = plain.authenticate(request(auth=creds), IP, T0)
    assert out.result is AuthResult.CHALLENGE
    assert len(plain.bans) == 0


def test_proxy_authentication() -> None:
    auth = make_auth()
    first = auth.authenticate(request("INVITE", uri="sip:bob@aiopbx.test"), IP, T0, proxy=True)
    assert (first.status, first.reason) == (407, "Proxy Authentication Required")
    assert {name for name, _ in first.headers} == {"Proxy-Authenticate"}
    creds = answer(first, method="INVITE", uri="sip:bob@aiopbx.test")
    as_www = request("INVITE", uri="sip:bob@aiopbx.test", to_user="bob", auth=creds)
    assert auth.authenticate(as_www, IP, T0, proxy=True).result is AuthResult.CHALLENGE
    as_proxy = request(
        "INVITE", uri="sip:bob@aiopbx.test", to_user="bob", auth=creds, header="Proxy-Authorization"
    )
    out = auth.authenticate(as_proxy, IP, T0, proxy=True)
    assert out == AuthOutcome(AuthResult.OK, username="alice", proxy=True)


def test_wrong_password_gets_fresh_challenge_and_counts() -> None:
    auth = make_auth()
    first = auth.authenticate(request(), IP, T0)
    creds = answer(first, password="wrong")
    out = auth.authenticate(request(auth=creds), IP, T0)
    assert out.result is AuthResult.CHALLENGE and not out.stale
    assert challenges_of(out)[0].nonce != creds.nonce
    assert len(auth.bans) == 1


def test_unknown_user_is_indistinguishable_from_wrong_password() -> None:
    lookup = Lookup()
    auth = make_auth(lookup=lookup)
    first = auth.authenticate(request(from_user="mallory"), IP, T0)
    assert shape(first) == shape(auth.authenticate(request(), IP, T0))  # challenge ignores user
    unknown = auth.authenticate(request(from_user="mallory", auth=answer(first, "mallory")), IP, T0)
    known = auth.authenticate(request(auth=answer(first, "alice", "wrong")), IP, T0)
    assert shape(unknown) == shape(known)
    assert unknown.result is AuthResult.CHALLENGE
    assert lookup.asked == ["mallory", "alice"]  # the same work: one lookup, one digest each
    # Acting for someone else changes nothing for an unknown user either.
    other = auth.authenticate(request(from_user="bob", auth=answer(first, "mallory", nc=2)), IP, T0)
    assert shape(other) == shape(known)


def test_stale_only_for_a_correct_digest() -> None:
    auth = make_auth(lifetime=300)
    first = auth.authenticate(request(), IP, T0)
    good = answer(first)
    out = auth.authenticate(request(auth=good), IP, T0 + 301)
    assert out.result is AuthResult.CHALLENGE and out.stale
    assert all(c.stale for c in challenges_of(out))
    assert "stale=true" in out.challenges[0]
    assert len(auth.bans) == 0  # knowing the password is not a failure
    bad = answer(first, password="wrong")
    out = auth.authenticate(request(auth=bad), IP, T0 + 301)
    assert out.result is AuthResult.CHALLENGE and not out.stale
    assert len(auth.bans) == 1
    # The fresh challenge works.
    retry = answer(auth.authenticate(request(), IP, T0 + 302))
    assert auth.authenticate(request(auth=retry), IP, T0 + 302).result is AuthResult.OK


def test_forged_nonce_is_a_failure_without_stale() -> None:
    auth = make_auth()
    foreign = NonceManager(b"some other server's secret value", 300).new(T0)
    forged_challenge = Challenge(realm=REALM, nonce=foreign, algorithm="SHA-256")
    creds = make_credentials(forged_challenge, "alice", "wonderland", "REGISTER", "sip:aiopbx.test")
    out = auth.authenticate(request(auth=creds), IP, T0)
    assert out.result is AuthResult.CHALLENGE and not out.stale
    assert len(auth.bans) == 1


def test_nonce_count_replay_rejected_and_increasing_accepted() -> None:
    auth = make_auth()
    first = auth.authenticate(request(), IP, T0)
    one = answer(first, nc=1)
    assert auth.authenticate(request(auth=one), IP, T0).result is AuthResult.OK
    replay = auth.authenticate(request(auth=one), IP, T0 + 1)
    assert replay.result is AuthResult.CHALLENGE and not replay.stale
    assert auth.authenticate(request(auth=answer(first, nc=2)), IP, T0 + 2).result is AuthResult.OK
    assert auth.authenticate(request(auth=answer(first, nc=5)), IP, T0 + 3).result is AuthResult.OK
    back = auth.authenticate(request(auth=answer(first, nc=4)), IP, T0 + 4)
    assert back.result is AuthResult.CHALLENGE
    assert len(auth.bans) == 1  # failures so far: the two replays, one address


def test_wrong_digest_does_not_burn_the_nonce_count() -> None:
    auth = make_auth()
    first = auth.authenticate(request(), IP, T0)
    attacker = replace(answer(first, nc=9), response="0" * 64)
    assert (
        auth.authenticate(request(auth=attacker), "198.51.100.7", T0).result is AuthResult.CHALLENGE
    )
    assert auth.authenticate(request(auth=answer(first, nc=1)), IP, T0).result is AuthResult.OK


def test_credentials_without_qop_are_single_use() -> None:
    auth = make_auth()
    first = auth.authenticate(request(), IP, T0)
    (sha, _) = challenges_of(first)
    creds = make_credentials(
        replace(sha, qop=()), "alice", "wonderland", "REGISTER", "sip:aiopbx.test"
    )
    assert creds.qop is None
    assert auth.authenticate(request(auth=creds), IP, T0).result is AuthResult.OK
    assert auth.authenticate(request(auth=creds), IP, T0 + 1).result is AuthResult.CHALLENGE


def test_auth_int_body_is_checked() -> None:
    auth = make_auth()
    body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\n"
    uri = "sip:bob@aiopbx.test"
    first = auth.authenticate(request("INVITE", uri=uri, body=body), IP, T0)
    (sha, _) = challenges_of(first)
    creds = make_credentials(
        replace(sha, qop=("auth-int",)), "alice", "wonderland", "INVITE", uri, body=body
    )
    ok = request("INVITE", uri=uri, to_user="bob", auth=creds, body=body)
    assert auth.authenticate(ok, IP, T0).result is AuthResult.OK
    creds2 = make_credentials(
        replace(sha, qop=("auth-int",)), "alice", "wonderland", "INVITE", uri, nc=2, body=body
    )
    tampered = request("INVITE", uri=uri, to_user="bob", auth=creds2, body=body + b"t=0 0\r\n")
    assert auth.authenticate(tampered, IP, T0).result is AuthResult.CHALLENGE


def test_digest_uri_must_be_the_request_uri() -> None:
    auth = make_auth()
    first = auth.authenticate(request(), IP, T0)
    creds = answer(first, uri="sip:elsewhere.test")
    out = auth.authenticate(request(auth=creds), IP, T0)
    assert out.result is AuthResult.BAD_REQUEST
    assert (out.status, out.reason, out.headers) == (400, "Bad Request", ())
    assert len(auth.bans) == 1
    # The same URI written differently (scheme case) is the same resource.
    creds = answer(first, uri="SIP:aiopbx.test")
    assert auth.authenticate(request(auth=creds), IP, T0).result is AuthResult.OK


def test_credentials_for_another_user_are_forbidden() -> None:
    auth = make_auth()
    first = auth.authenticate(request(), IP, T0)
    # REGISTER acts for the To user.
    creds = answer(first, "alice")
    out = auth.authenticate(request(from_user="alice", to_user="bob", auth=creds), IP, T0)
    assert out == AuthOutcome(AuthResult.FORBIDDEN, username="alice")
    assert (out.status, out.reason) == (403, "Forbidden")
    # INVITE acts for the From user.
    uri = "sip:alice@aiopbx.test"
    creds = answer(first, "alice", method="INVITE", uri=uri, nc=2)
    out = auth.authenticate(
        request("INVITE", uri=uri, from_user="bob", to_user="alice", auth=creds), IP, T0
    )
    assert out.result is AuthResult.FORBIDDEN
    assert len(auth.bans) == 0  # the password was right


def test_foreign_realm_and_other_schemes_are_ignored() -> None:
    auth = make_auth()
    first = auth.authenticate(request(), IP, T0)
    (sha, _) = challenges_of(first)
    foreign = make_credentials(
        replace(sha, realm="elsewhere"), "alice", "x", "REGISTER", "sip:aiopbx.test"
    )
    for value in (str(foreign), "Basic YWxpY2U6d29uZGVybGFuZA==", 'Digest username="alice"'):
        out = auth.authenticate(request(auth=value), IP, T0)
        assert out.result is AuthResult.CHALLENGE
    assert len(auth.bans) == 0
    # Ours is found among several Authorization header fields.
    ours = answer(first)
    req = request(auth=foreign, extra=f"Authorization: {ours}")
    assert auth.authenticate(req, IP, T0).result is AuthResult.OK


def _fail(auth: Authenticator, user: str, ip: str, now: float) -> AuthOutcome:
    """One login attempt with a wrong password: challenge, then answer it wrongly."""
    first = auth.authenticate(request(from_user=user), ip, now)
    if first.result is not AuthResult.CHALLENGE:
        return first
    bad = answer(first, user, password="not-the-password")
    return auth.authenticate(request(from_user=user, auth=bad), ip, now)


def _login(auth: Authenticator, user: str, ip: str, now: float) -> AuthResult:
    first = auth.authenticate(request(from_user=user), ip, now)
    if first.result is not AuthResult.CHALLENGE:
        return first.result
    return auth.authenticate(request(from_user=user, auth=answer(first, user)), ip, now).result


def test_wrong_password_refuses_that_user_from_that_address_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="pbx.auth")
    auth = make_auth(policy=POLICY)
    outcomes = [_fail(auth, "alice", IP, T0 + i) for i in range(3)]
    assert [o.status for o in outcomes] == [401, 401, 403]  # fresh challenges, then 403
    # Then alice is ignored from this address: with or without credentials.
    assert _fail(auth, "alice", IP, T0 + 4).result is AuthResult.BANNED
    assert _login(auth, "alice", IP, T0 + 5) is AuthResult.BANNED
    # bob behind the same address, and alice from elsewhere, log in as usual.
    assert _login(auth, "bob", IP, T0 + 6) is AuthResult.OK
    assert _login(auth, "alice", "192.0.2.11", T0 + 7) is AuthResult.OK
    assert not auth.bans.is_banned(IP, T0 + 8)
    # One line per failed login (user, source, reason), one for the refusal; no secrets.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        *["auth: failed login for user 'alice' from 192.0.2.10: wrong password"
          " (Call-ID a84b4c76e66710@192.0.2.10)"] * 3,
        "auth: refusing user 'alice' from 192.0.2.10 for 300 s after 3 failed logins",
    ]  # fmt: skip
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("wonderland", "not-the-password", USERS["alice"][0], USERS["alice"][1]):
        assert secret not in text
    # Lifted after refuse_seconds.
    assert _login(auth, "alice", IP, T0 + 2 + 300) is AuthResult.OK


def test_unknown_and_known_users_get_the_same_answers() -> None:
    auth = make_auth(policy=POLICY)
    known = [shape(_fail(auth, "alice", IP, T0 + i)) for i in range(4)]
    unknown = [shape(_fail(auth, "mallory", "192.0.2.11", T0 + i)) for i in range(4)]
    assert known == unknown
    assert [o.result for o in known] == [
        AuthResult.CHALLENGE,
        AuthResult.CHALLENGE,
        AuthResult.FORBIDDEN,
        AuthResult.BANNED,
    ]


def test_scanner_is_banned_and_lifted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pbx.auth")
    auth = make_auth(policy=POLICY)
    statuses = [_fail(auth, f"guess{i}", IP, T0 + i).status for i in range(5)]
    assert statuses == [401, 401, 401, 401, 403]  # the fifth user starts the ban: dropped
    assert auth.authenticate(request(), IP, T0 + 6).result is AuthResult.BANNED
    assert _login(auth, "bob", IP, T0 + 7) is AuthResult.BANNED
    assert _login(auth, "bob", "192.0.2.11", T0 + 7) is AuthResult.OK
    assert sum("banning 192.0.2.10" in r.getMessage() for r in caplog.records) == 1
    assert auth.bans.lift(IP) == 1
    assert _login(auth, "bob", IP, T0 + 8) is AuthResult.OK


def test_trusted_scanner_loses_users_not_the_address() -> None:
    auth = make_auth(policy=POLICY, trusted=("192.0.2.0/24",))
    for i in range(10):
        assert _fail(auth, f"guess{i}", IP, T0 + i).result is AuthResult.CHALLENGE
    assert _login(auth, "bob", IP, T0 + 11) is AuthResult.OK


def test_failed_login_lines_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pbx.auth")
    auth = make_auth(
        policy=BanPolicy(user_failures=1000, scan_users=1000),
        failure_log=FailureLog(burst=5, interval=10),
    )
    for i in range(50):
        _fail(auth, "alice", IP, T0 + i * 0.01)
    _fail(auth, "alice", IP, T0 + 11)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 6
    assert lines[-1].endswith("(45 more failed logins not logged)")


def test_no_credentials_never_bans() -> None:
    auth = make_auth(policy=BanPolicy(user_failures=1, scan_users=1))
    for i in range(20):
        assert auth.authenticate(request(), IP, T0 + i).result is AuthResult.CHALLENGE
    assert len(auth.bans) == 0


def test_authenticator_arguments() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        make_auth(algorithms=("SHA-512-256",))
    with pytest.raises(ValueError, match="repeats"):
        make_auth(algorithms=("MD5", "md5"))


def test_nonce_tag_is_hmac_sha256() -> None:
    import base64
    import hmac

    for secret in (SECRET, b"k" * 100):
        nonce = NonceManager(secret, 300).new(T0)
        raw = base64.urlsafe_b64decode(nonce + "=")
        assert raw[16:] == hmac.digest(secret, raw[:16], "sha256")[:16]
        assert int.from_bytes(raw[:8], "big") == int(T0 * 1000)
