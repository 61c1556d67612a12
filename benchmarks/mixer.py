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

Not a test: it asserts nothing but the equal outputs, it prints.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Hashable
from pathlib import Path
from typing import Protocol

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from media import g711, g711_tables  # noqa: E402
from media.mixer import FRAME, Law, Mixer  # noqa: E402

SCENARIOS = [(1, 3), (1, 10), (1, 50), (100, 3)]  # (rooms, parties per room)
TONES_HZ = np.linspace(300.0, 3000.0, 50)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="CPU time per timing run")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is kept")
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


if __name__ == "__main__":
    main()
