"""The Call API seam's import rules (issue 11): no circle between the B2BUA and the
bridge (not even for type checking), and the router never imports the API above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pbx

PBX = Path(pbx.__file__).parent


def _imports(name: str) -> set[str]:
    tree = ast.parse((PBX / name).read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_bridge_does_not_import_the_b2bua() -> None:
    assert "pbx.b2bua" not in _imports("bridge.py")
    assert "pbx.bridge" in _imports("b2bua.py")


def test_the_switch_below_the_api_never_imports_it() -> None:
    for name in ("b2bua.py", "bridge.py", "calls.py", "media_bridge.py"):
        assert "pbx.api" not in _imports(name), name
    assert "pbx.b2bua" in _imports("api/switch.py")
