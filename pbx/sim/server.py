"""The PSTN simulator: a SIP provider on loopback (registrar + UAS) for tests and users.

Built on the project's `sip.endpoint.Endpoint` and `media.endpoint.MediaEndpoint`
(nothing from the switch's call layer). What it does:

- REGISTER: digest (401, then 200 with the granted Expires; 403 for a wrong
  password); bindings are kept in memory, bounded (`MAX_BINDINGS`).
- INVITE: digest (407, then the script's behaviour for the Request-URI user; 403 for
  a wrong password); busy 486, invalid 404/484, congestion 503 at once; no answer
  rings then 480/408; live person / slow answer / machine ring, answer with G.711
  (telephone-event when offered: RFC 4733 digits are not heard as audio), speak,
  listen; the call ends on the caller's BYE or after `listen_seconds` with our BYE.
- A person presses the script's `keys` (`pbx.sim.script`: seconds after the first
  sound heard from the switch, or after the answer) as RFC 4733 telephone-events in
  the call's one RTP stream (`MediaEndpoint.send_digits`), or as in-band tones when
  the caller offered no telephone-event.
- Each answered call's received audio is written to `<out>/<n>-<number>.wav`; every
  attempt is a JSON line in `<out>/attempts.jsonl` (time, call id, number, account,
  behaviour, status, seconds up, wav; for answered calls `prompt_at`, the seconds from
  the answer to the first sound heard from the caller, and `keys`, what was pressed
  when: `[{"at": 3.2, "digits": "1"}]`).

House rules for untrusted input: challenges are stateless (a request nobody answers
keeps nothing), at most `max_calls` calls at once (503 beyond), every call ends (ring
timers, `listen_seconds`), and each call's tasks are owned and cancelled on close.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from media.dtmf_tones import DtmfGenerator
from media.endpoint import RATE, SILENCE_RMS, MediaEndpoint
from media.errors import MediaError, PortsExhaustedError, SdpError
from media.ports import PortAllocator
from media.sdp import SessionDescription, answer, audio_stream
from media.wav import write_wav
from pbx.sim.auth import DigestGuard, Verdict
from pbx.sim.names import safe_name
from pbx.sim.script import Behaviour, KeyPress, NumberRule, SimScript
from pbx.sim.voice import Voice, beep
from sip.dialog import Dialog, new_branch, new_tag
from sip.endpoint import Endpoint, HandlerResult, Stateless
from sip.errors import SipParseError
from sip.message import Request, Response, make_response
from sip.peer import Peer
from sip.uri import SipUri

log = logging.getLogger(__name__)

MAX_BINDINGS = 1000
#: Distinct called numbers whose call count is kept (for the seeded choices).
MAX_TRACKED_NUMBERS = 100_000
MAX_EXPIRES = 3600
DEFAULT_EXPIRES = 600
#: A 2xx is retransmitted until the ACK comes, T1 doubling to T2, for at most 64*T1.
T1, T2 = 0.5, 4.0
_EXPIRES_PARAM = re.compile(r";\s*expires\s*=\s*(\d{1,10})", re.IGNORECASE)


@dataclass(slots=True)
class _Call:
    """One answered or ringing INVITE."""

    request: Request
    peer: Peer
    number: str
    account: str | None
    behaviour: Behaviour
    rule: NumberRule
    index: int
    to_tag: str = field(default_factory=new_tag)
    started: float = field(default_factory=time.time)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)
    dialog: Dialog | None = None
    media: MediaEndpoint | None = None
    #: Seconds from the answer to the first sound heard from the caller (None: none yet).
    prompt_at: float | None = None
    #: (seconds after the answer, digits) of every key press sent.
    pressed: list[tuple[float, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Binding:
    """A registered contact."""

    account: str
    contact: str
    expires_at: float


class PstnSimulator:
    """The simulated provider. `start()`, then `close()` (or `async with`)."""

    def __init__(
        self,
        script: SimScript,
        out_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_calls: int = 64,
        voice: Voice | None = None,
        ports: PortAllocator | None = None,
        clock: Callable[[], float] = time.time,
        service_route: str | None = None,
    ) -> None:
        self.script = script
        #: Given, the Service-Route of each 2xx to a REGISTER that binds (RFC 3608),
        #: as an IMS-style provider sends it.
        self.service_route = service_route
        self.out_dir = Path(out_dir)
        self.host = host
        self.port = port
        self.max_calls = max_calls
        self.voice = voice or Voice()
        self.ports = ports or PortAllocator(host, 40000, 44000)
        self._clock = clock
        self.guard = DigestGuard(script.realm, dict(script.accounts))
        self.endpoint = Endpoint(server_header="aiopbx-pstn-sim")
        self.bindings: dict[str, Binding] = {}
        self.attempts_log = self.out_dir / "attempts.jsonl"
        self._calls: dict[tuple[str, str], _Call] = {}  # (Call-ID, caller's tag)
        self._dialogs: dict[tuple[str, str], _Call] = {}  # (Call-ID, our tag)
        self._counts: dict[str, int] = {}
        self.serial = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        #: Calls the simulator placed (pbx.sim.caller): (Call-ID, our tag) -> BYE came.
        self._placed: dict[tuple[str, str], asyncio.Event] = {}
        self._log_lock = asyncio.Lock()

    async def start(self) -> int:
        """Listen (UDP and TCP) and return the port."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for method, handler in (
            ("REGISTER", self._register),
            ("INVITE", self._invite),
            ("ACK", self._ack),
            ("BYE", self._bye),
            ("CANCEL", self._cancel),
        ):
            self.endpoint.route(method, handler)
        self.port = await self.endpoint.listen(self.host, self.port)
        log.info("PSTN simulator on %s:%s, writing to %s", self.host, self.port, self.out_dir)
        return self.port

    async def close(self) -> None:
        """End every call, stop listening."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.endpoint.close()

    async def __aenter__(self) -> PstnSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- REGISTER -------------------------------------------------------------------

    def _register(self, request: Request, peer: Peer) -> HandlerResult:
        now = self._clock()
        header = request.headers.get("Authorization")
        verdict, account = self.guard.check(header, "REGISTER", now)
        if verdict is Verdict.CHALLENGE:
            challenge = self.guard.challenge(now, stale=self.guard.stale(header, now))
            return Stateless(
                make_response(request, 401, headers=[("WWW-Authenticate", str(challenge))])
            )
        if verdict is Verdict.FORBIDDEN or account is None:
            log.info("REGISTER from %s refused: wrong credentials for %s", peer, account)
            return make_response(request, 403)
        aor = request.to.uri.user if isinstance(request.to.uri, SipUri) else None
        contact = request.headers.get("Contact")
        if aor is None or contact is None:
            return make_response(request, 200)  # a query: nothing to bind
        if contact.strip() == "*":
            self.bindings.pop(account, None)
            return make_response(request, 200)
        expires = DEFAULT_EXPIRES
        found = _EXPIRES_PARAM.search(contact)
        text = found.group(1) if found else request.headers.get("Expires")
        if text is not None and text.strip().isdigit():
            expires = min(int(text.strip()), MAX_EXPIRES)
        if expires == 0:
            self.bindings.pop(account, None)
            return make_response(request, 200)
        if account not in self.bindings and len(self.bindings) >= MAX_BINDINGS:
            return make_response(request, 503)
        bare = _EXPIRES_PARAM.sub("", contact)
        self.bindings[account] = Binding(account, bare, now + expires)
        log.info("registered %s at %s for %s s", account, bare, expires)
        headers = [("Contact", f"{bare};expires={expires}")]
        if self.service_route is not None:
            headers.append(("Service-Route", self.service_route))
        return make_response(request, 200, headers=headers)

    # -- INVITE ---------------------------------------------------------------------

    def _invite(self, request: Request, peer: Peer) -> HandlerResult | Awaitable[HandlerResult]:
        now = self._clock()
        header = request.headers.get("Proxy-Authorization")
        verdict, account = self.guard.check(header, "INVITE", now)
        if verdict is Verdict.CHALLENGE:
            challenge = self.guard.challenge(now, stale=self.guard.stale(header, now))
            return Stateless(
                make_response(request, 407, headers=[("Proxy-Authenticate", str(challenge))])
            )
        uri = request.uri
        number = (uri.user or "") if isinstance(uri, SipUri) else ""
        if verdict is Verdict.FORBIDDEN:
            self._note(request, number, account, None, 403, 0.0, None)
            return make_response(request, 403)
        if len(self._calls) >= self.max_calls:
            self._note(request, number, account, None, 503, 0.0, None)
            return make_response(request, 503, "Simulator Full")
        if number not in self._counts and len(self._counts) >= MAX_TRACKED_NUMBERS:
            self._counts.clear()  # bounded memory; the seeded choices restart at n = 0
        index = self._counts.get(number, 0)
        self._counts[number] = index + 1
        behaviour, rule = self.script.choose(number, index)
        immediate = {
            Behaviour.BUSY: 486,
            Behaviour.INVALID: rule.invalid_status,
            Behaviour.CONGESTION: 503,
        }.get(behaviour)
        if immediate is not None:
            self._note(request, number, account, behaviour, immediate, 0.0, None)
            return make_response(request, immediate)
        call = _Call(request, peer, number, account, behaviour, rule, next(self.serial))
        key = (request.call_id, request.from_.tag or "")
        if key in self._calls:
            return make_response(request, 482)  # same INVITE through another branch
        self._calls[key] = call
        return self._ring(call, key)

    async def _ring(self, call: _Call, key: tuple[str, str]) -> HandlerResult:
        request = call.request
        handed_over = False
        try:
            self.endpoint.respond(make_response(request, 180, to_tag=call.to_tag))
            wait = {
                Behaviour.NO_ANSWER: call.rule.no_answer_seconds,
                Behaviour.SLOW_ANSWER: call.rule.slow_answer_seconds,
            }.get(call.behaviour, call.rule.ring_seconds)
            try:
                async with asyncio.timeout(wait):
                    await call.cancelled.wait()
                self._note_call(call, 487, 0.0, None)
                return make_response(request, 487, to_tag=call.to_tag)
            except TimeoutError:
                pass
            if call.behaviour is Behaviour.NO_ANSWER:
                status = call.rule.no_answer_status
                self._note_call(call, status, 0.0, None)
                return make_response(request, status, to_tag=call.to_tag)
            try:
                ok = self._answer(call)
            except PortsExhaustedError as exc:
                log.warning("Call-ID %s: no RTP port: %s", request.call_id, exc)
                self._note_call(call, 503, 0.0, None)
                return make_response(request, 503, "Out Of Media Ports", to_tag=call.to_tag)
            except (SdpError, MediaError, SipParseError) as exc:
                log.info("Call-ID %s: cannot answer: %s", request.call_id, exc)
                self._note_call(call, 488, 0.0, None)
                return make_response(request, 488, to_tag=call.to_tag)
            self._dialogs[(request.call_id, call.to_tag)] = call
            task = asyncio.get_running_loop().create_task(self._talk(call, key, ok))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            handed_over = True
            return ok
        finally:
            if not handed_over:
                self._calls.pop(key, None)

    def _answer(self, call: _Call) -> Response:
        """The 200 with our SDP; the call's media starts sending at once."""
        request = call.request
        if not request.body:
            raise SdpError("INVITE without an offer (late offer is not simulated)")
        offer = SessionDescription.parse(request.body)
        media = MediaEndpoint(self.ports, name=f"sim-{call.index}")
        try:
            sdp = answer(
                offer,
                media.host,
                media.port,
                preferences=("PCMU", "PCMA", "telephone-event"),
                origin=f"pstn-sim 0 0 IN IP4 {media.host}",
            )
            # The codec our answer chose, sent where the caller's offer listens.
            chosen, offered = audio_stream(sdp), audio_stream(offer)
            media.set_remote(
                dataclasses.replace(
                    chosen, host=offered.host, port=offered.port, rtcp_port=offered.rtcp_port
                ),
                signalling_host=call.peer.host,
            )
            call.dialog = Dialog.as_uas(request, call.to_tag, confirmed=True)
        except BaseException:
            media.close()
            raise
        call.media = media
        contact = f"<sip:{call.number or 'pstn'}@{self.host}:{self.port}>"
        return make_response(
            request,
            200,
            to_tag=call.to_tag,
            headers=[("Contact", contact), ("Content-Type", "application/sdp")],
            body=bytes(sdp),
        )

    async def _talk(self, call: _Call, key: tuple[str, str], ok: Response) -> None:
        """An answered call: 2xx until ACK, speak, listen, hang up, write the WAV."""
        assert call.media is not None and call.dialog is not None
        media = call.media
        heard: list[npt.NDArray[np.int16]] = []
        answered = self._clock()
        ended_by = "caller"
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._retransmit(call, ok))
                recorder = group.create_task(media.record(call.rule.listen_seconds, stop_digits=""))
                group.create_task(self._speak(call))
                presses = group.create_task(self._press_keys(call))
                hangup = asyncio.ensure_future(call.hung_up.wait())
                try:
                    await asyncio.wait({recorder, hangup}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    hangup.cancel()
                    presses.cancel()
                if not call.hung_up.is_set():
                    ended_by = "simulator"
                    media.close()  # stops the recording, the speech and the stream
                    await self._send_bye(call)
                else:
                    media.close()
                heard.append((await recorder).samples)
        finally:
            media.close()
            self._calls.pop(key, None)
            self._dialogs.pop((call.request.call_id, call.to_tag), None)
        audio = heard[0] if heard else np.zeros(0, np.int16)
        wav = self.out_dir / f"{call.index:04d}-{safe_name(call.number)}.wav"
        await asyncio.to_thread(write_wav, wav, audio, RATE)
        up = self._clock() - answered
        self._note_call(call, 200, up, wav, ended_by=ended_by)

    async def _retransmit(self, call: _Call, ok: Response) -> None:
        """RFC 3261 §13.3.1.4: the UAS core retransmits its 2xx until the ACK."""
        interval, waited = T1, 0.0
        while not call.acked.is_set() and waited < 64 * T1 and not call.hung_up.is_set():
            try:
                async with asyncio.timeout(interval):
                    await call.acked.wait()
                return
            except TimeoutError:
                waited += interval
                self.endpoint.send_stateless(ok, call.peer)
                interval = min(interval * 2, T2)
        if not call.acked.is_set() and not call.hung_up.is_set() and call.media is not None:
            # §13.3.1.4: no ACK within 64*T1: "the UAS core SHOULD ... terminate the dialog
            # ... by sending a BYE". Closing the media ends the call; _talk sends the BYE.
            log.info("Call-ID %s: no ACK for our 200; hanging up", call.request.call_id)
            call.media.close()

    async def _speak(self, call: _Call) -> None:
        assert call.media is not None
        if call.behaviour is Behaviour.MACHINE:
            text = (
                f"Hello, you have reached {' '.join(call.number)}. Nobody can take your call"
                " right now. Please leave a message after the tone."
            )
            await call.media.play(await self.voice.say(text, 4.0))
            await call.media.play(beep())
        else:
            await call.media.play(await self.voice.say(call.rule.greeting, 0.7))

    async def _press_keys(self, call: _Call) -> None:
        """A person's scripted keys (machines press none), each at its time; the first
        sound from the caller is noted for the log and for keys counted from it."""
        assert call.media is not None
        media = call.media
        loop = asyncio.get_running_loop()
        answered = loop.time()
        heard = asyncio.Event()

        def listen(frame: npt.NDArray[np.int16]) -> None:
            if heard.is_set() or not len(frame):
                return
            if float(np.sqrt(np.mean(frame.astype(np.float64) ** 2))) >= SILENCE_RMS:
                call.prompt_at = loop.time() - answered
                heard.set()

        media.frame_listeners.append(listen)
        try:
            people = (Behaviour.LIVE, Behaviour.SLOW_ANSWER)
            if call.behaviour not in people or not call.rule.keys:
                await heard.wait()  # only noted; the task is cancelled when the call ends
                return
            async with asyncio.TaskGroup() as group:
                for press in call.rule.keys:
                    group.create_task(self._press(call, press, answered, heard))
        finally:
            if listen in media.frame_listeners:
                media.frame_listeners.remove(listen)

    async def _press(
        self, call: _Call, press: KeyPress, answered: float, heard: asyncio.Event
    ) -> None:
        assert call.media is not None
        loop = asyncio.get_running_loop()
        start = answered
        if press.start == "prompt":
            await heard.wait()
            start = answered + (call.prompt_at or 0.0)
        await asyncio.sleep(max(0.0, start + press.after - loop.time()))  # the script's time
        at = loop.time() - answered
        if call.media.send_digits(press.digits):
            log.info("Call-ID %s: pressed %s (RFC 4733)", call.request.call_id, press.digits)
        else:
            log.info("Call-ID %s: pressed %s (in band)", call.request.call_id, press.digits)
            await call.media.play(DtmfGenerator().generate(press.digits))
        call.pressed.append((round(at, 2), press.digits))

    async def _send_bye(self, call: _Call) -> None:
        assert call.dialog is not None
        via = f"SIP/2.0/{call.peer.transport} {self.host}:{self.port};rport;branch={new_branch()}"
        bye = call.dialog.create_request("BYE", via=via)
        try:
            async with asyncio.timeout(40):
                response = await self.endpoint.request(bye, call.peer)
            log.info("Call-ID %s: our BYE got %s", call.request.call_id, response.status)
        except TimeoutError:
            log.info("Call-ID %s: our BYE got no answer", call.request.call_id)

    # -- in-dialog requests ------------------------------------------------------------

    def _ack(self, request: Request, peer: Peer) -> HandlerResult:
        call = self._dialogs.get((request.call_id, request.to.tag or ""))
        if call is not None:
            call.acked.set()
        return None

    def expect_bye(self, call_id: str, local_tag: str) -> asyncio.Event:
        """An event set when the far end of a call we placed sends BYE (`forget_bye` after)."""
        event = self._placed[(call_id, local_tag)] = asyncio.Event()
        return event

    def forget_bye(self, call_id: str, local_tag: str) -> None:
        """The placed call ended: a later BYE for it gets 481."""
        self._placed.pop((call_id, local_tag), None)

    def _bye(self, request: Request, peer: Peer) -> HandlerResult:
        key = (request.call_id, request.to.tag or "")
        placed = self._placed.get(key)
        if placed is not None:
            placed.set()
            return make_response(request, 200)
        call = self._dialogs.get(key)
        if call is None:
            return make_response(request, 481)
        call.acked.set()
        call.hung_up.set()
        return make_response(request, 200)

    def _cancel(self, request: Request, peer: Peer) -> HandlerResult:
        call = self._calls.get((request.call_id, request.from_.tag or ""))
        if call is None or call.media is not None:
            return make_response(request, 481)
        call.cancelled.set()
        return make_response(request, 200, to_tag=call.to_tag)

    # -- the attempts log ---------------------------------------------------------------

    def _note_call(
        self, call: _Call, status: int, seconds: float, wav: Path | None, *, ended_by: str = ""
    ) -> None:
        extra: dict[str, object] = {}
        if status == 200:
            extra["prompt_at"] = None if call.prompt_at is None else round(call.prompt_at, 2)
            extra["keys"] = [{"at": at, "digits": digits} for at, digits in call.pressed]
        self._note(
            call.request,
            call.number,
            call.account,
            call.behaviour,
            status,
            seconds,
            wav,
            ended_by,
            extra,
        )

    def _note(
        self,
        request: Request,
        number: str,
        account: str | None,
        behaviour: Behaviour | None,
        status: int,
        seconds: float,
        wav: Path | None,
        ended_by: str = "",
        extra: Mapping[str, object] | None = None,
    ) -> None:
        """Append one JSON line (small, so written on the loop; the file is ours)."""
        entry = {
            "direction": "in",
            "call_id": request.call_id,
            "number": number,
            "account": account,
            "behaviour": None if behaviour is None else behaviour.value,
            "status": status,
            "seconds": round(seconds, 2),
            "wav": None if wav is None else str(wav),
            "ended_by": ended_by or None,
            **(extra or {}),
        }
        self.note_line(entry)

    def note_line(self, entry: Mapping[str, object]) -> None:
        """Append one attempt to attempts.jsonl, stamped with the time (a short line, so
        written on the loop; the file is the simulator's own)."""
        line = {"time": round(self._clock(), 3), **entry}
        log.info(
            "attempt %s %s -> %s", entry.get("direction"), entry.get("number"), entry.get("status")
        )
        with open(self.attempts_log, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
