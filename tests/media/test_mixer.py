"""media.mixer: who hears whom, measured on the audio (tone amplitudes), plus exact bytes.

Each speaking party sends its own tone; what a party receives is decoded and the
amplitude of every tone in it measured (Goertzel over whole frames: the tones sit on
exact frequency bins). "Hears" is an amplitude near the sent one, "does not hear" is
below the G.711 quantisation noise floor (about -45 dB under the tones here).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Hashable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import media.mixer as mixer_module
from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from media.g711_tables import ALAW_TO_ULAW, ULAW_TO_ALAW
from media.mixer import FRAME, MAX_QUEUE_FRAMES, Law, Mixer, MixerError, Role, db

RATE = 8000
TICKS = 25  # half a second
AMPLITUDE = 8000.0
HEARD = 0.8 * AMPLITUDE  # a tone heard at full level keeps at least this amplitude
SILENT = 0.03 * AMPLITUDE  # ... and one not heard stays below this (-30 dB)
TONES = (400.0, 700.0, 1100.0, 1700.0, 2300.0)

ENCODE: dict[Law, Callable[[npt.ArrayLike], npt.NDArray[np.uint8]]] = {
    Law.PCMU: ulaw_encode,
    Law.PCMA: alaw_encode,
}
DECODE: dict[Law, Callable[[bytes], npt.NDArray[np.int16]]] = {
    Law.PCMU: ulaw_decode,
    Law.PCMA: alaw_decode,
}


def tone(freq: float, law: Law, ticks: int = TICKS, amplitude: float = AMPLITUDE) -> list[bytes]:
    """`ticks` 20 ms payloads of a sine at `freq` in `law`."""
    t = np.arange(ticks * FRAME) / RATE
    samples = np.round(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    codes = ENCODE[law](samples).tobytes()
    return [codes[i * FRAME : (i + 1) * FRAME] for i in range(ticks)]


def amplitude(samples: npt.NDArray[np.float64], freq: float) -> float:
    """Amplitude of the sine at `freq` in `samples` (Goertzel, one bin)."""
    n = samples.size
    k = round(freq * n / RATE)
    coeff = 2 * np.cos(2 * np.pi * k / n)
    s1 = s2 = 0.0
    for x in samples.tolist():
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return float(2 * np.sqrt(max(power, 0.0)) / n)


Feeds = dict[Hashable, list[bytes | None]]


def run(mixer: Mixer, feeds: Feeds, ticks: int = TICKS) -> dict[Hashable, list[bytes]]:
    """Feed each party its payload of each tick (None: nothing) and mix; outputs per party."""
    heard: dict[Hashable, list[bytes]] = {}
    for i in range(ticks):
        for party, payloads in feeds.items():
            payload = payloads[i] if i < len(payloads) else None
            if payload is not None:
                mixer.feed(party, payload)
        for party, payload in mixer.mix_all().items():
            assert len(payload) == FRAME
            heard.setdefault(party, []).append(payload)
    return heard


def levels(mixer: Mixer, payloads: list[bytes], party: Hashable) -> dict[float, float]:
    """Amplitude of each test tone in what `party` received (decoded in its law)."""
    info = mixer.party(party)
    assert info is not None
    audio = DECODE[info.law](b"".join(payloads)).astype(np.float64)
    return {f: amplitude(audio, f) for f in TONES}


def assert_hears(got: dict[float, float], heard: set[float]) -> None:
    for freq, level in got.items():
        if freq in heard:
            assert level > HEARD, f"{freq} Hz should be heard: {got}"
        else:
            assert level < SILENT, f"{freq} Hz should not be heard: {got}"


LAWS3 = [
    (Law.PCMU, Law.PCMU, Law.PCMU),
    (Law.PCMA, Law.PCMA, Law.PCMA),
    (Law.PCMU, Law.PCMA, Law.PCMU),
    (Law.PCMA, Law.PCMU, Law.PCMA),
]


@pytest.mark.parametrize("laws", LAWS3, ids=lambda laws: "-".join(x.name for x in laws))
def test_three_parties_each_hear_the_other_two_not_themselves(laws: tuple[Law, ...]) -> None:
    mixer = Mixer()
    names = ["a", "b", "c"]
    for name, law in zip(names, laws, strict=True):
        mixer.join("room", name, law)
    freq = dict(zip(names, TONES, strict=False))
    out = run(mixer, {n: list(tone(freq[n], law)) for n, law in zip(names, laws, strict=True)})
    for name in names:
        assert_hears(levels(mixer, out[name], name), {freq[o] for o in names if o != name})


def test_listen_only_hears_everyone_and_nobody_hears_it() -> None:
    mixer = Mixer()
    mixer.join(1, "a", Law.PCMU)
    mixer.join(1, "b", Law.PCMA)
    mixer.join(1, "monitor", Law.PCMU, Role.LISTEN)
    out = run(
        mixer,
        {
            "a": list(tone(400, Law.PCMU)),
            "b": list(tone(700, Law.PCMA)),
            "monitor": list(tone(1100, Law.PCMU)),  # it talks; nobody may hear it
        },
    )
    assert_hears(levels(mixer, out["a"], "a"), {700})
    assert_hears(levels(mixer, out["b"], "b"), {400})
    assert_hears(levels(mixer, out["monitor"], "monitor"), {400, 700})


def test_whisperer_is_heard_by_its_party_only_and_hears_everyone() -> None:
    mixer = Mixer()
    mixer.join("q", "agent", Law.PCMU)
    mixer.join("q", "customer", Law.PCMA)
    mixer.join("q", "observer", Law.PCMU, Role.LISTEN)
    mixer.join("q", "coach", Law.PCMA, Role.WHISPER, whisper_to="agent")
    out = run(
        mixer,
        {
            "agent": list(tone(400, Law.PCMU)),
            "customer": list(tone(700, Law.PCMA)),
            "coach": list(tone(1700, Law.PCMA)),
        },
    )
    assert_hears(levels(mixer, out["agent"], "agent"), {700, 1700})
    assert_hears(levels(mixer, out["customer"], "customer"), {400})
    assert_hears(levels(mixer, out["observer"], "observer"), {400, 700})
    assert_hears(levels(mixer, out["coach"], "coach"), {400, 700})


def test_two_whisperers_to_one_party_are_both_heard() -> None:
    mixer = Mixer()
    mixer.join(0, "a", Law.PCMU)
    mixer.join(0, "b", Law.PCMU)
    mixer.join(0, "w1", Law.PCMU, Role.WHISPER, whisper_to="a")
    mixer.join(0, "w2", Law.PCMA, Role.WHISPER, whisper_to="a")
    out = run(
        mixer,
        {
            "a": list(tone(400, Law.PCMU)),
            "w1": list(tone(1100, Law.PCMU)),
            "w2": list(tone(2300, Law.PCMA)),
        },
    )
    assert_hears(levels(mixer, out["a"], "a"), {1100, 2300})
    assert_hears(levels(mixer, out["b"], "b"), {400})
    assert_hears(levels(mixer, out["w1"], "w1"), {400})


def test_a_whisper_to_a_party_of_another_room_reaches_nobody() -> None:
    mixer = Mixer()
    mixer.join("r1", "a", Law.PCMU)
    mixer.join("r2", "b", Law.PCMU)
    mixer.join("r1", "w", Law.PCMU, Role.WHISPER, whisper_to="b")
    out = run(mixer, {"a": list(tone(400, Law.PCMU)), "w": list(tone(1100, Law.PCMU))})
    assert_hears(levels(mixer, out["a"], "a"), set())
    assert_hears(levels(mixer, out["b"], "b"), set())
    assert_hears(levels(mixer, out["w"], "w"), {400})


def test_rooms_do_not_hear_each_other_and_batching_changes_no_byte() -> None:
    """Two rooms in one mixer give exactly the bytes each gives in a mixer of its own."""
    together = Mixer()
    alone = {"r1": Mixer(), "r2": Mixer()}
    members = {"r1": [("a", Law.PCMU), ("b", Law.PCMA)], "r2": [("c", Law.PCMA), ("d", Law.PCMU)]}
    feeds: Feeds = {}
    for (room, parties), freqs in zip(members.items(), [(400, 700), (1100, 1700)], strict=True):
        for (party, law), freq in zip(parties, freqs, strict=True):
            together.join(room, party, law)
            alone[room].join(room, party, law)
            feeds[party] = list(tone(freq, law))
    joint = run(together, feeds)
    for room, parties in members.items():
        own = run(alone[room], {p: feeds[p] for p, _ in parties})
        for party, _ in parties:
            assert joint[party] == own[party]
    assert_hears(levels(together, joint["a"], "a"), {700})
    assert_hears(levels(together, joint["c"], "c"), {1700})


@pytest.mark.parametrize(
    ("speaker", "listener", "translate"),
    [
        (Law.PCMU, Law.PCMU, None),
        (Law.PCMA, Law.PCMA, None),
        (Law.PCMU, Law.PCMA, ULAW_TO_ALAW),
        (Law.PCMA, Law.PCMU, ALAW_TO_ULAW),
    ],
)
def test_one_speaker_reaches_a_listener_code_for_code(
    speaker: Law, listener: Law, translate: bytes | None
) -> None:
    """With one voice and unity gains the mix is that voice: the same codes (or the
    relay's law-to-law table), so the mixer adds no distortion of its own."""
    mixer = Mixer()
    mixer.join("r", "s", speaker)
    mixer.join("r", "l", listener)
    sent = [bytes(range(256))[:FRAME], bytes(range(96, 256))]
    out = run(mixer, {"s": list(sent)}, ticks=2)
    expect = [p if translate is None else p.translate(translate) for p in sent]
    if speaker is Law.PCMU and listener is Law.PCMU:  # μ-law -0 (0x7F) comes back as +0
        expect = [p.replace(b"\x7f", b"\xff") for p in expect]
    assert out["l"] == expect


def test_talk_gain_scales_what_the_room_hears_and_listen_gain_what_one_hears() -> None:
    mixer = Mixer()
    mixer.join("r", "a", Law.PCMU, talk_gain=db(-6))
    mixer.join("r", "b", Law.PCMU)
    mixer.join("r", "c", Law.PCMU, Role.LISTEN, listen_gain=db(+6))
    out = run(mixer, {"a": list(tone(400, Law.PCMU)), "b": list(tone(700, Law.PCMU))})
    b = levels(mixer, out["b"], "b")
    c = levels(mixer, out["c"], "c")
    assert b[400] == pytest.approx(AMPLITUDE * db(-6), rel=0.03)
    assert c[400] == pytest.approx(AMPLITUDE, rel=0.03)  # -6 dB, then +6 dB
    assert c[700] == pytest.approx(AMPLITUDE * db(6), rel=0.03)


def test_a_talk_gain_of_zero_mutes_and_set_gain_takes_effect_at_the_next_tick() -> None:
    mixer = Mixer()
    mixer.join("r", "a", Law.PCMU, talk_gain=0.0)
    mixer.join("r", "b", Law.PCMU)
    feeds: Feeds = {"a": list(tone(400, Law.PCMU, ticks=2 * TICKS))}
    first = run(mixer, {"a": feeds["a"][:TICKS]})
    mixer.set_gain("a", talk=1.0)
    second = run(mixer, {"a": feeds["a"][TICKS:]})
    assert_hears(levels(mixer, first["b"], "b"), set())
    assert_hears(levels(mixer, second["b"], "b"), {400})


def test_gains_must_be_finite_and_not_negative() -> None:
    mixer = Mixer()
    with pytest.raises(MixerError):
        mixer.join("r", "a", Law.PCMU, talk_gain=-1.0)
    mixer.join("r", "a", Law.PCMU)
    with pytest.raises(MixerError):
        mixer.set_gain("a", listen=float("nan"))
    with pytest.raises(MixerError):
        mixer.set_gain("nobody", talk=1.0)


@pytest.mark.parametrize("law", [Law.PCMU, Law.PCMA])
@pytest.mark.parametrize("sign", [1, -1])
def test_a_sum_beyond_16_bits_is_clipped_never_wrapped(law: Law, sign: int) -> None:
    mixer = Mixer()
    mixer.join("r", "a", law)
    mixer.join("r", "b", law)
    mixer.join("r", "ear", law, Role.LISTEN)
    loud = ENCODE[law](np.full(FRAME, sign * 30000)).tobytes()
    out = run(mixer, {"a": [loud], "b": [loud]}, ticks=1)
    heard = DECODE[law](out["ear"][0])
    extreme = DECODE[law](ENCODE[law]([sign * 32767]).tobytes())[0]
    assert (heard == extreme).all()


def test_a_missing_frame_is_silence_and_never_holds_the_others_up() -> None:
    mixer = Mixer()
    for party in ("a", "b", "c"):
        mixer.join("r", party, Law.PCMU)
    a = list(tone(400, Law.PCMU))
    gappy: list[bytes | None] = [p if i % 2 else None for i, p in enumerate(a)]
    out = run(mixer, {"a": gappy, "b": list(tone(700, Law.PCMU))})  # c sends nothing at all
    assert all(len(out[p]) == TICKS for p in ("a", "b", "c"))  # one payload each tick
    c = [DECODE[Law.PCMU](frame).astype(np.float64) for frame in out["c"]]
    for i in range(TICKS):
        # c hears b alone when a's frame is missing, a and b together when it is there
        want = {700} if i % 2 == 0 else {400, 700}
        got = {f: amplitude(c[i], f) for f in (400.0, 700.0)}
        assert {f for f, level in got.items() if level > HEARD} == want, (i, got)
    assert_hears(levels(mixer, out["a"], "a"), {700})


@pytest.mark.parametrize("law", [Law.PCMU, Law.PCMA])
def test_nobody_speaking_is_digital_silence(law: Law) -> None:
    mixer = Mixer()
    mixer.join("r", "a", law)
    mixer.join("r", "b", law)
    out = mixer.mix_all()
    assert set(out) == {"a", "b"}
    for payload in out.values():
        assert np.abs(DECODE[law](payload)).max() <= 8  # the smallest code of the law


def test_packets_of_other_sizes_are_regrouped_into_20ms_frames() -> None:
    mixer = Mixer()
    mixer.join("r", "a", Law.PCMU)
    mixer.join("r", "b", Law.PCMU)
    stream = b"".join(tone(400, Law.PCMU, ticks=6))
    mixer.feed("a", stream[:80])  # half a frame: not enough for this tick
    assert mixer.mix_all()["b"] == ulaw_silence()
    mixer.feed("a", stream[80:400])  # 40 ms more: one frame now, the rest queued
    assert mixer.mix_all()["b"] == stream[:160]
    assert mixer.mix_all()["b"] == stream[160:320]
    assert mixer.mix_all()["b"] == ulaw_silence()  # 80 octets wait for their other half
    mixer.feed("a", stream[400:480])
    assert mixer.mix_all()["b"] == stream[320:480]


def test_a_burst_is_bounded_keeping_the_newest_frames() -> None:
    mixer = Mixer()
    mixer.join("r", "a", Law.PCMU)
    mixer.join("r", "b", Law.PCMU)
    frames = tone(400, Law.PCMU, ticks=10)
    for frame in frames:
        mixer.feed("a", frame)
    kept = MAX_QUEUE_FRAMES + 1
    got = [mixer.mix_all()["b"] for _ in range(kept + 1)]
    assert got == [*frames[-kept:], ulaw_silence()]
    assert mixer.dropped_octets == (10 - kept) * FRAME


def test_the_queue_trims_to_its_bound_after_each_tick() -> None:
    """A phone whose clock runs fast gains at most MAX_QUEUE_FRAMES frames of delay."""
    mixer = Mixer()
    mixer.join("r", "a", Law.PCMU)
    mixer.join("r", "b", Law.PCMU)
    rng = np.random.default_rng(7)
    codes = rng.integers(0x80, 0x100, size=(40, FRAME), dtype=np.uint8)  # no -0 (0x7F)
    frames = [row.tobytes() for row in codes]
    fed = 0
    delays: list[int] = []
    for tick in range(30):
        for _ in range(2 if tick % 3 == 0 else 1):  # 4 frames every 3 ticks
            mixer.feed("a", frames[fed])
            fed += 1
        delays.append(fed - 1 - frames.index(mixer.mix_all()["b"]))
    assert max(delays) == MAX_QUEUE_FRAMES
    assert mixer.dropped_octets == (fed - 30 - MAX_QUEUE_FRAMES) * FRAME


def test_join_and_leave_between_ticks() -> None:
    mixer = Mixer()
    mixer.join("r", "a", Law.PCMU)
    mixer.join("r", "b", Law.PCMA)
    a, b, c = (
        list(tone(f, law)) for f, law in ((400, Law.PCMU), (700, Law.PCMA), (1100, Law.PCMU))
    )
    first = run(mixer, {"a": a, "b": b})
    assert_hears(levels(mixer, first["a"], "a"), {700})
    mixer.join("r", "c", Law.PCMU)
    second = run(mixer, {"a": a, "b": b, "c": c})
    assert_hears(levels(mixer, second["a"], "a"), {700, 1100})
    assert_hears(levels(mixer, second["c"], "c"), {400, 700})
    assert mixer.leave("b")
    assert not mixer.leave("b")
    assert not mixer.feed("b", b[0])  # packets still in flight after leaving: ignored
    third = run(mixer, {"a": a, "b": b, "c": c})
    assert "b" not in third
    assert_hears(levels(mixer, third["a"], "a"), {1100})
    assert mixer.parties("r") == ["a", "c"]
    mixer.leave("a")
    mixer.leave("c")
    assert mixer.rooms() == []
    assert mixer.mix_all() == {}


def test_a_party_that_leaves_and_rejoins_starts_with_an_empty_queue() -> None:
    mixer = Mixer()
    mixer.join("r", "a", Law.PCMU)
    mixer.join("r", "b", Law.PCMU)
    mixer.feed("a", tone(400, Law.PCMU)[0])
    mixer.leave("a")
    mixer.join("r2", "a", Law.PCMU)
    assert mixer.mix_all()["b"] == ulaw_silence()
    assert mixer.rooms() == ["r", "r2"]


def test_set_role_moves_a_speaker_to_listening_and_to_whispering() -> None:
    mixer = Mixer()
    mixer.join("r", "a", Law.PCMU)
    mixer.join("r", "b", Law.PCMU)
    mixer.join("r", "c", Law.PCMU)
    feeds: Feeds = {"a": list(tone(400, Law.PCMU))}
    mixer.set_role("a", Role.LISTEN)
    out = run(mixer, feeds)
    assert_hears(levels(mixer, out["b"], "b"), set())
    mixer.set_role("a", Role.WHISPER, whisper_to="c")
    out = run(mixer, feeds)
    assert_hears(levels(mixer, out["b"], "b"), set())
    assert_hears(levels(mixer, out["c"], "c"), {400})
    info = mixer.party("a")
    assert info is not None and info.role is Role.WHISPER and info.whisper_to == "c"


@pytest.mark.parametrize(
    ("role", "whisper_to"),
    [(Role.WHISPER, None), (Role.WHISPER, "a"), (Role.SPEAK, "b"), (Role.LISTEN, "b")],
)
def test_role_and_whisper_target_must_agree(role: Role, whisper_to: str | None) -> None:
    mixer = Mixer()
    with pytest.raises(MixerError):
        mixer.join("r", "a", Law.PCMU, role, whisper_to=whisper_to)
    assert "a" not in mixer


def test_a_party_is_in_one_room_at_a_time() -> None:
    mixer = Mixer()
    mixer.join("r1", "a", Law.PCMU)
    with pytest.raises(MixerError, match="already in room 'r1'"):
        mixer.join("r2", "a", Law.PCMA)
    assert mixer.parties("r2") == []
    assert len(mixer) == 1


def ulaw_silence() -> bytes:
    return b"\xff" * FRAME


# -- against a reference, on random rooms ---------------------------------------------

GAINS = (0.0, 0.5, 1.0, 2.0)  # powers of two: the float32 batch is exact, bytes must match
Member = tuple[int, int, Law, Role, int | None, float, float]  # party, room, ..., talk, listen
Scene = tuple[list[Member], list[list[bytes | None]]]  # members, frames of each tick


@st.composite
def scenes(draw: st.DrawFn) -> Scene:
    n = draw(st.integers(1, 9))
    members = []
    for party in range(n):
        room = draw(st.integers(0, 2))
        law = draw(st.sampled_from(Law))
        role = draw(st.sampled_from(Role))
        target = None
        if role is Role.WHISPER:
            target = draw(st.integers(0, n).filter(lambda t, p=party: t != p))  # n: nobody
        members.append((party, room, law, role, target, draw(st.sampled_from(GAINS)),
                        draw(st.sampled_from(GAINS[1:]))))  # fmt: skip
    codes = st.binary(min_size=FRAME, max_size=FRAME)
    tick = st.lists(st.none() | codes, min_size=n, max_size=n)
    ticks = draw(st.lists(tick, min_size=1, max_size=3))
    return members, ticks


def reference_mix(members: list[Member], frames: list[bytes | None]) -> dict[int, bytes]:
    """Each party's mix, one sample at a time, straight from the rules."""
    voice: dict[int, list[int]] = {}
    for p, _, law, *_ in members:
        frame = frames[p]
        voice[p] = [0] * FRAME if frame is None else DECODE[law](frame).tolist()
    out = {}
    for p, room, law, _, _, _, listen in members:
        total = [0.0] * FRAME
        for q, q_room, _, q_role, q_target, talk, _ in members:
            reaches_p = q_role is Role.SPEAK or (q_role is Role.WHISPER and q_target == p)
            if q != p and q_room == room and reaches_p:
                total = [t + v * talk for t, v in zip(total, voice[q], strict=True)]
        samples = [int(min(max(t * listen, -32768), 32767)) for t in total]  # toward zero
        out[p] = ENCODE[law](samples).tobytes()
    return out


@settings(max_examples=150, deadline=None)
@given(scenes())
def test_every_room_matches_the_reference_mix(
    scene: Scene,
) -> None:
    members, ticks = scene
    mixer = Mixer()
    for party, room, law, role, target, talk, listen in members:
        mixer.join(room, party, law, role, whisper_to=target, talk_gain=talk, listen_gain=listen)
    for frames in ticks:
        for party, frame in enumerate(frames):
            if frame is not None:
                mixer.feed(party, frame)
        assert mixer.mix_all() == reference_mix(members, frames)


def test_the_mixer_is_pure() -> None:
    """No sockets, no loop, no threads: media/mixer.py imports only numpy and media."""
    tree = ast.parse(Path(mixer_module.__file__).read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    allowed = {"__future__", "enum", "logging", "math", "collections.abc", "dataclasses"}
    assert imported - allowed <= {"numpy", "numpy.typing", "media.errors", "media.g711"}


def test_a_whisper_whose_target_left_reaches_nobody_until_it_is_back() -> None:
    mixer = Mixer()
    mixer.join("r", "a", Law.PCMU)
    mixer.join("r", "b", Law.PCMU)
    mixer.join("r", "w", Law.PCMU, Role.WHISPER, whisper_to="a")
    whisper: Feeds = {"w": list(tone(1100, Law.PCMU))}
    mixer.leave("a")
    out = run(mixer, whisper)
    assert_hears(levels(mixer, out["b"], "b"), set())
    mixer.join("r", "a", Law.PCMA)
    out = run(mixer, whisper)
    assert_hears(levels(mixer, out["a"], "a"), {1100})
    assert_hears(levels(mixer, out["b"], "b"), set())


def test_a_source_party_fed_by_its_owner_reaches_the_whole_room() -> None:
    """Join tones or music into a room: a speaking party nobody sends to."""
    mixer = Mixer()
    mixer.join("r", "a", Law.PCMU)
    mixer.join("r", "b", Law.PCMA)
    mixer.join("r", "tones", Law.PCMU)
    out = run(mixer, {"tones": list(tone(2300, Law.PCMU))})
    assert_hears(levels(mixer, out["a"], "a"), {2300})
    assert_hears(levels(mixer, out["b"], "b"), {2300})
