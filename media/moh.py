"""Music on hold: what a held phone hears, and the player that sends it from the relay.

The music is every `*.wav` file of one directory (`data_dir / "moh"`, filled with
`pbx moh add`, which converts to 8 kHz mono on import), in name order, played in a
loop; when the directory is absent, empty or unreadable, a generated default (a
soft music-box melody over a pentatonic scale, about -20 dBFS, no recorded music)
plays instead, so a fresh install has music on hold. `MohSource.music()` notices
files added, replaced or deleted (their names, sizes and mtimes) at the next hold,
so the admin's change needs no restart; reading and encoding happen in a thread.

`MohPlayer` sends the music to one leg's phone of a `RelaySession` from that leg's
socket: 20 ms G.711 frames in the phone's negotiated codec (PCMU or PCMA; anything
else raises `MohError`, and the caller logs it and plays nothing), on the leg's one RTP
stream (`Leg.send_own`): the SSRC the phone heard from the other phone, its sequence
numbers going on by one and its timestamps keeping time, the marker bit on the first
music packet; on resume the other phone's packets continue that same stream (issue 9
§8: baresip discards a stream whose SSRC changes back). Nothing is sent to a phone that
has not proven its address (`media.relay`: no reflection). It is paced by the loop
clock (`loop.call_at`, one frame per 20 ms slot; after a stall of the loop it skips the
lost slots, advancing the timestamp with them, rather than bursting). While it plays,
the other phone's RTP is not forwarded to the held phone (`RelaySession.mute`): one
stream reaches it, not two. It stops at `stop()`, or at its next slot once the session is closed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from media.errors import MediaError
from media.g711 import alaw_encode, ulaw_encode
from media.relay import LegName, RelaySession
from media.sdp import AudioStream
from media.wav import WavError, load_mono

__all__ = [
    "FRAME",
    "MAX_SECONDS",
    "MOH_DIR",
    "MohError",
    "MohMusic",
    "MohPlayer",
    "MohSource",
    "default_music",
    "moh_codec",
]

log = logging.getLogger(__name__)

MOH_DIR = "moh"
"""The music directory's name inside the data directory."""
RATE = 8000
FRAME = 160  # samples (and G.711 octets) per 20 ms packet
PTIME = FRAME / RATE
MAX_SECONDS = 600.0
"""Music beyond this many seconds (all files together) is not loaded."""
_RESYNC = 0.1  # seconds behind its schedule after which the player skips slots


class MohError(MediaError):
    """Music on hold cannot be played to this phone (its codec is not G.711)."""


@dataclass(frozen=True, slots=True)
class MohMusic:
    """The music loop, encoded once in both G.711 laws (a whole number of frames each).

    `names` are the files it was made of (empty: the generated default).
    """

    pcmu: bytes
    pcma: bytes
    names: tuple[str, ...]

    @classmethod
    def from_samples(cls, samples: npt.NDArray[np.int16], names: tuple[str, ...]) -> MohMusic:
        """Encode 8 kHz int16 `samples`, padded with silence to whole frames."""
        pad = -len(samples) % FRAME
        x = np.concatenate([samples, np.zeros(pad, np.int16)]) if pad else samples
        return cls(ulaw_encode(x).tobytes(), alaw_encode(x).tobytes(), names)

    @property
    def seconds(self) -> float:
        return len(self.pcmu) / RATE

    def encoded(self, key: str) -> bytes:
        """The loop in codec `key` ("pcmu" or "pcma"). Raises: MohError for another codec."""
        if key == "pcmu":
            return self.pcmu
        if key == "pcma":
            return self.pcma
        raise MohError(f"no music on hold in {key}")


# A music box: pentatonic notes (C major: C D E G A) at 0.4 s each, every note a
# decaying sine with a quieter octave above, over a soft sustained fifth per phrase.
_C4 = 261.63
_SCALE = {"C": 0, "D": 2, "E": 4, "G": 7, "A": 9}
_MELODY = (
    "E5 G5 A5 G5 E5 D5 C5 D5",
    "E5 E5 D5 C5 D5 E5 G5 --",
    "A5 G5 E5 G5 A5 C6 A5 G5",
    "E5 D5 C5 D5 E5 D5 C5 --",
)
_BASS = ("C4", "G3", "A3", "C4")  # one pad note per phrase
_NOTE = 0.4
_LEVEL = 0.1  # peak of one note, of full scale (about -20 dBFS)


def _freq(note: str) -> float:
    name, octave = note[0], int(note[1:])
    return float(_C4 * 2.0 ** ((_SCALE[name] + 12 * (octave - 4)) / 12))


def default_music() -> npt.NDArray[np.int16]:
    """The generated music on hold: about 13 s of a quiet, gentle tone melody, 8 kHz."""
    n = round(_NOTE * RATE)
    t = np.arange(n) / RATE
    attack = np.minimum(1.0, t / 0.01)  # 10 ms: no click
    envelope = attack * np.exp(-t / 0.18)
    out: list[npt.NDArray[np.float64]] = []
    for phrase, bass in zip(_MELODY, _BASS, strict=True):
        notes = phrase.split()
        length = n * len(notes)
        tp = np.arange(length) / RATE
        swell = np.sin(np.pi * tp / tp[-1]) ** 2  # the pad fades in and out per phrase
        root, fifth = _freq(bass), _freq(bass) * 1.5
        pad = 0.25 * swell * (np.sin(2 * np.pi * root * tp) + 0.5 * np.sin(2 * np.pi * fifth * tp))
        line = np.zeros(length)
        for i, note in enumerate(notes):
            if note == "--":
                continue
            f = _freq(note)
            tone = np.sin(2 * np.pi * f * t) + 0.3 * np.sin(2 * np.pi * 2 * f * t)
            line[i * n : (i + 1) * n] += envelope * tone
        out.append(line + pad)
    music = np.concatenate(out)
    music *= _LEVEL / float(np.max(np.abs(music)))
    return np.round(music * 32767.0).astype(np.int16)


def _signature(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """(name, size, mtime) of each WAV file of `directory`, sorted; () when none."""
    try:
        files = sorted(p for p in directory.glob("*.wav") if p.is_file())
        found = []
        for p in files:
            st = p.stat()
            found.append((p.name, st.st_size, st.st_mtime_ns))
        return tuple(found)
    except OSError:
        return ()


class MohSource:
    """The music on hold of one directory (None: the generated default only).

    One instance is shared by every call; `music()` is cheap when nothing changed.
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._music: MohMusic | None = None
        self._default: MohMusic | None = None
        self._lock = threading.Lock()  # not asyncio's: one source may serve several loops

    async def music(self) -> MohMusic:
        """The music to play now, (re)loaded in a thread when the files changed."""
        return await asyncio.to_thread(self.load)

    def load(self) -> MohMusic:
        """`music()` without the thread: blocking file work, for tools and tests."""
        with self._lock:
            return self._load()

    def _load(self) -> MohMusic:
        signature = _signature(self.directory) if self.directory is not None else ()
        if signature == self._signature and self._music is not None:
            return self._music
        music = self._read(signature) if signature else None
        if music is None:
            if self._default is None:
                self._default = MohMusic.from_samples(default_music(), ())
            music = self._default
        self._signature, self._music = signature, music
        return music

    def _read(self, signature: tuple[tuple[str, int, int], ...]) -> MohMusic | None:
        assert self.directory is not None
        parts: list[npt.NDArray[np.int16]] = []
        names: list[str] = []
        total = 0
        for name, _, _ in signature:
            try:
                samples = load_mono(self.directory / name, RATE)
            except (WavError, OSError) as exc:
                log.warning("music on hold: skipping %s: %s", name, exc)
                continue
            if total + len(samples) > MAX_SECONDS * RATE:
                log.warning("music on hold: %s and later files past %g s", name, MAX_SECONDS)
                break
            if len(samples):
                parts.append(samples)
                names.append(name)
                total += len(samples)
        if not parts:
            return None
        log.info("music on hold: %s (%.1f s)", ", ".join(names), total / RATE)
        return MohMusic.from_samples(np.concatenate(parts), tuple(names))


def moh_codec(stream: AudioStream | None) -> str | None:
    """The G.711 law ("pcmu"/"pcma") music on hold can be sent in to `stream`, or None."""
    if stream is None or stream.codec.clock_rate != RATE:
        return None
    key = stream.codec.key
    return key if key in ("pcmu", "pcma") else None


class MohPlayer:
    """Plays `music` to leg `leg`'s phone of `session`, until `stop()`.

    Raises (from the constructor):
        MohError: the leg has no negotiated stream, or one not in PCMU/PCMA.
    """

    def __init__(self, session: RelaySession, leg: LegName, music: MohMusic) -> None:
        stream = session.leg(leg).stream
        key = moh_codec(stream)
        if stream is None or key is None:
            codec = "nothing negotiated" if stream is None else stream.codec.name
            raise MohError(f"music on hold needs PCMU or PCMA, leg {leg} has {codec}")
        self.session = session
        self.leg = leg
        self.stream = stream
        self.payload_type = stream.codec.payload_type
        self._audio = music.encoded(key)
        self._pos = 0
        self._step = FRAME  # timestamp units to the next frame (more after skipped slots)
        self._next = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self.sent = 0
        self.playing = False

    @property
    def ssrc(self) -> int | None:
        """The SSRC of the leg's stream the music goes out on (None before the first frame)."""
        stream = self.session.leg(self.leg).continuity
        return stream.ssrc if stream is not None else None

    def start(self) -> None:
        """Mute the other phone toward this one and send the first frame now."""
        if self.playing or self.session.closed:
            return
        self.playing = True
        self.session.mute(self.leg, True)
        self._next = self.session.loop.time()
        self._tick()
        log.debug("%s: music on hold to leg %s (pt %d)", self.session.name, self.leg,
                  self.payload_type)  # fmt: skip

    def stop(self) -> None:
        """Stop at once and let the other phone's RTP through again (idempotent)."""
        if not self.playing:
            return
        self.playing = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if not self.session.closed:
            self.session.mute(self.leg, False)
        log.debug("%s: music on hold to leg %s stopped after %d packets", self.session.name,
                  self.leg, self.sent)  # fmt: skip

    def _tick(self) -> None:
        self._handle = None
        if self.session.closed:
            self.playing = False
            return
        loop = self.session.loop
        late = loop.time() - self._next
        if late > _RESYNC:  # the loop stalled: skip the slots it lost
            skipped = int(late / PTIME)
            self._advance(skipped)
            self._next += skipped * PTIME
        audio, pos = self._audio, self._pos
        if self.session.leg(self.leg).send_own(
            self.payload_type, audio[pos : pos + FRAME], self._step
        ):
            self.sent += 1
            self._step = 0
        self._advance(1)
        self._next += PTIME
        self._handle = loop.call_at(self._next, self._tick)

    def _advance(self, frames: int) -> None:
        self._step += frames * FRAME
        self._pos = (self._pos + frames * FRAME) % len(self._audio)
