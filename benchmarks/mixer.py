"""Conference mixing cost: CPU per party per 20 ms tick, aiopbx's batched mixer against
two references measured in the same run.

FreeSWITCH (mod_conference) and Asterisk (ConfBridge) are not installed here, so the
peer columns are references written for this benchmark:

- "pure Python": the textbook mixer, one party at a time — decode each frame through a
  lookup list, sum the room sample by sample, subtract the party's own voice, clip, and
  encode through a lookup table (media.g711_tables' per-sample codecs);
- "numpy/room": numpy without the batching — one room at a time, every party's frame
  decoded, summed and encoded by its own numpy calls (media.g711).

aiopbx's `media.mixer.Mixer` mixes every room of the tick in one batch. All three get the
same frames (each party its own tone, PCMU and PCMA parties alternating, everyone
speaking) and must return the same bytes, which the benchmark checks before timing.
Each tick's time includes feeding every party's frame. CPU is `time.process_time`, the
best of `--repeat` runs; "% core/party" is the share of one core a party costs
(µs per party per tick / 20 000 µs). Goal (issue 11): under 0.2 % of a core per party.

    python benchmarks/mixer.py
    python benchmarks/mixer.py --seconds 2 --repeat 5

A second table runs the real `MixerClock` on the event loop (uvloop when installed) for
`--clock` wall seconds per conference, each party's `send` answering with its next frame,
and divides the whole process's CPU by ticks and parties. It shows what the tight loop
above hides: between two ticks the loop sleeps 20 ms, so each tick starts with cold
caches (and a bare timer wake-up, measured and shown); that cost is per tick, shared by
every room of the switch, so it weighs on a lone small conference and vanishes in the
per-party figure as the switch gets busier.

Not a test: it asserts nothing but the equal outputs, it prints.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Coroutine, Hashable
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from media import g711, g711_tables  # noqa: E402
from media.mixer import FRAME, Law, Mixer  # noqa: E402
from media.mixer_clock import TICK, MixerClock  # noqa: E402

SCENARIOS = [(1, 3), (1, 10), (1, 50), (100, 3)]  # (rooms, parties per room)
TONES_HZ = np.linspace(300.0, 3000.0, 50)
T = TypeVar("T")


class AnyMixer(Protocol):
    def join(self, room: Hashable, party: Hashable, law: Law) -> None: ...
    def feed(self, party: Hashable, payload: bytes) -> bool: ...
    def mix_all(self) -> dict[Hashable, bytes]: ...


PY_DECODE = {
    Law.PCMU: [g711_tables.ulaw_decode(c) for c in range(256)],
    Law.PCMA: [g711_tables.alaw_decode(c) for c in range(256)],
}
PY_ENCODE = {
    Law.PCMU: bytes(g711_tables.ulaw_encode(s) for s in range(-32768, 32768)),
    Law.PCMA: bytes(g711_tables.alaw_encode(s) for s in range(-32768, 32768)),
}
NP_DECODE = {Law.PCMU: g711.ulaw_decode, Law.PCMA: g711.alaw_decode}
NP_ENCODE = {Law.PCMU: g711.ulaw_encode, Law.PCMA: g711.alaw_encode}


class PurePythonMixer:
    """One party at a time, one sample at a time: the reference without numpy."""

    def __init__(self) -> None:
        self.rooms: dict[Hashable, list[tuple[Hashable, Law]]] = {}
        self.frames: dict[Hashable, bytes] = {}

    def join(self, room: Hashable, party: Hashable, law: Law) -> None:
        self.rooms.setdefault(room, []).append((party, law))

    def feed(self, party: Hashable, payload: bytes) -> bool:
        self.frames[party] = payload
        return True

    def mix_all(self) -> dict[Hashable, bytes]:
        out: dict[Hashable, bytes] = {}
        silence = [0] * FRAME
        for parties in self.rooms.values():
            voices = []
            for party, law in parties:
                frame = self.frames.pop(party, None)
                table = PY_DECODE[law]
                voices.append(silence if frame is None else [table[c] for c in frame])
            total = [sum(column) for column in zip(*voices, strict=True)]
            for (party, law), own in zip(parties, voices, strict=True):
                encode = PY_ENCODE[law]
                out[party] = bytes(
                    encode[min(max(t - s, -32768), 32767) + 32768]
                    for t, s in zip(total, own, strict=True)
                )
        return out


class NumpyPerRoomMixer:
    """numpy, but one room and one party's codec call at a time (no batching)."""

    def __init__(self) -> None:
        self.rooms: dict[Hashable, list[tuple[Hashable, Law]]] = {}
        self.frames: dict[Hashable, bytes] = {}

    def join(self, room: Hashable, party: Hashable, law: Law) -> None:
        self.rooms.setdefault(room, []).append((party, law))

    def feed(self, party: Hashable, payload: bytes) -> bool:
        self.frames[party] = payload
        return True

    def mix_all(self) -> dict[Hashable, bytes]:
        out: dict[Hashable, bytes] = {}
        for parties in self.rooms.values():
            voices = np.zeros((len(parties), FRAME), dtype=np.int32)
            for i, (party, law) in enumerate(parties):
                frame = self.frames.pop(party, None)
                if frame is not None:
                    voices[i] = NP_DECODE[law](frame)
            heard = np.clip(voices.sum(axis=0) - voices, -32768, 32767)
            for i, (party, law) in enumerate(parties):
                out[party] = NP_ENCODE[law](heard[i]).tobytes()
        return out


def setup(mixer: AnyMixer, rooms: int, size: int) -> dict[Hashable, list[bytes]]:
    """Join every party; return each party's frames (a second of its tone, in its law)."""
    t = np.arange(50 * FRAME) / 8000
    frames: dict[Hashable, list[bytes]] = {}
    for room in range(rooms):
        for j in range(size):
            law = Law.PCMU if (room + j) % 2 == 0 else Law.PCMA
            party = (room, j)
            mixer.join(room, party, law)
            tone = 6000 / size * np.sin(2 * np.pi * TONES_HZ[j % len(TONES_HZ)] * t)
            codes = (g711.ulaw_encode if law is Law.PCMU else g711.alaw_encode)(tone)
            frames[party] = [codes[i * FRAME : (i + 1) * FRAME].tobytes() for i in range(50)]
    return frames


def run(mixer: AnyMixer, frames: dict[Hashable, list[bytes]], ticks: int) -> list[bytes]:
    """Mix `ticks` ticks; the concatenated output of the last one (in party order)."""
    out: dict[Hashable, bytes] = {}
    feed = mixer.feed
    items = list(frames.items())
    for tick in range(ticks):
        slot = tick % 50
        for party, payloads in items:
            feed(party, payloads[slot])
        out = mixer.mix_all()
    return [out[party] for party, _ in items]


def cost(kind: type[AnyMixer], rooms: int, size: int, seconds: float, repeat: int) -> float:
    """Best CPU seconds per tick over `repeat` runs of about `seconds` each."""
    best = float("inf")
    for _ in range(repeat):
        mixer = kind()
        frames = setup(mixer, rooms, size)
        run(mixer, frames, 3)  # warm up: layouts built, tables touched
        ticks = 10
        while True:  # grow until one run is long enough to time
            t0 = time.process_time()
            run(mixer, frames, ticks)
            spent = time.process_time() - t0
            if spent >= seconds / 4 or ticks >= 1_000_000:
                break
            ticks *= 4
        best = min(best, spent / ticks)
    return best


def check_equal(rooms: int, size: int) -> bool:
    outputs = []
    for kind in (Mixer, PurePythonMixer, NumpyPerRoomMixer):
        mixer = kind()
        frames = setup(mixer, rooms, size)
        outputs.append(run(mixer, frames, 7))
    return outputs[0] == outputs[1] == outputs[2]


class Phone:
    """A party's `send` on the clock: each payload it gets, it answers with its next frame,
    as a phone's packet arrives once per tick."""

    def __init__(self, clock: MixerClock, party: Hashable, frames: list[bytes]) -> None:
        self.clock, self.party, self.frames, self.n = clock, party, frames, 0

    def __call__(self, payload: bytes) -> None:
        self.n += 1
        self.clock.feed(self.party, self.frames[self.n % len(self.frames)])


async def on_the_clock(rooms: int, size: int, seconds: float) -> tuple[float, int, int, float]:
    """The real thing: `MixerClock` on the event loop for `seconds` of wall time.

    Returns CPU µs per party per tick (the loop's whole process), ticks, re-anchors and
    wall seconds.
    """
    clock = MixerClock()
    frames = setup(clock.mixer, rooms, size)
    for party, payloads in frames.items():  # joined without a send: join again with one
        info = clock.mixer.party(party)
        assert info is not None
        clock.mixer.leave(party)
        clock.join(info.room, party, info.law, Phone(clock, party, payloads))
        clock.feed(party, payloads[0])
    done = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, done.set)
    w0, c0, t0 = time.monotonic(), time.process_time(), clock.ticks
    await done.wait()
    cpu, ticks, wall = time.process_time() - c0, clock.ticks - t0, time.monotonic() - w0
    clock.close()
    return cpu / max(ticks, 1) / len(frames) * 1e6, ticks, clock.reanchors, wall


async def empty_ticks(seconds: float) -> float:
    """CPU µs of one bare 20 ms `call_at` wake-up of the loop (nothing mixed): the floor a
    tick costs whatever it does, shared by every room of the switch."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    ticks = 0
    slot = loop.time()

    def tick() -> None:
        nonlocal ticks, slot
        ticks += 1
        slot += TICK
        if not done.is_set():
            loop.call_at(slot, tick)

    loop.call_at(slot, tick)
    loop.call_later(seconds, done.set)
    c0 = time.process_time()
    await done.wait()
    return (time.process_time() - c0) / max(ticks, 1) * 1e6


def run_loop(coro: Coroutine[object, object, T]) -> T:
    """Run on uvloop when it is installed, as `pbx serve` does."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="CPU time per timing run")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is kept")
    parser.add_argument("--clock", type=float, default=3.0, help="wall seconds on the loop")
    args = parser.parse_args()
    kinds: list[tuple[str, type[AnyMixer]]] = [
        ("aiopbx", Mixer),
        ("pure Python", PurePythonMixer),
        ("numpy/room", NumpyPerRoomMixer),
    ]
    for rooms, size in SCENARIOS:
        if not check_equal(rooms, size):
            raise SystemExit(f"{rooms}x{size}: the mixers disagree; nothing to compare")
    print("same output bytes from all three mixers: yes")
    print("per party per 20 ms tick: CPU µs, and % of one core")
    head = f"{'conference':>15}{'parties':>8}"
    for name, _ in kinds:
        head += f"{name + ' µs':>16}{'%':>8}"
    head += f"{'pure Python/aiopbx':>20}{'numpy/room/aiopbx':>19}"
    print(head)
    for rooms, size in SCENARIOS:
        parties = rooms * size
        label = f"{size}-party" if rooms == 1 else f"{rooms} x {size}-party"
        line = f"{label:>15}{parties:>8}"
        per_party = []
        for _, kind in kinds:
            us = cost(kind, rooms, size, args.seconds, args.repeat) * 1e6 / parties
            per_party.append(us)
            line += f"{us:16.2f}{100 * us / 20_000:8.3f}"
        line += f"{per_party[1] / per_party[0]:20.1f}{per_party[2] / per_party[0]:19.1f}"
        print(line, flush=True)
    print()
    floor = run_loop(empty_ticks(args.clock))
    print(f"on the event loop (MixerClock, {args.clock:.0f} s wall each; the process's CPU);"
          f" a bare timer wake-up costs {floor:.1f} µs per tick, 'net' leaves it out")  # fmt: skip
    print(f"{'conference':>15}{'parties':>8}{'µs/party':>10}{'%':>8}{'net µs':>8}{'%':>8}"
          f"{'ticks':>7}{'expected':>10}{'re-anchors':>12}")  # fmt: skip
    for rooms, size in SCENARIOS:
        us, ticks, reanchors, wall = run_loop(on_the_clock(rooms, size, args.clock))
        parties = rooms * size
        net = max(us - floor / parties, 0.0)
        label = f"{size}-party" if rooms == 1 else f"{rooms} x {size}-party"
        print(f"{label:>15}{parties:>8}{us:10.2f}{100 * us / 20_000:8.3f}{net:8.2f}"
              f"{100 * net / 20_000:8.3f}{ticks:>7}{wall / TICK:10.0f}{reanchors:>12}",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
