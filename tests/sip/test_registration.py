"""The registration client and the UAC authenticator against a scripted registrar."""

from __future__ import annotations

import random

import pytest

from sip.digest import Challenge, Credentials, ha1, pick_challenge, verify
from sip.headers import Headers
from sip.message import Request, Response, make_response
from sip.registration import (
    ClientAuthenticator,
    RegistrationClient,
    RegistrationConfig,
    RegistrationState,
)
from sip.uri import SipUri

REALM = "provider.example"
USER = "trunk1"
PASSWORD = "s3cret-Pass"


def config(**kw: object) -> RegistrationConfig:
    base: dict[str, object] = {
        "registrar": SipUri.parse("sip:127.0.0.1:5070"),
        "aor": SipUri.parse(f"sip:{USER}@provider.example"),
        "contact": SipUri.parse(f"sip:{USER}@127.0.0.1:5060"),
        "via": "SIP/2.0/UDP 127.0.0.1:5060",
        "credentials": {"": (USER, PASSWORD)},
        "expires": 600,
        "retry_min": 30.0,
        "retry_max": 1800.0,
    }
    base.update(kw)
    return RegistrationConfig(**base)  # type: ignore[arg-type]


def challenge(request: Request, nonce: str = "n1", *, stale: bool = False, status: int = 401,
              algorithm: str = "MD5") -> Response:  # fmt: skip
    header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    value = str(Challenge(REALM, nonce, algorithm=algorithm, stale=stale))
    return make_response(request, status, headers=[(header, value)])


def accept(request: Request, password: str = PASSWORD, header: str = "Authorization") -> bool:
    values = request.headers.get_all(header)
    if len(values) != 1:
        return False
    creds = Credentials.parse(values[0])
    return verify(creds, ha1(creds.username, REALM, password, creds.algorithm), request.method)


def ok(
    request: Request, expires: int | None = None, extra: list[tuple[str, str]] | None = None
) -> Response:
    contact = request.headers.get("Contact") or ""
    headers = [("Contact", f"{contact};expires={expires}")] if expires is not None else []
    return make_response(request, 200, headers=[*headers, *(extra or [])])


def test_register_answers_401_then_refreshes_at_half_the_granted_expiry() -> None:
    client = RegistrationClient(config(), rng=random.Random(1))
    first = client.start(100.0)
    assert first.method == "REGISTER" and "Authorization" not in first.headers
    assert first.headers.get("Expires") == "600" and first.cseq.seq == 1
    assert client.state is RegistrationState.REGISTERING
    second = client.on_response(challenge(first), 100.1)
    assert second is not None and accept(second)
    assert second.cseq.seq == 2 and second.call_id == first.call_id
    assert second.via[0].branch != first.via[0].branch
    assert client.on_response(ok(second, 4), 100.2) is None
    assert client.state is RegistrationState.REGISTERED
    assert client.registered_until == pytest.approx(104.2)
    assert client.next_deadline() == pytest.approx(102.2)
    assert client.on_timer(102.0) is None  # not yet
    refresh = client.on_timer(102.2)
    assert refresh is not None and refresh.cseq.seq == 3 and refresh.call_id == first.call_id
    # The cached challenge answers at once, with the next nonce-count.
    creds = Credentials.parse(refresh.headers.get("Authorization") or "")
    assert creds.nc == "00000002" and accept(refresh)
    client.on_response(ok(refresh, 4), 102.3)
    assert client.registered_until == pytest.approx(106.3)


def test_granted_expiry_falls_back_to_expires_header_then_request() -> None:
    client = RegistrationClient(config(expires=300))
    req = client.start(0.0)
    client.on_response(make_response(req, 200, headers=[("Expires", "120")]), 0.0)
    assert client.registered_until == 120.0 and client.next_deadline() == 60.0
    req2 = client.on_timer(60.0)
    assert req2 is not None
    client.on_response(make_response(req2, 200), 60.0)
    assert client.registered_until == 360.0


def test_other_contacts_in_the_2xx_do_not_count() -> None:
    client = RegistrationClient(config())
    req = client.start(0.0)
    contacts = "<sip:other@10.0.0.1>;expires=10, <sip:trunk1@127.0.0.1:5060>;expires=90"
    response = make_response(req, 200, headers=[("Contact", contacts)])
    client.on_response(response, 0.0)
    assert client.registered_until == 90.0


def test_wrong_password_fails_with_the_status_and_backs_off() -> None:
    client = RegistrationClient(config(credentials={"": (USER, "wrong")}), rng=random.Random(3))
    req = client.start(0.0)
    retry = client.on_response(challenge(req, "n1"), 0.0)
    assert retry is not None and not accept(retry)
    # The registrar refuses: a fresh challenge (not stale) to our answer means give up.
    assert client.on_response(challenge(retry, "n2"), 0.1) is None
    assert client.state is RegistrationState.FAILED
    assert client.last_failure == (401, "Unauthorized")
    deadline = client.next_deadline()
    assert deadline is not None and 30.1 <= deadline <= 30.1 + 0.2 * 30
    # A 403 is a failure as it is.
    again = client.on_timer(deadline)
    assert again is not None
    third = client.on_response(challenge(again, "n3"), deadline)
    assert third is not None  # a preauthorized answer refused: one fresh try
    client.on_response(make_response(third, 403), deadline)
    assert client.last_failure == (403, "Forbidden")
    assert client.next_retry is not None and client.next_retry - deadline >= 60.0


def test_stale_nonce_is_answered_again() -> None:
    client = RegistrationClient(config())
    req = client.start(0.0)
    retry = client.on_response(challenge(req, "n1"), 0.0)
    assert retry is not None
    again = client.on_response(challenge(retry, "n2", stale=True), 0.0)
    assert again is not None and accept(again)
    assert Credentials.parse(again.headers.get("Authorization") or "").nonce == "n2"


@pytest.mark.parametrize("failures", range(1, 12))
def test_backoff_doubles_to_the_cap_and_is_never_faster(failures: int) -> None:
    client = RegistrationClient(config(), rng=random.Random(failures))
    now = 0.0
    req = client.start(now)
    for _ in range(failures):
        client.on_response(make_response(req, 503), now)
        deadline = client.next_deadline()
        assert deadline is not None
        floor = min(1800.0, 30.0 * 2 ** (client._failures - 1))
        assert floor <= deadline - now <= floor * 1.2
        now = deadline
        nxt = client.on_timer(now)
        assert nxt is not None
        req = nxt
    client.on_response(ok(req, 60), now)
    assert client.state is RegistrationState.REGISTERED and client.last_failure is None
    client.on_response(make_response(req, 503), now)  # a stale answer: ignored
    assert client.state is RegistrationState.REGISTERED


def test_timeout_counts_as_failure_and_recovery_resets_backoff() -> None:
    client = RegistrationClient(config(), rng=random.Random(0))
    req = client.start(0.0)
    client.on_response(make_response(req, 408, "Request Timeout"), 32.0)
    assert client.state is RegistrationState.FAILED and client.last_failure == (
        408,
        "Request Timeout",
    )
    req = client.on_timer(client.next_deadline() or 0.0)
    assert req is not None
    client.on_response(ok(req, 100), 70.0)
    req = client.on_timer(120.0)
    assert req is not None
    client.on_response(make_response(req, 500), 120.0)
    assert (client.next_deadline() or 0) - 120.0 < 30.0 * 1.2 + 1e-9  # back to the first step


def test_423_asks_again_with_min_expires() -> None:
    client = RegistrationClient(config(expires=30))
    req = client.start(0.0)
    again = client.on_response(make_response(req, 423, headers=[("Min-Expires", "120")]), 0.0)
    assert again is not None and again.headers.get("Expires") == "120"
    assert (
        client.on_response(make_response(again, 423, headers=[("Min-Expires", "120")]), 0.0) is None
    )
    assert client.state is RegistrationState.FAILED


def test_service_route_is_kept() -> None:
    client = RegistrationClient(config())
    req = client.start(0.0)
    route = [("Service-Route", "<sip:P2.example;lr>, <sip:HSP.example;lr>")]
    client.on_response(ok(req, 60, route), 0.0)
    assert client.service_route == ("<sip:P2.example;lr>", "<sip:HSP.example;lr>")


def test_stop_unregisters_with_expires_zero_answering_the_challenge() -> None:
    client = RegistrationClient(config())
    req = client.start(0.0)
    client.on_response(ok(req, 60), 0.0)
    bye = client.stop(10.0)
    assert bye is not None and bye.headers.get("Expires") == "0"
    assert client.state is RegistrationState.UNREGISTERING and client.next_deadline() is None
    retry = client.on_response(challenge(bye, "x"), 10.0)
    assert retry is not None and retry.headers.get("Expires") == "0" and accept(retry)
    assert client.on_response(ok(retry), 10.0) is None
    assert client.state is RegistrationState.STOPPED and client.registered_until is None
    assert client.stop(11.0) is None


def test_stop_when_nothing_is_bound_sends_nothing() -> None:
    client = RegistrationClient(config())
    req = client.start(0.0)
    client.on_response(make_response(req, 403), 0.0)
    assert client.stop(1.0) is None and client.state is RegistrationState.STOPPED
    assert client.next_deadline() is None


def invite() -> Request:
    headers = Headers(
        [
            ("Via", "SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKabc"),
            ("Max-Forwards", "70"),
            ("From", "<sip:1001@pbx>;tag=f1"),
            ("To", "<sip:0123456789@provider.example>"),
            ("Call-ID", "call-1"),
            ("CSeq", "7 INVITE"),
            ("Content-Type", "application/sdp"),
        ]
    )
    return Request("INVITE", SipUri.parse("sip:0123456789@provider.example"), headers, b"v=0\r\n")


def test_invite_407_retried_once_with_proxy_authorization_and_cseq_plus_one() -> None:
    auth = ClientAuthenticator({REALM: (USER, PASSWORD)})
    request = invite()
    retry = auth.authorize(request, challenge(request, "p1", status=407))
    assert retry is not None
    assert retry.cseq.seq == 8 and retry.cseq.method == "INVITE"
    assert retry.body == request.body and retry.call_id == request.call_id
    assert retry.via[0].branch != request.via[0].branch
    assert "Authorization" not in retry.headers
    assert accept(retry, header="Proxy-Authorization")
    # Refused again with a fresh nonce: give up (never a loop).
    assert auth.authorize(retry, challenge(retry, "p2", status=407)) is None
    # The realm's challenge is cached: the next request carries credentials at once.
    later = auth.preauthorize(invite())
    creds = Credentials.parse(later.headers.get("Proxy-Authorization") or "")
    assert creds.nonce == "p1" and creds.nc == "00000002"


def test_authenticator_without_credentials_for_the_realm_gives_up() -> None:
    auth = ClientAuthenticator({"other.realm": (USER, PASSWORD)})
    request = invite()
    assert auth.authorize(request, challenge(request)) is None
    assert auth.authorize(request, make_response(request, 403)) is None
    assert auth.preauthorize(request) is request


def test_authenticator_prefers_sha256() -> None:
    auth = ClientAuthenticator({"": (USER, PASSWORD)})
    request = invite()
    response = make_response(
        request,
        401,
        headers=[
            ("WWW-Authenticate", str(Challenge(REALM, "m", algorithm="MD5"))),
            ("WWW-Authenticate", str(Challenge(REALM, "s", algorithm="SHA-256"))),
        ],
    )
    retry = auth.authorize(request, response)
    assert retry is not None
    creds = Credentials.parse(retry.headers.get("Authorization") or "")
    assert creds.algorithm == "SHA-256" and accept(retry)


def test_pick_challenge_skips_garbage_and_unknown_algorithms() -> None:
    assert (
        pick_challenge(["Basic realm=x", 'Digest realm="r", nonce="n", algorithm=SHA-512']) is None
    )
    picked = pick_challenge(['Digest realm="r"', 'Digest realm="r", nonce="n", qop="auth-int"'])
    assert picked is not None and picked.qop == ("auth-int",)
    assert pick_challenge(['Digest realm="r", nonce="n", qop="foo"']) is None


def test_a_2xx_granting_nothing_is_a_failure_not_a_spin() -> None:
    client = RegistrationClient(config(), rng=random.Random(0))
    req = client.start(0.0)
    client.on_response(ok(req, 0), 0.0)
    assert client.state is RegistrationState.FAILED
    assert client.last_failure == (200, "registrar granted no time")
    assert (client.next_deadline() or 0.0) >= 30.0


def test_retry_of_a_request_with_two_vias_changes_only_the_top_branch() -> None:
    auth = ClientAuthenticator({"": (USER, PASSWORD)})
    request = invite()
    headers = request.headers.add("Via", "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKlower")
    request = Request(request.method, request.uri, headers, request.body)
    retry = auth.authorize(request, challenge(request))
    assert retry is not None and len(retry.via) == 2
    assert retry.via[0].branch != "z9hG4bKabc" and retry.via[1].branch == "z9hG4bKlower"
    assert retry.headers.get_all("Via")[1] == "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKlower"


def test_preauthorize_answers_every_cached_realm() -> None:
    auth = ClientAuthenticator({"": (USER, PASSWORD)})
    for realm in ("a.example", "b.example"):
        request = invite()
        response = make_response(
            request, 407, headers=[("Proxy-Authenticate", str(Challenge(realm, "n-" + realm)))]
        )
        assert auth.authorize(request, response) is not None
    later = auth.preauthorize(invite())
    realms = sorted(
        Credentials.parse(v).realm for v in later.headers.get_all("Proxy-Authorization")
    )
    assert realms == ["a.example", "b.example"]
    auth.forget()
    assert auth.preauthorize(invite()).headers.get("Proxy-Authorization") is None
