"""Helpers every test package shares."""

from __future__ import annotations

import os
import shutil

import pytest


def need(tool: str) -> str:
    """The path of a program; in CI a missing one fails the test instead of skipping."""
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is not installed; .ci/run should have installed it")
        pytest.skip(f"{tool} is not installed")
    return path
