"""Music on hold: the source (directory of WAVs or the generated default) and the player
that sends it from a relay leg's socket, over real loopback UDP."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media.g711 import alaw_decode, ulaw_decode
from media.moh import FRAME, MohError, MohMusic, MohPlayer, MohSource, default_music, moh_codec
from media.ports import PortAllocator
from media.relay import RelaySession
from media.rtp import RtpHeader
from media.sdp import AudioStream, Codec
from media.wav import write_wav
from tests.interop.peers import free_port

HOST = "127.0.0.1"
WAIT = 2.0  # bound on every wait for a packet; never reached when things work
PCMU = Codec(0, "PCMU", 8000)
PCMA = Codec(8, "PCMA", 8000)
G722 = Codec(9, "G722", 8000)
OPUS = Codec(111, "opus", 48000, 2)


def tone(hz: float, seconds: float, rate: int = 8000, level: float = 0.3) -> npt.NDArray[np.int16]:
    t = np.arange(round(seconds * rate)) / rate
    return np.round(level * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def peak_hz(x: npt.ArrayLike, rate: int = 8000) -> float:
    x = np.asarray(x, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


# -- the music ----------------------------------------------------------------------


def test_default_music_is_quiet_tonal_and_loops_in_whole_frames() -> None:
    x = default_music().astype(np.float64) / 32768
    assert 10.0 <= len(x) / 8000 <= 20.0
    assert 0.05 < np.max(np.abs(x)) <= 0.12  # about -20 dBFS: quiet, never silent
    rms = np.sqrt(np.mean(x**2))
    assert 0.005 < rms < 0.05
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / 8000)
    in_band = spectrum[(freqs >= 150) & (freqs <= 3400)].sum()
    assert in_band / spectrum.sum() > 0.99  # all of it in the telephone band
    music = MohMusic.from_samples(default_music(), ())
    assert len(music.pcmu) == len(music.pcma) and len(music.pcmu) % FRAME == 0


def test_no_directory_or_an_empty_one_plays_the_default(tmp_path: Path) -> None:
    assert MohSource(None).load().names == ()
    assert MohSource(tmp_path / "absent").load().names == ()
    (tmp_path / "moh").mkdir()
    music = MohSource(tmp_path / "moh").load()
    assert music.names == () and music.seconds > 10


def test_files_play_in_name_order_converted_to_8k_mono(tmp_path: Path) -> None:
    moh = tmp_path / "moh"
    moh.mkdir()
    # 44.1 kHz stereo and 16 kHz mono: both come out 8 kHz mono.
    left = tone(600, 1.0, 44100)
    write_wav(moh / "b-second.wav", np.stack([left, left], axis=1), 44100)
    write_wav(moh / "a-first.wav", tone(400, 1.0, 16000), 16000)
    music = MohSource(moh).load()
    assert music.names == ("a-first.wav", "b-second.wav")
    samples = ulaw_decode(music.pcmu)
    assert len(samples) == 16000
    assert abs(peak_hz(samples[:8000]) - 400) < 5
    assert abs(peak_hz(samples[8000:]) - 600) < 5
    assert abs(peak_hz(alaw_decode(music.pcma)[8000:]) - 600) < 5


def test_changes_are_picked_up_and_unchanged_files_not_reread(tmp_path: Path) -> None:
    moh = tmp_path / "moh"
    moh.mkdir()
    write_wav(moh / "one.wav", tone(500, 0.5), 8000)
    source = MohSource(moh)
    first = source.load()
    assert source.load() is first  # nothing changed: the same object, no reading
    write_wav(moh / "two.wav", tone(700, 0.5), 8000)
    second = source.load()
    assert second.names == ("one.wav", "two.wav")
    write_wav(moh / "one.wav", tone(900, 0.25), 8000)  # replaced: another size
    os.utime(moh / "one.wav", ns=(1, 1))
    third = source.load()
    assert third.seconds == pytest.approx(0.75, abs=0.02)  # padded to whole frames
    assert abs(peak_hz(ulaw_decode(third.pcmu)[:2000]) - 900) < 5
    for f in moh.glob("*.wav"):
        f.unlink()
    assert source.load().names == ()  # back to the default


def test_unreadable_files_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    moh = tmp_path / "moh"
    moh.mkdir()
    (moh / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with caplog.at_level(logging.WARNING, logger="media.moh"):
        assert MohSource(moh).load().names == ()
    assert "broken.wav" in caplog.text
    write_wav(moh / "good.wav", tone(500, 0.5), 8000)
    assert MohSource(moh).load().names == ("good.wav",)


async def test_music_loads_in_a_thread(tmp_path: Path) -> None:
    moh = tmp_path / "moh"
    moh.mkdir()
    write_wav(moh / "x.wav", tone(500, 0.5), 8000)
    music = await MohSource(moh).music()
    assert music.names == ("x.wav",)


@pytest.mark.parametrize(
    ("codec", "key"),
    [(PCMU, "pcmu"), (PCMA, "pcma"), (Codec(18, "G729", 8000), None), (OPUS, None)],
)
def test_moh_codec(codec: Codec, key: str | None) -> None:
    assert moh_codec(AudioStream(HOST, 4000, 4001, codec, 101, "recvonly")) == key
    assert moh_codec(None) is None


def test_encoded_refuses_other_codecs() -> None:
    music = MohMusic.from_samples(tone(500, 0.1), ())
    assert music.encoded("pcmu") is music.pcmu
    with pytest.raises(MohError, match="no music on hold in g722"):
        music.encoded("g722")


# -- the player ---------------------------------------------------------------------


class Phone:
    """A test phone: one non-blocking UDP socket on loopback."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def stream(self, codec: Codec = PCMU, direction: str = "sendrecv") -> AudioStream:
        return AudioStream(HOST, self.port, self.port + 1, codec, 101, direction)

    async def receive(self, timeout: float = WAIT) -> tuple[bytes, tuple[str, int]]:
        loop = asyncio.get_running_loop()
        data, address = await asyncio.wait_for(loop.sock_recvfrom(self.sock, 2048), timeout)
        return data, address

    async def nothing_within(self, seconds: float) -> bool:
        try:
            await self.receive(seconds)
        except TimeoutError:
            return True
        return False


@pytest.fixture
def phones() -> Iterator[tuple[Phone, Phone]]:
    a, b = Phone(), Phone()
    yield a, b
    a.sock.close()
    b.sock.close()


@pytest.fixture
async def relay(phones: tuple[Phone, Phone]) -> AsyncIterator[RelaySession]:
    base = free_port(20)
    session = RelaySession(PortAllocator(HOST, base, base + 19), name="moh-test")
    session.set_signalling("a", HOST)  # the phones' SIP comes from HOST: trusted targets
    session.set_signalling("b", HOST)
    yield session
    session.close()


def rtp(seq: int, ssrc: int, payload: bytes = b"\x55" * FRAME) -> bytes:
    return bytes(RtpHeader(0, seq, seq * FRAME, ssrc)) + payload


@pytest.mark.parametrize(("codec", "decode"), [(PCMU, ulaw_decode), (PCMA, alaw_decode)])
async def test_player_sends_framed_music_from_the_held_legs_socket(
    relay: RelaySession, phones: tuple[Phone, Phone], codec: Codec, decode: object
) -> None:
    a, b = phones
    relay.set_remote("a", a.stream(PCMU, "sendonly"))
    relay.set_remote("b", b.stream(codec, "recvonly"))
    music = MohMusic.from_samples(tone(700, 1.0), ("t.wav",))
    player = MohPlayer(relay, "b", music)
    player.start()
    try:
        packets = [await b.receive() for _ in range(25)]
    finally:
        player.stop()
    assert {source for _, source in packets} == {(HOST, relay.b.port)}
    headers = [RtpHeader.parse(data) for data, _ in packets]
    assert [h.marker for h in headers] == [True] + [False] * 24
    assert {h.payload_type for h in headers} == {codec.payload_type}
    assert {h.ssrc for h in headers} == {player.ssrc}
    seqs = [h.sequence for h in headers]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(25)]
    stamps = [h.timestamp for h in headers]
    # One frame per step; a tick the loop ran late skips the frames it missed (the
    # timestamp keeps to the clock, RFC 3550 §5.1), so a step is a whole number of frames.
    steps = [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(stamps)]
    assert all(step % FRAME == 0 and 0 < step <= 50 * FRAME for step in steps), steps
    assert {len(data) for data, _ in packets} == {12 + FRAME}
    audio = np.concatenate([decode(data[12:]) for data, _ in packets])  # type: ignore[operator]
    assert abs(peak_hz(audio) - 700) < 10
    assert np.array_equal(audio[:FRAME], decode(music.encoded(codec.key)[:FRAME]))  # type: ignore[operator]


async def test_other_phone_is_muted_while_music_plays_then_forwarded_again(
    relay: RelaySession, phones: tuple[Phone, Phone]
) -> None:
    a, b = phones
    relay.set_remote("a", a.stream(PCMU, "sendonly"))
    relay.set_remote("b", b.stream(PCMU, "recvonly"))
    player = MohPlayer(relay, "b", MohMusic.from_samples(tone(700, 1.0), ()))
    player.start()
    for seq in range(5):  # the holding phone keeps sending: none of it reaches b
        a.sock.sendto(rtp(seq, 0xA), (HOST, relay.a.port))
    heard = [(await b.receive())[0] for _ in range(15)]
    assert {RtpHeader.parse(data).ssrc for data in heard} == {player.ssrc}
    assert relay.a.stats.packets == 5  # received and counted, not forwarded
    last_music = heard[-1]
    player.stop()
    a.sock.sendto(rtp(9, 0xA, b"\x12" * FRAME), (HOST, relay.a.port))
    # Same socket, same order: the music sent before stop() comes first, then a's packet,
    # on the stream b has been hearing (one SSRC per leg, marked as a new talkspurt).
    music = RtpHeader.parse(last_music)
    while not (data := (await b.receive())[0]).endswith(b"\x12" * FRAME):
        music = RtpHeader.parse(data)
    header = RtpHeader.parse(data)
    assert (header.ssrc, header.marker) == (player.ssrc, True)
    assert header.sequence == (music.sequence + 1) & 0xFFFF
    assert await b.nothing_within(0.2)  # and no music after it
    assert not player.playing


async def test_player_stops_when_the_session_closes(
    relay: RelaySession, phones: tuple[Phone, Phone]
) -> None:
    a, b = phones
    relay.set_remote("a", a.stream())
    relay.set_remote("b", b.stream())
    player = MohPlayer(relay, "b", MohMusic.from_samples(tone(700, 1.0), ()))
    player.start()
    await b.receive()
    relay.close()
    while True:  # what was sent before close, then nothing
        try:
            await b.receive(0.2)
        except TimeoutError:
            break
    assert not player.playing
    player.stop()  # harmless after the fact


@pytest.mark.parametrize("codec", [G722, OPUS])
async def test_no_player_for_other_codecs(
    relay: RelaySession, phones: tuple[Phone, Phone], codec: Codec
) -> None:
    a, b = phones
    relay.set_remote("a", a.stream(codec))
    relay.set_remote("b", b.stream(codec))
    with pytest.raises(MohError, match=f"leg b has {codec.name}"):
        MohPlayer(relay, "b", MohMusic.from_samples(tone(700, 0.1), ()))


async def test_no_player_before_negotiation(relay: RelaySession) -> None:
    with pytest.raises(MohError, match="nothing negotiated"):
        MohPlayer(relay, "a", MohMusic.from_samples(tone(700, 0.1), ()))


async def test_player_skips_slots_after_a_stall(
    relay: RelaySession, phones: tuple[Phone, Phone]
) -> None:
    """A loop that stalled half a second: the next packet's timestamp jumps by the slots
    lost (the music keeps time) while the sequence number goes on by one (no loss)."""
    a, b = phones
    relay.set_remote("a", a.stream())
    relay.set_remote("b", b.stream())
    player = MohPlayer(relay, "b", MohMusic.from_samples(tone(700, 2.0), ()))
    player.start()
    try:
        first = RtpHeader.parse((await b.receive())[0])
        assert player._handle is not None
        player._handle.cancel()
        player._next -= 0.5  # as if the loop had been blocked for half a second
        player._tick()
        second = RtpHeader.parse((await b.receive())[0])
    finally:
        player.stop()
    assert second.sequence == (first.sequence + 1) & 0xFFFF
    frames, rest = divmod((second.timestamp - first.timestamp) & 0xFFFFFFFF, FRAME)
    assert rest == 0 and 25 <= frames <= 30  # 1 + the ~24 slots lost (+ scheduling delay)


async def test_held_then_resumed_leg_hears_one_stream(
    relay: RelaySession, phones: tuple[Phone, Phone]
) -> None:
    """Issue 9 §8: what b receives before, during and after music on hold is one RTP
    stream: one SSRC, sequence numbers +1 each, timestamps increasing; the marker bit
    where the source changes."""
    a, b = phones
    relay.set_remote("a", a.stream())
    relay.set_remote("b", b.stream())
    for seq in range(1000, 1005):  # a talks to b: relayed untouched
        a.sock.sendto(rtp(seq, 0xA), (HOST, relay.a.port))
    before = [(await b.receive())[0] for _ in range(5)]
    assert before == [rtp(seq, 0xA) for seq in range(1000, 1005)]
    player = MohPlayer(relay, "b", MohMusic.from_samples(tone(700, 1.0), ()))
    player.start()
    during = [(await b.receive())[0] for _ in range(10)]
    player.stop()
    for seq in range(7, 17):  # a resumes, from another sequence number and timestamp
        a.sock.sendto(rtp(seq, 0xA, b"\x12" * FRAME), (HOST, relay.a.port))
    after = []
    while len(after) < 10:
        data = (await b.receive())[0]
        if data.endswith(b"\x12" * FRAME):
            after.append(data)
        else:
            during.append(data)  # music sent before stop() still in flight
    headers = [RtpHeader.parse(d) for d in before + during + after]
    assert {h.ssrc for h in headers} == {0xA}
    assert player.ssrc == 0xA
    seqs = [h.sequence for h in headers]
    assert seqs == [(1000 + i) & 0xFFFF for i in range(len(headers))]
    stamps = [h.timestamp for h in headers]
    assert all(0 < (y - x) & 0xFFFFFFFF < 0x80000000 for x, y in itertools.pairwise(stamps))
    first_music, first_after = len(before), len(before) + len(during)
    assert [i for i, h in enumerate(headers) if h.marker] == [first_music, first_after]
    assert [d[12:] for d in after] == [b"\x12" * FRAME] * 10


async def test_relay_without_music_keeps_the_plain_fast_path(
    relay: RelaySession, phones: tuple[Phone, Phone]
) -> None:
    a, b = phones
    relay.set_remote("a", a.stream())
    relay.set_remote("b", b.stream())
    a.sock.sendto(rtp(1, 0xA), (HOST, relay.a.port))
    assert (await b.receive())[0] == rtp(1, 0xA)
    assert relay.b.continuity is None and relay.a.continuity is None


async def test_no_music_to_a_phone_that_never_sent_media(
    relay: RelaySession, phones: tuple[Phone, Phone]
) -> None:
    """Issue 10 §6: b's SDP names an address on a host b does not signal from (a victim):
    music on hold plays to nobody."""
    a, b = phones
    relay.set_signalling("b", "127.0.0.2")
    relay.set_remote("a", a.stream())
    relay.set_remote("b", b.stream())
    player = MohPlayer(relay, "b", MohMusic.from_samples(tone(700, 1.0), ()))
    player.start()
    try:
        assert await b.nothing_within(0.3)
        assert player.sent == 0
    finally:
        player.stop()
