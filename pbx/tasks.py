"""Background tasks owned by an object (a call, the call manager, MWI).

`spawn` keeps a strong reference to the task in the owner's set until it finishes
(the event loop keeps only weak ones), names it, and logs an exception instead of
losing it; cancelling is the owner's business (it cancels what is left in its set).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

log = logging.getLogger(__name__)


def spawn(tasks: set[asyncio.Task[None]], coro: Awaitable[None], name: str) -> asyncio.Task[None]:
    """Run `coro` as a task named `name`, held in `tasks` while it runs."""

    async def guarded() -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed", name)

    task = asyncio.get_running_loop().create_task(guarded(), name=name)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task
