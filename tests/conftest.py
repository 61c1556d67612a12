"""Test-suite wiring: under pytest-xdist (`.ci/run` runs `-n 2 --dist loadgroup`), the
tests that time real peers run one at a time within their group: the interop tests
(sipp, baresip, Linphone; RTP timers, ringing) in the "serial" group on one worker, the
browser tests (Chromium, Firefox) in the "browser" group on the other, beside the pure
tests: two interop tests at a time were not shown reliable on 2 cores, and the browser
tests mostly wait."""

from __future__ import annotations

from pathlib import Path

import pytest

_GROUPS = {"interop": "serial", "web": "browser"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    root = Path(__file__).resolve().parent
    for item in items:
        parts = Path(str(item.path)).resolve().relative_to(root).parts
        if parts and parts[0] in _GROUPS:
            item.add_marker(pytest.mark.xdist_group(_GROUPS[parts[0]]))
