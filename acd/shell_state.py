"""The ACD shell's shared state and its one input path (see acd.app).

`ShellState` holds what the asyncio shell keeps beside the pure `AcdEngine`: the
live legs (callers' calls, agents' answered legs, bridges), the ring tasks, and the
queue of batches the persistence writer stores in order. Every engine input goes
through `_input`, which runs due timers first (the engine is never fed an older
`now` than it saw), then hands the actions to `_apply` (acd.shell_calls) and the
writer, and wakes the timer task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from acd.engine import AcdEngine
from acd.engine_actions import Action
from acd.estimate import Estimator
from acd.model import Member, QueueConfig
from ivr.player import PromptPlayer
from pbx.api import Bridge, Call, Switch

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CallerLeg:
    """A caller the shell serves: its call and the actions addressed to it."""

    call: Call
    queue: str
    inbox: asyncio.Queue[Action | None] = field(default_factory=asyncio.Queue)


class ShellState:
    """State shared by the ACD shell's parts; `AcdApplication` is the whole."""

    def __init__(self, prompts: PromptPlayer, *, clock: Callable[[], float] = time.time) -> None:
        self.prompts = prompts
        self._clock = clock
        self._last_now = 0.0
        self._engine: AcdEngine | None = None
        self._switch: Switch | None = None
        self._configs: dict[str, QueueConfig] = {}
        self._members: dict[str, tuple[Member, ...]] = {}
        self._numbers: dict[str, str] = {}  # queue number -> queue name
        self._estimators: dict[str, Estimator] = {}
        self._callers: dict[str, CallerLeg] = {}  # caller call id -> its leg
        self._customers: dict[str, Call] = {}  # callback call id -> the customer's call
        self._agent_legs: dict[str, Call] = {}  # agent -> its answered leg (offer or call)
        self._answered: dict[tuple[str, str], int] = {}  # (caller, agent) -> offer id
        self._bridges: dict[str, Bridge] = {}  # agent -> bridge of its queue call
        self._rings: dict[tuple[str, str, int], asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._writes: asyncio.Queue[tuple[list[Action], bool]] = asyncio.Queue()
        self._in_use: dict[str, set[str]] = {}  # agent -> ids of its non-queue calls
        self._external = False  # inputs that follow the database (acd.app._reload)

    # -- clock, engine, tasks -------------------------------------------------------

    def _now(self) -> float:
        """Wall time, never earlier than a time the engine was given."""
        self._last_now = max(self._last_now, self._clock())
        return self._last_now

    @property
    def engine(self) -> AcdEngine:
        if self._engine is None:
            raise RuntimeError("the ACD application is not started")
        return self._engine

    @property
    def switch(self) -> Switch:
        if self._switch is None:
            raise RuntimeError("the ACD application is not started")
        return self._switch

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """An owned task: kept until it ends, cancelled and awaited by `close`."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ACD task %s failed", task.get_name(), exc_info=task.exception())

    def _input(self, name: str, *args: Any, **kwargs: Any) -> list[Action]:
        """Feed the engine input `name` at the current time (due timers first) and carry
        out the actions; returns them."""
        engine = self.engine
        now = self._now()
        actions: list[Action] = []
        deadline = engine.next_deadline()
        if deadline is not None and deadline <= now:
            actions += engine.on_timer(now)
        actions += getattr(engine, name)(*args, now=now, **kwargs)
        self._carry_out(actions)
        return actions

    def _timer_fired(self) -> None:
        actions = self.engine.on_timer(self._now())
        self._carry_out(actions)

    def _carry_out(self, actions: list[Action]) -> None:
        if actions:
            # An input that follows the database: its events are stored already.
            self._writes.put_nowait((actions, self._external))
            self._apply(actions)
        self._wake.set()

    def _apply(self, actions: list[Action]) -> None:  # acd.shell_calls
        raise NotImplementedError
