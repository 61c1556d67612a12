"""Acceptance 1 of issue 11: the applications (`ivr/`, `acd/`) reach pbx only through its
API module."""

from __future__ import annotations

import ast
from pathlib import Path

import acd
import ivr

IVR = Path(ivr.__file__).parent
ACD = Path(acd.__file__).parent


def _pbx_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(n for n in names if n == "pbx" or n.startswith("pbx."))
    return found


def test_ivr_imports_only_the_api_from_pbx() -> None:
    files = sorted(IVR.glob("**/*.py"))
    assert len(files) >= 6  # the runner, player, voicemail, menu, prompts ... are read
    offenders = {
        str(path.relative_to(IVR)): sorted(mods - {"pbx.api"})
        for path in files
        if (mods := _pbx_imports(path)) - {"pbx.api"}
    }
    assert offenders == {}


def test_acd_imports_only_the_api_from_pbx() -> None:
    files = sorted(ACD.glob("**/*.py"))
    assert len(files) >= 10  # the engine, strategies, app, supervisor, stats ... are read
    offenders = {
        str(path.relative_to(ACD)): sorted(mods - {"pbx.api"})
        for path in files
        if (mods := _pbx_imports(path)) - {"pbx.api"}
    }
    assert offenders == {}


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import pbx.b2bua\nfrom pbx.calls import InboundCall\nfrom pbx import api\n")
    assert _pbx_imports(bad) == {"pbx.b2bua", "pbx.calls", "pbx"}
