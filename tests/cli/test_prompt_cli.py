"""`pbx prompt list|say|add|del|defaults` through typer's CliRunner, and their one-line errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.app import app
from ivr.prompts import DEFAULT_PROMPTS, PromptStore
from media.wav import read_wav, to_int16, write_wav
from tests.tools import need

runner = CliRunner()


def pbx(data_dir: Path, *args: str) -> tuple[int, str, str]:
    if not (data_dir / "pbx.sqlite3").exists():  # writes need an initialized data directory
        assert runner.invoke(app, ["init", "--data-dir", str(data_dir)]).exit_code == 0
    result = runner.invoke(app, ["prompt", *args, "--data-dir", str(data_dir)])
    return result.exit_code, result.stdout, result.stderr


def test_writes_refuse_a_directory_without_a_database(tmp_path: Path) -> None:
    typo = tmp_path / "dta"
    for args in (["defaults"], ["say", "x", "hello"], ["del", "x"], ["add", "x", "a.wav"]):
        result = runner.invoke(app, ["prompt", *args, "--data-dir", str(typo)])
        assert (result.exit_code, result.stdout) == (1, "")
        assert result.stderr == f"pbx: error: no database in {typo}; run `pbx init` first\n"
    assert not typo.exists()  # nothing was scattered there
    listed = runner.invoke(app, ["prompt", "list", "--data-dir", str(typo)])  # reading is fine
    assert listed.exit_code == 0


@pytest.fixture
def no_espeak(monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.which
    monkeypatch.setattr(
        "ivr.prompts.shutil.which", lambda cmd, *a, **k: None if cmd == "espeak-ng" else real(cmd)
    )


def test_add_list_del(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert pbx(data, "list") == (
        0,
        "no prompts; create the default set with `pbx prompt defaults`\n",
        "",
    )
    src = tmp_path / "in.wav"
    t = np.arange(16000 * 3 // 2) / 16000
    tone = to_int16(0.3 * np.sin(2 * np.pi * 500 * t))
    write_wav(src, np.stack([tone, tone], axis=1), 16000)
    assert pbx(data, "add", "main-menu", str(src)) == (0, "saved prompt main-menu (1.50 s)\n", "")
    stored = read_wav(data / "prompts" / "main-menu.wav")
    assert (stored.rate, stored.channels, stored.samples.shape[0]) == (8000, 1, 12000)
    write_wav(src, np.zeros(2000, np.int16), 8000)
    assert pbx(data, "add", "a", str(src)) == (0, "saved prompt a (0.25 s)\n", "")
    assert pbx(data, "list") == (0, "NAME       SECONDS\na          0.25\nmain-menu  1.50\n", "")
    assert pbx(data, "del", "a") == (0, "deleted prompt a\n", "")
    assert pbx(data, "list") == (0, "NAME       SECONDS\nmain-menu  1.50\n", "")


def test_list_marks_a_corrupt_prompt(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "bad.wav").write_bytes(b"junk")
    assert pbx(tmp_path, "list") == (0, "NAME  SECONDS\nbad   unreadable\n", "")


def test_say(tmp_path: Path) -> None:
    need("espeak-ng")
    code, out, err = pbx(tmp_path, "say", "hello", "Hello there.", "--voice", "en-us")
    assert (code, err) == (0, "")
    assert out.startswith("saved prompt hello (") and out.endswith(" s)\n")
    seconds = PromptStore(tmp_path / "prompts").duration("hello")
    assert out == f"saved prompt hello ({seconds:.2f} s)\n"
    assert 0.5 < seconds < 3.0


def test_defaults_with_tones(tmp_path: Path, no_espeak: None) -> None:
    code, out, err = pbx(tmp_path, "defaults")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:6] == [
        "created prompt ivr-welcome (0.56 s)",
        "created prompt ivr-invalid (0.66 s)",
        "created prompt ivr-timeout (0.86 s)",
        "created prompt ivr-goodbye (0.56 s)",
        "created prompt vm-unavailable (0.87 s)",
        "created prompt vm-beep (0.30 s)",
    ]
    assert [line.split()[2] for line in lines] == list(DEFAULT_PROMPTS)
    assert pbx(tmp_path, "defaults") == (0, "every default prompt exists already\n", "")
    assert PromptStore(tmp_path / "prompts").names() == sorted(DEFAULT_PROMPTS)


def test_defaults_creates_only_missing(tmp_path: Path) -> None:
    need("espeak-ng")
    src = tmp_path / "mine.wav"
    write_wav(src, np.ones(800, np.int16), 8000)
    for name in DEFAULT_PROMPTS:
        if name != "ivr-goodbye":
            assert pbx(tmp_path, "add", name, str(src))[0] == 0
    code, out, err = pbx(tmp_path, "defaults")
    assert (code, err) == (0, "")
    assert out.startswith("created prompt ivr-goodbye (") and out.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("del", "nope"), "no prompt 'nope' in {data}/prompts"),
        (("add", "x", "{data}/missing.wav"), "{data}/missing.wav: No such file or directory"),
        (("add", "Bad.Name", "{data}/missing.wav"), "bad prompt name 'Bad.Name': use 1-64 "
         "characters of a-z, 0-9, - and _"),
        (("say", "a/b", "hi"), "bad prompt name 'a/b': use 1-64 characters of a-z, 0-9, - and _"),
        (("say", "x", ""), "the text to say is empty"),
    ],
)  # fmt: skip
def test_one_line_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    expanded = [a.format(data=tmp_path) for a in args]
    assert pbx(tmp_path, *expanded) == (1, "", f"pbx: error: {message.format(data=tmp_path)}\n")


def test_corrupt_import(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    assert pbx(tmp_path, "add", "x", str(junk)) == (1, "", f"pbx: error: {junk}: no fmt chunk\n")
    assert not (tmp_path / "prompts" / "x.wav").exists()


def test_say_without_espeak(tmp_path: Path, no_espeak: None) -> None:
    assert pbx(tmp_path, "say", "x", "hello") == (
        1,
        "",
        "pbx: error: espeak-ng is not installed\n",
    )


def test_usage_error_is_one_line(tmp_path: Path) -> None:
    code, out, err = pbx(tmp_path, "add", "only-a-name")
    assert (code, out) == (2, "")
    assert err.startswith("pbx: error: ") and err.count("\n") == 1
