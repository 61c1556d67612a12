"""The PSTN simulator over real loopback UDP, driven by the project's raw SIP client
and an RTP socket (`tests/interop/ear.py`): digest on REGISTER and INVITE, the scripted
outcomes, and the WAV of what a live person heard."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from media.dtmf import DtmfDetector
from media.ports import PortAllocator
from media.wav import load_mono
from pbx.sim.script import load_script, parse_script
from pbx.sim.server import PstnSimulator
from pbx.sim.voice import Voice
from sip.digest import Challenge, make_credentials
from sip.message import Request, Response, make_response, parse_message
from tests.interop.ear import listening, peak_hz, sine
from tests.interop.sipclient import SipClient, media_address

DATA = Path(__file__).parent.parent / "data" / "sim"
USER, PASSWORD = "trunk1", "s3cret-trunk"
GREETING = {"g1": 440, "g2": 550}


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[PstnSimulator]:
    simulator = PstnSimulator(
        load_script(DATA / "basic.toml"),
        tmp_path / "out",
        voice=Voice(use_espeak=False),  # tones: the test can name what it hears
        ports=PortAllocator("127.0.0.1", 46000, 46100),
    )
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.close()


def attempts(sim: PstnSimulator) -> list[dict[str, object]]:
    lines = sim.attempts_log.read_text().splitlines()
    return [json.loads(line) for line in lines]


async def authed_invite(
    client: SipClient, number: str, rtp_port: int = 40000, password: str = PASSWORD
) -> tuple[bytes, Response]:
    """INVITE, answer the 407 (ACKed), INVITE again with credentials; the final answer."""
    first = client.invite(USER, number, rtp_port=rtp_port, events=True)
    challenged = await client.exchange(first)
    assert challenged.status == 407
    client.send(client.ack_for(first, challenged))
    challenge = Challenge.parse(challenged.headers.get("Proxy-Authenticate") or "")
    uri = f"sip:{number}@127.0.0.1:{client.server_port}"
    creds = make_credentials(challenge, USER, password, "INVITE", uri)
    second = client.invite(USER, number, rtp_port=rtp_port, events=True, cseq=2)
    second = second.replace(
        b"Content-Length:", f"Proxy-Authorization: {creds}\r\nContent-Length:".encode(), 1
    )
    return second, await client.exchange(second, timeout=15)


async def test_register_with_digest_and_wrong_password(sim: PstnSimulator) -> None:
    async with SipClient(sim.port) as client:
        first = await client.exchange(client.register(USER, expires=120))
        assert first.status == 401
        challenge = Challenge.parse(first.headers.get("WWW-Authenticate") or "")
        creds = client.answer(challenge, USER, PASSWORD)
        ok = await client.exchange(client.register(USER, expires=120, authorization=str(creds)))
        assert ok.status == 200
        assert (ok.headers.get("Contact") or "").endswith(";expires=120")
        assert USER in sim.bindings
        bad = client.answer(challenge, USER, "wrong")
        refused = await client.exchange(client.register(USER, authorization=str(bad)))
        assert refused.status == 403


@pytest.mark.parametrize(
    ("number", "status"),
    [("0800123456", 486), ("0900123456", 503), ("555", 404), ("0200123456", 408)],
)
async def test_scripted_failures(sim: PstnSimulator, number: str, status: int) -> None:
    async with SipClient(sim.port) as client:
        _, final = await authed_invite(client, number)
        assert final.status == status
    [entry] = attempts(sim)
    assert (entry["number"], entry["status"], entry["account"]) == (number, status, USER)


async def test_invite_with_a_wrong_password_is_refused(sim: PstnSimulator) -> None:
    async with SipClient(sim.port) as client:
        _, final = await authed_invite(client, "0100123456", password="wrong")
        assert final.status == 403


async def test_live_person_answers_speaks_and_records_what_it_hears(sim: PstnSimulator) -> None:
    async with SipClient(sim.port) as client, listening(GREETING) as ear:
        invite, ok = await authed_invite(client, "0100123456", rtp_port=ear.port)
        assert ok.status == 200
        client.send(client.ack_2xx(invite, ok))
        ear.remote = media_address(ok.body)
        await ear.wait_for("g1", "g2")  # the greeting (tones without espeak-ng)
        await ear.talk(sine(1200, 1.5))
        bye = await client.exchange(client.bye_for(invite, ok))
        assert bye.status == 200
    # The call's end is logged after the WAV is written; wait for it (bounded).
    for _ in range(200):
        if sim.attempts_log.exists() and attempts(sim):
            break
        await asyncio.sleep(0.05)
    [entry] = attempts(sim)
    assert (entry["status"], entry["behaviour"], entry["ended_by"]) == (200, "live", "caller")
    heard = load_mono(str(entry["wav"]))
    loud = heard[np.abs(heard) > 1000]
    assert len(loud) > 4000  # most of the 1.5 s tone
    assert abs(peak_hz(heard) - 1200) < 20


async def _until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"not in time: {what}"
        await asyncio.sleep(0.02)


async def test_a_person_presses_keys_after_the_answer_and_after_the_prompt(
    sim: PstnSimulator,
) -> None:
    """The script's person presses 9 0.2 s after the answer and 1 0.5 s after it first
    hears the caller speak: the 9 comes as RFC 4733 events while the caller is silent,
    the 1 only once the caller talks; both are in the attempts log with their times."""
    async with SipClient(sim.port) as client, listening(GREETING) as ear:
        invite, ok = await authed_invite(client, "0500123456", rtp_port=ear.port)
        assert ok.status == 200
        client.send(client.ack_2xx(invite, ok))
        ear.remote = media_address(ok.body)
        await _until(lambda: bool(ear.digits), "the 9 pressed after the answer")
        assert ear.digits == ["9"]  # the 1 waits for the caller's prompt
        await ear.wait_for("g1", "g2")  # the greeting goes on around the key
        talking = asyncio.ensure_future(ear.talk(sine(1200, 2.0)))  # "the prompt"
        try:
            await _until(lambda: len(ear.digits) == 2, "the 1 pressed after the prompt")
        finally:
            talking.cancel()
        assert ear.digits == ["9", "1"]
        bye = await client.exchange(client.bye_for(invite, ok))
        assert bye.status == 200
    await _until(lambda: sim.attempts_log.exists() and bool(attempts(sim)), "the log line")
    [entry] = attempts(sim)
    prompt_at = entry["prompt_at"]
    assert isinstance(prompt_at, float)
    nine, one = entry["keys"]
    assert nine["digits"] == "9" and 0.2 <= nine["at"] < prompt_at
    assert one["digits"] == "1" and one["at"] >= prompt_at + 0.5 - 0.01


async def test_keys_go_in_band_when_no_telephone_event_was_offered(tmp_path: Path) -> None:
    """A caller that offers no telephone-event gets the keys as DTMF tones in the audio,
    which the project's in-band detector reads back."""
    script = parse_script(
        '[accounts]\ntrunk1 = "s3cret-trunk"\n'
        '[[numbers]]\npattern = "_05."\nbehaviour = "live"\nring_seconds = 0.1\n'
        'listen_seconds = 10.0\nkeys = [{ after = 0.1, digits = "47", from = "answer" }]\n'
    )
    simulator = PstnSimulator(
        script, tmp_path / "out", voice=Voice(use_espeak=False),
        ports=PortAllocator("127.0.0.1", 46300, 46400),
    )  # fmt: skip
    await simulator.start()
    try:
        async with SipClient(simulator.port) as client, listening(GREETING) as ear:
            first = client.invite(USER, "0512345678", rtp_port=ear.port)  # no events
            challenged = await client.exchange(first)
            client.send(client.ack_for(first, challenged))
            challenge = Challenge.parse(challenged.headers.get("Proxy-Authenticate") or "")
            uri = f"sip:0512345678@127.0.0.1:{simulator.port}"
            creds = make_credentials(challenge, USER, PASSWORD, "INVITE", uri)
            invite = client.invite(USER, "0512345678", rtp_port=ear.port, cseq=2).replace(
                b"Content-Length:", f"Proxy-Authorization: {creds}\r\nContent-Length:".encode(), 1
            )
            ok = await client.exchange(invite, timeout=15)
            assert ok.status == 200 and b"telephone-event" not in ok.body
            client.send(client.ack_2xx(invite, ok))
            ear.remote = media_address(ok.body)

            def heard() -> str:
                detector = DtmfDetector()
                found = detector.feed(ear.samples()) + detector.flush()
                return "".join(d.digit for d in found)

            await _until(lambda: heard() == "47", "the tones of 4 and 7")
            assert ear.digits == []  # nothing out of band
            bye = await client.exchange(client.bye_for(invite, ok))
            assert bye.status == 200
    finally:
        await simulator.close()


async def test_answering_machine_greets_beeps_and_records(tmp_path: Path) -> None:
    script = parse_script(
        '[accounts]\ntrunk1 = "s3cret-trunk"\n'
        '[[numbers]]\npattern = "_07."\nbehaviour = "machine"\nring_seconds = 0.2\n'
        "listen_seconds = 6.0\n"
    )
    simulator = PstnSimulator(
        script,
        tmp_path / "out",
        voice=Voice(use_espeak=False),
        ports=PortAllocator("127.0.0.1", 46200, 46300),
    )
    await simulator.start()
    try:
        tones = {**GREETING, "beep": 1000}
        async with SipClient(simulator.port) as client, listening(tones) as ear:
            invite, ok = await authed_invite(client, "0712345678", rtp_port=ear.port)
            assert ok.status == 200
            client.send(client.ack_2xx(invite, ok))
            ear.remote = media_address(ok.body)
            await ear.wait_for("g1", "g2", "beep")  # greeting (tones), then the beep
            await ear.talk(sine(700, 1.0))
            # listen_seconds passes: the machine hangs up with a BYE of its own.
            raw = await client.receive(timeout=20)
            while raw is not None and not raw.startswith(b"BYE "):
                raw = await client.receive(timeout=20)
            assert raw is not None, "no BYE from the simulator"
            bye = parse_message(raw)
            assert isinstance(bye, Request)
            client.send(bytes(make_response(bye, 200)))
        for _ in range(200):
            if simulator.attempts_log.exists() and attempts(simulator):
                break
            await asyncio.sleep(0.05)
        [entry] = attempts(simulator)
        assert (entry["behaviour"], entry["status"], entry["ended_by"]) == (
            "machine", 200, "simulator",
        )  # fmt: skip
        heard = load_mono(str(entry["wav"]))
        assert abs(peak_hz(heard) - 700) < 20
    finally:
        await simulator.close()


async def test_cancel_while_ringing_and_an_invite_without_offer(tmp_path: Path) -> None:
    script = parse_script(
        '[accounts]\ntrunk1 = "s3cret-trunk"\n'
        '[[numbers]]\npattern = "_06."\nbehaviour = "no_answer"\nno_answer_seconds = 30.0\n'
        '[[numbers]]\npattern = "_01."\nbehaviour = "live"\nring_seconds = 0.1\n'
    )
    simulator = PstnSimulator(
        script, tmp_path / "out", voice=Voice(use_espeak=False),
        ports=PortAllocator("127.0.0.1", 46800, 46900),
    )  # fmt: skip
    await simulator.start()
    try:
        async with SipClient(simulator.port) as client:
            first = client.invite(USER, "0612345678")
            challenged = await client.exchange(first)
            client.send(client.ack_for(first, challenged))
            challenge = Challenge.parse(challenged.headers.get("Proxy-Authenticate") or "")
            uri = f"sip:0612345678@127.0.0.1:{simulator.port}"
            creds = make_credentials(challenge, USER, PASSWORD, "INVITE", uri)
            invite = client.invite(USER, "0612345678", cseq=2).replace(
                b"Content-Length:", f"Proxy-Authorization: {creds}\r\nContent-Length:".encode(), 1
            )
            client.send(invite)
            ringing = parse_message(await client.receive() or b"")
            while isinstance(ringing, Response) and ringing.status != 180:
                ringing = parse_message(await client.receive() or b"")
            client.send(client.cancel_for(invite))
            statuses = set()
            for _ in range(4):
                raw = await client.receive()
                if raw is None:
                    break
                message = parse_message(raw)
                if isinstance(message, Response) and message.status >= 200:
                    statuses.add((message.cseq.method, message.status))
                if {("CANCEL", 200), ("INVITE", 487)} <= statuses:
                    break
            assert {("CANCEL", 200), ("INVITE", 487)} <= statuses
        async with SipClient(simulator.port) as client:
            first = client.invite(USER, "0112345678", offer=False)
            challenged = await client.exchange(first)
            client.send(client.ack_for(first, challenged))
            challenge = Challenge.parse(challenged.headers.get("Proxy-Authenticate") or "")
            uri = f"sip:0112345678@127.0.0.1:{simulator.port}"
            creds = make_credentials(challenge, USER, PASSWORD, "INVITE", uri)
            invite = client.invite(USER, "0112345678", cseq=2, offer=False).replace(
                b"Content-Length:", f"Proxy-Authorization: {creds}\r\nContent-Length:".encode(), 1
            )
            assert (await client.exchange(invite)).status == 488
        assert [(e["number"], e["status"]) for e in attempts(simulator)] == [
            ("0612345678", 487), ("0112345678", 488),
        ]  # fmt: skip
    finally:
        await simulator.close()


async def test_calls_beyond_max_calls_get_503(tmp_path: Path) -> None:
    """`max_calls` (`pbx sim pstn --max-calls`): a call over the limit gets 503 while the
    one before it rings; the log keeps both."""
    script = parse_script(
        '[accounts]\ntrunk1 = "s3cret-trunk"\n'
        '[[numbers]]\npattern = "_06."\nbehaviour = "no_answer"\nno_answer_seconds = 30.0\n'
    )
    simulator = PstnSimulator(
        script, tmp_path / "out", max_calls=1, voice=Voice(use_espeak=False),
        ports=PortAllocator("127.0.0.1", 46900, 46950),
    )  # fmt: skip
    await simulator.start()
    try:
        async with SipClient(simulator.port) as first, SipClient(simulator.port) as second:
            ringing = asyncio.ensure_future(authed_invite(first, "0612345678"))
            async with asyncio.timeout(10):
                while not simulator._calls:
                    await asyncio.sleep(0.01)
            _, refused = await authed_invite(second, "0612345679", rtp_port=40002)
            assert refused.status == 503
            ringing.cancel()
            await asyncio.gather(ringing, return_exceptions=True)
    finally:
        await simulator.close()
    assert [(e["number"], e["status"]) for e in attempts(simulator)][:1] == [("0612345679", 503)]
