"""AMD on a small corpus generated here: espeak-ng speech, telephone band, noise, G.711.

Development set: these phrases, voices and seed are the ones the detector was
written against; benchmarks/amd.py measures on different ones.
"""

from __future__ import annotations

import numpy as np
import pytest

from media.amd import Result, classify
from tests.media.amd_corpus import Call, human_call, machine_call
from tests.tools import need

HUMANS = ["Hello?", "Hello.", "Yes?", "Hi, hello?", "Hello, who is this?", "Yeah, hello?"]
MACHINES = [
    "Hi, you have reached Michael. I can't take your call right now, "
    "please leave a message after the tone.",
    "Hello, this is Sarah. Sorry I missed you. Leave your name and number and I'll call back.",
    "The person you are calling is not available. Please record your message after the beep.",
    "Thanks for calling the Johnson family. We are not home right now, please leave a message.",
]
VOICES = [("en-us", 165), ("en-gb", 180), ("en-us+f3", 150)]


@pytest.fixture(scope="module")
def corpus() -> list[Call]:
    need("espeak-ng")
    need("sox")
    rng = np.random.default_rng(20240505)
    calls: list[Call] = []
    for i in range(12):
        voice, speed = VOICES[i % len(VOICES)]
        snr = float(rng.uniform(15, 40))
        calls.append(human_call(rng, f"human{i}", HUMANS, voice, speed, snr))
        calls.append(machine_call(rng, f"machine{i}", MACHINES, voice, speed, snr, i % 2 == 0))
    return calls


def test_accuracy_and_no_human_called_machine(corpus: list[Call]) -> None:
    results = {call.name: classify(call.audio) for call in corpus}
    right = sum(results[c.name].result.value == c.label for c in corpus)
    humans_as_machine = [
        c.name for c in corpus if c.label == "HUMAN" and results[c.name].result is Result.MACHINE
    ]
    assert humans_as_machine == []
    assert right / len(corpus) >= 0.9, {c.name: results[c.name] for c in corpus}


def test_beeps_found_where_they_are(corpus: list[Call]) -> None:
    for call in corpus:
        result = classify(call.audio)
        if call.beep_start is None or call.beep_end is None:
            assert result.beep is None, call.name
            continue
        assert result.beep is not None, call.name
        assert abs(result.beep.start_ms - 1000 * call.beep_start) <= 40, call.name
        assert abs(result.beep.end_ms - 1000 * call.beep_end) <= 40, call.name
        assert result.greeting_end_ms is not None
        assert result.greeting_end_ms <= result.beep.start_ms
