"""An app_amd-style reference detector, written from Asterisk's documented AMD parameters.

Asterisk's AMD() application classifies by amplitude and word counting, frame
by frame (20 ms): a frame is silence when its average absolute sample is below
`silence_threshold` (256 on the 16-bit scale); a word is `min_word_length` of
consecutive voice; a word ends after `between_words_silence`. Verdicts, as the
documentation lists them: MACHINE when the initial silence exceeds
`initial_silence`, when voice in the greeting exceeds `greeting`, when a word
exceeds `maximum_word_length`, when the words reach `maximum_number_of_words`;
HUMAN when silence after the greeting exceeds `after_greeting_silence`;
NOTSURE when `total_analysis_time` passes. Defaults from amd.conf.sample;
maximum_number_of_words is 3 here (the issue's "2-3"; the third word decides).
This is a re-implementation from that description, not Asterisk's code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FRAME = 160
FRAME_MS = 20


@dataclass(frozen=True, slots=True)
class AppAmdParams:
    initial_silence: int = 2500
    greeting: int = 1500
    after_greeting_silence: int = 800
    total_analysis_time: int = 5000
    min_word_length: int = 100
    between_words_silence: int = 50
    maximum_number_of_words: int = 3
    silence_threshold: int = 256
    maximum_word_length: int = 5000


def app_amd(samples: npt.ArrayLike, p: AppAmdParams | None = None) -> tuple[str, int, str, int]:
    """(status, decision ms, cause, ms of audio consumed) for 8 kHz 16-bit audio."""
    p = p if p is not None else AppAmdParams()
    x = np.asarray(samples, dtype=np.float64)
    in_initial_silence, in_greeting, in_word = True, False, False
    silence = voice = consecutive = words = total = 0
    for start in range(0, x.size - FRAME + 1, FRAME):
        total += FRAME_MS
        if total >= p.total_analysis_time:
            return "NOTSURE", total, "TOOLONG", total
        frame = x[start : start + FRAME]
        if float(np.mean(np.abs(frame))) < p.silence_threshold:
            silence += FRAME_MS
            consecutive = 0
            if in_word and silence >= p.between_words_silence:
                in_word = False
            if in_initial_silence and silence >= p.initial_silence:
                return "MACHINE", total, "INITIALSILENCE", total
            if in_greeting and silence >= p.after_greeting_silence:
                return "HUMAN", total, "HUMAN", total
            continue
        silence = 0
        consecutive += FRAME_MS
        voice += FRAME_MS
        if consecutive >= p.min_word_length and not in_word:
            words += 1
            in_word = True
            if words >= p.maximum_number_of_words:
                return "MACHINE", total, "MAXWORDS", total
        if consecutive >= p.maximum_word_length:
            return "MACHINE", total, "MAXWORDLENGTH", total
        if in_greeting and voice >= p.greeting:
            return "MACHINE", total, "LONGGREETING", total
        if not in_greeting and consecutive >= p.min_word_length:
            in_greeting, in_initial_silence = True, False
    return "NOTSURE", total, "HANGUP", total
