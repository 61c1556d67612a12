"""Answering-machine detection on a live call: `detect_machine(call)`.

The same streaming detector as `pbx amd classify` (`media.amd.AmdDetector`), fed
frame by frame from `Call.audio()` as the callee's RTP arrives. Times are counted
from the answer in media time: the time before the first packet came is fed as digital
silence, and so are the gaps in the stream's RTP timestamps (loss, a phone's silence
suppression: `Call.audio()` gives them as silent frames), which the detector reads as
quiet without letting it pull the line's noise floor down. A loop that reads packets
late (a busy server) moves no time: they are the same audio, only later.

A dialer calls it right after `Switch.dial` returns: HUMAN goes to an agent, NOTSURE
too (a person may be waiting), MACHINE either hangs up at once (`wait_for_beep=False`)
or waits for the beep and leaves a message from `message_ms`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import numpy as np

from media.amd import FRAME_MS, AmdDetector, AmdParams, Result
from pbx.api.call import Call

__all__ = ["MachineDetection", "detect_machine"]

log = logging.getLogger(__name__)

_SILENCE = np.zeros(160, np.int16)
#: Frames `Call.audio()` may hold for the detector (10 s): a stalled loop or a long
#: suppressed silence must not lose the oldest, which would move every later time.
_BACKLOG = 500


@dataclass(frozen=True, slots=True)
class MachineDetection:
    """What `detect_machine` found; every time is in ms from the answer.

    Attributes:
        result: HUMAN, MACHINE or NOTSURE (also when the call ended undecided).
        decision_ms: when the detector decided.
        reason: why, in words ("waits for an answer", "speaks on", "beep", ...).
        greeting_end_ms: a machine's greeting ended here (None: not heard yet).
        beep_ms: the beep started here (None: none heard).
        message_ms: a message recorded from here on is kept (the beep's end, else
            the greeting's end; None when neither was heard).
        call_ended: the call ended before detection was over.
    """

    result: Result
    decision_ms: int
    reason: str
    greeting_end_ms: int | None = None
    beep_ms: int | None = None
    message_ms: int | None = None
    call_ended: bool = False


async def detect_machine(
    call: Call,
    *,
    params: AmdParams | None = None,
    wait_for_beep: bool = True,
    timeout: float = 40.0,
) -> MachineDetection:
    """Listen to an answered call and tell who answered.

    Returns as soon as the verdict is in, or for MACHINE with `wait_for_beep` once the
    beep was heard or given up on (`AmdParams.beep_wait_ms` after the greeting, at most
    `max_listen_ms`). `timeout` (seconds) bounds the whole wait; the call is left as
    it is (the caller decides whether to hang up).
    """
    detector = AmdDetector(params)
    fed = 0
    ended = True
    try:
        async with asyncio.timeout(timeout):
            async for frame in call.audio(max_frames=_BACKLOG):
                since = call.since_answer()
                if fed == 0 and since is not None:
                    # the first frame's 20 ms ended about now: the time before it was quiet
                    for _ in range(max(0, int(since * 1000) // FRAME_MS - 1)):
                        detector.feed(_SILENCE)
                        fed += 1
                        if detector.done:
                            break
                if not detector.done:
                    detector.feed(frame)
                    fed += 1
                if detector.done or (not wait_for_beep and detector.decision is not None):
                    ended = False
                    break
    except TimeoutError:
        log.info("call %s: AMD gave up after %s s", call.id, timeout)
        ended = False
    outcome = detector.finish()
    beep = outcome.beep
    message = beep.end_ms if beep is not None else outcome.greeting_end_ms
    found = MachineDetection(
        outcome.result,
        outcome.decision_ms,
        outcome.reason,
        outcome.greeting_end_ms,
        None if beep is None else beep.start_ms,
        message if outcome.result is Result.MACHINE else None,
        ended and call.ended,
    )
    log.info(
        "call %s: AMD %s at %s ms (%s), beep %s",
        call.id,
        found.result.value,
        found.decision_ms,
        found.reason,
        found.beep_ms,
    )
    return found
