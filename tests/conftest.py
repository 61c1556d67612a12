"""Test-suite wiring: under pytest-xdist (`.ci/run` runs `-n 2 --dist loadgroup`), the
tests that time real peers (sipp, baresip, Linphone, Chromium; RTP timers, ringing) run
one at a time on one worker, in the "serial" group, while the pure tests share the
other worker: the interop tests were not shown reliable two at a time on 2 cores."""

from __future__ import annotations

from pathlib import Path

import pytest

_SERIAL = ("interop", "web")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    root = Path(__file__).resolve().parent
    for item in items:
        parts = Path(str(item.path)).resolve().relative_to(root).parts
        if parts and parts[0] in _SERIAL:
            item.add_marker(pytest.mark.xdist_group("serial"))
