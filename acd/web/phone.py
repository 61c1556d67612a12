"""A phone in the browser: the console's WebSocket `/ws/phone` and what it drives.

Signalling is JSON over a WebSocket of the console itself (same origin, the session
cookie, the `_guard`), not SIP over WebSocket: the page needs no SIP stack, and the
server side is a SIP phone already (acd.web.phone_sip). Opening the socket is switching
the phone on: a `BrowserLine` registers a contact of the logged-in user to the switch,
so calls to the user ring the page beside the user's SIP phones; closing it (the page
closed, logged out) unregisters it and ends its call.

Page -> server (one JSON object a message, at most `MAX_MESSAGE` bytes):
    {"type": "call", "number": "1001", "sdp": OFFER}    place a call
    {"type": "answer", "sdp": OFFER}                    take the ringing call
    {"type": "decline"} | {"type": "hangup"}
    {"type": "hold", "on": true|false}
    {"type": "transfer", "to": "1002"}                  blind transfer (REFER)
    {"type": "dtmf", "digits": "12#"}                   RFC 4733 to the far end
Server -> page:
    {"type": "ready", "user": "1003"}                   registered: calls can come in
    {"type": "sdp", "sdp": ANSWER}                      the WebRTC answer to an offer
    {"type": "call", "id", "direction", "party", "state", "held"[, "why"]}
    {"type": "error", "message": "..."}

Mute is the page's own (the microphone track disabled); the server never sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from acd.web.phone_rtp import SwitchLeg
from acd.web.phone_sip import BrowserLine, LineCall, valid_number
from acd.web.phone_webrtc import MAX_SDP, BrowserMedia
from media.errors import MediaError
from media.ports import PortAllocator
from pbx.api import PbxError

if TYPE_CHECKING:
    from acd.web.console import WebConsole

__all__ = ["PhoneService"]

log = logging.getLogger(__name__)

MAX_MESSAGE = MAX_SDP + 1024
#: Browser phones one user may have open, and all users together.
MAX_PHONES_PER_USER = 3
MAX_PHONES = 500
#: RTP ports of the gateway's legs toward the switch (loopback only).
PORT_RANGE = (46000, 48000)
_OUT_QUEUE = 64


class _Phone:
    """One open phone page: its SIP line, its call's WebRTC half, its outgoing queue."""

    def __init__(self, service: PhoneService, user: str) -> None:
        self.service = service
        self.user = user
        self.out: asyncio.Queue[str | None] = asyncio.Queue(_OUT_QUEUE)
        switch = service.console.switch
        self.line = BrowserLine(
            user,
            switch.sip_address,
            self._sign,
            service.ports,
            self.send,
        )
        self.line.on_end = self._call_ended
        self.media: BrowserMedia | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def _sign(self, challenge: str, method: str, uri: str) -> str:
        return await self.service.console.switch.answer_challenge(self.user, challenge, method, uri)

    def send(self, message: dict[str, Any]) -> None:
        try:
            self.out.put_nowait(json.dumps(message))
        except asyncio.QueueFull:
            log.info("browser phone %s: page too slow, messages dropped", self.user)

    def error(self, text: str) -> None:
        self.send({"type": "error", "message": text})

    def spawn(self, coro: Any, what: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"phone {self.user} {what}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _call_ended(self, call: LineCall) -> None:
        media, self.media = self.media, None
        if media is not None:
            self.spawn(media.close(), "close media")

    async def _media_for(self, leg: SwitchLeg, offer: str) -> str:
        if self.media is not None:
            await self.media.close()
        media = self.media = BrowserMedia(
            leg,
            f"phone {self.user}",
            prefer_g711=self.service.codec == "g711",
            host=self.service.console.host,
        )
        try:
            answer = await media.answer(offer)
        except BaseException:
            self.media = None
            await media.close()
            raise
        self.send({"type": "sdp", "sdp": answer})
        self.spawn(self._watch(media), "watch media")
        return answer

    async def _watch(self, media: BrowserMedia) -> None:
        """The browser's connection failed or closed: the call ends with it."""
        await media.failed.wait()
        if self.media is media:
            self.error("the audio connection to the browser failed")
            await self.line.hangup()

    # -- messages ----------------------------------------------------------------------

    async def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        line = self.line
        if kind == "call":
            number, sdp = message.get("number"), message.get("sdp")
            if not isinstance(number, str) or not valid_number(number.strip()):
                return self.error("not a number")
            busy = line.call is not None or self.media is not None
            if not isinstance(sdp, str) or busy:
                return self.error("a call is in progress" if busy else "no offer")
            try:
                leg = SwitchLeg(self.service.ports, f"{self.user}-web-out")
            except MediaError:
                return self.error("the server has no free media port")
            try:
                await self._media_for(leg, sdp)
            except Exception as exc:
                leg.close()
                log.info("browser phone %s: unusable offer: %s", self.user, exc)
                return self.error("the browser's offer was not usable")
            self.spawn(self._dial(number.strip(), leg), "dial")
        elif kind == "answer":
            call, sdp = line.call, message.get("sdp")
            if call is None or call.direction != "in" or call.state != "ringing":
                return self.error("nothing to answer")
            if not isinstance(sdp, str):
                return self.error("no offer")
            try:
                await self._media_for(call.leg, sdp)
            except Exception as exc:
                log.info("browser phone %s: unusable offer: %s", self.user, exc)
                line.decide(False)
                return self.error("the browser's offer was not usable")
            self._forwarding()
            line.decide(True)
        elif kind in ("decline", "hangup"):
            await line.hangup()
        elif kind == "hold":
            status = await line.hold(bool(message.get("on")))
            self._forwarding()
            if status >= 300:
                self.error(f"hold failed ({status})")
        elif kind == "transfer":
            target = message.get("to")
            if not isinstance(target, str) or not valid_number(target.strip()):
                return self.error("not a number")
            status = await line.transfer(target.strip())
            if status >= 300:
                self.error(f"transfer refused ({status})")
        elif kind == "dtmf":
            digits = message.get("digits")
            if not isinstance(digits, str) or not 0 < len(digits) <= 32 or not line.dtmf(digits):
                self.error("keys not sent")
        else:
            self.error("unknown message")
        return None

    def _forwarding(self) -> None:
        call = self.line.call
        if self.media is not None:
            self.media.forwarding = call is None or not call.held

    async def _dial(self, number: str, leg: SwitchLeg) -> None:
        try:
            call = await self.line.dial(number, leg)
        except ValueError as exc:
            self.error(str(exc))
            media, self.media = self.media, None
            if media is not None:
                await media.close()
            return
        self._forwarding()
        log.info("browser phone %s: call to %s %s", self.user, number, call.state)

    async def close(self) -> None:
        if self.media is not None:
            await self.media.close()
            self.media = None
        await self.line.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class PhoneService:
    """The console's browser phones (see the module doc)."""

    def __init__(self, console: WebConsole, codec: str = "opus") -> None:
        self.console = console
        #: What the gateway prefers with the browsers: "opus" or "g711" (see
        #: acd.web.phone_webrtc.BrowserMedia).
        self.codec = codec
        self.ports = PortAllocator("127.0.0.1", *PORT_RANGE)
        self.phones: set[_Phone] = set()

    async def close(self) -> None:
        for phone in list(self.phones):
            await phone.close()
        self.phones.clear()

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        from acd.web.console import principal

        who = principal(request)
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return web.json_response({"error": "cross-origin WebSocket refused"}, status=403)
        mine = sum(1 for p in self.phones if p.user == who.user)
        if mine >= MAX_PHONES_PER_USER or len(self.phones) >= MAX_PHONES:
            return web.json_response({"error": "too many open phones"}, status=429)
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_MESSAGE)
        await ws.prepare(request)
        phone = _Phone(self, who.user)
        self.phones.add(phone)

        async def pump() -> None:
            while (text := await phone.out.get()) is not None:
                await ws.send_str(text)

        sender = asyncio.create_task(pump(), name=f"phone {who.user} pump")
        try:
            try:
                async with asyncio.timeout(10):
                    await phone.line.start()
            except (TimeoutError, ConnectionError, PbxError, OSError) as exc:
                log.warning("browser phone %s: cannot register: %s", who.user, exc)
                phone.error("the phone could not register with the switch")
            else:
                log.info("browser phone %s on (contact %s)", who.user, phone.line.contact)
                phone.send({"type": "ready", "user": who.user})
                async for msg in ws:
                    if msg.type is not WSMsgType.TEXT:
                        break
                    try:
                        message = json.loads(msg.data)
                    except ValueError:
                        phone.error("not JSON")
                        continue
                    if not isinstance(message, dict):
                        phone.error("not a JSON object")
                        continue
                    try:
                        await phone.handle(message)
                    except Exception:
                        log.exception("browser phone %s: %s failed", who.user, message.get("type"))
                        phone.error("the server could not do that")
            with contextlib.suppress(asyncio.QueueFull):
                phone.out.put_nowait(None)
            with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
                async with asyncio.timeout(2):
                    await sender
        finally:
            sender.cancel()
            self.phones.discard(phone)
            await phone.close()
            log.info("browser phone %s off", who.user)
            if not ws.closed:
                with contextlib.suppress(ConnectionError):
                    await ws.close()
        return ws
