"""Synthetic answered calls for AMD tests and benchmarks, from several synthesizers.

A call is first drawn as a *recipe* (pure: a seeded generator picks what is said, by
which voice, with which pauses, beep, music and line), then the recipes' phrases are
rendered once each in parallel (`tests.media.amd_voices`) and assembled in numpy into
what a caller hears from the moment of answer.

People (`HUMAN`) answer in the ways that go wrong in practice: a plain "Hello?", their
name, a family or company name (a receptionist's whole sentence), a question back, a
hesitation ("Um, ... hello?"), a second "Hello?" after silence, with background talk or
a television behind them. After their turn they wait: silence (line noise) follows.

Machines (`MACHINE`): personal, business and carrier voicemail greetings, a full
mailbox, a short personal greeting, greetings over music or after a music intro; with a
beep (300–1000 ms, at one of the frequencies machines use) or without. Greetings are
spoken whole (the engine's own pauses) or sentence by sentence with recorded-style
pauses of 0.2–0.8 s.

The line: speech at -35 to -10 dBFS (active level), band-limited noise at 10–40 dB SNR,
some calls clipped, some with 1–5 % packet loss (bursts of 1–3 frames) concealed by
repeating the last frame fading out, or filled with silence; then G.711 (μ-law or A-law).

Two phrase banks: `DEV` (the tests', used while writing the detector) and `BENCH`
(other words, for benchmarks/amd.py). Synthetic speech is not real speech: accuracy
here bounds nothing on real calls; what it does show is how the detector behaves on a
synthesizer it was not written against (leave-one-engine-out).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from tests.media.amd_voices import ENGINES, RATE, VOICES, Audio, Voice, prepare
from tests.media.amd_voices import speak as say

__all__ = ["BENCH", "DEV", "Bank", "Call", "Recipe", "build", "draw", "render", "speak"]


@dataclass(frozen=True, slots=True)
class Bank:
    """What people and machines say, by kind."""

    humans: dict[str, tuple[str, ...]]
    fillers: tuple[str, ...]
    again: tuple[str, ...]  # a second try after silence ("Hello?")
    machines: dict[str, tuple[str, ...]]
    background: tuple[str, ...]  # long monologues for background talk


DEV = Bank(
    humans={
        "plain": ("Hello?", "Hello.", "Yes?", "Hi.", "Yeah, hello?", "Hello, yes?"),
        "name": (
            "Hello, Anna speaking.",
            "Yes, this is Tom.",
            "Hi, Peter here.",
            "Hello, Maria Gonzalez.",
            "Jennifer speaking, hello?",
        ),
        "family": (
            "Miller residence.",
            "Hello, the Johnsons.",
            "Schmidt, hello?",
            "Good evening, Walker household.",
        ),
        "business": (
            "Good morning, Schmidt and Sons, Anna speaking, how can I help you?",
            "Thank you for calling Green Leaf Bakery, this is Marco.",
            "Doctor Patel's office, how may I help you?",
            "Riverside Motors, service desk, Dave speaking.",
        ),
        "question": (
            "Who is this?",
            "Hello? Who's calling, please?",
            "Yes? Can I help you?",
            "Hello, who am I speaking to?",
        ),
    },
    fillers=("Um,", "Uh,", "Oh,", "Hm?"),
    again=("Hello?", "Hello? Anyone there?", "Hello? Can you hear me?"),
    machines={
        "personal": (
            "Hi, you've reached Michael. I can't take your call right now. "
            "Please leave a message after the tone.",
            "Hello, this is Sarah. Sorry I missed you. Leave your name and number and I'll "
            "call you back.",
            "Hey, it's Chris and Lena. We're not home right now, so leave us a message.",
        ),
        "business": (
            "Thank you for calling Green Valley Dental. Our office is currently closed. "
            "Our hours are Monday to Friday, eight to five. Please leave a message and we "
            "will call you back.",
            "You have reached the offices of Baker and Associates. Nobody is available to "
            "take your call. Please leave your name, number and a short message.",
        ),
        "carrier": (
            "The person you are calling is not available. Please record your message after "
            "the tone. When you are finished, hang up or press pound for more options.",
            "The number you have dialed, five five five, one two three, four five six seven, "
            "is not available. Please leave a message after the beep.",
        ),
        "full": (
            "The mailbox is full and cannot accept any messages at this time. Goodbye.",
            "Sorry, the mailbox of the person you are calling is full. Please try again later.",
        ),
        "short": ("Hi, it's Jim. Leave a message.", "This is Kate. Leave a message."),
    },
    background=(
        "And in other news tonight, the city council has approved the new budget for the "
        "coming year, with more money going to schools and public transport.",
        "I told him already that we would be there by six, but he never listens, and then "
        "he wonders why everybody is waiting for him at the door.",
    ),
)

BENCH = Bank(
    humans={
        "plain": (
            "Hallo?",
            "Hey, hello?",
            "Yes, speaking.",
            "Hi there.",
            "Good evening?",
            "Mm, hello?",
        ),
        "name": (
            "Hello, Anna here.",
            "Hi, this is Tom Becker.",
            "David speaking.",
            "Yes, Olga Petrova, hello?",
        ),
        "family": (
            "Hello, Nguyen family.",
            "O'Brien residence, hello?",
            "Hi, you've got the Hendersons.",
        ),
        "business": (
            "Good afternoon, Lakeside Dental, this is Emma, how can I help?",
            "Hello, Fischer Plumbing, Jan speaking.",
            "City Library, front desk, good morning.",
            "Thanks for calling Pizza Roma, what can I get you?",
        ),
        "question": (
            "Yes? Who is it?",
            "Hello? Is somebody there?",
            "Who's calling?",
            "Sorry, who is this?",
        ),
    },
    fillers=("Er,", "Ah,", "Well,", "Mhm?"),
    again=("Hello?", "Hello? Who is it?", "Yes? Hello?"),
    machines={
        "personal": (
            "Hey, it's Dave. Can't get to the phone, leave me a message and I'll get back to you.",
            "Hi! You've got Pete and Maria. We're out, so leave a message at the beep.",
            "You have reached the voicemail of Laura Chen. Please leave your name, number "
            "and a short message.",
        ),
        "business": (
            "Hello, you've reached Green Valley Auto Repair. Our shop is closed for the "
            "day. Please call again during business hours, or leave a message.",
            "Welcome to Harbor View Insurance. All of our agents are busy. Please leave a "
            "detailed message and we'll return your call.",
        ),
        "carrier": (
            "Your call has been forwarded to an automatic voice message system. Seven one "
            "four, two two eight, nine nine zero one is not available. At the tone, please "
            "record your message.",
            "The subscriber you have called is unavailable. Please leave a message after the tone.",
        ),
        "full": (
            "This mailbox is full and can not accept new messages. Goodbye.",
            "The voice mailbox you are trying to reach is full. Please call back later.",
        ),
        "short": ("This is Jim. Leave a message.", "Sam here. Message, please."),
    },
    background=(
        "Temperatures will fall sharply overnight, with frost likely in the valleys and "
        "some fog in the morning, clearing by noon.",
        "No, no, put it on the table over there, next to the flowers, and then come and "
        "help me with the dishes, will you?",
    ),
)


def speak(text: str, voice: str, speed: int) -> Audio:
    """`text` by espeak-ng `voice` at `speed` words per minute, telephone-band, 8 kHz
    (for the DTMF tests' talk-off checks)."""
    return say(Voice("espeak-ng", voice, 170 / speed), text)


# -- recipes -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Say:
    text: str


@dataclass(frozen=True, slots=True)
class Gap:
    seconds: float


@dataclass(frozen=True, slots=True)
class Beep:
    hz: float
    seconds: float
    rel_db: float  # relative to the speech's active level (peak of the sine)


@dataclass(frozen=True, slots=True)
class Music:
    seconds: float
    seed: int


Part = Say | Gap | Beep | Music


@dataclass(frozen=True, slots=True)
class Line:
    """What the telephone line does to the call."""

    level_dbfs: float
    snr_db: float
    law: str  # "ulaw" or "alaw"
    loss: float  # share of frames lost
    conceal: bool  # repeat-and-fade, else silence
    clip: float | None  # clip at this share of the peak, then back to level


@dataclass(frozen=True, slots=True)
class Recipe:
    """One call before rendering."""

    name: str
    label: str
    kind: str
    voice: Voice
    parts: tuple[Part, ...]
    line: Line
    seed: int
    background: tuple[Voice, str, float] | None = None  # (voice, text, rel dB)
    music_bed_db: float | None = None  # music under the whole call, rel dB

    def utterances(self) -> list[tuple[Voice, str]]:
        said = [(self.voice, p.text) for p in self.parts if isinstance(p, Say)]
        if self.background is not None:
            said.append(self.background[:2])
        return said


@dataclass(frozen=True, slots=True)
class Call:
    """One synthetic answered call: what was heard and the truth about it."""

    name: str
    label: str  # "HUMAN" or "MACHINE"
    kind: str
    engine: str
    voice: str
    audio: npt.NDArray[np.int16]
    speech_start: float  # seconds after answer
    speech_end: float  # end of the first turn (HUMAN) or greeting (MACHINE)
    beep_start: float | None = None
    beep_end: float | None = None
    tags: tuple[str, ...] = field(default=())


BEEP_HZ = (440.0, 850.0, 1000.0, 1400.0, 2000.0)


def _line(rng: np.random.Generator) -> Line:
    loss = float(rng.uniform(0.01, 0.05)) if rng.random() < 0.3 else 0.0
    return Line(
        level_dbfs=float(rng.uniform(-35.0, -10.0)),
        snr_db=float(rng.uniform(10.0, 40.0)),
        law="ulaw" if rng.random() < 0.5 else "alaw",
        loss=loss,
        conceal=bool(rng.random() < 0.5),
        clip=float(rng.uniform(0.2, 0.5)) if rng.random() < 0.1 else None,
    )


def _voice(rng: np.random.Generator, engine: str) -> Voice:
    names = VOICES[engine]
    stretch = float(rng.choice([0.8, 0.9, 1.0, 1.0, 1.15, 1.3]))
    return Voice(engine, str(names[int(rng.integers(len(names)))]), stretch)


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return str(options[int(rng.integers(len(options)))])


def _sentences(text: str) -> list[str]:
    out, start = [], 0
    for i, ch in enumerate(text):
        if ch in ".!?" and (i + 1 == len(text) or text[i + 1] == " "):
            out.append(text[start : i + 1].strip())
            start = i + 1
    if text[start:].strip():
        out.append(text[start:].strip())
    return out


#: How often each kind of answer comes (a guess at a dialer's day, not measured): most
#: people say hello or ask who it is; names, families and businesses are the rest.
HUMAN_MIX = {"plain": 0.35, "question": 0.15, "name": 0.15, "family": 0.08, "business": 0.1,
             "hesitation": 0.09, "again": 0.08}  # fmt: skip
#: Likewise for machines: personal and carrier voicemail lead.
MACHINE_MIX = {"personal": 0.35, "carrier": 0.25, "business": 0.15, "music": 0.1,
               "full": 0.08, "short": 0.07}  # fmt: skip


def _kind(rng: np.random.Generator, mix: dict[str, float]) -> str:
    kinds = list(mix)
    weights = np.array([mix[k] for k in kinds])
    return kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]


def human_recipe(rng: np.random.Generator, name: str, engine: str, bank: Bank) -> Recipe:
    voice = _voice(rng, engine)
    kind = _kind(rng, HUMAN_MIX)
    lead = float(rng.uniform(0.2, 1.2))
    parts: list[Part] = [Gap(lead)]
    if kind == "hesitation":
        short = bank.humans["plain"] + bank.humans["question"]
        parts += [Say(_pick(rng, bank.fillers)), Gap(float(rng.uniform(0.3, 0.8))),
                  Say(_pick(rng, short))]  # fmt: skip
    elif kind == "again":
        parts += [Say(_pick(rng, bank.humans["plain"])), Gap(float(rng.uniform(1.5, 3.0))),
                  Say(_pick(rng, bank.again))]  # fmt: skip
    else:
        parts.append(Say(_pick(rng, bank.humans[kind])))
        if rng.random() < 0.3:  # asks again later, after the caller said nothing
            parts += [Gap(float(rng.uniform(1.5, 3.0))), Say(_pick(rng, bank.again))]
    parts.append(Gap(3.5))
    background = None
    music_bed = None
    if rng.random() < 0.2:
        other = _voice(rng, engine)
        background = (other, _pick(rng, bank.background), float(rng.uniform(-25.0, -15.0)))
    elif rng.random() < 0.1:
        music_bed = float(rng.uniform(-25.0, -18.0))  # a television or radio
    seed = int(rng.integers(2**31))
    return Recipe(name, "HUMAN", kind, voice, tuple(parts), _line(rng), seed, background,
                  music_bed)  # fmt: skip


def machine_recipe(rng: np.random.Generator, name: str, engine: str, bank: Bank) -> Recipe:
    voice = _voice(rng, engine)
    kind = _kind(rng, MACHINE_MIX)
    text = _pick(rng, bank.machines["personal" if kind == "music" else kind])
    lead = float(rng.uniform(0.1, 1.5))
    parts: list[Part] = [Gap(lead)]
    music_bed = None
    if kind == "music":
        if rng.random() < 0.5:
            parts += [Music(float(rng.uniform(1.0, 3.0)), int(rng.integers(2**31))), Gap(0.2)]
        else:
            music_bed = float(rng.uniform(-15.0, -8.0))
    if rng.random() < 0.5:
        parts.append(Say(text))
    else:  # as a person records it: sentence by sentence
        for i, sentence in enumerate(_sentences(text)):
            if i:
                parts.append(Gap(float(rng.uniform(0.2, 0.8))))
            parts.append(Say(sentence))
    beep_odds = {"full": 0.0, "carrier": 0.9}.get(kind, 0.65)
    if rng.random() < beep_odds:
        parts += [Gap(float(rng.uniform(0.2, 1.0))),
                  Beep(float(rng.choice(BEEP_HZ)), float(rng.uniform(0.3, 1.0)),
                       float(rng.uniform(-6.0, 3.0)))]  # fmt: skip
    parts.append(Gap(float(rng.uniform(1.5, 3.0))))
    seed = int(rng.integers(2**31))
    return Recipe(name, "MACHINE", kind, voice, tuple(parts), _line(rng), seed, None, music_bed)


def draw(
    seed: int, humans: int, machines: int, engines: Sequence[str] = ENGINES, bank: Bank = DEV
) -> list[Recipe]:
    """`humans` and `machines` recipes per engine (pure: the same arguments, the same list)."""
    rng = np.random.default_rng(seed)
    recipes: list[Recipe] = []
    for engine in engines:
        for i in range(max(humans, machines)):
            if i < humans:
                recipes.append(human_recipe(rng, f"{engine}-h{i}", engine, bank))
            if i < machines:
                recipes.append(machine_recipe(rng, f"{engine}-m{i}", engine, bank))
    return recipes


# -- rendering ---------------------------------------------------------------------------


def active_power(x: Audio) -> float:
    """Mean power of the 20 ms frames within 25 dB of the loudest (speech's active level)."""
    frames = x[: x.size // 160 * 160].reshape(-1, 160)
    if frames.size == 0:
        return 1.0
    power = (frames**2).mean(axis=1)
    return float(power[power >= power.max() * 10 ** (-25 / 10)].mean())


def band_noise(rng: np.random.Generator, n: int) -> Audio:
    """White noise limited to 300–3400 Hz, unit power."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise / np.sqrt(np.mean(noise**2) + 1e-12)


def tone(hz: float, seconds: float, amplitude: float) -> Audio:
    t = np.arange(round(seconds * RATE)) / RATE
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005) if t.size else t  # 5 ms edges
    return amplitude * ramp * np.sin(2 * np.pi * hz * t)


def music(rng: np.random.Generator, seconds: float) -> Audio:
    """Unit-power music-like sound: three-note chords with harmonics, a new chord every
    0.25–0.6 s, plucked envelopes (never one pure tone)."""
    n = round(seconds * RATE)
    out = np.zeros(n)
    at = 0
    while at < n:
        length = min(n - at, round(float(rng.uniform(0.25, 0.6)) * RATE))
        t = np.arange(length) / RATE
        root = 220.0 * 2 ** (int(rng.integers(0, 12)) / 12)
        chord = np.zeros(length)
        for step in (0, 4, 7):
            f0 = root * 2 ** (step / 12)
            for k in (1, 2, 3):
                chord += np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) / k
        out[at : at + length] = chord * np.exp(-t * float(rng.uniform(1.0, 4.0)))
        at += length
    return out / math.sqrt(float(np.mean(out**2)) + 1e-12)


def _lose(rng: np.random.Generator, x: Audio, loss: float, conceal: bool) -> Audio:
    """Drop 20 ms frames in bursts of 1–3; conceal by repeating the last good frame at
    half, then quarter... amplitude, or leave silence."""
    frames = x[: x.size // 160 * 160].reshape(-1, 160).copy()
    i = 0
    while i < len(frames):
        if rng.random() < loss / 2:
            burst = int(rng.integers(1, 4))
            last = frames[i - 1].copy() if i else np.zeros(160)
            for k in range(burst):
                if i + k < len(frames):
                    frames[i + k] = last * 0.5 ** (k + 1) if conceal else 0.0
            i += burst
        else:
            i += 1
    return frames.reshape(-1)


def render(recipe: Recipe) -> Call:
    """Assemble a recipe's audio (its phrases are synthesized, cached, on first use)."""
    rng = np.random.default_rng(recipe.seed)
    said = [say(recipe.voice, p.text) for p in recipe.parts if isinstance(p, Say)]
    speech_power = active_power(np.concatenate(said)) if said else 1.0
    rms = math.sqrt(speech_power)
    chunks: list[Audio] = []
    at = 0.0
    speech_start = speech_end = None
    beep_start = beep_end = None
    first_turn_over = False
    for part in recipe.parts:
        if isinstance(part, Gap):
            chunk = np.zeros(round(part.seconds * RATE))
            if speech_end is not None and recipe.label == "HUMAN" and part.seconds >= 1.5:
                first_turn_over = True
        elif isinstance(part, Say):
            chunk = say(recipe.voice, part.text)
            speech_start = at if speech_start is None else speech_start
            if not first_turn_over:
                speech_end = at + chunk.size / RATE
        elif isinstance(part, Beep):
            chunk = tone(part.hz, part.seconds, math.sqrt(2) * rms * 10 ** (part.rel_db / 20))
            beep_start, beep_end = at, at + part.seconds
        else:
            chunk = music(np.random.default_rng(part.seed), part.seconds) * rms * 0.5
        chunks.append(chunk)
        at += chunk.size / RATE
    x = np.concatenate(chunks)
    if recipe.background is not None:
        voice, text, rel_db = recipe.background
        talk = say(voice, text)
        offset = int(rng.integers(0, RATE))
        talk = np.concatenate([np.zeros(offset), talk, talk])[: x.size]
        scale = rms * 10 ** (rel_db / 20) / math.sqrt(active_power(talk))
        x[: talk.size] += talk * scale
    if recipe.music_bed_db is not None:
        x += music(rng, x.size / RATE) * rms * 10 ** (recipe.music_bed_db / 20)
    line = recipe.line
    x = x + band_noise(rng, x.size) * rms * 10 ** (-line.snr_db / 20)
    if line.clip is not None:
        limit = line.clip * np.abs(x).max()
        x = np.clip(x, -limit, limit)
        rms = math.sqrt(active_power(x))
    x = x * (32768.0 * 10 ** (line.level_dbfs / 20) / rms)
    if line.loss:
        x = _lose(rng, x, line.loss, line.conceal)
    x = np.clip(x, -32768, 32767)
    y = ulaw_decode(ulaw_encode(x)) if line.law == "ulaw" else alaw_decode(alaw_encode(x))
    tags = [recipe.kind]
    if recipe.background is not None:
        tags.append("background-talk")
    if recipe.music_bed_db is not None:
        tags.append("music-bed")
    if line.loss:
        tags.append("loss")
    if line.clip is not None:
        tags.append("clipped")
    return Call(
        recipe.name, recipe.label, recipe.kind, recipe.voice.engine, str(recipe.voice),
        np.asarray(y, dtype=np.int16), speech_start or 0.0, speech_end or 0.0,
        beep_start, beep_end, tuple(tags),
    )  # fmt: skip


def build(recipes: Sequence[Recipe], workers: int = 4) -> list[Call]:
    """Render recipes; their distinct phrases are synthesized in parallel subprocesses."""
    prepare([u for r in recipes for u in r.utterances()], workers)
    return [render(r) for r in recipes]
