"""Click-to-call (`POST /calls`, `pbx call originate A B`), written on the Call API only.

Ring A, showing B's number, so A's phone says whom it will be connected to. When A
answers, A hears ringback while B rings (B sees A's number, or the caller ID given);
when B answers, the two are bridged until one hangs up. If B is busy or does not
answer, A hears a short busy tone and is hung up. Both calls are placed by the switch
(`Switch.dial`), so both have CDRs, and both CDRs name the originate
("placed by the switch for originate o-…").

The outcome is structured (`Originated`): which stage it ended in and the `Outcome`
behind it. Cancelling `originate` (the server stopping) hangs up whatever it placed.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pbx.api import Call, Cause, DialError, Outcome, PbxError, Switch

log = logging.getLogger(__name__)

_RATE = 8000


class Stage(enum.Enum):
    """Where a click-to-call ended."""

    A_UNREACHED = "A did not answer"  # busy, no answer, unknown, ... (see the outcome)
    A_LEFT = "A hung up before B answered"
    B_UNREACHED = "B did not answer"  # A heard a busy tone, then was hung up
    TALKED = "A and B were bridged"
    STOPPED = "stopped"  # the server stopped (cancelled)


@dataclass(frozen=True, slots=True)
class Originated:
    """How one click-to-call ended: its id, the stage and the outcome of that stage
    (for TALKED: how the bridged call ended)."""

    id: str
    a: str
    b: str
    stage: Stage
    outcome: Outcome

    def __str__(self) -> str:
        return f"originate {self.id} {self.a}->{self.b}: {self.stage.value} ({self.outcome})"


def new_id() -> str:
    """A fresh originate id (what `POST /calls` answers and the CDRs name)."""
    return "o-" + secrets.token_hex(4)


def _tones(
    pairs: tuple[float, float], on: float, off: float, level: float
) -> npt.NDArray[np.int16]:
    """One cadence of a dual-frequency call-progress tone: `on` seconds, then silence."""
    t = np.arange(int(_RATE * on)) / _RATE
    sound = level * (np.sin(2 * np.pi * pairs[0] * t) + np.sin(2 * np.pi * pairs[1] * t))
    return np.concatenate([sound, np.zeros(int(_RATE * off))]).astype(np.int16)


#: North American call-progress tones (ITU-T E.180 lists them): ringback 440+480 Hz,
#: 2 s on, 4 s off; busy 480+620 Hz, 0.5 s on, 0.5 s off (three cadences: ~3 s).
RINGBACK = _tones((440.0, 480.0), 2.0, 4.0, 3000.0)
BUSY = np.tile(_tones((480.0, 620.0), 0.5, 0.5, 3000.0), 3)


def shown_number(target: str) -> str:
    """What a phone shows for a dial target: the number of `trunk:NAME/NUMBER`, the user
    of a SIP URI, else the target itself (an extension, a ring group, a number). The
    target as it is would make a malformed From (`trunk:out/+44...@host`)."""
    if target.startswith("trunk:"):
        return target.partition("/")[2] or target[len("trunk:") :]
    if target.lower().startswith(("sip:", "sips:")):
        user, at, _host = target.partition(":")[2].partition("@")
        return user if at and user else target
    return target


async def _ringback(call: Call) -> None:
    """Ringback to `call` until cancelled or the call ends."""
    while await call.play(RINGBACK):
        pass


async def _dial(
    switch: Switch,
    target: str,
    *,
    caller_id: str,
    timeout: float | None,
    placed_for: str,
    cause: Call | None = None,
) -> Call | Outcome:
    """`Switch.dial`, or why nobody answered (a target it refuses outright, e.g. a
    malformed SIP URI, is a FAILED outcome too)."""
    try:
        return await switch.dial(
            target, caller_id=caller_id, timeout=timeout, cause=cause, placed_for=placed_for
        )
    except DialError as exc:
        return exc.outcome
    except PbxError as exc:
        return Outcome(Cause.FAILED, 0, str(exc))


async def originate(
    switch: Switch,
    a: str,
    b: str,
    *,
    caller_id: str | None = None,
    id: str | None = None,
    timeout: float | None = None,
) -> Originated:
    """Connect `a` and `b` (extensions, ring groups, SIP URIs as `Switch.dial` takes
    them): ring `a` showing `b`; once `a` answers, ring `b` showing `caller_id`
    (default `a`); bridge them and wait until the call ends. `timeout` caps each
    ringing (default: the switch's ring timeout). Never raises for a call that did not
    happen (an unknown or malformed number included): the result says why.
    """
    oid = id or new_id()
    tag = f"originate {oid}"

    def done(stage: Stage, outcome: Outcome) -> Originated:
        result = Originated(oid, a, b, stage, outcome)
        log.info("%s", result)
        return result

    placed: list[Call] = []
    try:
        call_a = await _dial(switch, a, caller_id=shown_number(b), timeout=timeout, placed_for=tag)
        if isinstance(call_a, Outcome):
            return done(Stage.A_UNREACHED, call_a)
        placed.append(call_a)
        log.info("%s: %s answered, ringing %s (call %s)", tag, a, b, call_a.id)
        ringback = asyncio.ensure_future(_ringback(call_a))
        try:
            call_b = await _dial(
                switch,
                b,
                caller_id=caller_id or shown_number(a),
                timeout=timeout,
                cause=call_a,
                placed_for=tag,
            )
        finally:
            ringback.cancel()
            await asyncio.gather(ringback, return_exceptions=True)
        if isinstance(call_b, Outcome):
            if call_a.ended:
                return done(Stage.A_LEFT, call_b)
            await call_a.play(BUSY)
            await call_a.hangup(0, f"{b}: {call_b}")
            return done(Stage.B_UNREACHED, call_b)
        placed.append(call_b)
        if call_a.ended:
            await call_b.hangup(0, f"{a} hung up")
            return done(Stage.A_LEFT, call_a.outcome or Outcome(Cause.NORMAL))
        try:
            bridge = switch.bridge(call_a, call_b)
        except PbxError as exc:  # one of them ended in between
            log.info("%s: not bridged: %s", tag, exc)
            gone = call_a if call_a.ended else call_b
            stage = Stage.A_LEFT if gone is call_a else Stage.B_UNREACHED
            return done(stage, gone.outcome or Outcome(Cause.FAILED, 0, str(exc)))
        log.info("%s: bridged %s (%s) with %s (%s)", tag, call_a.id, a, call_b.id, b)
        return done(Stage.TALKED, await bridge.wait())
    except asyncio.CancelledError:
        log.info("%s %s->%s: %s", tag, a, b, Stage.STOPPED.value)
        raise
    finally:
        for call in placed:
            if not call.ended:
                with contextlib.suppress(PbxError, OSError):
                    await call.hangup(0, f"{tag} ended")
