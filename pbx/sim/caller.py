"""The PSTN simulator placing calls: the outside world dialling the switch's DIDs.

`place_calls` starts `count` calls, one every 1/`rate` seconds (paced by the loop's
clock), to numbers taken in turn from a list, at one SIP target. Each call answers
a 401/407 once with the given account (RFC 3261 §22.2: a new INVITE, CSeq + 1), and,
when answered, ACKs, says its greeting, keeps what it hears for `talk_seconds` (or
until the far end's BYE), hangs up, and writes a WAV; every attempt is a JSON line
(direction "out") in the simulator's attempts log.

Everything a call creates has an end: the INVITE's transaction (Timer B), the talk
time, the BYE's transaction; the calls run in one TaskGroup the caller awaits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from media.endpoint import RATE, MediaEndpoint
from media.errors import MediaError
from media.sdp import SessionDescription, audio_stream, g711_offer
from media.wav import write_wav
from pbx.sim.names import safe_name
from sip.dialog import Dialog, new_branch, new_tag
from sip.digest import Challenge, make_credentials
from sip.errors import SipParseError
from sip.headers import Headers
from sip.message import Request, Response
from sip.peer import Peer
from sip.uri import SipUri

if TYPE_CHECKING:
    from pbx.sim.server import PstnSimulator

log = logging.getLogger(__name__)

#: Most calls one `place_calls` may start (a test tool, not a load generator).
MAX_CALLS = 10_000


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one placed call went: the final status, seconds up, the WAV of what it heard."""

    number: str
    call_id: str
    status: int
    seconds: float = 0.0
    wav: str | None = None
    ended_by: str | None = None


@dataclass(frozen=True, slots=True)
class CallPlan:
    """What to dial: `numbers` in turn at `host`:`port`, `count` calls at `rate` a second."""

    host: str
    port: int
    numbers: Sequence[str]
    count: int = 1
    rate: float = 1.0
    talk_seconds: float = 5.0
    caller_id: str = "pstn"
    username: str | None = None
    password: str | None = None
    greeting: str = "Hello, this is a simulated caller."
    transport: str = "UDP"


async def place_calls(sim: PstnSimulator, plan: CallPlan) -> list[Outcome]:
    """Place the calls of `plan` from the running simulator `sim`; their outcomes in order.

    Raises:
        ValueError: no numbers, a count outside 1..MAX_CALLS, or a rate that is not > 0.
    """
    if not plan.numbers:
        raise ValueError("no numbers to call")
    if not 1 <= plan.count <= MAX_CALLS or not plan.rate > 0:
        raise ValueError("count must be 1..10000 and rate above 0")
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks: list[asyncio.Task[Outcome]] = []
    async with asyncio.TaskGroup() as group:
        for i in range(plan.count):
            delay = start + i / plan.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the calls, not waiting for an event
            number = plan.numbers[i % len(plan.numbers)]
            tasks.append(group.create_task(_call(sim, plan, number)))
    return [t.result() for t in tasks]


def _invite(sim: PstnSimulator, plan: CallPlan, number: str, sdp: bytes) -> Request:
    uri = SipUri.parse(f"sip:{number}@{plan.host}:{plan.port}")
    fields = [
        ("Via", f"SIP/2.0/{plan.transport} {sim.host}:{sim.port};rport;branch={new_branch()}"),
        ("Max-Forwards", "70"),
        ("From", f"<sip:{plan.caller_id}@{sim.host}:{sim.port}>;tag={new_tag()}"),
        ("To", f"<sip:{number}@{plan.host}:{plan.port}>"),
        ("Call-ID", f"{secrets.token_hex(12)}@pstn-sim"),
        ("CSeq", "1 INVITE"),
        ("Contact", f"<sip:{plan.caller_id}@{sim.host}:{sim.port}>"),
        ("Content-Type", "application/sdp"),
    ]
    return Request("INVITE", uri, Headers(fields), sdp)


def _with_credentials(invite: Request, response: Response, plan: CallPlan) -> Request | None:
    """The INVITE again with CSeq + 1, a new branch and credentials; None when we cannot."""
    name = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
    value = response.headers.get(name)
    if value is None or plan.username is None or plan.password is None:
        return None
    try:
        challenge = Challenge.parse(value)
        creds = make_credentials(challenge, plan.username, plan.password, "INVITE", str(invite.uri))
    except (SipParseError, ValueError) as exc:
        log.info("Call-ID %s: cannot answer the challenge: %s", invite.call_id, exc)
        return None
    header = "Authorization" if response.status == 401 else "Proxy-Authorization"
    fields: list[tuple[str, str]] = []
    for key, val in invite.headers:
        if key == "Via":
            val = val.rsplit(";branch=", 1)[0] + f";branch={new_branch()}"
        elif key == "CSeq":
            val = f"{invite.cseq.seq + 1} INVITE"
        fields.append((key, val))
    fields.append((header, str(creds)))
    return Request("INVITE", invite.uri, Headers(fields), invite.body)


async def _call(sim: PstnSimulator, plan: CallPlan, number: str) -> Outcome:
    peer = Peer(plan.transport, plan.host, plan.port)
    try:
        media = MediaEndpoint(sim.ports, name=f"sim-out-{number}")
    except MediaError as exc:
        log.warning("no media port for a call to %s: %s", number, exc)
        return _noted(sim, Outcome(number, "", 503))
    try:
        invite = _invite(sim, plan, number, g711_offer(media.host, media.port))
        response = await sim.endpoint.request(invite, peer)
        if response.status in (401, 407):
            again = _with_credentials(invite, response, plan)
            if again is not None:
                invite = again
                response = await sim.endpoint.request(invite, peer)
        if not 200 <= response.status < 300:
            return _noted(sim, Outcome(number, invite.call_id, response.status))
        return await _talk(sim, plan, number, invite, response, media, peer)
    finally:
        media.close()


async def _talk(
    sim: PstnSimulator,
    plan: CallPlan,
    number: str,
    invite: Request,
    ok: Response,
    media: MediaEndpoint,
    peer: Peer,
) -> Outcome:
    via = f"SIP/2.0/{plan.transport} {sim.host}:{sim.port};rport;branch={new_branch()}"
    try:
        dialog = Dialog.as_uac(invite, ok)
        ack = dialog.create_request("ACK", via=via, cseq=invite.cseq.seq)
    except SipParseError as exc:
        log.info("Call-ID %s: unusable 2xx: %s", invite.call_id, exc)
        return _noted(sim, Outcome(number, invite.call_id, 502))
    sim.endpoint.send_stateless(ack, peer)
    hung_up = sim.expect_bye(invite.call_id, dialog.local_tag)
    answered = asyncio.get_running_loop().time()
    ended_by = "far end"
    try:
        heard = np.zeros(0, np.int16)
        try:
            answer = audio_stream(SessionDescription.parse(ok.body))
            media.set_remote(
                dataclasses.replace(answer, direction="sendrecv"), signalling_host=peer.host
            )
        except MediaError as exc:
            log.info("Call-ID %s: unusable answer, hanging up: %s", invite.call_id, exc)
        else:
            greeting = await sim.voice.say(plan.greeting, 1.0)
            async with asyncio.TaskGroup() as group:
                recorder = group.create_task(media.record(plan.talk_seconds, stop_digits=""))
                group.create_task(media.play(greeting))
                bye = asyncio.ensure_future(hung_up.wait())
                try:
                    await asyncio.wait({recorder, bye}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    bye.cancel()
                media.close()  # ends the recording and the greeting
            heard = recorder.result().samples
        if not hung_up.is_set():
            ended_by = "simulator"
            request = dialog.create_request(
                "BYE",
                via=f"SIP/2.0/{plan.transport} {sim.host}:{sim.port};rport;branch={new_branch()}",
            )
            await sim.endpoint.request(request, peer)
    finally:
        sim.forget_bye(invite.call_id, dialog.local_tag)
    seconds = asyncio.get_running_loop().time() - answered
    wav = sim.out_dir / f"out-{next(sim.serial):04d}-{safe_name(number)}.wav"
    await asyncio.to_thread(write_wav, wav, heard, RATE)
    return _noted(sim, Outcome(number, invite.call_id, 200, seconds, str(wav), ended_by))


def _noted(sim: PstnSimulator, outcome: Outcome) -> Outcome:
    sim.note_line(
        {
            "direction": "out",
            "call_id": outcome.call_id,
            "number": outcome.number,
            "status": outcome.status,
            "seconds": round(outcome.seconds, 2),
            "wav": outcome.wav,
            "ended_by": outcome.ended_by,
        }
    )
    return outcome
