"""AMD: the decision function and frame classes as tables, the tracker on hand-built
feature sequences, the feature extractor on synthetic signals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from media.amd import (
    AmdParams,
    AmdTracker,
    Beep,
    Decision,
    Evidence,
    FrameKind,
    GreetingEnd,
    Result,
    analyse,
    classify,
    decide,
    frame_kind,
)
from media.amd_features import FeatureExtractor, FrameFeatures

P = AmdParams()
H, M, N = Result.HUMAN, Result.MACHINE, Result.NOTSURE


@pytest.mark.parametrize(
    ("ev", "params", "expected"),
    [
        (Evidence(now_ms=1000), P, None),
        (Evidence(now_ms=2480), P, None),
        (Evidence(now_ms=2500), P, (N, "initial silence")),
        (Evidence(now_ms=2500), dataclasses.replace(P, silence_result=M), (M, "initial silence")),
        # "Hello?" (500 ms) then silence: needs 600 + 0.4 × 500 = 800 ms of it
        (Evidence(1580, 300, 500, 1, False, 800), P, None),
        (Evidence(1600, 300, 500, 1, False, 800), P, (H, "waits for an answer")),
        # after 1.2 s of talk a pause must be longer to be a turn given (1080 ms)
        (Evidence(2960, 300, 1200, 2, False, 1900), P, None),
        (Evidence(2980, 300, 1200, 2, False, 1900), P, (H, "waits for an answer")),
        # a receptionist's 3 s answer is a person too, after at most 1.5 s of silence
        (Evidence(5380, 300, 3000, 4, False, 3900), P, None),
        (Evidence(5400, 300, 3000, 4, False, 3900), P, (H, "waits for an answer")),
        # still talking: never human, however long ago the onset
        (Evidence(2000, 300, 1200, 1, True, 2000), P, None),
        (Evidence(3820, 300, 3500, 1, True, 3820), P, None),
        (Evidence(3840, 300, 3520, 1, True, 3840), P, (M, "speaks on")),
        (Evidence(4500, 300, 3520, 6, False, 4000), P, (M, "speaks on")),
        (Evidence(7000, 300, 1000, 3, True, 7000), P, (N, "too long")),
        (Evidence(900, None, 0, 0, False, 0, beep_ms=700), P, (M, "beep")),
        (Evidence(900, 300, 400, 1, True, 900, beep_ms=700), P, (M, "beep")),
    ],
)
def test_decide(ev: Evidence, params: AmdParams, expected: tuple[Result, str] | None) -> None:
    assert decide(ev, params) == expected


def ff(level: float, periodicity: float = 0.9, hz: float = 500.0, purity: float = 0.3,
       floor: float = -60.0) -> FrameFeatures:  # fmt: skip
    return FrameFeatures(level, floor, periodicity, hz, purity)


@pytest.mark.parametrize(
    ("f", "in_word", "kind"),
    [
        (ff(-60, 0.1), False, FrameKind.SILENCE),
        (ff(-52, 0.9), False, FrameKind.SILENCE),  # 8 dB over the floor: not loud enough
        (ff(-50, 0.9), False, FrameKind.VOICED),
        (ff(-50, 0.2), False, FrameKind.UNVOICED),
        (ff(-55, 0.2), True, FrameKind.UNVOICED),  # hysteresis inside a word
        (ff(-57, 0.9), True, FrameKind.VOICED),
        (ff(-57, 0.2), True, FrameKind.SILENCE),
        (ff(-20, 0.99, 1000, 0.97), False, FrameKind.TONE),
        (ff(-20, 0.99, 1000, 0.75), False, FrameKind.VOICED),  # a vowel, not pure enough
        (ff(-20, 0.99, 200, 0.97), False, FrameKind.VOICED),  # hum band: no beep
        (ff(-55, 0.99, 1000, 0.97), False, FrameKind.SILENCE),  # faint tone
        (ff(-70, 0.9, floor=-90), False, FrameKind.SILENCE),  # below min_level_dbfs
    ],
)
def test_frame_kind(f: FrameFeatures, in_word: bool, kind: FrameKind) -> None:
    assert frame_kind(f, P, in_word) is kind


@pytest.mark.parametrize(
    ("level", "in_word", "kind"),
    [
        (-30, False, FrameKind.VOICED),  # within 12 dB of the callee's loudest word (-20)
        (-33, False, FrameKind.SILENCE),  # someone behind them
        (-33, True, FrameKind.VOICED),  # inside a word the gate is 6 dB wider
        (-39, True, FrameKind.SILENCE),
    ],
)
def test_frames_far_under_the_callee_are_background(
    level: float, in_word: bool, kind: FrameKind
) -> None:
    assert frame_kind(ff(level, 0.9), P, in_word, talker_db=-20.0) is kind


SPEECH = ff(-20, 0.9)
HUSH = ff(-60, 0.1)
NOISE = ff(-30, 0.1)  # loud, aperiodic
TONE = ff(-20, 0.99, 1000, 0.98)


def frames(*parts: tuple[FrameFeatures, int]) -> list[FrameFeatures]:
    out: list[FrameFeatures] = []
    for f, ms in parts:
        out += [f] * (ms // 20)
    return out


def test_short_greeting_then_silence_is_human() -> None:
    r = analyse(frames((HUSH, 400), (SPEECH, 500), (HUSH, 3000)))
    # speech 400..900; 800 ms of silence are complete at the end of the frame ending 1700
    assert (r.result, r.decision_ms, r.reason) == (H, 1700, "waits for an answer")
    assert r.greeting_end_ms is None and r.beep is None


def test_hello_pause_hello_is_human() -> None:
    seq = frames((HUSH, 300), (SPEECH, 500), (HUSH, 400), (SPEECH, 500), (HUSH, 2000))
    r = analyse(seq)
    # 1000 ms of speech ending at 1700: needs 1000 ms of silence
    assert (r.result, r.decision_ms) == (H, 2700)


def test_receptionists_long_answer_is_human() -> None:
    """Three seconds of "Good morning, Schmidt and Sons, Anna speaking, how can I help?"
    with short pauses, then the wait for the caller: a person (app_amd: MACHINE)."""
    seq = frames((HUSH, 300), (SPEECH, 1000), (HUSH, 300), (SPEECH, 900), (HUSH, 240),
                 (SPEECH, 1100), (HUSH, 3000))  # fmt: skip
    r = analyse(seq)
    assert (r.result, r.decision_ms) == (H, 3840 + 1500)


def test_long_continuous_greeting_is_machine_then_greeting_end() -> None:
    tracker = AmdTracker()
    events = [e for f in frames((HUSH, 200), (SPEECH, 5000), (HUSH, 6000)) for e in tracker.step(f)]
    assert events == [Decision(M, 3720, "speaks on"), GreetingEnd(5200)]
    assert tracker.done  # gave up on a beep 4 s after the greeting ended
    assert tracker.now_ms == 5200 + 4000


def test_greeting_with_phrase_pauses_is_machine() -> None:
    phrase = [(SPEECH, 600), (HUSH, 300)]
    r = analyse(frames((HUSH, 200), *(phrase * 8), (HUSH, 2000)))
    # speech time passes 3500 ms in the sixth phrase: 200 + 5 × 900 + 520
    assert (r.result, r.decision_ms) == (M, 5220)


def test_quieter_voice_behind_the_callee_is_not_their_speech() -> None:
    """A television 20 dB under the callee's "Hello?" talks on: the callee still waits.
    (Within 18 dB and right after a word it would lengthen the word: see frame_kind.)"""
    tv = ff(-40, 0.9)
    seq = frames((HUSH, 300), (SPEECH, 500), (HUSH, 100)) + frames((tv, 700), (HUSH, 200)) * 5
    r = analyse(seq)
    assert (r.result, r.decision_ms) == (H, 1600)


def test_digital_silence_leaves_the_noise_floor() -> None:
    """Lost packets filled with zeros say nothing about the line: its noise stays quiet."""
    rng = np.random.default_rng(8)
    noise = 100 * rng.standard_normal(8000)  # -50 dBFS
    fs = run_features(np.concatenate([noise, np.zeros(320), noise]))
    assert all(f.floor_db > -53 for f in fs[30:])
    assert all(f.level_db - f.floor_db < 9 for f in fs[55:])


@pytest.mark.parametrize(("silence_result"), [N, M])
def test_silence_by_parameter(silence_result: Result) -> None:
    params = dataclasses.replace(P, silence_result=silence_result)
    r = analyse(frames((HUSH, 4000)), params)
    assert (r.result, r.decision_ms, r.reason) == (silence_result, 2500, "initial silence")


def test_clicks_and_noise_bursts_are_not_words() -> None:
    seq = frames((HUSH, 300), (SPEECH, 60), (HUSH, 400), (NOISE, 600), (HUSH, 3000))
    assert analyse(seq).result is N


def test_beep_found_at_the_right_time() -> None:
    tracker = AmdTracker()
    seq = frames((HUSH, 300), (SPEECH, 2500), (HUSH, 600), (TONE, 500), (HUSH, 1000))
    events = [e for f in seq for e in tracker.step(f)]
    assert events == [
        Decision(M, 3600, "beep"),
        GreetingEnd(2800),
        Beep(3400, 3900),
    ]
    r = tracker.finish()
    assert (r.greeting_end_ms, r.beep) == (2800, Beep(3400, 3900))


def test_beep_alone_is_machine() -> None:
    r = analyse(frames((HUSH, 500), (TONE, 400), (HUSH, 500)))
    assert (r.result, r.decision_ms, r.reason, r.beep) == (M, 700, "beep", Beep(500, 900))


def test_short_tone_is_no_beep_and_drifting_pitch_restarts() -> None:
    assert analyse(frames((HUSH, 500), (TONE, 160), (HUSH, 3000))).beep is None
    fading = [ff(-20 - i, 0.99, 1000, 0.98) for i in range(15)]  # a drawn-out vowel dies away
    assert analyse(frames((HUSH, 500)) + fading + frames((HUSH, 2500))).beep is None
    wobble = [ff(-20, 0.99, 1000 + 200 * (i % 2), 0.98) for i in range(20)]
    assert analyse(frames((HUSH, 500)) + wobble + frames((HUSH, 2500))).beep is None


def test_input_ending_undecided_is_notsure() -> None:
    r = analyse(frames((HUSH, 300), (SPEECH, 400), (HUSH, 200)))
    assert (r.result, r.decision_ms, r.reason) == (N, 900, "input ended")


# --- signal level ---------------------------------------------------------------

RATE = 8000


def run_features(x: np.ndarray) -> list[FrameFeatures]:
    fe = FeatureExtractor()
    return [fe(x[i : i + 160]) for i in range(0, x.size - 159, 160)]


def vowel(seconds: float, f0: float = 120.0, amplitude: float = 8000.0) -> np.ndarray:
    """A crude voiced sound: harmonics of f0 from 300 to 3400 Hz with a falling spectrum."""
    t = np.arange(round(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(3, int(3400 / f0)))
    return amplitude * x / np.abs(x).max()


def test_features_tell_tone_voice_and_noise_apart() -> None:
    rng = np.random.default_rng(5)
    tone = run_features(8000 * np.sin(2 * np.pi * 1000 * np.arange(4000) / RATE))
    assert all(abs(f.tone_hz - 1000) < 8 and f.tone_purity > 0.95 for f in tone[2:])
    voiced = run_features(vowel(0.5))
    assert all(f.periodicity > 0.8 and f.tone_purity < 0.8 for f in voiced[2:])
    noise = run_features(300 * rng.standard_normal(8000))
    assert max(f.periodicity for f in noise[2:]) < 0.45


def test_floor_follows_line_noise_up_and_down() -> None:
    rng = np.random.default_rng(6)
    quiet, loud = 100 * rng.standard_normal(8000), 1000 * rng.standard_normal(24000)
    fs = run_features(np.concatenate([quiet, loud, quiet]))
    level_quiet, level_loud = fs[40].level_db, fs[120].level_db
    assert abs(fs[49].floor_db - level_quiet) < 2
    assert abs(fs[199].floor_db - level_loud) < 3  # 20 dB up: caught within 3 s
    assert abs(fs[-1].floor_db - level_quiet) < 2  # and down again at once


def test_detector_on_signals_despite_level_change() -> None:
    rng = np.random.default_rng(7)
    noise = lambda s: 40 * rng.standard_normal(round(s * RATE))  # noqa: E731
    for gain in (0.1, 1.0, 3.0):
        hello = np.concatenate([noise(0.5), vowel(0.5) * gain + noise(0.5), noise(3)])
        assert classify(hello).result is H
        greeting = np.concatenate([noise(0.3), vowel(5.0) * gain + noise(5.0), noise(2)])
        assert classify(greeting).result is M
