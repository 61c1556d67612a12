"""CallRecorder: both directions of a relayed call placed by arrival time (fake clock,
synthetic G.711 packets) and streamed to a WAV file that is valid after every flush."""

from __future__ import annotations

import asyncio
import shutil
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media.g711 import ulaw_decode, ulaw_encode
from media.ports import PortAllocator
from media.recorder import AHEAD, JITTER, RATE, CallRecorder, Timeline, WavAppender
from media.relay import LegName, RelaySession
from media.sdp import AudioStream, Codec
from media.wav import parse_wav, read_wav
from tests.interop.peers import free_port

WAIT = 5.0  # bound on every wait; never reached when things work
PACKET = 160  # 20 ms
LEGS: tuple[LegName, LegName] = ("a", "b")


def tone(hz: float, n: int, length: int = PACKET) -> npt.NDArray[np.float64]:
    """Packet `n` of a continuous tone."""
    t = (np.arange(length) + n * length) / RATE
    return 8000 * np.sin(2 * np.pi * hz * t)


def rtp(samples: npt.NDArray[np.float64], seq: int = 0, pt: int = 0) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, seq * 160, 1) + ulaw_encode(samples).tobytes()


def level(value: int, length: int = PACKET) -> npt.NDArray[np.int16]:
    """A packet of constant samples, as G.711 decodes them."""
    return ulaw_decode(ulaw_encode(np.full(length, value)))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def session() -> AsyncIterator[RelaySession]:
    base = free_port(4)
    relay = RelaySession(PortAllocator("127.0.0.1", base, base + 3))
    stream = AudioStream("127.0.0.1", 9, 10, Codec(0, "PCMU", 8000), None, "sendrecv")
    relay.set_remote("a", stream)
    relay.set_remote("b", stream)
    try:
        yield relay
    finally:
        relay.close()


# -- the timeline: placing packets, handing out aligned frames -----------------------


def test_both_channels_aligned_by_arrival_time() -> None:
    line = Timeline()
    line.begin_part()
    for n in range(5):
        line.place("a", level(1000), 10.0 + n * 0.02)
    for n in range(5):  # leg b starts 100 ms later
        line.place("b", level(2000), 10.1 + n * 0.02)
    x = line.end_part()
    assert x.shape == (1600, 2)
    assert np.all(x[:800, 0] != 0) and np.all(x[800:, 0] == 0)
    assert np.all(x[:800, 1] == 0) and np.all(x[800:, 1] != 0)


@pytest.mark.parametrize(
    ("late", "at"),
    [
        (0.0, 160),
        (0.039, 160),  # jitter: appended where the channel ended
        (0.041, 160 + 328),  # a gap: silence until its slot
        (-0.015, 160),  # early
        (0.5, 160 + 4000),
    ],
)
def test_jitter_absorbed_gaps_kept(late: float, at: int) -> None:
    line = Timeline()
    line.begin_part()
    line.place("a", level(1000), 0.0)
    line.place("a", level(3000), 0.02 + late)
    x = line.end_part()[:, 0]
    assert len(x) == at + PACKET
    assert np.all(x[:PACKET] == level(1000)[0])
    assert np.all(x[PACKET:at] == 0)
    assert np.all(x[at:] == level(3000)[0])
    assert JITTER == 320


def test_take_pads_the_lagging_channel_and_its_late_packet_follows() -> None:
    line = Timeline()
    line.begin_part()
    for n in range(50):  # 1 s of leg a; leg b's packets for 0.5-1.0 s are still on their way
        line.place("a", level(1000), n * 0.02)
        if n < 25:
            line.place("b", level(2000), n * 0.02)
    x = line.take(line.due(1.0, holdback=0.2))  # up to 0.8 s
    assert x.shape == (round(0.8 * RATE), 2)
    assert np.all(x[:, 0] != 0)
    assert np.all(x[:4000, 1] != 0) and np.all(x[4000:, 1] == 0)  # padded where it lags
    assert line.base == len(x) and line.held == 8000 - len(x)
    line.place("b", level(3000), 1.0 - 0.19)  # within 40 ms of where b now ends: no gap
    y = line.end_part()
    assert len(x) + len(y) == 8000
    assert np.all(y[:160, 1] == level(3000)[0]) and np.all(y[160:, 1] == 0)


def test_take_never_runs_past_the_longer_channel() -> None:
    line = Timeline()
    line.begin_part()
    line.place("a", level(1000), 0.0)
    assert line.take(line.due(5.0, holdback=0.2)).shape == (160, 2)  # not 4.8 s of silence
    assert line.take(line.due(6.0, holdback=0.2)).shape == (0, 2)
    line.place("a", level(1000), 6.0)
    assert line.end_part().shape == (6 * RATE, 2)


def test_a_channel_running_ahead_of_the_clock_is_capped() -> None:
    line = Timeline()
    line.begin_part()
    placed = [line.place("a", level(1000), 0.0) for _ in range(200)]  # 4 s in one instant
    assert placed.count(True) == AHEAD // PACKET + 1
    assert line.held == AHEAD + PACKET


def test_parts_follow_each_other_without_the_gap() -> None:
    line = Timeline()
    line.begin_part()
    for n in range(10):
        line.place("a", level(1000), n * 0.02)
    one = line.end_part()
    line.begin_part()
    for n in range(5):  # a minute later, on leg b
        line.place("b", level(2000), 60.0 + n * 0.02)
    two = line.end_part()
    assert one.shape == (1600, 2) and two.shape == (800, 2)
    assert np.all(one[:, 1] == 0) and np.all(two[:, 0] == 0)
    assert line.frames == 2400 and line.held == 0


# -- the recorder: the file as it grows ----------------------------------------------


async def talk(
    recorder: CallRecorder, clock: Clock, seconds: float, hz: tuple[float, float], n0: int = 0
) -> int:
    """Both phones send their tone for `seconds`, a packet each per 20 ms; returns the
    next packet number."""
    n = n0
    for n in range(n0, n0 + round(seconds / 0.02)):
        for leg, f in zip(LEGS, hz, strict=True):
            recorder.feed(leg, rtp(tone(f, n), n))
        clock.now += 0.02
    return n + 1


def peak_hz(x: npt.NDArray[np.float64]) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / RATE)[int(np.argmax(spectrum))])


async def test_the_file_is_a_valid_wav_after_every_flush(
    session: RelaySession, tmp_path: Path
) -> None:
    clock = Clock()
    path = tmp_path / "rec" / "2024-01" / "call.wav"
    opened: list[Path] = []

    async def on_open(p: Path) -> None:
        assert p.exists()  # linked only once it exists
        opened.append(p)

    recorder = CallRecorder(session, path, on_open=on_open, clock=clock, flush_every=3600)
    recorder.start()
    n = 0
    for second in range(1, 6):
        n = await talk(recorder, clock, 1.0, (440, 1000), n)
        await recorder.flush()
        assert opened == [path]
        # What a kill -9 right now would leave on disk: a valid WAV of all but the
        # last 200 ms (the holdback).
        wav = parse_wav(path.read_bytes())
        assert (wav.rate, wav.channels) == (RATE, 2)
        assert len(wav.samples) == recorder.written == round((second - 0.2) * RATE)
        assert recorder.held == round(0.2 * RATE)
        for channel, hz in ((0, 440), (1, 1000)):
            assert abs(peak_hz(wav.samples[:, channel]) - hz) < 10
    await recorder.close()
    wav = read_wav(path)
    assert len(wav.samples) == 5 * RATE and recorder.held == 0
    # Continuous tones on both channels: nothing lost or doubled at the flush points.
    for channel, hz in ((0, 440), (1, 1000)):
        want = ulaw_decode(ulaw_encode(tone(hz, 0, 5 * RATE))) / 32768
        assert np.array_equal(wav.samples[:, channel], want)
    assert opened == [path]


async def test_memory_stays_bounded_in_a_long_call(session: RelaySession, tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "long.wav"
    recorder = CallRecorder(session, path, clock=clock, flush_every=3600)
    recorder.start()
    most = 0
    n = 0
    for _ in range(300):  # five minutes
        n = await talk(recorder, clock, 0.5, (440, 1000), n)
        most = max(most, recorder.held)
        n = await talk(recorder, clock, 0.5, (440, 1000), n)
        most = max(most, recorder.held)
        await recorder.flush()
    assert most <= round(1.2 * RATE)
    await recorder.close()
    assert read_wav(path).samples.shape == (300 * RATE, 2)


async def test_flushes_come_from_the_loop_and_on_stop(
    session: RelaySession, tmp_path: Path
) -> None:
    clock = Clock()
    path = tmp_path / "periodic.wav"
    recorder = CallRecorder(session, path, clock=clock, flush_every=0.01)
    recorder.start()
    await talk(recorder, clock, 1.0, (440, 1000))
    await until(lambda: recorder.written == round(0.8 * RATE), "a periodic flush")
    recorder.stop()  # the part ends: the rest is written at once
    await until(lambda: recorder.written == RATE, "the flush at stop")
    assert read_wav(path).samples.shape == (RATE, 2)
    await recorder.close()


async def until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


async def test_parts_on_demand_in_one_file(session: RelaySession, tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "parts.wav"
    recorder = CallRecorder(session, path, clock=clock, flush_every=3600)
    await talk(recorder, clock, 0.5, (300, 300))  # before the code: not recorded
    assert not path.exists() and not recorder.recorded
    recorder.start()
    n = await talk(recorder, clock, 1.0, (440, 1000))
    recorder.stop()
    await recorder.flush()
    assert read_wav(path).samples.shape == (RATE, 2)
    clock.now += 30.0  # paused
    recorder.start()
    await talk(recorder, clock, 1.5, (600, 1200), n)
    await recorder.flush()
    assert recorder.written == round(2.3 * RATE)
    await recorder.close()
    x = read_wav(path).samples
    assert x.shape == (round(2.5 * RATE), 2)
    for channel, (first, second) in enumerate(((440, 600), (1000, 1200))):
        assert abs(peak_hz(x[400:7600, channel]) - first) < 10
        assert abs(peak_hz(x[8400:19600, channel]) - second) < 10


async def test_never_started_leaves_no_file(session: RelaySession, tmp_path: Path) -> None:
    opened: list[Path] = []

    async def on_open(p: Path) -> None:
        opened.append(p)

    recorder = CallRecorder(session, tmp_path / "none.wav", on_open=on_open)
    await recorder.close()
    assert not recorder.recorded and opened == []
    assert list(tmp_path.iterdir()) == []


async def test_without_a_path_everything_stays_in_memory(session: RelaySession) -> None:
    clock = Clock()
    recorder = CallRecorder(session, clock=clock)
    recorder.start()
    await talk(recorder, clock, 0.5, (440, 1000))
    recorder.stop()
    assert recorder.samples().shape == (RATE // 2, 2) and recorder.written == 0
    await recorder.close()


async def test_an_unwritable_directory_is_logged_and_the_audio_dropped(
    session: RelaySession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_bytes(b"")
    clock = Clock()
    opened: list[Path] = []

    async def on_open(p: Path) -> None:
        opened.append(p)

    recorder = CallRecorder(
        session, tmp_path / "file" / "x.wav", on_open=on_open, clock=clock, flush_every=3600
    )
    recorder.start()
    for _ in range(3):
        await talk(recorder, clock, 1.0, (440, 1000))
        await recorder.flush()
        assert recorder.held <= round(0.2 * RATE)
    await recorder.close()
    assert opened == [] and recorder.written == 0
    assert "cannot create the file" in caplog.text


def test_header_survives_a_copy_taken_mid_call(tmp_path: Path) -> None:
    """The bytes on disk between two appends parse (the copy a crash leaves)."""
    path = tmp_path / "grow.wav"
    out = WavAppender.create(path, 2, RATE)
    assert parse_wav(path.read_bytes()).samples.shape == (0, 2)
    frames = np.stack([level(1000, 800), level(-1000, 800)], axis=1)
    for count in range(1, 4):
        out.append(frames, sync_every=RATE)
        shutil.copy(path, tmp_path / "copy.wav")
        wav = read_wav(tmp_path / "copy.wav")
        assert wav.samples.shape == (800 * count, 2)
    out.close()
    assert path.stat().st_size == 44 + 3 * 800 * 4
