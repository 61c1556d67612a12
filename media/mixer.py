"""The N-party audio mixer: conference rooms over 20 ms G.711 frames, pure (no I/O, no loop).

Each tick the caller hands in what every party said (`feed`, any number of G.711 payload
octets per party, usually one 160-octet packet) and `mix_all()` returns what every party
hears for this 20 ms slot, encoded in that party's law (PCMU or PCMA). In one room:

- a party never hears itself: the mix sent to it is the room's sum minus its own voice
  (the "N-1" mix), so nobody hears an echo of the switch;
- `Role.SPEAK` talks to the room and hears it; `Role.LISTEN` hears the room and nobody
  hears it (a supervisor's silent monitor, a recording); `Role.WHISPER` is heard by one
  named party of the room only (a coach whispering to an agent) and hears everyone;
- each party has a talk gain (how loud the room hears it) and a listen gain (how loud it
  hears the room), linear factors; `db()` converts decibels;
- the sum is clipped to 16 bits before it is encoded (hard clipping, as the phones'
  own DSPs would), never wrapped around;
- a party with no frame this tick is silent for this tick: nothing waits for it.

Received octets queue per party (a small jitter allowance): each tick takes one whole
frame from the queue, and a short queue is a missing frame (its octets wait for the next
tick). A queue never holds more than `MAX_QUEUE_FRAMES` + 1 frames (the oldest octets go,
counted in `dropped_octets`), so at most `MAX_QUEUE_FRAMES` are left after a tick: a phone
whose clock runs fast, or a burst after a network stall, costs at most that much delay.

One `Mixer` holds every room of the switch, so one tick mixes them all in a few numpy
operations whatever their number: one table lookup decodes every frame received (both
laws at once), `np.add.reduceat` sums each room's contiguous rows, one subtraction
removes every party's own voice, `np.add.at` adds the whispers, and one lookup in a
64 Ki-entry table per law encodes the result. The per-party Python work left is taking
the frame out of its queue and slicing the output. Parties join, leave and change role
or gain between ticks; the row layout is rebuilt at the next tick only when it changed.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from media.errors import MediaError
from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

__all__ = [
    "FRAME",
    "MAX_QUEUE_FRAMES",
    "Law",
    "Mixer",
    "MixerError",
    "PartyInfo",
    "Role",
    "db",
]

log = logging.getLogger(__name__)

FRAME = 160
"""Samples (and G.711 octets) in one 20 ms frame at 8 kHz."""
MAX_QUEUE_FRAMES = 3
"""Whole frames a party may have queued after a tick (60 ms); older octets are dropped."""

Party = Hashable
Room = Hashable
Float32Array = npt.NDArray[np.float32]


class MixerError(MediaError):
    """A mixer call that cannot be honoured (unknown party, party already in a room...)."""


class Law(enum.IntEnum):
    """The G.711 law a party sends and receives, valued by its static RTP payload type."""

    PCMU = 0
    PCMA = 8


class Role(enum.Enum):
    """What a party does in its room."""

    SPEAK = "speak"
    """Talks to the room and hears it (minus itself)."""
    LISTEN = "listen"
    """Hears the room; nobody hears it."""
    WHISPER = "whisper"
    """Heard only by its `whisper_to` party; hears the room."""


def db(decibels: float) -> float:
    """The linear amplitude factor of a gain in dB (0 dB is 1.0, -6 dB about 0.5)."""
    return float(10.0 ** (decibels / 20.0))


@dataclass(frozen=True, slots=True)
class PartyInfo:
    """A party's settings as seen from outside (`Mixer.party`)."""

    party: Party
    room: Room
    law: Law
    role: Role
    whisper_to: Party | None
    talk_gain: float
    listen_gain: float


@dataclass(slots=True, eq=False)
class _Party:
    party: Party
    room: Room
    law: Law
    role: Role
    whisper_to: Party | None
    talk_gain: float
    listen_gain: float
    queue: bytearray = field(default_factory=bytearray)

    def take(self) -> bytes | None:
        """This tick's frame (None: missing)."""
        queue = self.queue
        if len(queue) < FRAME:
            return None
        frame = bytes(queue[:FRAME])
        del queue[:FRAME]
        return frame


def _decode_table() -> Float32Array:
    """Linear value of (law offset + code): μ-law codes at 0..255, A-law at 256..511."""
    codes = np.arange(256)
    return np.concatenate([ulaw_decode(codes), alaw_decode(codes)]).astype(np.float32)


def _encode_table() -> npt.NDArray[np.uint8]:
    """Code of (law offset + sample + 32768): μ-law at 0..65535, A-law at 65536..131071."""
    samples = np.arange(-32768, 32768, dtype=np.int32)
    return np.concatenate([ulaw_encode(samples), alaw_encode(samples)])


_DECODE = _decode_table()
_ENCODE = _encode_table()
_DECODE_OFFSET = {Law.PCMU: 0, Law.PCMA: 256}
_ENCODE_OFFSET = {Law.PCMU: 32768, Law.PCMA: 65536 + 32768}
_FILLER = bytes(FRAME)  # any code: rows without a frame are zeroed after decoding


@dataclass(slots=True)
class _Layout:
    """The row arrays of one membership: parties grouped by room, rooms contiguous."""

    order: list[_Party]
    starts: npt.NDArray[np.intp]  # first row of each room
    room_of: npt.NDArray[np.intp]  # room index of each row
    decode_offset: npt.NDArray[np.intp]  # (rows, 1)
    encode_offset: npt.NDArray[np.int32]  # (rows, 1)
    talk: Float32Array  # talk gain of rows that speak to the room, else 0
    listen: Float32Array | None  # (rows, 1), None when every listen gain is 1
    whisperers: npt.NDArray[np.intp]  # rows that whisper to a party present
    targets: npt.NDArray[np.intp]  # the row each of them whispers to
    whisper_gain: Float32Array  # (whisperers, 1)


class Mixer:
    """Every conference room of the switch, mixed together once per 20 ms tick.

    Not thread-safe; meant to be driven from the event loop by `media.mixer_clock`.
    """

    def __init__(self) -> None:
        self._parties: dict[Party, _Party] = {}
        self._layout: _Layout | None = None
        self.dropped_octets = 0
        """Octets thrown away because a party's queue overflowed (a fast clock, a burst)."""

    # -- membership ----------------------------------------------------------------

    def join(
        self,
        room: Room,
        party: Party,
        law: Law,
        role: Role = Role.SPEAK,
        *,
        whisper_to: Party | None = None,
        talk_gain: float = 1.0,
        listen_gain: float = 1.0,
    ) -> None:
        """Add `party` to `room` (created on first use) from the next tick on.

        Raises:
            MixerError: the party is already in a room, or the role and `whisper_to`
                disagree (a whisperer needs a target other than itself; others have none).
        """
        if party in self._parties:
            raise MixerError(f"party {party!r} is already in room {self._parties[party].room!r}")
        _check_role(party, role, whisper_to)
        self._parties[party] = _Party(
            party, room, Law(law), role, whisper_to, _gain(talk_gain), _gain(listen_gain)
        )
        self._layout = None

    def leave(self, party: Party) -> bool:
        """Remove `party` from its room (an empty room ends); whether it was there."""
        if self._parties.pop(party, None) is None:
            return False
        self._layout = None
        return True

    def set_role(self, party: Party, role: Role, whisper_to: Party | None = None) -> None:
        """Change what `party` does in its room, from the next tick on.

        Raises:
            MixerError: unknown party, or the role and `whisper_to` disagree.
        """
        p = self._get(party)
        _check_role(party, role, whisper_to)
        p.role, p.whisper_to = role, whisper_to
        self._layout = None

    def set_gain(
        self, party: Party, *, talk: float | None = None, listen: float | None = None
    ) -> None:
        """Change `party`'s talk and/or listen gain (linear; `db()` converts dB).

        Raises:
            MixerError: unknown party, or a gain that is negative or not finite.
        """
        p = self._get(party)
        if talk is not None:
            p.talk_gain = _gain(talk)
        if listen is not None:
            p.listen_gain = _gain(listen)
        self._layout = None

    def party(self, party: Party) -> PartyInfo | None:
        """The settings of `party`, None when it is in no room."""
        p = self._parties.get(party)
        if p is None:
            return None
        return PartyInfo(p.party, p.room, p.law, p.role, p.whisper_to, p.talk_gain, p.listen_gain)

    def parties(self, room: Room) -> list[Party]:
        """The parties of `room`, in the order they joined (empty: no such room)."""
        return [p.party for p in self._parties.values() if p.room == room]

    def rooms(self) -> list[Room]:
        """Every room with at least one party, in the order they were created."""
        return list(dict.fromkeys(p.room for p in self._parties.values()))

    def __len__(self) -> int:
        return len(self._parties)

    def __contains__(self, party: object) -> bool:
        return party in self._parties

    # -- audio ---------------------------------------------------------------------

    def feed(self, party: Party, payload: bytes) -> bool:
        """Queue G.711 octets `party` sent (in its law); False for a party in no room.

        Only G.711 payload belongs here: the caller drops other payload types (comfort
        noise, telephone-event) before feeding.
        """
        p = self._parties.get(party)
        if p is None:
            return False
        queue = p.queue
        queue += payload
        limit = (MAX_QUEUE_FRAMES + 1) * FRAME
        if len(queue) > limit:  # a burst: keep the newest, bounded
            self.dropped_octets += len(queue) - limit
            del queue[: len(queue) - limit]
        return True

    def mix_all(self) -> dict[Party, bytes]:
        """Mix one 20 ms tick of every room: what each party hears, in its law.

        Every party of every room gets a 160-octet payload, silence included.
        """
        layout = self._layout
        if layout is None:
            if not self._parties:
                return {}
            layout = self._layout = self._build()
        order = layout.order
        rows = len(order)
        frames = [p.take() for p in order]
        present = np.fromiter((f is not None for f in frames), dtype=bool, count=rows)
        codes = np.frombuffer(
            b"".join(_FILLER if f is None else f for f in frames), dtype=np.uint8
        ).reshape(rows, FRAME)
        heard = _DECODE[codes + layout.decode_offset]  # (rows, FRAME) float32
        if not present.all():
            heard[~present] = 0.0

        contrib = heard * layout.talk[:, None]
        out = np.add.reduceat(contrib, layout.starts, axis=0)[layout.room_of]
        out -= contrib  # N-1: nobody hears their own voice
        if layout.whisperers.size:
            np.add.at(out, layout.targets, heard[layout.whisperers] * layout.whisper_gain)
        if layout.listen is not None:
            out *= layout.listen
        np.clip(out, -32768.0, 32767.0, out=out)
        index = out.astype(np.int32)
        index += layout.encode_offset
        data = _ENCODE[index].tobytes()
        return {p.party: data[i * FRAME : (i + 1) * FRAME] for i, p in enumerate(order)}

    # -- internals -----------------------------------------------------------------

    def _get(self, party: Party) -> _Party:
        p = self._parties.get(party)
        if p is None:
            raise MixerError(f"party {party!r} is in no room")
        return p

    def _build(self) -> _Layout:
        by_room: dict[Room, list[_Party]] = {}
        for p in self._parties.values():
            by_room.setdefault(p.room, []).append(p)
        order = [p for members in by_room.values() for p in members]
        sizes = [len(members) for members in by_room.values()]
        starts = np.cumsum([0, *sizes[:-1]]).astype(np.intp)
        room_of = np.repeat(np.arange(len(sizes), dtype=np.intp), sizes)
        row = {p.party: i for i, p in enumerate(order)}
        whisperers: list[int] = []
        targets: list[int] = []
        for i, p in enumerate(order):
            if p.role is not Role.WHISPER:
                continue
            target = row.get(p.whisper_to)
            # A whisper reaches its target only inside the room; otherwise nobody hears it.
            if target is not None and order[target].room == p.room:
                whisperers.append(i)
                targets.append(target)
        listen = np.array([p.listen_gain for p in order], dtype=np.float32)[:, None]
        return _Layout(
            order=order,
            starts=starts,
            room_of=room_of,
            decode_offset=np.array([_DECODE_OFFSET[p.law] for p in order], np.intp)[:, None],
            encode_offset=np.array([_ENCODE_OFFSET[p.law] for p in order], np.int32)[:, None],
            talk=np.array(
                [p.talk_gain if p.role is Role.SPEAK else 0.0 for p in order], np.float32
            ),
            listen=None if bool((listen == 1.0).all()) else listen,
            whisperers=np.array(whisperers, dtype=np.intp),
            targets=np.array(targets, dtype=np.intp),
            whisper_gain=np.array([order[i].talk_gain for i in whisperers], np.float32)[:, None],
        )


def _check_role(party: Party, role: Role, whisper_to: Party | None) -> None:
    if role is Role.WHISPER:
        if whisper_to is None or whisper_to == party:
            raise MixerError(f"party {party!r}: a whisper needs another party to whisper to")
    elif whisper_to is not None:
        raise MixerError(f"party {party!r}: only a whisperer has whisper_to")


def _gain(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise MixerError(f"gain {value!r}: must be finite and not negative")
    return float(value)
