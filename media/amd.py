"""Answering-machine detection: a streaming detector over 20 ms frames of 8 kHz audio.

Feed it the callee's audio from the moment of answer. It decides HUMAN, MACHINE
or NOTSURE as soon as the evidence allows and says when; after MACHINE it goes
on listening and reports the end of the greeting and the beep, if any — the
moment a recorded message could start.

What a live answer and a recorded greeting differ in, and how it is used:

- A person answering says one thing ("Hello?", "Yes, Anna here", or a receptionist's
  whole "Good morning, Schmidt and Sons, how can I help you?") and then *waits for
  the caller*: the line goes quiet. A greeting is a monologue: phrase follows phrase
  with pauses of 0.2–0.8 s. So HUMAN needs a silence after the callee's turn, longer
  the more was said (`wait_ms + wait_per_speech × speech`, at most `max_wait_ms`):
  after a lone "Hello?" 0.8 s of quiet is a turn given to us; after two seconds of
  talk the same pause is likelier a breath between sentences.
- MACHINE is more speech than a person says before waiting (`max_turn_ms` of word
  time, pauses not counted, so "Hello? … Hello?" stays human), or a beep.
- A beep (a pure tone held ≥ `min_beep_ms` at a steady pitch and level).
- Activity is judged against a tracked noise floor, and a word needs voiced
  (periodic) frames, so line noise, level changes, clicks and G.711
  quantization neither make words nor hide them (see `media.amd_features`).
  Words far quieter than the callee's loudest (`background_db`) are a television
  or people in the room, not the callee.

When unsure the detector errs toward HUMAN (a person hung up on is the worst
error a dialer makes); a machine whose greeting is short and has no beep is
classed HUMAN, which no listener could tell from the first seconds either.

Compared to Asterisk's app_amd (fixed amplitude threshold 256, word = 100 ms
above it, 800 ms after-greeting silence, greeting 1500 ms, ≥ 3 words =
MACHINE): no absolute threshold, no word counting (a fluent greeting's words
run together, while "Hello? Hello?" is two words from a person), a person's
turn may be long, a pause rule that scales with what was said, and beep detection.

The decision is `decide(evidence, params)`, a pure function of an `Evidence`
summary; `AmdTracker` folds `FrameFeatures` into evidence (pure of the audio,
so tests build feature sequences by hand); `AmdDetector` adds the signal
processing. Nothing here blocks or allocates much: one frame costs ~0.1 ms.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from media.amd_features import FRAME_SAMPLES, FeatureExtractor, FloorParams, FrameFeatures

__all__ = [
    "FRAME_MS",
    "AmdDetector",
    "AmdParams",
    "AmdResult",
    "AmdTracker",
    "Beep",
    "Decision",
    "Event",
    "Evidence",
    "FrameKind",
    "GreetingEnd",
    "Result",
    "Word",
    "analyse",
    "classify",
    "decide",
    "frame_kind",
]

FRAME_MS = 20


class Result(enum.StrEnum):
    """The verdict on who answered."""

    HUMAN = "HUMAN"
    MACHINE = "MACHINE"
    NOTSURE = "NOTSURE"


class FrameKind(enum.Enum):
    """One frame's class: quiet line, loud but aperiodic, voiced, or a pure tone."""

    SILENCE = "silence"
    UNVOICED = "unvoiced"
    VOICED = "voiced"
    TONE = "tone"


@dataclass(frozen=True, slots=True)
class AmdParams:
    """Detector parameters; every time is in milliseconds from answer.

    Attributes:
        floor: noise-floor tracking; its `active_db` (a frame this far above the
            floor is loud) and `voiced` (periodicity of a voiced frame) also
            classify frames.
        min_level_dbfs: quieter frames are silence whatever the floor (-65 dBFS,
            around the level of μ-law's smallest steps).
        tone_purity: share of a frame's power near one frequency for a tone (0.8;
            most vowels stay below; one that does not is told from a beep by the
            tracker's pitch and level steadiness over `min_beep_ms`).
        hold_db, hold_voiced_db: inside a word, a frame stays loud down to this
            far above the floor (4 dB; 2 dB when voiced), see `frame_kind`.
        tone_active_db: a tone frame must be this far above the floor (6 dB: a beep
            over a noisy line).
        tone_min_hz, tone_max_hz: beep frequencies considered (300–3000 Hz).
        word_gap_ms: a quieter stretch this short stays inside a word (200 ms:
            stop closures, and fricatives that line noise masks at low SNR;
            a "word" is thus a stretch of fluent speech between pauses).
        min_word_ms: shorter loud runs are clicks, not words (100 ms, as app_amd).
        min_voiced_ms: voiced time a word needs (60 ms: every syllable has a vowel).
        initial_silence_ms: no word by then ends the analysis (2500, as app_amd).
        silence_result: the verdict for initial silence. NOTSURE by default: many
            people answer an unknown number and wait for the caller to speak;
            app_amd says MACHINE.
        max_turn_ms: more word time than this is a monologue (3500 ms). How long a
            person speaks before waiting for the caller: "Hello?" is ~0.5 s, a name or
            a question ~1–1.5 s, a receptionist's "Good morning, Schmidt and Sons,
            Anna speaking, how can I help you?" ~3 s; a greeting speaks on for 5–15 s.
            (app_amd's 1500 ms greeting loses every person who says their name.)
        wait_ms, wait_per_speech, max_wait_ms: the silence after the last word that
            means "the callee waits for us": wait_ms + wait_per_speech × word time
            so far, at most max_wait_ms (350 ms + 0.35×, ≤ 1200: 0.53 s after a 0.5 s
            "Hello?", 0.8 s after 1.3 s, 1.2 s after 2.5 s or more). Turn-taking gaps
            in conversation are ~0.2–0.5 s: after a short "Hello?" a person expects an
            answer at once; the more was said, the likelier a pause is a breath
            between sentences of a monologue, so the longer the wait.
        background_db: words this much quieter than the loudest word so far are
            someone else (a television, people in the room) and are not counted
            (12 dB: one talker's words stay within a few dB of each other).
        total_analysis_ms: undecided by then is NOTSURE (7000: a monologue reaches
            max_turn_ms after a lead-in and its pauses).
        min_beep_ms: a tone held this long at one pitch and level is a beep (120 ms).
        beep_tolerance_hz: pitch drift allowed within a beep (20 Hz: an oscillator
            holds its pitch; a sung or drawn-out vowel glides).
        beep_level_db: level change allowed within a beep (4 dB: a beep is flat, a
            vowel's level rises and falls).
        beep_gap_ms: a dropout this short does not end a beep (20 ms).
        greeting_end_silence_ms: after MACHINE, silence this long ends the
            greeting (1200 ms: longer than pauses within a greeting).
        beep_wait_ms: after the greeting ends, how long to wait for a beep (4000).
        max_listen_ms: stop listening for a beep this long after answer (30000).
    """

    floor: FloorParams = field(default_factory=FloorParams)
    min_level_dbfs: float = -65.0
    hold_db: float = 4.0
    hold_voiced_db: float = 2.0
    tone_purity: float = 0.8
    tone_active_db: float = 6.0
    tone_min_hz: float = 300.0
    tone_max_hz: float = 3000.0
    word_gap_ms: int = 200
    min_word_ms: int = 100
    min_voiced_ms: int = 60
    initial_silence_ms: int = 2500
    silence_result: Result = Result.NOTSURE
    max_turn_ms: int = 3500
    wait_ms: int = 600
    wait_per_speech: float = 0.4
    max_wait_ms: int = 1500
    background_db: float = 12.0
    background_hold_db: float = 6.0
    total_analysis_ms: int = 7000
    min_beep_ms: int = 200
    beep_tolerance_hz: float = 20.0
    beep_level_db: float = 4.0
    beep_gap_ms: int = 40
    greeting_end_silence_ms: int = 1200
    beep_wait_ms: int = 4000
    max_listen_ms: int = 30000


@dataclass(frozen=True, slots=True)
class Evidence:
    """What is known at `now_ms`: the input of `decide`.

    Attributes:
        now_ms: time since answer (end of the last frame).
        onset_ms: start of the first word, None before any.
        speech_ms: word time so far (pauses not counted).
        words: words so far (a word is speech between pauses > word_gap_ms).
        in_word: a word is going on.
        last_end_ms: end of the last word (equal to now while in a word).
        beep_ms: start of a beep, None before one is confirmed.
    """

    now_ms: int
    onset_ms: int | None = None
    speech_ms: int = 0
    words: int = 0
    in_word: bool = False
    last_end_ms: int = 0
    beep_ms: int | None = None


def decide(ev: Evidence, p: AmdParams) -> tuple[Result, str] | None:
    """The verdict and its reason, or None to keep listening (pure; rules in order)."""
    if ev.beep_ms is not None:
        return Result.MACHINE, "beep"
    if ev.onset_ms is None:
        if ev.now_ms >= p.initial_silence_ms:
            return p.silence_result, "initial silence"
        return None
    if ev.speech_ms > p.max_turn_ms:
        return Result.MACHINE, "speaks on"
    if not ev.in_word:
        silence = ev.now_ms - ev.last_end_ms
        if silence >= min(p.wait_ms + p.wait_per_speech * ev.speech_ms, p.max_wait_ms):
            return Result.HUMAN, "waits for an answer"
    if ev.now_ms >= p.total_analysis_ms:
        return Result.NOTSURE, "too long"
    return None


def frame_kind(
    f: FrameFeatures, p: AmdParams, in_word: bool = False, talker_db: float | None = None
) -> FrameKind:
    """Classify one frame from its features (pure).

    Inside a word a frame stays loud down to `hold_db` above the floor (a voiced
    one down to `hold_voiced_db`): hysteresis, so weak syllables at low SNR do
    not split a greeting into fragments while line noise still reads as quiet.
    Once the callee has spoken (`talker_db`, their loudest word's peak), a frame
    `background_db` below that is someone else's and reads as silence.
    """
    if f.level_db < p.min_level_dbfs:
        return FrameKind.SILENCE
    above = f.level_db - f.floor_db
    if (
        above >= p.tone_active_db
        and f.tone_purity >= p.tone_purity
        and p.tone_min_hz <= f.tone_hz <= p.tone_max_hz
    ):
        return FrameKind.TONE
    if talker_db is not None:
        gate = p.background_db + (p.background_hold_db if in_word else 0.0)
        if f.level_db < talker_db - gate:
            return FrameKind.SILENCE
    voiced = f.periodicity >= p.floor.voiced
    if in_word:
        loud = above >= p.hold_db or (voiced and above >= p.hold_voiced_db)
    else:
        loud = above >= p.floor.active_db
    if not loud:
        return FrameKind.SILENCE
    return FrameKind.VOICED if f.periodicity >= p.floor.voiced else FrameKind.UNVOICED


@dataclass(frozen=True, slots=True)
class Decision:
    """Who answered, decided `at_ms` after answer, and why."""

    result: Result
    at_ms: int
    reason: str


@dataclass(frozen=True, slots=True)
class GreetingEnd:
    """A machine's greeting ended at `at_ms` (reported when known; may be revised)."""

    at_ms: int


@dataclass(frozen=True, slots=True)
class Beep:
    """A beep from `start_ms` to `end_ms`: a message recorded from `end_ms` on is kept."""

    start_ms: int
    end_ms: int


Event = Decision | GreetingEnd | Beep


@dataclass(frozen=True, slots=True)
class AmdResult:
    """The whole outcome of one detection run."""

    result: Result
    decision_ms: int
    reason: str
    greeting_end_ms: int | None = None
    beep: Beep | None = None


@dataclass(frozen=True, slots=True)
class Word:
    """A stretch of fluent speech between pauses, and its loudest voiced frame."""

    start_ms: int
    end_ms: int
    peak_db: float


class AmdTracker:
    """Folds per-frame features into evidence, decisions and machine events.

    Words: runs of loud frames, quieter gaps up to `word_gap_ms` bridged, at
    least `min_word_ms` long with `min_voiced_ms` voiced. Words more than
    `background_db` below the loudest are someone else's and not counted. Beeps:
    runs of tone frames at one pitch and level. Pure in the sense that matters for
    tests: the same `FrameFeatures` sequence always gives the same events.
    """

    def __init__(self, params: AmdParams | None = None) -> None:
        self.params = params if params is not None else AmdParams()
        self.now_ms = 0
        self.decision: Decision | None = None
        self.greeting_end_ms: int | None = None
        self.beep: Beep | None = None
        self.done = False
        # words (bounded: the analysis ends by max_listen_ms, a word lasts >= min_word_ms)
        self._words: list[Word] = []
        self._run_start: int | None = None
        self._run_end = 0
        self._run_voiced = 0
        self._run_peak = -200.0
        # beep
        self._tone_start: int | None = None
        self._tone_end = 0
        self._tone_hz = 0.0
        self._tone_low = self._tone_high = 0.0
        self._beep_start: int | None = None
        self._greeting_end_sent = False

    def _run_word(self) -> Word | None:
        """The word going on, once it is long and voiced enough to be one."""
        p = self.params
        start = self._run_start
        if (
            start is None
            or self._run_end - start < p.min_word_ms
            or self._run_voiced < p.min_voiced_ms
        ):
            return None
        return Word(start, self._run_end, self._run_peak)

    def evidence(self) -> Evidence:
        """The evidence at the current time (the callee's words only, see background_db)."""
        current = self._run_word()
        words = self._words if current is None else [*self._words, current]
        if not words:
            return Evidence(self.now_ms, beep_ms=self._beep_start)
        top = max(w.peak_db for w in words)
        ours = [w for w in words if w.peak_db >= top - self.params.background_db]
        in_word = (
            current is not None
            and ours[-1] is current
            and self.now_ms - current.end_ms <= self.params.word_gap_ms
        )
        return Evidence(
            self.now_ms,
            ours[0].start_ms,
            sum(w.end_ms - w.start_ms for w in ours),
            len(ours),
            in_word,
            ours[-1].end_ms,
            self._beep_start,
        )

    def _close_run(self) -> None:
        word = self._run_word()
        if word is not None:
            self._words.append(word)
        self._run_start = None
        self._run_voiced = 0
        self._run_peak = -200.0

    def _track_words(self, kind: FrameKind, level_db: float, start: int) -> None:
        p = self.params
        if kind in (FrameKind.VOICED, FrameKind.UNVOICED):
            if self._run_start is None:
                self._run_start = start
            self._run_end = self.now_ms
            if kind is FrameKind.VOICED:
                self._run_voiced += FRAME_MS
                self._run_peak = max(self._run_peak, level_db)
        elif self._run_start is not None and self.now_ms - self._run_end > p.word_gap_ms:
            self._close_run()

    def _track_tone(self, kind: FrameKind, f: FrameFeatures, start: int) -> Beep | None:
        """Follow tone runs; returns a finished beep."""
        p = self.params
        if kind is FrameKind.TONE:
            same = (
                self._tone_start is not None
                and abs(f.tone_hz - self._tone_hz) <= p.beep_tolerance_hz
                and max(self._tone_high, f.level_db) - min(self._tone_low, f.level_db)
                <= p.beep_level_db
            )
            if not same:
                if self._beep_start is not None:  # another tone right after a beep ends it
                    return Beep(self._beep_start, self._tone_end)
                self._tone_start, self._tone_hz = start, f.tone_hz
                self._tone_low = self._tone_high = f.level_db
            self._tone_end = self.now_ms
            if self._beep_start is None:  # the beep's pitch and level are its first frames'
                self._tone_low = min(self._tone_low, f.level_db)
                self._tone_high = max(self._tone_high, f.level_db)
                if self._tone_start is not None and self.now_ms - self._tone_start >= p.min_beep_ms:
                    self._beep_start = self._tone_start
            return None
        if self._tone_start is not None and self.now_ms - self._tone_end > p.beep_gap_ms:
            self._tone_start = None
            if self._beep_start is not None:
                return Beep(self._beep_start, self._tone_end)
        return None

    def step(self, f: FrameFeatures) -> list[Event]:
        """Take the next frame's features; returns what became known with it."""
        if self.done:
            return []
        p = self.params
        start = self.now_ms
        self.now_ms += FRAME_MS
        current = self._run_word()
        peaks = [w.peak_db for w in self._words] + ([current.peak_db] if current else [])
        kind = frame_kind(f, p, self._run_start is not None, max(peaks, default=None))

        self._track_words(kind, f.level_db, start)
        beep = self._track_tone(kind, f, start)
        events: list[Event] = []
        ev = self.evidence()
        if self.decision is None:
            verdict = decide(ev, p)
            if verdict is not None:
                self.decision = Decision(verdict[0], self.now_ms, verdict[1])
                events.append(self.decision)
                if verdict[0] is not Result.MACHINE:
                    self.done = True
                    return events
        if self.decision is None:
            return events
        events.extend(self._listen(ev, beep))
        return events

    def _listen(self, ev: Evidence, beep: Beep | None) -> list[Event]:
        """After MACHINE: the end of the greeting, the beep, and when to stop."""
        p = self.params
        events: list[Event] = []
        if ev.in_word:
            self._greeting_end_sent = False  # more greeting: a reported end was a pause
        silence = ev.now_ms - ev.last_end_ms
        greeting_over = (
            not ev.in_word and ev.onset_ms is not None and silence >= p.greeting_end_silence_ms
        )
        if (greeting_over or ev.beep_ms is not None) and not self._greeting_end_sent:
            end = ev.last_end_ms if ev.onset_ms is not None else (ev.beep_ms or 0)
            if ev.beep_ms is not None:
                end = min(end, ev.beep_ms)
            self.greeting_end_ms = end
            self._greeting_end_sent = True
            events.append(GreetingEnd(end))
        if beep is not None:
            self.beep = beep
            events.append(beep)
            self.done = True
        elif self._beep_start is None and greeting_over and silence >= p.beep_wait_ms:
            self.done = True  # a greeting without a beep
        elif ev.now_ms >= p.max_listen_ms:
            self.done = True
        return events

    def finish(self) -> AmdResult:
        """The outcome when the input ends (undecided is NOTSURE; an open beep ends now)."""
        if self.beep is None and self._beep_start is not None:
            self.beep = Beep(self._beep_start, self._tone_end)
            if self.greeting_end_ms is None:
                self.greeting_end_ms = min(self.evidence().last_end_ms, self._beep_start)
        if self.decision is None:
            self.decision = Decision(Result.NOTSURE, self.now_ms, "input ended")
        return AmdResult(
            self.decision.result,
            self.decision.at_ms,
            self.decision.reason,
            self.greeting_end_ms if self.decision.result is Result.MACHINE else None,
            self.beep,
        )


def analyse(features: Iterable[FrameFeatures], params: AmdParams | None = None) -> AmdResult:
    """Run the tracker over a whole feature sequence (pure function of the sequence)."""
    tracker = AmdTracker(params)
    for f in features:
        tracker.step(f)
        if tracker.done:
            break
    return tracker.finish()


class AmdDetector:
    """The streaming detector: feed 160-sample frames (8 kHz, 16-bit scale) from answer."""

    def __init__(self, params: AmdParams | None = None) -> None:
        self.params = params if params is not None else AmdParams()
        self._features = FeatureExtractor(self.params.floor)
        self._tracker = AmdTracker(self.params)

    @property
    def done(self) -> bool:
        """True once nothing more will be learned (decided, and for MACHINE the beep heard
        or given up on)."""
        return self._tracker.done

    @property
    def decision(self) -> Decision | None:
        return self._tracker.decision

    def feed(self, frame: npt.ArrayLike) -> list[Event]:
        """Process one 20 ms frame; returns the events it produced."""
        if self._tracker.done:
            return []
        return self._tracker.step(self._features(frame))

    def finish(self) -> AmdResult:
        """The outcome so far, as if the audio ended now."""
        return self._tracker.finish()


def classify(samples: npt.ArrayLike, params: AmdParams | None = None) -> AmdResult:
    """Detect on a whole recording (8 kHz mono, 16-bit scale) from the moment of answer."""
    x = np.asarray(samples, dtype=np.float64)
    detector = AmdDetector(params)
    for start in range(0, x.size, FRAME_SAMPLES):
        detector.feed(x[start : start + FRAME_SAMPLES])
        if detector.done:
            break
    return detector.finish()
