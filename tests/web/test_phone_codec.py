"""The browser phone's codec work (acd.web.phone_codec, media.opus) without a browser:
Opus straight to and from 8 kHz (pass band, stop band, tones through), G.711 passed or
translated byte for byte, and the tap that takes payloads from aiortc's receiver."""

from __future__ import annotations

import fractions

import av
import numpy as np
import numpy.typing as npt
import pytest
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from acd.web.phone_codec import FRAME, FromBrowser, ToBrowser, codec_of
from acd.web.phone_webrtc import install_tap
from media.errors import MediaError
from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from media.opus import OpusDecoder, OpusEncoder
from tests.web.phone import peak_hz

BROWSER_RATE = 48000


def browser_packets(hz: float, frames: int, bitrate: int = 32000) -> list[bytes]:
    """What a browser sends: `hz` at 48 kHz mono, Opus (libopus, VoIP), 20 ms packets."""
    enc = av.CodecContext.create("libopus", "w")
    assert isinstance(enc, av.AudioCodecContext)
    enc.sample_rate, enc.layout, enc.format = BROWSER_RATE, "mono", "s16"
    enc.bit_rate = bitrate
    enc.time_base = fractions.Fraction(1, BROWSER_RATE)
    enc.options = {"application": "voip"}
    t = np.arange(960 * frames) / BROWSER_RATE
    wave = (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    out: list[bytes] = []
    for i in range(frames):
        frame = av.AudioFrame.from_ndarray(
            wave[i * 960 : (i + 1) * 960].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = BROWSER_RATE, i * 960
        out += [bytes(p) for p in enc.encode(frame)]
    return out


def level(samples: npt.NDArray[np.int16], amplitude: float = 8000.0) -> float:
    """RMS of `samples` against a sine of `amplitude`."""
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)) / (amplitude / np.sqrt(2)))


def tone8k(hz: float, samples: int, amplitude: float = 8000.0) -> npt.NDArray[np.int16]:
    t = np.arange(samples) / 8000
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


# Telephone band kept (flat to 3.4 kHz); above 4 kHz it would alias into the band: at
# least 40 dB down from 4.7 kHz (libopus clears the bands above the output's Nyquist).
TONES = [(300, True), (1000, True), (3000, True), (3400, True)]
TONES += [(4700, False), (6500, False), (12000, False), (20000, False)]


@pytest.mark.parametrize("bitrate", [32000, 96000])  # a browser's usual, aiortc's own
@pytest.mark.parametrize(("hz", "passes"), TONES)
def test_opus_decoded_at_8k_keeps_the_band_and_stops_aliases(
    hz: float, passes: bool, bitrate: int
) -> None:
    decoder = OpusDecoder()
    out = np.concatenate([decoder.decode(p) for p in browser_packets(hz, 40, bitrate)])
    assert len(out) == 40 * FRAME
    steady = out[1600:]
    if passes:
        assert level(steady) > 0.85
        assert abs(peak_hz(steady) - hz) < 15
    else:
        assert level(steady) < 0.01


def test_opus_encoded_from_8k_is_a_browser_tone() -> None:
    """ToBrowser's Opus (from the switch's μ-law) decodes at 48 kHz, as a browser does,
    to the same tone; silence to silence."""
    to = ToBrowser("opus")
    tone = ulaw_encode(tone8k(1000, 50 * FRAME)).tobytes()
    packets = [to.packet(tone[i * FRAME : (i + 1) * FRAME], "pcmu") for i in range(50)]
    packets += [to.packet(None, "pcmu") for _ in range(25)]
    assert all(0 < len(p) < 200 for p in packets)
    dec = av.CodecContext.create("libopus", "r")
    assert isinstance(dec, av.AudioCodecContext)
    pcm = [
        np.asarray(f.to_ndarray()).reshape(-1) for p in packets for f in dec.decode(av.Packet(p))
    ]
    assert all(len(p) % 960 == 0 for p in pcm)  # 48 kHz (a stereo decoder: pairs)
    channels = len(pcm[0]) // 960
    decoded = np.concatenate(pcm)[::channels]
    heard, quiet = decoded[9600:48000], decoded[-9600:]
    assert abs(peak_hz(heard, BROWSER_RATE) - 1000) < 15 and level(heard) > 0.8
    assert level(quiet) < 0.01


def test_browser_opus_to_switch_law() -> None:
    """FromBrowser: a browser's Opus tone comes out as 20 ms A-law frames of the tone."""
    fb = FromBrowser("opus")
    frames = [f for p in browser_packets(1000, 50) for f in fb.feed(p, "pcma")]
    assert len(frames) == 50 and all(len(f) == FRAME for f in frames)
    pcm = alaw_decode(b"".join(frames))[1600:]
    assert abs(peak_hz(pcm) - 1000) < 15 and level(pcm) > 0.85
    assert fb.feed(b"\xff\xff\xff", "pcma") == [] and fb.bad == 1  # garbage: dropped


@pytest.mark.parametrize(
    ("browser", "switch", "convert"),
    [
        ("pcmu", "pcmu", lambda b: b),
        ("pcma", "pcma", lambda b: b),
        ("pcmu", "pcma", lambda b: alaw_encode(ulaw_decode(b)).tobytes()),
        ("pcma", "pcmu", lambda b: ulaw_encode(alaw_decode(b)).tobytes()),
    ],
)
def test_g711_passes_as_bytes(browser: str, switch: str, convert: object) -> None:
    """G.711 both ways: the same bytes for the same law, else one code for one code (the
    same as decoding and encoding); a 40 ms browser packet is two frames."""
    assert callable(convert)
    every = bytes(range(256)) * 5  # 1280 bytes: eight frames
    fb, tb = FromBrowser(browser), ToBrowser(browser)
    got = fb.feed(every[:320], switch) + fb.feed(every[320:400], switch)
    got += fb.feed(every[400:], switch)
    assert got == [convert(every[i : i + FRAME]) for i in range(0, len(every), FRAME)]
    back = [tb.packet(convert(every[i : i + FRAME]), switch) for i in range(0, 1280, FRAME)]
    if browser == switch:
        assert back == [every[i : i + FRAME] for i in range(0, 1280, FRAME)]
    silence = (ulaw_encode if browser == "pcmu" else alaw_encode)(np.zeros(FRAME, np.int16))
    assert tb.packet(None, switch) == silence.tobytes()


def test_bad_input_is_a_clear_error() -> None:
    assert codec_of("audio/PCMU") == "pcmu" and codec_of("audio/G722") is None
    with pytest.raises(MediaError, match="G722"):
        FromBrowser("G722")
    with pytest.raises(MediaError, match=r"not G\.711"):
        FromBrowser("pcmu").feed(b"\xff" * FRAME, "opus")
    with pytest.raises(MediaError, match="libopus"):
        OpusEncoder().encode(np.zeros(100, np.int16))  # no Opus frame is 12.5 ms
    with pytest.raises(MediaError, match="2000 bytes"):
        OpusDecoder().decode(b"\x00" * 2000)


async def test_tap_takes_payloads_from_aiortcs_receiver() -> None:
    """The receiver's encoded payloads come to the sink on the loop; its decoder thread
    gets its end signal only when the receiver stops (this aiortc must allow it: else the
    gateway falls back to decoding aiortc's way, 48 kHz stereo in a thread)."""
    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("audio").receiver
        got: list[tuple[str, bytes]] = []
        assert install_tap(receiver, lambda codec, data: got.append((codec.mimeType, data)))
        tap = receiver._RTCRtpReceiver__decoder_queue  # type: ignore[attr-defined]
        pcmu = RTCRtpCodecParameters(mimeType="audio/PCMU", clockRate=8000, payloadType=0)
        tap.put((pcmu, JitterFrame(data=b"\x01\x02", timestamp=0)))
        assert got == [("audio/PCMU", b"\x01\x02")]
        tap.put(None)
        assert tap.get() is None
    finally:
        await pc.close()
