"""`Call`: one call of an application, as the Call API (`pbx.api`) shows it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from media.endpoint import MediaEndpoint, Recording
from media.errors import MediaError
from media.moh import MohError
from pbx import calls
from pbx.api.outcome import CallEvent, Cause, EventKind, Outcome, Subscription
from pbx.b2bua import B2bua
from pbx.errors import PbxError

log = logging.getLogger(__name__)


class Call:
    """One call of an application: inbound (to a number it owns) or placed by `Switch.dial`."""

    def __init__(self, leg: calls.Call, b2bua: B2bua) -> None:
        self._leg = leg
        self._b2bua = b2bua
        self._subscribers: list[Subscription] = []
        self._digit_hooked = False
        leg.on_answer.append(lambda _: self._publish(CallEvent(EventKind.ANSWERED, leg.id)))
        leg.on_end.append(lambda _: self._ended())
        if leg.media is not None:
            self._hook_digits(leg.media)

    def __repr__(self) -> str:
        return f"<api.Call {self.id} {self.caller}->{self.callee}>"

    # -- what the call is ----------------------------------------------------------

    @property
    def id(self) -> str:
        return self._leg.id

    @property
    def caller(self) -> str:
        return self._leg.caller

    @property
    def callee(self) -> str:
        return self._leg.callee

    @property
    def peer_host(self) -> str:
        """Where the phone's SIP comes from (for logs)."""
        return self._leg.peer.host

    @property
    def up(self) -> bool:
        """Whether the call is answered and not ended."""
        return self._leg.state is calls.CallState.UP

    @property
    def ended(self) -> bool:
        return self._leg.state is calls.CallState.ENDED

    def since_answer(self) -> float | None:
        """Seconds since the call was answered (the switch's clock); None before."""
        answered = self._leg.answered_at
        return None if answered is None else self._leg.manager.clock() - answered

    @property
    def has_media(self) -> bool:
        """Whether the switch's own media is on the call (answered by an application)."""
        return self._leg.media is not None and not self._leg.media.closed

    @property
    def outcome(self) -> Outcome | None:
        """How the call ended (None while it lasts)."""
        cause = self._leg.hangup_cause
        if cause is None:
            return None
        if cause.status == 0 or 200 <= cause.status < 300:
            return Outcome(Cause.NORMAL, 0, cause.reason)
        return Outcome.of_status(cause.status, cause.reason)

    async def wait_ended(self) -> Outcome:
        await self._leg.ended.wait()
        outcome = self.outcome
        assert outcome is not None
        return outcome

    # -- events --------------------------------------------------------------------

    def subscribe(self, maxsize: int = 64) -> Subscription:
        """The call's events from now on (answered, dtmf, ended), in a bounded queue."""
        sub = Subscription(self.id, maxsize)
        if self.ended:
            sub._offer(CallEvent(EventKind.ENDED, self.id, outcome=self.outcome))
        else:
            self._subscribers.append(sub)
        return sub

    def _publish(self, event: CallEvent) -> None:
        for sub in list(self._subscribers):
            sub._offer(event)
            if sub.closed:
                self._subscribers.remove(sub)

    def _ended(self) -> None:
        self._publish(CallEvent(EventKind.ENDED, self.id, outcome=self.outcome))
        self._subscribers.clear()

    def _hook_digits(self, media: MediaEndpoint) -> None:
        if not self._digit_hooked:
            self._digit_hooked = True
            media.digit_listeners.append(
                lambda digit: self._publish(CallEvent(EventKind.DTMF, self.id, digit=digit))
            )

    # -- signalling ----------------------------------------------------------------

    @property
    def tags(self) -> dict[str, str]:
        """Labels applications leave on the call for those that serve it after them (the
        IVR sets "ivr" to the menus and keys chosen; the ACD puts it in its offers)."""
        return self._leg.tags

    async def ring(self) -> None:
        """180 Ringing to an inbound call not answered yet."""
        if isinstance(self._leg, calls.InboundCall):
            await self._leg.ring()

    async def answer(self) -> bool:
        """Answer with the switch's own media (prompts, digits, recording); True when the
        call is up with it. An offer the switch cannot take is refused (488/503) and
        False returned. A call answered already keeps its media."""
        leg = self._leg
        if leg.media is not None:
            return self.up
        if not isinstance(leg, calls.InboundCall) or leg.state is calls.CallState.ENDED:
            return False
        b2bua = self._b2bua
        try:
            await leg.answer_media(
                b2bua.ports, b2bua.media_host(leg.peer), prepare=self._hook_digits
            )
        except MediaError as exc:
            log.info("call %s: cannot answer with media: %s", leg.id, exc)
            return False
        return self.up

    async def hangup(self, status: int = 0, reason: str = "Normal Clearing") -> None:
        """End the call: BYE when up; an unanswered inbound call is refused with `status`
        (480 when 0)."""
        await self._leg.hangup(status, reason)

    async def transfer(self, target: str) -> Outcome:
        """Connect the caller to `target` (an extension or ring group) and stay until that
        call ends. Returns NORMAL after a connected call ended; otherwise why nobody
        answered (the call is back with the application, its media in place)."""
        leg = self._leg
        if not isinstance(leg, calls.InboundCall):
            return Outcome(Cause.FAILED, 0, "only inbound calls are transferred")
        status, why = await self._b2bua.connect_to(leg, target)
        if status == 200:
            return Outcome(Cause.NORMAL, 200, why)
        if self.ended:
            return Outcome(Cause.CANCELLED, 487, why)
        return Outcome.of_status(status, why)

    async def send_dtmf(self, digits: str, *, duration_ms: int = 160) -> bool:
        """Send `digits` to the phone as SIP INFO (application/dtmf-relay); True when
        each was accepted."""
        ok = True
        for digit in digits:
            if digit not in "0123456789*#ABCD":
                raise PbxError(f"not a DTMF digit: {digit!r}")
            body = f"Signal={digit}\r\nDuration={duration_ms}\r\n".encode()
            status = await self._leg.send_info("application/dtmf-relay", body)
            ok = ok and 200 <= status < 300
        return ok

    # -- media ---------------------------------------------------------------------

    def _media(self) -> MediaEndpoint | None:
        media = self._leg.media
        if media is None or media.closed or self.ended:
            return None
        return media

    async def play(self, samples: npt.ArrayLike, *, stop_on_digit: bool = False) -> bool:
        """Play 8 kHz int16 audio; False when a key (with `stop_on_digit`), another play
        or the end of the call cut it short, or the call has no media."""
        media = self._media()
        if media is None:
            return False
        return await media.play(samples, stop_on_digit=stop_on_digit)

    async def music(self) -> None:
        """Music on hold, looped from the switch's pre-encoded music, until cancelled,
        another `play`, or the end of the call."""
        media = self._media()
        if media is None:
            return
        try:
            music = await self._b2bua.moh.music()
        except MohError as exc:
            log.info("call %s: no music: %s", self.id, exc)
            return
        await media.loop_encoded(music.encoded)

    def digits_waiting(self) -> bool:
        """Whether keys were pressed that no `collect_digits` has taken yet."""
        media = self._media()
        return media is not None and not media.digits.empty()

    async def collect_digits(
        self,
        max_digits: int,
        *,
        timeout: float,
        inter_digit_timeout: float | None = None,
        terminator: str | None = "#",
    ) -> str:
        """Keys pressed (see `MediaEndpoint.collect_digits`); what was pressed so far, at
        once, when the call ends; "" when it has no media."""
        media = self._media()
        if media is None:
            return ""
        return await media.collect_digits(
            max_digits,
            timeout=timeout,
            inter_digit_timeout=inter_digit_timeout,
            terminator=terminator,
        )

    async def record(
        self,
        path: Path,
        *,
        max_seconds: float,
        silence_seconds: float | None = None,
        stop_digits: str = "#",
    ) -> Recording:
        """Record what the phone says into an 8 kHz WAV at `path` (written only when
        something but silence was heard). Raises: OSError when it cannot be written."""
        if self._media() is None:
            return Recording(np.zeros(0, np.int16), "hangup", None, 0.0)
        return await self._leg.record(
            path, max_seconds=max_seconds, silence_seconds=silence_seconds, stop_digits=stop_digits
        )

    async def audio(self, max_frames: int = 50) -> AsyncIterator[npt.NDArray[np.int16]]:
        """The phone's audio as decoded 20 ms frames (160 int16 samples), as they arrive,
        until the call ends; where the stream's RTP timestamps skip (lost packets, the
        phone's silence suppression), a silent frame for each 20 ms skipped. A reader
        slower than `max_frames` frames loses the oldest."""
        media = self._media()
        if media is None:
            return
        frames: asyncio.Queue[npt.NDArray[np.int16]] = asyncio.Queue()
        more = asyncio.Event()

        def take(frame: npt.NDArray[np.int16]) -> None:
            if frames.qsize() >= max_frames:
                frames.get_nowait()
            frames.put_nowait(frame)
            more.set()

        media.frame_listeners.append(take)
        try:
            while True:
                while not frames.empty():
                    yield frames.get_nowait()
                if media.closed:
                    return
                more.clear()
                waits = {
                    asyncio.ensure_future(more.wait()),
                    asyncio.ensure_future(self._leg.ended.wait()),
                }
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()
                if self.ended and frames.empty():
                    return
        finally:
            with contextlib.suppress(ValueError):
                media.frame_listeners.remove(take)
