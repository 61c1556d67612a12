"""File names the simulator writes."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^0-9A-Za-z+#_-]")


def safe_name(number: str) -> str:
    """A dialled number as a file-name part: odd characters become '_', at most 40."""
    return _UNSAFE.sub("_", number)[:40] or "unknown"
