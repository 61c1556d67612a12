"""Logging that a peer cannot turn into a flood: a bounded number of lines per interval."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    """At most `burst` lines per `interval` seconds; the rest are counted and the count
    reported with the next line let through. For what a peer can make us log per packet.
    """

    def __init__(
        self,
        logger: logging.Logger,
        level: int,
        *,
        burst: int = 10,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._level = level
        self._burst = burst
        self._interval = interval
        self._clock = clock
        self._window = -interval
        self._count = 0
        self.suppressed = 0

    def __call__(self, msg: str, *args: object) -> bool:
        """Log `msg % args` unless over the rate; returns whether it was logged."""
        now = self._clock()
        if now - self._window >= self._interval:
            self._window = now
            self._count = 0
        if self._count >= self._burst:
            self.suppressed += 1
            return False
        self._count += 1
        if self.suppressed:
            msg += " (%d similar lines suppressed)"
            args = (*args, self.suppressed)
            self.suppressed = 0
        self._logger.log(self._level, msg, *args)
        return True


__all__ = ["RateLimitedLog"]
