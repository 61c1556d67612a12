"""`pbx vm list|play|delete|pin` through typer's CliRunner, and their one-line errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from cli.app import app
from media.wav import read_wav, write_wav
from pbx.store import Store

runner = CliRunner()


def pbx(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)])
    return result.exit_code, result.stdout, result.stderr


def _setup(data: Path) -> Path:
    """A data directory with user 1002 and one stored message; returns the WAV."""
    assert pbx(data, "init")[0] == 0
    assert pbx(data, "user", "add", "1002", "--password", "Correct-Horse-77")[0] == 0
    wav = data / "voicemail" / "1002" / "m1.wav"
    wav.parent.mkdir(parents=True)
    write_wav(wav, np.full(8000, 900, np.int16), 8000)

    async def add() -> None:
        async with await Store.open(data / "pbx.sqlite3") as store:
            await store.voicemail.add("1002", "1001", 1_700_000_000.0, 1.0, str(wav))

    asyncio.run(add())
    return wav


def test_list_play_delete(tmp_path: Path) -> None:
    data = tmp_path / "data"
    wav = _setup(data)
    code, out, err = pbx(data, "vm", "list")
    assert (code, err) == (0, "")
    header, row = out.splitlines()
    assert header.split() == ["ID", "BOX", "FOLDER", "FROM", "LEFT", "AT", "SECONDS"]
    assert row.split()[:4] == ["1", "1002", "new", "1001"] and row.split()[-1] == "1.0"
    assert pbx(data, "vm", "list", "1003") == (1, "", "pbx: error: no user '1003'\n")
    copy = tmp_path / "copy.wav"
    assert pbx(data, "vm", "play", "1", "--out", str(copy)) == (
        0,
        f"message 1 copied to {copy}\n",
        "",
    )
    assert read_wav(copy).samples.shape[0] == 8000
    assert pbx(data, "vm", "delete", "1") == (0, "deleted message 1 of box 1002\n", "")
    assert not wav.exists()
    assert pbx(data, "vm", "list") == (0, "no messages\n", "")
    assert pbx(data, "vm", "delete", "1") == (1, "", "pbx: error: no voicemail message 1\n")
    assert pbx(data, "vm", "play", "7") == (1, "", "pbx: error: no voicemail message 7\n")


def test_pin(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _setup(data)
    code, out, err = pbx(data, "vm", "pin", "1002")
    assert (code, err) == (0, "")
    first, second = out.splitlines()
    generated = first.removeprefix("PIN: ")
    assert len(generated) == 6 and generated.isdigit() and second == "PIN of mailbox 1002 set"

    async def check(pin: str) -> bool:
        async with await Store.open(data / "pbx.sqlite3") as store:
            return await store.voicemail.check_pin("1002", pin)

    assert asyncio.run(check(generated))
    assert pbx(data, "vm", "pin", "1002", "--pin", "4711") == (0, "PIN of mailbox 1002 set\n", "")
    assert asyncio.run(check("4711")) and not asyncio.run(check(generated))
    assert pbx(data, "vm", "pin", "1002", "--pin", "12") == (
        1,
        "",
        "pbx: error: a voicemail PIN is 4 to 12 digits\n",
    )
    assert pbx(data, "vm", "pin", "9999", "--pin", "4711") == (
        1,
        "",
        "pbx: error: no mailbox '9999' (no such user)\n",
    )


def test_huge_or_zero_message_ids_are_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _setup(data)
    huge = "9" * 40  # past SQLite's 64-bit INTEGER: was an OverflowError traceback
    for command in ("play", "delete"):
        for message_id in (huge, "0"):
            code, out, err = pbx(data, "vm", command, message_id)
            assert (code, out) == (1, ""), (command, message_id, err)
            assert err == f"pbx: error: no voicemail message {message_id}\n"
