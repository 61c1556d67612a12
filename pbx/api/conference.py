"""`Conference`: a room of the switch-wide mixer, as the Call API (`pbx.api`) shows it.

Each member is a call with the switch's own media (`Call.answer`, or `Switch.dial`); its
media endpoint joins the room (`MediaEndpoint.mix`): what the phone says goes into the
mix, and what the room says to it goes out on the call's own RTP stream (same port pair,
SSRC and sequence, so no re-INVITE). One `MixerClock` mixes every room of the switch in
one tick (`media.mixer_clock`). A member whose call ends leaves by itself.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from media.endpoint import MediaEndpoint
from media.errors import MediaError
from media.g711 import ulaw_encode
from media.mixer import FRAME, Law, Role
from media.mixer_clock import MixerClock
from pbx.api.call import Call
from pbx.errors import PbxError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Member:
    """A call in a conference, with what it does there."""

    call: Call
    role: Role
    whisper_to: Call | None = None


class Conference:
    """A named room of the switch's mixer (`Switch.conference(name)`)."""

    def __init__(self, name: str, clock: MixerClock) -> None:
        self.name = name
        self._clock = clock
        self._room = ("conference", name)
        self._calls: dict[MediaEndpoint, Call] = {}

    def __repr__(self) -> str:
        return f"<api.Conference {self.name} {len(self)} members>"

    def __len__(self) -> int:
        return len(self.members())

    def __contains__(self, call: object) -> bool:
        return any(m.call is call for m in self.members())

    def add(self, call: Call, role: Role = Role.SPEAK, *, whisper_to: Call | None = None) -> None:
        """Put `call` in the room from the next 20 ms tick on: SPEAK talks and listens,
        LISTEN only listens (nobody hears it), WHISPER is heard by `whisper_to` only.

        Raises: PbxError when the call has no media of the switch's (not answered by it,
            or ended), is bridged or in a room already, or the role and `whisper_to`
            disagree.
        """
        media = self._endpoint(call)
        target = self._endpoint(whisper_to) if whisper_to is not None else None
        try:
            media.mix(self._clock, self._room, role, whisper_to=target)
        except MediaError as exc:
            raise PbxError(f"cannot add {call.id} to conference {self.name}: {exc}") from None
        self._calls[media] = call
        log.info("conference %s: %s joined as %s", self.name, call.id, role.value)

    def remove(self, call: Call) -> bool:
        """Take `call` out of the room (it hears the switch's own stream again); whether
        it was in."""
        for media, member in list(self._calls.items()):
            if member is call:
                del self._calls[media]
                if media.mixer is self._clock:
                    media.unmix()
                    log.info("conference %s: %s left", self.name, call.id)
                    return True
        return False

    def set_role(self, call: Call, role: Role, *, whisper_to: Call | None = None) -> None:
        """Change what `call` does in the room from the next tick on.

        Raises: PbxError when it is not a member or the role and target disagree.
        """
        media = self._member(call)
        target = self._endpoint(whisper_to) if whisper_to is not None else None
        try:
            media.set_mix_role(role, target)
        except MediaError as exc:
            raise PbxError(f"conference {self.name}: {exc}") from None

    def members(self) -> list[Member]:
        """The calls in the room now, in the order they joined (ended ones are gone)."""
        calls = {id(media): call for media, call in self._calls.items()}
        out: list[Member] = []
        for party in self._clock.mixer.parties(self._room):
            info = self._clock.mixer.party(party)
            call = calls.get(id(party))
            if call is None or info is None:
                continue
            target = calls.get(id(info.whisper_to)) if info.whisper_to is not None else None
            out.append(Member(call, info.role, target))
        # Forget calls that left by ending.
        present = {id(m.call) for m in out}
        for media, call in list(self._calls.items()):
            if id(call) not in present:
                del self._calls[media]
        return out

    def find(self, party: str) -> Call | None:
        """The member whose call id, or else caller number, is `party` (None: no such)."""
        members = self.members()
        for member in members:
            if member.call.id == party:
                return member.call
        for member in members:
            if member.call.caller == party:
                return member.call
        return None

    async def announce(self, samples: npt.ArrayLike) -> None:
        """Play 8 kHz int16 audio into the room (join and leave tones): every member
        hears it mixed with the others, nobody loses the room meanwhile. Paced at one
        frame per 20 ms on the loop's clock, two frames ahead (the mixer's jitter
        allowance absorbs a late wake-up); returns when it is out, or at once when the
        room is empty."""
        audio = np.asarray(samples, dtype=np.int16)
        if not len(self) or not len(audio):
            return
        if len(audio) % FRAME:
            audio = np.concatenate([audio, np.zeros(FRAME - len(audio) % FRAME, np.int16)])
        encoded = ulaw_encode(audio).tobytes()
        source = _Source(self.name)
        mixer = self._clock.mixer
        mixer.join(self._room, source, Law.PCMU)
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            frames = len(encoded) // FRAME
            for index in range(frames):
                mixer.feed(source, encoded[index * FRAME : (index + 1) * FRAME])
                # Two frames ahead of the clock, never more (the queue's bound).
                delay = start + (index - 1) * FRAME / 8000 - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            await asyncio.sleep(3 * FRAME / 8000)  # the last frames are mixed
        finally:
            mixer.leave(source)

    def _member(self, call: Call) -> MediaEndpoint:
        for media, member in self._calls.items():
            if member is call and media.mixer is self._clock:
                return media
        raise PbxError(f"{call.id} is not in conference {self.name}")

    @staticmethod
    def _endpoint(call: Call) -> MediaEndpoint:
        media = call._media()
        if media is None:
            raise PbxError(f"{call.id} has no media of the switch's (answer it first)")
        return media


class _Source:
    """A room's own sound source (`announce`): a party of the mixer that is no call."""

    def __init__(self, room: str) -> None:
        self.room = room

    def __repr__(self) -> str:
        return f"<announcement in {self.room}>"
