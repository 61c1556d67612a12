"""The control API: an idle connection is closed quietly; a dead server's file is named."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pbx.config import Settings
from pbx.control import ControlServer, fetch_status
from pbx.errors import ControlError


async def test_idle_connection_is_closed_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path)
    server = ControlServer(settings, {"GET /status": lambda _: {"ok": True}}, head_timeout=0.2)
    await server.start()
    caplog.set_level(logging.DEBUG)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /status HTTP/1.1\r\n")  # ... and never the end of the head
        assert await asyncio.wait_for(reader.read(), 30) == b""  # closed by the server
        writer.close()
    finally:
        await server.close()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert not any(r.exc_info for r in caplog.records)
    assert "control: no request within 0.2 s; connection closed" in caplog.messages


def test_control_file_of_a_dead_process(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    dead = int(done.stdout)
    (tmp_path / "control.json").write_text(
        json.dumps({"host": "127.0.0.1", "port": 9, "token": "x", "pid": dead})
    )
    with pytest.raises(ControlError) as info:
        fetch_status(Settings(data_dir=tmp_path))
    assert f"left from PID {dead}, which has ended" in str(info.value)
    # A live PID (ours) is not called dead: the error is then about reaching it.
    (tmp_path / "control.json").write_text(
        json.dumps({"host": "127.0.0.1", "port": 9, "token": "x", "pid": os.getpid()})
    )
    with pytest.raises(ControlError) as info:
        fetch_status(Settings(data_dir=tmp_path))
    assert "cannot reach the server" in str(info.value)
