"""A small jitter buffer: RTP frames in by sequence number, one frame out per 20 ms slot.

Pure (no clock, no loop): the owner calls `push` as packets arrive and `pop` once per
slot of its own sending clock. The rules:

- It starts (and restarts after running dry) by holding `prefill` frames before it gives
  any out, so a packet arriving a little late is still in time.
- Frames come out in sequence order; a missing one is a gap (`pop` returns None, the owner
  plays silence) and the buffer moves on. A frame arriving after its slot has passed is
  dropped (`late` counts them), as is a duplicate.
- Latency stays bounded: more than `limit` frames waiting (the sender's clock runs fast,
  or a burst came after a stall) drops the oldest down to `prefill` (`dropped` counts).
- Sequence numbers wrap at 2**16 (RFC 3550 §5.1); they are unwrapped against the last
  one seen, so a jump of more than half the space is taken as a new stream (a reset).
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["JitterBuffer"]

T = TypeVar("T")

_HALF = 0x8000


def _delta(seq: int, reference: int) -> int:
    """`seq - reference` in 16-bit sequence space, in -2**15 .. 2**15-1."""
    return ((seq - reference + _HALF) & 0xFFFF) - _HALF


class JitterBuffer(Generic[T]):
    """Frames by RTP sequence number (see the module doc)."""

    def __init__(self, prefill: int = 2, limit: int = 8) -> None:
        if not 1 <= prefill <= limit:
            raise ValueError("need 1 <= prefill <= limit")
        self.prefill = prefill
        self.limit = limit
        self._frames: dict[int, T] = {}
        self._last: int | None = None  # unwrapped sequence number of the last push
        self._next: int | None = None  # the next slot's sequence number; None: filling
        self.late = 0
        self.dropped = 0
        self.gaps = 0

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, seq: int, frame: T) -> None:
        """A frame that arrived with RTP sequence number `seq` (0..65535)."""
        if self._last is None:
            ext = seq & 0xFFFF
        else:
            ext = self._last + _delta(seq, self._last & 0xFFFF)
            if abs(ext - self._last) > self.limit * 4 and not self._frames:
                # Far off with nothing waiting: a new stream (the far end restarted).
                self._next = None
        if self._next is not None and ext < self._next:
            self.late += 1
            return
        if ext in self._frames:
            return
        self._last = ext if self._last is None else max(ext, self._last)
        self._frames[ext] = frame
        if len(self._frames) > self.limit:
            for old in sorted(self._frames)[: len(self._frames) - self.prefill]:
                del self._frames[old]
                self.dropped += 1
            if self._next is not None:
                self._next = min(self._frames)

    def pop(self) -> T | None:
        """This slot's frame, or None (still filling, a gap, or empty)."""
        if self._next is None:
            if len(self._frames) < self.prefill:
                return None
            self._next = min(self._frames)
        frame = self._frames.pop(self._next, None)
        self._next += 1
        if frame is None:
            if self._frames:
                self.gaps += 1
            else:
                self._next = None  # ran dry: fill up again before giving out more
        return frame
