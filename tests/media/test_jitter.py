"""The jitter buffer's rules (media/jitter.py), as tables of pushes and pops."""

from __future__ import annotations

import pytest

from media.jitter import JitterBuffer


def run(steps: list[tuple[str, int]], prefill: int = 2, limit: int = 5) -> list[int | None]:
    """("push", seq) or ("pop", 0) in turn; the frames are their own sequence numbers."""
    buffer = JitterBuffer[int](prefill, limit)
    out: list[int | None] = []
    for what, seq in steps:
        if what == "push":
            buffer.push(seq, seq)
        else:
            out.append(buffer.pop())
    return out


P = "push"
POP = ("pop", 0)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # Nothing until `prefill` frames wait, then in order.
        ([(P, 10), POP, (P, 11), POP, POP, POP], [None, 10, 11, None]),
        # Out of order arrival comes out in order.
        ([(P, 11), (P, 10), POP, POP], [10, 11]),
        # A gap is a None and the buffer moves on.
        ([(P, 1), (P, 3), (P, 4), POP, POP, POP, POP], [1, None, 3, 4]),
        # A frame after its slot is dropped.
        ([(P, 1), (P, 2), POP, POP, (P, 1), (P, 3), (P, 4), POP], [1, 2, 3]),
        # Sequence numbers wrap at 2**16.
        ([(P, 65535), (P, 0), (P, 1), POP, POP, POP], [65535, 0, 1]),
        # More than `limit` waiting: the oldest go, down to `prefill`.
        ([(P, n) for n in range(1, 7)] + [POP, POP], [5, 6]),
        # Running dry: it fills up again before giving more.
        ([(P, 1), (P, 2), POP, POP, POP, (P, 3), POP, (P, 4), POP], [1, 2, None, None, 3]),
    ],
)
def test_rules(steps: list[tuple[str, int]], expected: list[int | None]) -> None:
    assert run(steps) == expected


def test_counts_late_and_dropped() -> None:
    buffer = JitterBuffer[int](1, 2)
    for seq in (1, 2, 3):
        buffer.push(seq, seq)
    assert buffer.dropped == 2 and buffer.pop() == 3
    buffer.push(2, 2)
    assert buffer.late == 1


def test_bad_sizes() -> None:
    with pytest.raises(ValueError):
        JitterBuffer[int](3, 2)
